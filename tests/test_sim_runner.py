"""The simulator's driver against a fake node: what it reads, what it counts, what it answers."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import json
import time
from collections import Counter
from typing import Any

from aiohttp import web
from aiohttp.test_utils import TestServer

from edoc.sim import profile, runner, traffic

TAY_NINH = profile.load("tay-ninh-2021")
SIGNER = {"full_name": "Nguyễn Văn An", "position": "Giám đốc"}
EARLIER = "2026-01-05T08:00:00+00:00"  # before any run here


class FakeNode:
    """Accepts every post; a document posted shows in its recipient's inbox at once (or
    ``delay`` seconds later), after an earlier run's copy of the same DocumentId. An
    inbox read with a ``wait`` is held while nothing was received after its ``since``,
    as a real node holds it."""

    def __init__(self, copies_of_earlier_run: bool, delay: float = 0.0) -> None:
        self.copies_of_earlier_run = copies_of_earlier_run
        self.delay = delay
        self.inboxes: dict[str, list[dict[str, Any]]] = {}
        self.arrivals: dict[str, asyncio.Event] = {}  # recipient → set by its next document
        self.reads: Counter[str] = Counter()
        self.no_news: Counter[str] = Counter()  # reads answered with nothing after since
        self.statuses: dict[int, list[str]] = {}
        self.status_posts = 0  # requests that carried statuses

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/api/v1/documents", self.post)
        app.router.add_get("/api/v1/inbox", self.inbox)
        app.router.add_post("/api/v1/inbox/statuses", self.status)
        return app

    async def post(self, request: web.Request) -> web.Response:
        async for part in await request.multipart():
            if part.name == "metadata":  # type: ignore[union-attr]
                metadata = json.loads(await part.read())  # type: ignore[union-attr]
                break
        code = metadata["code"]
        day = metadata["promulgation"]["date"].replace("-", "/")
        document_id = f"{metadata['from']},{day},{code['number']}/{code['notation']}"
        for recipient in metadata["to"]:
            if self.delay:
                asyncio.get_running_loop().call_later(
                    self.delay, self._receive, recipient, document_id
                )
            else:
                self._receive(recipient, document_id)
        return web.json_response({"id": 1}, status=202)

    def _receive(self, recipient: str, document_id: str) -> None:
        inbox = self.inboxes.setdefault(recipient, [])
        item = {"document_id": document_id}
        if self.copies_of_earlier_run:
            inbox.append({**item, "id": -len(inbox) - 1, "received_at": EARLIER})
        now = dt.datetime.now(dt.UTC).isoformat()
        inbox.append({**item, "id": len(self.statuses) + 1, "received_at": now})
        self.statuses[len(self.statuses) + 1] = []
        arrival = self.arrivals.pop(recipient, None)
        if arrival is not None:
            arrival.set()

    async def inbox(self, request: web.Request) -> web.Response:
        agency = request.headers["Authorization"].removeprefix("Bearer ")
        self.reads[agency] += 1
        since = request.query.get("since", "")
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(float(request.query.get("wait", 0))):
                while not self._after(agency, since):
                    await self.arrivals.setdefault(agency, asyncio.Event()).wait()
        if not self._after(agency, since):
            self.no_news[agency] += 1
        found = [i for i in self.inboxes.get(agency, []) if i["received_at"] >= since]
        found.sort(key=lambda i: i["received_at"])
        return web.json_response({"documents": found})

    def _after(self, agency: str, since: str) -> bool:
        return any(i["received_at"] > since for i in self.inboxes.get(agency, []))

    async def status(self, request: web.Request) -> web.Response:
        self.status_posts += 1
        entries = (await request.json())["statuses"]
        for entry in entries:
            self.statuses[entry["id"]].append(entry["code"])
        queued = [{"id": 1, "inbox_id": e["id"], "code": e["code"]} for e in entries]
        return web.json_response({"statuses": queued}, status=202)


def _plan(url: str) -> list[traffic.Planned]:
    agencies = {
        root: [
            traffic.Agency(f"000.00.{g}.{root}", root, root, url, f"000.00.{g}.{root}", SIGNER)
            for g in ("00", "07", "12", "15")
        ]
        for root in TAY_NINH.roots
    }
    return traffic.plan(TAY_NINH, agencies, days=1, seed=5)[:40]


async def test_reads_are_held_not_repeated_while_documents_are_on_their_way() -> None:
    """Documents take 0.6 s to arrive: each inbox read is held at the node until one
    does, none answered with nothing new (reading every 0.2-0.5 s, most were)."""
    node = FakeNode(copies_of_earlier_run=False, delay=0.6)  # within the patience (1 s)
    planned, observed = await _drive(node)
    assert len(observed.arrived) == len(observed.posted) == len(planned)
    assert node.no_news == Counter()
    assert sum(node.reads.values()) <= len(planned)  # a read per arrival at most


async def _drive(node: FakeNode) -> tuple[list[traffic.Planned], runner.Observed]:
    async with TestServer(node.app()) as server:
        planned = _plan(str(server.make_url("")).rstrip("/"))
        simulation = runner.Simulation(planned, "runner", None, 4, lambda _: None)
        simulation.patience = 1.0
        return planned, await simulation.run()


async def test_only_inboxes_something_was_sent_to_are_read() -> None:
    node = FakeNode(copies_of_earlier_run=False)
    planned, observed = await _drive(node)
    assert len(observed.arrived) == len(observed.posted) == len(planned)
    recipients = {p.recipient.org_id for p in planned}
    assert set(node.reads) == recipients
    everyone = {f"000.00.{g}.{root}" for g in ("00", "07", "12", "15") for root in TAY_NINH.roots}
    assert everyone - recipients  # some agencies got nothing, and were never read


async def test_every_arrival_is_answered_in_the_planned_order() -> None:
    node = FakeNode(copies_of_earlier_run=False)
    planned, observed = await _drive(node)
    by_id = {item["document_id"]: item["id"] for inbox in node.inboxes.values() for item in inbox}
    for p in planned:
        assert node.statuses[by_id[p.document_id]] == [code for code, _ in p.answers]
    assert sum(observed.answered.values()) == sum(len(p.answers) for p in planned)


async def test_as_fast_as_possible_an_arrivals_statuses_go_in_one_request() -> None:
    """All of an arrival's planned statuses are due at once: one request carries them, in
    order (the node's batch door), not one request each."""
    node = FakeNode(copies_of_earlier_run=False)
    planned, observed = await _drive(node)
    answered = [p for p in planned if p.answers]
    assert any(len(p.answers) > 1 for p in answered)
    assert node.status_posts == len(answered)
    assert sum(observed.answered.values()) == sum(len(p.answers) for p in answered)


def test_with_a_speedup_only_the_statuses_whose_time_has_come_go_together() -> None:
    simulation = runner.Simulation([], "runner", 3600, 1, lambda _: None)  # an hour a second
    answers = (("03", 1.0), ("04", 2.0), ("05", 50.0), ("06", 3.0))
    arrived = time.time() - 2.5  # 2.5 simulated hours ago
    assert simulation._due(answers, arrived) == ["03", "04"]  # in order: 06 waits behind 05
    assert simulation._due(answers, time.time()) == []
    as_fast_as_possible = runner.Simulation([], "runner", None, 1, lambda _: None)
    assert as_fast_as_possible._due(answers, time.time()) == ["03", "04", "05", "06"]


async def test_an_earlier_runs_copies_beside_this_runs_count_once() -> None:
    """The inbox holds an earlier run's copy of each DocumentId (received long ago) besides
    this run's: only this run's counts, and each is answered once."""
    node = FakeNode(copies_of_earlier_run=True)
    planned, observed = await _drive(node)
    assert len(observed.arrived) == len(planned)
    assert all(
        t > dt.datetime.fromisoformat(EARLIER).timestamp() for t in observed.arrived.values()
    )
    assert observed.answer_refused == Counter()  # none posted to an earlier copy
    answered = [codes for codes in node.statuses.values() if codes]
    assert len(answered) == sum(1 for p in planned if p.answers)


async def test_documents_sent_after_a_quiet_spell_longer_than_the_patience_are_awaited() -> None:
    """Patience counts from the end of sending too, not only from the last arrival."""
    node = FakeNode(copies_of_earlier_run=False, delay=0.3)
    async with TestServer(node.app()) as server:
        planned = _plan(str(server.make_url("")).rstrip("/"))[:3]
        simulation = runner.Simulation(planned, "runner", None, 1, lambda _: None)
        simulation.patience = 1.0
        send = simulation._send

        async def late_last(one: traffic.Planned) -> None:
            if one.index == planned[-1].index:
                await asyncio.sleep(2.0)  # quiet for longer than the patience
            await send(one)

        setattr(simulation, "_send", late_last)  # noqa: B010 - the method, for this run
        observed = await simulation.run()
    assert len(observed.posted) == len(observed.arrived) == 3


class StatsNode:
    """A sender's node whose final statuses come in one every ``every`` seconds, ``coming``
    of them, after ``already`` from an earlier run."""

    def __init__(self, already: int, coming: int, every: float) -> None:
        self.already, self.coming, self.every = already, coming, every
        self.started = time.monotonic()

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/api/v1/stats", self.stats)
        return app

    async def stats(self, _: web.Request) -> web.Response:
        came = min(self.coming, int((time.monotonic() - self.started) / self.every))
        breakdown = {"05": self.coming - came, "06": self.already + came}
        counts = {"sent": self.already + self.coming, "received": 0}  # a node's whole shape
        tables = {"by_agency": {}, "by_partner_province": {}, "status_breakdown": breakdown}
        return web.json_response(counts | tables)


async def _settle(node: StatsNode, expected: int, patience: float) -> tuple[int, float]:
    """What settle saw come in this run, and how long it waited."""
    async with TestServer(node.app()) as server:
        url = str(server.make_url("")).rstrip("/")
        before = [{"status_breakdown": {"06": node.already}}]
        started = time.monotonic()
        (after,) = await runner.settle([url], expected, before, patience=patience)
    return runner.finished([after]) - node.already, time.monotonic() - started


async def test_settling_waits_while_final_statuses_still_come() -> None:
    """They come for 2.4 s, longer than the patience of 1 s: all are waited for (a fixed
    timeout ended the run while they came)."""
    seen, waited = await _settle(StatsNode(already=7, coming=6, every=0.4), 6, patience=1.0)
    assert seen == 6
    assert waited > 2.0


async def test_settling_gives_up_after_a_patience_with_none_coming() -> None:
    """Two of the three expected came (one was lost on the way): given up a patience
    after the last one, with what came."""
    node = StatsNode(already=0, coming=2, every=0.2)
    seen, waited = await _settle(node, 3, patience=1.0)
    assert seen == 2
    assert 1.0 < waited < 3.0


def test_the_final_statuses_to_wait_for_are_those_the_recipients_nodes_accepted() -> None:
    observed = runner.Observed()
    observed.answered = Counter({"03": 5, "04": 5, "05": 5, "06": 4, "02": 2})
    observed.answer_refused = Counter({"EDOC-IN-001": 4})  # one request: 03..06 of one
    assert runner.final_answers(observed) == 6
