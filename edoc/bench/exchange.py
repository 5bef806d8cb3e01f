"""Documents between two provinces of a real network, measured from the agencies' side.

The sender's agency posts through its node's agency API; a document counts as delivered
when it is in the recipient agency's inbox (verified and stored by the recipient's node),
and as answered when the sender's node has recorded the recipient's status 01. The times
are the nodes' own: ``received_at`` in the recipient's inbox and the 01 entry in the
sender's history, so polling here adds nothing to them.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import io
import time
from collections.abc import Awaitable
from dataclasses import dataclass, field
from typing import IO, Any

import aiohttp

from edoc.client import AgencyClient
from edoc.model import DeliveryState, StatusCode

POLL = 0.05  # seconds between two looks at the sender's statuses
HELD = 20.0  # seconds the recipient's node may hold a read of its inbox


@dataclass(frozen=True)
class Agency:
    url: str
    token: str
    org_id: str
    signer: dict[str, Any]


@dataclass
class Sent:
    outgoing_id: int
    document_id: str
    posted: float  # wall time just before the POST


@dataclass
class Timeline:
    sent: list[Sent] = field(default_factory=list)
    arrived: dict[str, float] = field(default_factory=dict)  # document id → received_at
    answered: dict[str, float] = field(default_factory=dict)  # document id → 01 recorded

    def arrival_ms(self) -> list[float]:
        return [(self.arrived[s.document_id] - s.posted) * 1000 for s in self.sent]

    def answer_ms(self) -> list[float]:
        return [
            (self.answered[s.document_id] - s.posted) * 1000
            for s in self.sent
            if s.document_id in self.answered
        ]


def metadata(sender: Agency, recipient: Agency, n: int) -> dict[str, Any]:
    return {
        "from": sender.org_id,
        "to": [recipient.org_id],
        "code": {"number": str(n + 1), "notation": "BENCH"},
        "promulgation": {"place": "Tây Ninh", "date": dt.date.today().isoformat()},
        "type": {"code": 1, "name": "Công văn"},
        "subject": f"V/v đo hiệu năng trục liên thông, văn bản số {n + 1}",
        "signer": sender.signer,
    }


class Exchange:
    def __init__(self, session: aiohttp.ClientSession, sender: Agency, recipient: Agency) -> None:
        self.sender = sender
        self.recipient = recipient
        self.sending = AgencyClient(sender.url, sender.token, session=session)
        self.receiving = AgencyClient(recipient.url, recipient.token, session=session)
        self._cursor: str | None = None
        self._count = 0

    async def post(self, attachment: IO[bytes], name: str = "van-ban.pdf") -> Sent:
        data = metadata(self.sender, self.recipient, self._count)
        self._count += 1
        posted = time.time()
        body = await self.sending.post_document(data, [(name, attachment)])
        return Sent(body["id"], body["document_id"], posted)

    @staticmethod
    def small_attachment(size: int) -> bytes:
        return b"%PDF-1.4 bench\n" * (size // 15)

    async def post_small(self, size: int) -> Sent:
        return await self.post(io.BytesIO(self.small_attachment(size)))

    async def _read_inbox(self, timeline: Timeline, wait: float) -> None:
        """What arrived since the last read, held at the node up to ``wait`` seconds until
        something does (reading every POLL seconds loaded the node being measured)."""
        documents = await self.receiving.inbox(
            self.recipient.org_id, self._cursor, limit=1000, wait=wait
        )
        for item in documents:
            self._cursor = item["received_at"]
            at = dt.datetime.fromisoformat(item["received_at"]).timestamp()
            timeline.arrived.setdefault(item["document_id"], at)

    async def wait_arrivals(self, timeline: Timeline, timeout: float) -> None:
        """Until every sent document is in the recipient's inbox."""
        deadline = time.monotonic() + timeout
        while any(s.document_id not in timeline.arrived for s in timeline.sent):
            left = deadline - time.monotonic()
            if left <= 0:
                missing = sum(1 for s in timeline.sent if s.document_id not in timeline.arrived)
                raise TimeoutError(f"{missing} documents did not arrive in {timeout:.0f} s")
            await self._read_inbox(timeline, min(left, HELD))

    async def _answered_at(self, sent: Sent) -> float | None:
        view = await self.sending.document(sent.outgoing_id)
        for entry in view["recipients"][0]["history"]:
            if entry["state"] == StatusCode.ARRIVED:
                return dt.datetime.fromisoformat(entry["at"]).timestamp()
        return None

    async def _unanswered(self) -> int:
        """Recipient rows at the sender's node still waiting for a status (one request,
        where asking after every document would load the node being measured)."""
        breakdown: dict[str, int] = (await self.sending.stats())["status_breakdown"]
        # "failed" is final: counting it would wait out the whole timeout for nothing
        waiting = (s for s in DeliveryState if s is not DeliveryState.FAILED)
        return sum(breakdown.get(state, 0) for state in waiting)

    async def wait_answered(self, timeout: float) -> None:
        """Until the sender's node has every recipient's status 01 (or ``timeout``)."""
        deadline = time.monotonic() + timeout
        while await self._unanswered() and time.monotonic() < deadline:
            await asyncio.sleep(POLL)

    async def wait_answers(self, timeline: Timeline, timeout: float) -> None:
        """Until the sender's node has every recipient's status 01, then read their times."""
        await self.wait_answered(timeout)
        found = await bounded(16, [self._answered_at(s) for s in timeline.sent])
        for sent, at in zip(timeline.sent, found, strict=True):
            if at is not None:
                timeline.answered[sent.document_id] = at


async def bounded(limit: int, calls: list[Awaitable[Any]]) -> list[Any]:
    """Await ``calls`` with at most ``limit`` at a time, results in order."""
    gate = asyncio.Semaphore(limit)

    async def one(call: Awaitable[Any]) -> Any:
        async with gate:
            return await call

    return await asyncio.gather(*(one(call) for call in calls))
