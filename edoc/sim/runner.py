"""Driving a running network with planned traffic, through the agency API only.

Three stages run at once: senders post documents (at their simulated times divided by
the speed-up, or as fast as the network takes them), a watcher holds a long poll of each
inbox something is on its way to, to see what arrived and when, and the recipients answer
what arrived with the statuses the profile planned. Everything observed is kept for the
report.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import itertools
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import aiohttp

from edoc import errors
from edoc.client import AgencyClient, error_of
from edoc.model import StatusCode
from edoc.sim.traffic import Agency, Planned

PATIENCE = 60.0  # seconds without news after which the watcher stops waiting
# Seconds a node may hold an inbox read while nothing new is there (the node's maximum is
# 30 s). Reading every inbox every 0.2-0.5 s instead took ~18 % of a national day's CPU,
# nodes and simulator, mostly for answers with nothing in them.
WAIT = 25.0
PAUSE = 0.5  # seconds before reading again after a read that brought nothing of this run


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
        # the inbox reads' own: each holds a connection for up to WAIT seconds, which would
        # leave the senders and status posts none
        self.reading: aiohttp.ClientSession | None = None
        self.patience = PATIENCE
        self.awaited: dict[str, set[int]] = {}  # recipient → sent to it, not yet arrived
        self.cursors: dict[str, str] = {}  # recipient → received_at of the last item read
        self.readers: dict[str, asyncio.Task[None]] = {}  # recipient → its reads, one at a time
        self.failed: BaseException | None = None  # what ended a reader, for the watcher to raise
        self.changed = asyncio.Event()  # news, the end of sending or a failure: look again
        self.last_news = time.time()
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
                self._follow(planned.recipient)
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
        # patience counts from the end of sending too: the last documents may follow a
        # quiet spell longer than it, and are still on their way
        self.last_news = max(self.last_news, time.time())
        self.changed.set()

    def _due_at(self, arrived: float, hours: float) -> float:
        assert self.speedup is not None
        return arrived + hours * 3600 / self.speedup

    def _due(self, answers: Sequence[tuple[str, float]], arrived: float) -> list[str]:
        """The codes at the head of ``answers`` whose time has come (as fast as possible:
        all of them)."""
        if self.speedup is None:
            return [code for code, _ in answers]
        now = time.time()
        due = itertools.takewhile(lambda answer: self._due_at(arrived, answer[1]) <= now, answers)
        return [code for code, _ in due]

    async def _answer(self, planned: Planned, inbox_id: int, arrived: float) -> None:
        """The recipient's planned statuses, in order, each at its time (with a speed-up);
        those due at once go in one request, as an agency's software posts what it has (as
        fast as possible: all of them at once). A status follows the one before it."""
        remaining = list(planned.answers)
        while remaining:
            if self.speedup is not None:
                await asyncio.sleep(max(0.0, self._due_at(arrived, remaining[0][1]) - time.time()))
            # the head at least: the loop's clock may end the sleep a hair before time.time()
            due = self._due(remaining, arrived) or [remaining[0][0]]
            remaining = remaining[len(due) :]
            statuses = [
                {"id": inbox_id, "code": code, "description": f"Trạng thái {code}"} for code in due
            ]
            async with self.answering:
                try:
                    await self._client(planned.recipient).post_statuses(statuses)
                except errors.RemoteError as refused:  # all of them: one request, all or none
                    self.observed.answer_refused[refused.code] += len(due)
                    continue
            for code in due:
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

    async def _read(self, agency: Agency) -> bool:
        """One read of ``agency``'s inbox since what was seen there, held at the node until
        something new is there (or WAIT seconds); whether it held news. Each new arrival's
        answers start at once."""
        since = self.cursors.get(agency.org_id) or self._run_began
        client = AgencyClient(agency.url, agency.token, session=self.reading)
        documents = await client.inbox(since=since, limit=1000, wait=WAIT)
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
        if news:
            self.last_news = time.time()
            self.changed.set()
        return news

    @property
    def _run_began(self) -> str:
        """Where reading an inbox starts: only what arrived during this run counts."""
        return dt.datetime.fromtimestamp(self.observed.started, dt.UTC).isoformat()

    def _follow(self, recipient: Agency) -> None:
        """Have ``recipient``'s inbox read, if it is not being read already."""
        reader = self.readers.get(recipient.org_id)
        if reader is None or reader.done():
            reader = asyncio.create_task(self._reader(recipient), name=f"inbox {recipient.org_id}")
            reader.add_done_callback(self._reader_ended)
            self.readers[recipient.org_id] = reader

    async def _reader(self, agency: Agency) -> None:
        """Read ``agency``'s inbox, one held read after the other, while something sent to
        it has not arrived (a new one sent later starts a reader again)."""
        while self.awaited.get(agency.org_id):
            if not await self._read(agency):
                # nothing of this run: the node held the read its whole WAIT, or answered
                # at once (an earlier run's documents; a node that does not hold reads)
                await asyncio.sleep(PAUSE)

    def _reader_ended(self, reader: asyncio.Task[None]) -> None:
        if not reader.cancelled() and reader.exception() is not None:
            self.failed = self.failed or reader.exception()
            self.changed.set()

    def _quiet_for(self) -> float | None:
        """Seconds the watcher may still wait for news; None: as long as sending goes on."""
        if not self.sending_done.is_set():
            return None
        return self.patience - (time.time() - self.last_news)

    async def _watch(self) -> None:
        """Wait while the readers read, until all that was sent has arrived (or nothing more
        comes for ``patience`` seconds once all is sent); then stop the readers still
        waiting. A recipient with nothing on its way is not read (the national day has 136
        recipients: once most of their documents are in, reading them all was for the few
        still on their way)."""
        self.last_news = time.time()
        try:
            while True:
                if self.failed is not None:
                    raise self.failed
                all_in = len(self.observed.arrived) >= len(self.observed.posted)
                quiet_for = self._quiet_for()
                if quiet_for is not None and (all_in or quiet_for <= 0):
                    break
                self.changed.clear()
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(quiet_for):
                        await self.changed.wait()
        finally:
            for reader in self.readers.values():
                reader.cancel()
            await asyncio.gather(*self.readers.values(), return_exceptions=True)
        await asyncio.gather(*self.answers)

    async def run(self) -> Observed:
        connector = aiohttp.TCPConnector(limit=self.concurrency * 4)
        timeout = aiohttp.ClientTimeout(total=None, sock_read=300)
        # a connection for each recipient's held read (one at a time each)
        recipients = len({p.recipient.org_id for p in self.planned})
        readers = aiohttp.TCPConnector(limit=max(recipients, 1))
        async with (
            aiohttp.ClientSession(connector=connector, timeout=timeout) as session,
            aiohttp.ClientSession(connector=readers, timeout=timeout) as reading,
        ):
            self.session, self.reading = session, reading
            await asyncio.gather(self._senders(), self._watch())
        self.observed.finished = time.time()
        return self.observed


