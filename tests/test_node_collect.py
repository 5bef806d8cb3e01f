"""The node's collector, alone: acknowledgements gather while one request is on its way
and none is lost when the hub cannot be reached; statuses of one chain are stored in
order. (The whole path, over a lossy proxy between real processes, is
tests/reliability/test_proxy.py; statuses in order across a simulated day,
tests/test_simulate.py.)"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import functools
from collections.abc import Awaitable, Callable
from pathlib import Path
from types import SimpleNamespace
from typing import cast

import pytest
import structlog.testing

from edoc import atomic, envelope, errors
from edoc.model import ResponseFor
from edoc.node import collector, hublink, receiving
from edoc.node.state import NodeState
from edoc.wire import DeliveryNotice
from tests.support.pki import Ca, signed_root, wire


class _Hub:
    """Records each acknowledgement request; fails the ones it is told to."""

    def __init__(self) -> None:
        self.requests: list[list[int]] = []
        self.failures = 0
        self.refusing = False  # every acknowledgement refused (a 4xx)
        self.heard: list[int] = []  # acknowledged and answered 200
        self.answer = asyncio.Event()  # a request waits for it: "on its way"
        self.answers: list[list[DeliveryNotice]] = []  # what collect answers, last first

    async def acknowledge(self, ids: list[int]) -> None:
        self.requests.append(ids)
        await self.answer.wait()
        if self.failures:
            self.failures -= 1
            raise errors.HubUnreachable("hub unreachable: connection reset")
        if self.refusing:
            raise errors.RemoteError("EDOC-HTTP-400", "not a list of delivery ids", 400)
        self.heard += ids

    async def collect(self, _wait: float, _limit: int) -> list[DeliveryNotice]:
        if self.answers:
            return self.answers.pop()
        await asyncio.Event().wait()  # nothing more: a long poll that never ends
        return []


async def _until(condition: Callable[[], bool]) -> None:
    async with asyncio.timeout(2):
        while not condition():
            await asyncio.sleep(0)


@pytest.fixture
def hub() -> _Hub:
    return _Hub()


async def test_acknowledgements_gather_while_one_is_on_its_way(hub: _Hub) -> None:
    acks = collector.Acknowledgements()
    config = SimpleNamespace(retry_base=0, retry_cap=0)
    state = cast(NodeState, SimpleNamespace(config=config, hub=hub))
    sender = asyncio.create_task(acks.send_forever(state))
    try:
        acks.add(1)
        await _until(lambda: hub.requests == [[1]])  # at rest: sent at once, alone
        for delivery_id in (2, 3, 2, 4):  # 2 again: a redelivery, acknowledged once
            acks.add(delivery_id)
        hub.answer.set()
        await _until(lambda: len(hub.requests) == 2)
        assert hub.requests == [[1], [2, 3, 4]]  # the three waited for the first, together
    finally:
        sender.cancel()


async def test_acknowledgements_the_hub_did_not_get_are_sent_again(hub: _Hub) -> None:
    acks = collector.Acknowledgements()
    config = SimpleNamespace(retry_base=0, retry_cap=0)
    state = cast(NodeState, SimpleNamespace(config=config, hub=hub))
    hub.failures = 2
    hub.answer.set()
    sender = asyncio.create_task(acks.send_forever(state))
    try:
        acks.add(7)
        acks.add(8)
        await _until(lambda: len(hub.requests) == 3)
        assert hub.requests == [[7, 8]] * 3  # twice unreachable, then taken
        await asyncio.sleep(0.01)
        assert len(hub.requests) == 3  # and not again once taken
    finally:
        sender.cancel()


@pytest.mark.parametrize("refused", [False, True], ids=["heard", "refused"])
async def test_a_delivery_acknowledged_is_given_until_a_collect_asked_after_the_hub_heard(
    hub: _Hub, refused: bool
) -> None:
    """A collect asked before the hub heard an acknowledgement may still offer its
    delivery again, one asked after may not. One the hub refused is offered again, and
    must be taken then."""
    acks = collector.Acknowledgements()
    config = SimpleNamespace(retry_base=0, retry_cap=0)
    state = cast(NodeState, SimpleNamespace(config=config, hub=hub))
    hub.refusing = refused
    sender = asyncio.create_task(acks.send_forever(state))
    try:
        acks.add(1)
        await _until(lambda: hub.requests == [[1]])  # on its way
        acks.collecting()
        assert acks.given(1)
        hub.answer.set()
        await _until(lambda: hub.heard == [1] or not acks.given(1))
        assert acks.given(1) is not refused  # (a collect asked as it was heard may offer it)
        acks.collecting()
        assert not acks.given(1)
    finally:
        sender.cancel()


Receive = Callable[[NodeState, bytes | Path, list[str]], Awaitable[None]]


def _notice(delivery_id: int, sender: str) -> DeliveryNotice:
    return DeliveryNotice(delivery_id, delivery_id, "R", "status", sender, "D", "05", 0, 1, 0)


def _collecting(
    hub: _Hub, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, receive: Receive
) -> asyncio.Task[None]:
    """The collector, given one answer: 05 and 06 about one document from responder A,
    then B's 05 (a chain of its own); each package is its delivery id."""
    hub.answers = [[_notice(1, "A"), _notice(2, "A"), _notice(3, "B")]]

    async def fetch(_state: NodeState, delivery: DeliveryNotice, _target: Path) -> bytes:
        return str(delivery.id).encode()

    monkeypatch.setattr(hublink, "fetch", fetch)
    monkeypatch.setattr(receiving, "receive", receive)
    config = SimpleNamespace(retry_base=0, retry_cap=0, poll_wait=1)
    state = cast(NodeState, SimpleNamespace(config=config, incoming_dir=tmp_path, hub=hub))
    return asyncio.create_task(collector.collect_forever(state))


