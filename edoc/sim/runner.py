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
PAUSE = 0.5  # seconds between two reads of the inboxes something is on its way to
NEWS_PAUSE = 0.2  # the same, after a read that found something (more is likely close behind)


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
        self.patience = PATIENCE
        self.awaited: dict[str, set[int]] = {}  # recipient → sent to it, not yet arrived
        self.cursors: dict[str, str] = {}  # recipient → received_at of the last item read
        self.answers: set[asyncio.Task[None]] = set()  # statuses being posted
        # status posts have a limit of their own: waiting behind inbox reads, they were late
        self.answering = asyncio.Semaphore(concurrency)

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
            if planned.index not in self.observed.arrived:  # (it may be seen before the 202)
                self.awaited.setdefault(planned.recipient.org_id, set()).add(planned.index)
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

    async def _answer(self, planned: Planned, inbox_id: int, arrived: float) -> None:
        """The recipient's planned statuses, each at its time (with a speed-up), one after
        the other: a status follows the one before it."""
        for code, hours in planned.answers:
            if self.speedup is not None:
                await asyncio.sleep(max(0.0, arrived + hours * 3600 / self.speedup - time.time()))
            async with self.answering:
                try:
                    await self._client(planned.recipient).post_status(
                        inbox_id, code, f"Trạng thái {code}"
                    )
                except errors.RemoteError as refused:
                    self.observed.answer_refused[refused.code] += 1
                    continue
            self.observed.answered[code] += 1
            self.tick("answered")

    def _arrived(self, item: dict[str, Any]) -> Planned | None:
        """The planned document an inbox item is, if it arrived during this run and was
        not seen before."""
        planned = self.by_document.get(item["document_id"])
        arrived = dt.datetime.fromisoformat(item["received_at"]).timestamp()
        # on a network driven before, the inbox may hold an earlier run's copy of a
        # planned document (same DocumentId): only what arrived during this run counts
        if planned is None or planned.index in self.observed.arrived:
            return None
        if arrived < self.observed.started:
            return None
        self.observed.arrived[planned.index] = arrived
        self.awaited.get(planned.recipient.org_id, set()).discard(planned.index)
        return planned

    async def _read(self, agency: Agency, limit: asyncio.Semaphore) -> bool:
        """One read of ``agency``'s inbox since what was seen there; whether it held news.
        Each new arrival's answers start at once."""
        async with limit:
            documents = await self._client(agency).inbox(
                since=self.cursors.get(agency.org_id), limit=1000
            )
        news = False
        for item in documents:
            self.cursors[agency.org_id] = item["received_at"]
            planned = self._arrived(item)
            if planned is None:
                continue
            news = True
            self.tick("arrived")
            if planned.answers:
                task = asyncio.create_task(
                    self._answer(planned, item["id"], self.observed.arrived[planned.index])
                )
                self.answers.add(task)
                task.add_done_callback(self.answers.discard)
        return news

    async def _watch(self) -> None:
        """Read the inboxes of the recipients something was sent to and has not arrived,
        until all that was sent has arrived (or nothing more comes for ``patience``
        seconds). A recipient with nothing on its way is not read (the national day has 136
        recipients: once most of their documents are in, a pass read them all for the few
        still on their way)."""
        recipients = {p.recipient.org_id: p.recipient for p in self.planned}
        limit = asyncio.Semaphore(self.concurrency)
        last_news = time.time()
        while True:
            waited = [recipients[org] for org, indexes in self.awaited.items() if indexes]
            news = any(await asyncio.gather(*(self._read(agency, limit) for agency in waited)))
            if news:
                last_news = time.time()
            all_in = len(self.observed.arrived) >= len(self.observed.posted)
            if self.sending_done.is_set() and (all_in or time.time() - last_news > self.patience):
                break
            await asyncio.sleep(NEWS_PAUSE if news or not waited else PAUSE)
        await asyncio.gather(*self.answers)

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