FINAL = tuple(code for code in StatusCode if code.final)  # after it, nothing of the flow


def finished(reports: list[dict[str, Any]]) -> int:
    """Recipients in a final state, over the nodes' ``/api/v1/stats`` reports."""
    return sum(r["status_breakdown"].get(code, 0) for r in reports for code in FINAL)


def final_answers(observed: Observed) -> int:
    """The final statuses the recipients' nodes accepted in this run: each is on its way
    to the sender's node (one refused is not, which a count of the planned ones missed)."""
    return sum(observed.answered[code] for code in FINAL)


async def node_stats(session: aiohttp.ClientSession, urls: list[str]) -> list[dict[str, Any]]:
    return [await AgencyClient(url, session=session).stats() for url in urls]


async def settle(
    urls: list[str], expected_final: int, before: list[dict[str, Any]], patience: float = PATIENCE
) -> list[dict[str, Any]]:
    """Wait until the senders' nodes show this run's final statuses (beyond the ``before``
    reports, taken as the run began); their stats. Given up only after ``patience``
    seconds in which not one more came: after a year driven as fast as possible, the
    statuses still on their way took over two minutes to come in, and a fixed timeout
    of 120 s ended the run while they still came, its report short of them."""
    already = finished(before)
    most, since = -1, time.monotonic()
    async with aiohttp.ClientSession() as session:
        while True:
            reports = await node_stats(session, urls)
            seen = finished(reports) - already
            if seen >= expected_final:
                return reports
            if seen > most:
                most, since = seen, time.monotonic()
            elif time.monotonic() - since > patience:
                return reports
            await asyncio.sleep(0.5)
