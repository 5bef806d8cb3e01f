"""Driving a running network with planned traffic, through the agency API only.

Three stages run at once: senders post documents (at their simulated times divided by
the speed-up, or as fast as the network takes them), a watcher reads the recipients'
inboxes to see what arrived and when, and the recipients answer what arrived with the
statuses the profile planned. Everything observed is kept for the report.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp

from edoc import errors
from edoc.client import AgencyClient, error_of
from edoc.model import StatusCode
from edoc.sim.traffic import Agency, Planned

PATIENCE = 60.0  # seconds without news after which the watcher stops waiting


@dataclass
class Observed:
    started: float = field(default_factory=time.time)
    posted: dict[int, float] = field(default_factory=dict)  # plan index → wall time
    refused: Counter[str] = field(default_factory=Counter)  # error code → count
    arrived: dict[int, float] = field(default_factory=dict)  # plan index → received_at
    answered: Counter[str] = field(default_factory=Counter)  # status code → count
    answer_refused: Counter[str] = field(default_factory=Counter)
    finished: float = 0.0


Tick = Callable[[str], None]


def _content(planned: Planned, n: int, size: int) -> bytes:
    header = f"%PDF-1.4\n% edoc {planned.document_id} #{n}\n".encode()
    return (header * (size // len(header) + 1))[:size]


class Simulation:
    def __init__(
        self,
        planned: list[Planned],
        run_id: str,
        speedup: float | None,
        concurrency: int,
        tick: Tick,
    ) -> None:
        self.planned = planned
        self.run_id = run_id
        self.speedup = speedup
        self.concurrency = concurrency
        self.tick = tick
        self.observed = Observed()
        self.by_document = {p.document_id: p for p in planned}
        self.sending_done = asyncio.Event()
        self.origin = planned[0].at if planned else dt.datetime.now(dt.UTC)
        self.session: aiohttp.ClientSession | None = None  # one for all agencies, while running

    async def _wait_until(self, moment: dt.datetime) -> None:
        if self.speedup is None:
            return
        due = self.observed.started + (moment - self.origin).total_seconds() / self.speedup
        await asyncio.sleep(max(0.0, due - time.time()))

    def _client(self, agency: Agency) -> AgencyClient:
        return AgencyClient(agency.url, agency.token, session=self.session)

    async def _send(self, planned: Planned) -> None:
        await self._wait_until(planned.at)
        files = [
            (name, _content(planned, n, size)) for n, (name, size) in enumerate(planned.attachments)
        ]
        posted = time.time()
        answer = await self._client(planned.sender).send(
            planned.metadata, files, idempotency_key=f"{self.run_id}-{planned.index}"
        )
        if answer.status == 202:
            self.observed.posted[planned.index] = posted
            self.tick("sent")
        else:
            self.observed.refused[error_of(answer.status, answer.body).code] += 1
            self.tick("refused")

    async def _senders(self) -> None:
        queue: asyncio.Queue[Planned] = asyncio.Queue()
        for planned in self.planned:
            queue.put_nowait(planned)

        async def worker() -> None:
            while not queue.empty():
                await self._send(queue.get_nowait())

        await asyncio.gather(*(worker() for _ in range(self.concurrency)))
        self.sending_done.set()

    async def _answer(
        self,
        planned: Planned,
        inbox_id: int,
        arrived: float,
        limit: asyncio.Semaphore,
    ) -> None:
        """The recipient's planned statuses, each at its time (with a speed-up)."""
        for code, hours in planned.answers:
            if self.speedup is not None:
                await asyncio.sleep(max(0.0, arrived + hours * 3600 / self.speedup - time.time()))
            async with limit:
                try:
                    await self._client(planned.recipient).post_status(
                        inbox_id, code, f"Trạng thái {code}"
                    )
                except errors.RemoteError as refused:
                    self.observed.answer_refused[refused.code] += 1
                    continue
            self.observed.answered[code] += 1
            self.tick("answered")

    async def _watch(self) -> None:
        """Read every recipient's inbox until all that was sent has arrived."""
        recipients = {p.recipient.org_id: p.recipient for p in self.planned}
        cursors: dict[str, str] = {}
        answering: set[asyncio.Task[None]] = set()
        limit = asyncio.Semaphore(self.concurrency)
        last_news = time.time()

        async def read(org: str, agency: Agency) -> bool:
            async with limit:
                documents = await self._client(agency).inbox(since=cursors.get(org), limit=1000)
            news = False
            for item in documents:
                cursors[org] = item["received_at"]
                planned = self.by_document.get(item["document_id"])
                arrived = dt.datetime.fromisoformat(item["received_at"]).timestamp()
                # on a network driven before, the inbox may hold an earlier run's copy of a
                # planned document (same DocumentId): only what arrived during this run counts
                if (
                    planned is None
                    or planned.index in self.observed.arrived
                    or arrived < self.observed.started
                ):
                    continue
                self.observed.arrived[planned.index] = arrived
                news = True
                self.tick("arrived")
                if planned.answers:
                    task = asyncio.create_task(self._answer(planned, item["id"], arrived, limit))
                    answering.add(task)
                    task.add_done_callback(answering.discard)
            return news

        while True:
            news = any(await asyncio.gather(*(read(o, a) for o, a in recipients.items())))
            if news:
                last_news = time.time()
            all_in = len(self.observed.arrived) >= len(self.observed.posted)
            if self.sending_done.is_set() and (all_in or time.time() - last_news > PATIENCE):
                break
            await asyncio.sleep(0.2 if news else 0.5)
        await asyncio.gather(*answering)

    async def run(self) -> Observed:
        connector = aiohttp.TCPConnector(limit=self.concurrency * 4)
        timeout = aiohttp.ClientTimeout(total=None, sock_read=300)
        async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
            self.session = session
            await asyncio.gather(self._senders(), self._watch())
        self.observed.finished = time.time()
        return self.observed


FINAL = tuple(code for code in StatusCode if code.final)  # after it, nothing of the flow


def finished(reports: list[dict[str, Any]]) -> int:
    """Recipients in a final state, over the nodes' ``/api/v1/stats`` reports."""
    return sum(r["status_breakdown"].get(code, 0) for r in reports for code in FINAL)


async def node_stats(session: aiohttp.ClientSession, urls: list[str]) -> list[dict[str, Any]]:
    return [await AgencyClient(url, session=session).stats() for url in urls]


async def settle(
    urls: list[str], expected_final: int, before: list[dict[str, Any]], timeout: float = 120
) -> list[dict[str, Any]]:
    """Wait until the senders' nodes show this run's planned final statuses (beyond the
    ``before`` reports, taken as the run began); their stats."""
    deadline = time.monotonic() + timeout
    already = finished(before)
    async with aiohttp.ClientSession() as session:
        while True:
            reports = await node_stats(session, urls)
            if finished(reports) - already >= expected_final or time.monotonic() > deadline:
                return reports
            await asyncio.sleep(0.5)