def _acknowledged(hub: _Hub) -> list[int]:
    return sorted(i for ids in hub.requests for i in ids)


async def test_statuses_of_one_chain_are_stored_in_the_order_relayed(
    hub: _Hub, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    stored: list[int] = []

    async def receive(_state: NodeState, source: bytes | Path, _recipients: list[str]) -> None:
        assert isinstance(source, bytes)
        delivery_id = int(source)
        await asyncio.sleep(0.05 if delivery_id == 1 else 0)  # A's 05 is slower to verify
        stored.append(delivery_id)

    hub.answer.set()
    collector = _collecting(hub, monkeypatch, tmp_path, receive)
    try:
        await _until(lambda: len(stored) == 3)
        assert stored == [3, 1, 2]  # 2 after 1; 3, another chain, did not wait for them
        await _until(lambda: _acknowledged(hub) == [1, 2, 3])
    finally:
        collector.cancel()


async def test_a_status_whose_predecessor_was_not_taken_is_left_for_the_hub(
    hub: _Hub, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    stored: list[int] = []

    async def receive(_state: NodeState, source: bytes | Path, _recipients: list[str]) -> None:
        assert isinstance(source, bytes)
        delivery_id = int(source)
        if delivery_id == 1:
            await asyncio.sleep(0.05)
            raise errors.StorageError("store failed: disk I/O error")
        stored.append(delivery_id)

    hub.answer.set()
    collector = _collecting(hub, monkeypatch, tmp_path, receive)
    try:
        await _until(lambda: _acknowledged(hub) == [3])
        await asyncio.sleep(0.1)
        # A's 06 was not stored before its 05: both stay unacknowledged, and the hub
        # offers them again, in order, when their lease runs out
        assert stored == [3] and _acknowledged(hub) == [3]
    finally:
        collector.cancel()


OFFERED_AGAIN = {
    # the 06 alone first (its lease ran out first), then the 05, then the 06
    "later first": ([2], [1], [2]),
    "together": ([1, 2],),
    # and a new A status (4) comes before the 06, left when it came alone, again
    "a newer one before": ([2], [1], [4], [2], [4]),
}


@pytest.mark.parametrize("offers", OFFERED_AGAIN.values(), ids=OFFERED_AGAIN.keys())
async def test_a_status_offered_again_waits_for_its_predecessor(
    hub: _Hub, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, offers: tuple[list[int], ...]
) -> None:
    """A's 05 fails once and holds its 06 back; the hub offers them again (each offer
    once the one before it is over)."""
    stored: list[int] = []
    failed: list[int] = []

    async def receive(_state: NodeState, source: bytes | Path, _recipients: list[str]) -> None:
        assert isinstance(source, bytes)
        delivery_id = int(source)
        if delivery_id == 1 and not failed:
            failed.append(delivery_id)
            raise errors.StorageError("store failed: disk I/O error")
        stored.append(delivery_id)

    offered_again = list(offers)
    first = hub.collect

    async def collect(wait: float, limit: int) -> list[DeliveryNotice]:
        if hub.answers or not offered_again:
            return await first(wait, limit)
        await _until(lambda: _acknowledged(hub) == [3])  # the first answer is over
        ids = offered_again.pop(0)
        await asyncio.sleep(0.02)  # (what came before is taken or left by then)
        return [_notice(delivery_id, "A") for delivery_id in ids]

    monkeypatch.setattr(hub, "collect", collect)
    hub.answer.set()
    collector = _collecting(hub, monkeypatch, tmp_path, receive)
    try:
        everything = {3, *(i for ids in offers for i in ids)}
        await _until(lambda: everything <= set(stored))
        assert stored == sorted(stored, key=lambda i: (i != 3, i))  # A's in their order
    finally:
        collector.cancel()


async def test_a_copy_offered_again_after_the_first_was_taken_blocks_nothing(
    hub: _Hub, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """A's 05 is taken, and its lease runs out as its acknowledgement goes: a collect
    asked before the hub heard it offers it again. That copy failing (the store's
    fault as it looks whether the node holds it) left the 05 untaken, and A's 06 waited
    for ever for an offer of the 05 the hub, which heard it acknowledged, never makes."""
    stored: list[int] = []

    async def receive(_state: NodeState, source: bytes | Path, _recipients: list[str]) -> None:
        assert isinstance(source, bytes)
        stored.append(int(source))

    async def held(*_: object) -> bool:
        raise errors.StorageError("store failed: disk I/O error")

    offers = [[dataclasses.replace(_notice(1, "A"), attempts=2)], [_notice(2, "A")]]
    first = hub.collect

    async def collect(wait: float, limit: int) -> list[DeliveryNotice]:
        if hub.answers or not offers:
            return await first(wait, limit)
        if len(offers) == 2:  # asked once the 05's acknowledgement is on its way
            await _until(lambda: hub.requests == [[1]])
        else:  # heard by the hub, and the copy of the 05 over
            hub.answer.set()
            await _until(lambda: hub.heard == [1])
            await asyncio.sleep(0.05)
        return offers.pop(0)

    monkeypatch.setattr(hub, "collect", collect)
    monkeypatch.setattr(receiving, "held", held)
    collecting = _collecting(hub, monkeypatch, tmp_path, receive)
    hub.answers = [[_notice(1, "A")]]  # (instead of _collecting's, before it asks)
    try:
        await _until(lambda: stored == [1, 2])
        await _until(lambda: _acknowledged(hub) == [1, 2])
    finally:
        collecting.cancel()


def _starting(
    outcomes: dict[str, asyncio.Future[bool]], name: str
) -> Callable[[asyncio.Task[bool] | None], asyncio.Task[bool]]:
    """How _Chains starts the copy ``name``: a task that ends as ``outcomes[name]`` is set."""

    def start(_after: asyncio.Task[bool] | None) -> asyncio.Task[bool]:
        outcomes[name] = asyncio.get_running_loop().create_future()
        return asyncio.ensure_future(outcomes[name])

    return start


@pytest.mark.parametrize("taken", ["first copy", "second copy"])
async def test_a_copy_offered_again_while_the_first_runs_blocks_nothing(taken: str) -> None:
    """Its lease ran out while it was being taken: one copy is taken (and acknowledged:
    the hub offers it no more), then the other fails, whichever came first; the chain
    goes on, not left waiting for ever for an offer that never comes."""
    chains = collector._Chains()
    outcomes: dict[str, asyncio.Future[bool]] = {}
    starting = functools.partial(_starting, outcomes)
    copies = {
        name: chains.take(("D", "A"), 1, starting(name)) for name in ("first copy", "second copy")
    }
    (failed,) = set(copies) - {taken}
    for name, took in ((taken, True), (failed, False)):
        outcomes[name].set_result(took)
        copy = copies[name]
        assert copy is not None
        await copy
    await asyncio.sleep(0)
    assert chains.take(("D", "A"), 2, starting("next")) is not None


def test_a_received_package_and_its_attachments_are_fsynced_before_they_are_stored(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A power cut after the inbox row commits (and the hub is told) must not leave an
    empty file behind it."""
    ca = Ca.create(tmp_path / "keys")
    attachment = tmp_path / "bao-cao.txt"
    attachment.write_bytes("Báo cáo tháng 11".encode())
    files = envelope.attachments_from_files([attachment])
    source = tmp_path / "incoming.edxml"
    source.write_bytes(wire(signed_root(ca, files=files), files))
    synced: list[Path] = []
    monkeypatch.setattr(atomic, "sync", synced.append)
    state = cast(NodeState, SimpleNamespace(keys=ca.keys))
    parts = receiving._verify_and_keep(state, source, tmp_path / "inbox" / "one", []).parts
    assert len(parts) == 1
    assert synced == [*parts.values(), source]
    assert (tmp_path / "inbox" / "one" / receiving.PACKAGE).exists()


def _tried(tried: list[int], tries: int) -> bool:
    return len(tried) == tries


def _fetching(
    hub: _Hub, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, failures: list[errors.EdocError]
) -> tuple[asyncio.Task[None], list[int], list[int]]:
    """The collector, given one delivery whose download fails with ``failures`` in turn
    before it succeeds: the collector, the downloads tried, the deliveries stored."""
    hub.answers = [[_notice(7, "A")]]
    tried: list[int] = []
    stored: list[int] = []

    async def fetch(_state: NodeState, delivery: DeliveryNotice, _target: Path) -> bytes:
        tried.append(delivery.id)
        if len(tried) <= len(failures):
            raise failures[len(tried) - 1]
        return str(delivery.id).encode()

    async def receive(_state: NodeState, source: bytes | Path, _recipients: list[str]) -> None:
        assert isinstance(source, bytes)
        stored.append(int(source))

    monkeypatch.setattr(hublink, "fetch", fetch)
    monkeypatch.setattr(receiving, "receive", receive)
    config = SimpleNamespace(retry_base=0, retry_cap=0, poll_wait=1)
    state = cast(NodeState, SimpleNamespace(config=config, incoming_dir=tmp_path, hub=hub))
    return asyncio.create_task(collector.collect_forever(state)), tried, stored


async def test_a_download_the_hub_was_out_of_reach_for_is_tried_again_at_once(
    hub: _Hub, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    out_of_reach = errors.HubUnreachable("cannot reach the hub: connection timeout")
    hub.answer.set()
    task, tried, stored = _fetching(hub, monkeypatch, tmp_path, [out_of_reach] * 2)
    try:
        await _until(lambda: _acknowledged(hub) == [7])
        assert tried == [7, 7, 7] and stored == [7]  # not left for the lease to run out
    finally:
        task.cancel()


async def test_a_download_failing_every_try_or_answered_is_left_for_the_hub(
    hub: _Hub, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    out_of_reach = errors.HubUnreachable("cannot reach the hub: connection reset")
    busy = errors.HubUnavailable("the hub answered 503")
    refused = errors.RemoteError("EDOC-NOT-FOUND", "no delivery 7", 404)
    cases: list[tuple[list[errors.EdocError], int]] = [
        ([out_of_reach] * collector.FETCH_TRIES, collector.FETCH_TRIES),
        ([busy], 1),  # it answered: not asked again before the lease runs out
        ([refused], 1),
    ]
    for failures, tries in cases:
        hub.answer.set()
        task, tried, stored = _fetching(hub, monkeypatch, tmp_path, failures)
        try:
            await _until(functools.partial(_tried, tried, tries))
            await asyncio.sleep(0.05)
            assert len(tried) == tries and stored == [] and hub.requests == []
        finally:
            task.cancel()


class _Offload:
    async def run(self, work: Callable[..., object], *args: object) -> object:
        return work(*args)


class _AnswersStore:
    """Keeps the answers it is given, one per idempotency key (as a node's store keeps one
    outgoing message per sender and key), or fails as a store whose disk is full."""

    def __init__(self, failing: bool) -> None:
        self.failing = failing
        self.kept: list[_Answer] = []

    async def add_outgoing(self, answer: _Answer, *_: object, **__: object) -> None:
        if self.failing:
            raise errors.StorageError("store failed: database or disk is full")
        if await self.outgoing_by_key("R", answer.idempotency_key or ""):
            raise errors.DuplicateDocument("this Idempotency-Key was used for another document")
        self.kept.append(answer)

    async def outgoing_by_key(self, _sender: str, key: str) -> _Answer | None:
        return next((kept for kept in self.kept if kept.idempotency_key == key), None)


@dataclasses.dataclass(frozen=True)
class _Answer:
    code: str
    reason: str
    idempotency_key: str | None = None


def _refusing(monkeypatch: pytest.MonkeyPatch, store: _AnswersStore) -> NodeState:
    """A node whose inbox refuses every package (its signer revoked), answering 02."""

    async def refuse(*_: object) -> None:
        raise errors.UntrustedCertificate("the signer's certificate is revoked")

    answered = ResponseFor("000.00.12.H53", "1/UBND-VP", dt.date(2026, 12, 1), "D")
    monkeypatch.setattr(receiving, "receive", refuse)
    monkeypatch.setattr(collector, "_claimed_document", lambda _source: "the document")
    monkeypatch.setattr(collector, "response_for", lambda _document: answered)
    monkeypatch.setattr(collector, "status_message", lambda *args: _Answer("02", args[-1]))
    return cast(
        NodeState,
        SimpleNamespace(
            offload=_Offload(),
            store=store,
            outbox_wakeup=asyncio.Event(),
            keys=SimpleNamespace(current=lambda _recipient: None),  # "R" has a valid seal
        ),
    )


REFUSED = DeliveryNotice(7, 70, "R", "document", "S", "D", None, 0, 10, 1, b"<edXML/>")
REASON = "EDOC-SIG-003: the signer's certificate is revoked"


@pytest.mark.parametrize("failing", [False, True], ids=["02 kept", "store fails"])
async def test_a_refused_delivery_is_acknowledged_only_once_its_02_is_kept(
    monkeypatch: pytest.MonkeyPatch, failing: bool
) -> None:
    """A relayed document the node refuses is answered 02; if the store cannot keep the
    02, the delivery is not acknowledged (the hub offers it again, and the 02 is made
    then), or the sender would wait at 'sent' for ever."""
    store = _AnswersStore(failing)
    state = _refusing(monkeypatch, store)
    acks = collector.Acknowledgements()
    taken = await collector._take(state, REFUSED, acks, None)
    assert taken is not failing
    assert list(acks._waiting) == ([] if failing else [7])
    assert [(a.code, a.reason) for a in store.kept] == ([] if failing else [("02", REASON)])


async def test_a_refused_delivery_offered_again_is_answered_once(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Its acknowledgement lost, the hub offers it again: a second 02 the hub would
    refuse ("given already"), and its transfer would show failed."""
    store = _AnswersStore(failing=False)
    state = _refusing(monkeypatch, store)
    acks = collector.Acknowledgements()
    with structlog.testing.capture_logs() as logs:
        assert await collector._take(state, REFUSED, acks, None)
        assert await collector._take(state, REFUSED, acks, None)
    assert [(a.code, a.reason) for a in store.kept] == [("02", REASON)]
    assert list(acks._waiting) == [7]
    assert [e["event"] for e in logs if e["log_level"] == "error"] == [
        "refused relayed package"
    ] * 2


async def test_stopping_the_collector_stops_what_it_is_receiving(
    hub: _Hub, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Else a receive would go on after the node closed its store."""
    started: list[int] = []
    stopped: list[int] = []

    async def receive(_state: NodeState, source: bytes | Path, _recipients: list[str]) -> None:
        assert isinstance(source, bytes)
        started.append(int(source))
        try:
            await asyncio.Event().wait()  # a verification that takes long
        finally:
            stopped.append(int(source))

    collecting = _collecting(hub, monkeypatch, tmp_path, receive)
    await _until(lambda: sorted(started) == [1, 3])  # (2 waits for 1, its chain's first)
    collecting.cancel()
    with pytest.raises(asyncio.CancelledError):
        await collecting
    assert sorted(stopped) == [1, 3]


async def test_a_delivery_failing_for_a_fault_of_ours_is_logged_and_left_for_the_hub(
    hub: _Hub, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    async def receive(_state: NodeState, source: bytes | Path, _recipients: list[str]) -> None:
        assert isinstance(source, bytes)
        if int(source) == 3:
            raise PermissionError(13, "Permission denied")

    hub.answer.set()
    with structlog.testing.capture_logs() as logs:
        collecting = _collecting(hub, monkeypatch, tmp_path, receive)
        try:
            await _until(lambda: _acknowledged(hub) == [1, 2])
            await _until(lambda: any(e.get("exc_info") for e in logs))
        finally:
            collecting.cancel()
    (failed,) = [e for e in logs if e.get("exc_info")]
    assert failed["event"] == "delivery not taken, the hub will offer it again"
    assert _acknowledged(hub) == [1, 2]  # 3 is left for the hub to offer again


async def test_a_document_for_an_agency_without_a_valid_seal_waits_at_the_hub(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Its 01 is signed with the agency's seal: with none valid (revoked, expired) the
    delivery is left unacknowledged, not even fetched and verified, until the operator
    issues one; the hub offers it again meanwhile, and nothing is lost."""
    ca = Ca.create(tmp_path / "keys")
    agency = "000.00.05.H34"
    ca.keys.issue(agency)
    ca.keys.revoke(agency, "keyCompromise")
    fetched: list[int] = []

    async def fetch(_state: NodeState, delivery: DeliveryNotice, _target: Path) -> bytes:
        fetched.append(delivery.id)
        raise errors.HubUnavailable("stop here: fetched")

    monkeypatch.setattr(hublink, "fetch", fetch)
    config = SimpleNamespace(retry_base=0, retry_cap=0)
    state = cast(NodeState, SimpleNamespace(keys=ca.keys, config=config, incoming_dir=tmp_path))
    delivery = DeliveryNotice(7, 70, agency, "document", "S", "D", None, 0, 10, 1, None)
    with structlog.testing.capture_logs() as logs:
        assert not await collector._take(state, delivery, collector.Acknowledgements(), None)
    assert fetched == []
    (said,) = [e for e in logs if e["log_level"] == "error"]
    assert said["event"] == "delivery waits at the hub until its recipient has a valid seal"
    ca.keys.issue(agency)  # a new seal: the next offer is taken (here, fetched)
    assert not await collector._take(state, delivery, collector.Acknowledgements(), None)
    assert fetched == [7]
