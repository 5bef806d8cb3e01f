"""The node's outbox worker, alone: it stops when told, even as it is woken; the due
transfers go to the hub in batches within their bounds, each ended by its own answer."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import datetime as dt
import itertools
import time
from collections.abc import AsyncIterator, Callable, Collection, Sequence
from types import SimpleNamespace
from typing import IO, cast

import pytest
from hypothesis import given
from hypothesis import strategies as st
from structlog.testing import capture_logs

from edoc import client, errors, framing, tasks, wire
from edoc.client import HubBusy, HubClient
from edoc.model import Route, TransferState
from edoc.node import outbox, refusal
from edoc.node.state import NodeState
from edoc.store.node import Event, OutboxPass, Transfer


class _EmptyStore:
    """Nothing due, nothing coming: the outbox only waits for its wakeup."""

    async def due_transfers(
        self, now: dt.datetime, limit: int, under_way: Collection[int] = ()
    ) -> list[Transfer]:
        return []

    async def next_transfer_at(self, after: dt.datetime) -> dt.datetime | None:
        return None

    async def outbox_pass(
        self, now: dt.datetime, limit: int, under_way: Collection[int] = ()
    ) -> OutboxPass:
        due = await self.due_transfers(now, limit, under_way) if limit > 0 else []
        return OutboxPass(tuple(due), await self.next_transfer_at(now))


async def test_a_stop_as_the_outbox_is_woken_still_stops_it() -> None:
    hub = SimpleNamespace(batches_under_way=None)
    config = SimpleNamespace(retry_base=0.1, retry_cap=1.0)
    state = cast(
        NodeState,
        SimpleNamespace(hub=hub, store=_EmptyStore(), config=config, outbox_wakeup=asyncio.Event()),
    )
    worker = asyncio.create_task(outbox.run_forever(state))
    for _ in range(5):  # until it waits for its wakeup
        await asyncio.sleep(0)

    # A transfer ends (its callback wakes the outbox) in the same turn as the node's
    # shutdown cancels the worker: the cancellation must win, or the shutdown waits for ever.
    state.outbox_wakeup.set()
    worker.cancel()
    with pytest.raises(asyncio.CancelledError):
        async with asyncio.timeout(2):
            await worker
    assert worker.cancelled()


PACKAGE_SIZE = 100  # bytes of the packages the stand-in stores below keep


def _package(number: int, size: int = PACKAGE_SIZE) -> bytes:
    """The package of outgoing message ``number``."""
    return bytes([number % 256]) * size


def _transfer(
    number: int, size: int = PACKAGE_SIZE, route: str = Route.HUB, in_store: bool = True
) -> Transfer:
    """A transfer whose package is ``size`` bytes, kept in the store or (not) in a file."""
    return Transfer(
        id=number,
        outgoing_id=number,
        route=route,
        attempts=0,
        path="" if in_store else f"/nowhere/{number}.edxml",
        size=size if in_store else None,
        created_at=dt.datetime.now(dt.UTC),
        kind="document",
        sender="000.00.12.H53",
        document_id=f"d{number}",
    )


TRANSFERS = st.lists(
    st.tuples(
        st.sampled_from([10, 2_000, 300_000, wire.BATCH_BYTES]),
        st.sampled_from([Route.HUB, Route.HUB, Route.LOCAL]),
        st.booleans(),
    ),
    max_size=80,
).map(lambda kinds: [_transfer(i + 1, *kind) for i, kind in enumerate(kinds)])


@given(TRANSFERS)
def test_due_transfers_go_in_batches_within_their_bounds(due: list[Transfer]) -> None:
    carried = outbox.batches(due)
    assert sorted(t.id for group in carried for t in group) == [t.id for t in due]
    assert [group[0].id for group in carried] == sorted(group[0].id for group in carried)
    for group in carried:
        assert group == sorted(group, key=lambda t: t.id)  # the store's order, kept
        if len(group) > 1:
            assert all(outbox._batchable(t) for t in group)
            assert len(group) <= wire.BATCH_PACKAGES
            size = framing.overhead(len(group)) + sum(t.size or 0 for t in group)
            assert size <= wire.BATCH_BYTES
    batches = [group for group in carried if outbox._batchable(group[0])]
    for group, after in itertools.pairwise(batches):  # closed only when full
        size = framing.overhead(len(group) + 1) + sum(t.size or 0 for t in group)
        assert len(group) == wire.BATCH_PACKAGES or size + (after[0].size or 0) > wire.BATCH_BYTES


def test_one_transfer_due_alone_goes_at_once_alone() -> None:
    alone = _transfer(1)
    assert outbox.batches([alone]) == [[alone]]


class _Hub(HubClient):
    """The hub's answers for a batch (or its failure), and the single posts made; what
    the client remembers of the hub (whether it takes batches) is the real client's."""

    def __init__(self, answers: list[wire.PackageAccepted | errors.EdocError] | errors.EdocError):
        super().__init__("http://hub.invalid")
        self.answers = answers
        self.batches: list[list[bytes]] = []
        self.singles: list[bytes] = []

    async def post_packages(
        self, packages: Sequence[bytes]
    ) -> list[wire.PackageAccepted | errors.EdocError]:
        self.batches.append(list(packages))
        if isinstance(self.answers, errors.EdocError):
            raise self.answers
        return self.answers

    async def post_package(self, package: bytes | IO[bytes]) -> wire.PackageAccepted:
        assert isinstance(package, bytes)
        self.singles.append(package)
        return _accepted(len(self.singles))


class _Store:
    """Keeps the package of each outgoing message (_package), and what it is asked."""

    def __init__(self) -> None:
        self.finished: dict[int, tuple[str, Event]] = {}
        self.retried: dict[int, str] = {}
        self.due: list[list[int]] = []  # the transfer ids of each due_now
        self.reads: list[list[int]] = []  # the outgoing ids of each read of packages
        self.lost: set[int] = set()  # outgoing ids whose packages it does not give
        self.failing: errors.EdocError | None = None  # what reading packages raises

    async def outgoing_packages(self, outgoing_ids: Collection[int]) -> dict[int, bytes]:
        self.reads.append(sorted(outgoing_ids))
        if self.failing is not None:
            raise self.failing
        return {i: _package(i) for i in outgoing_ids if i not in self.lost}

    async def finish_transfer(
        self, transfer: Transfer, state: str, _error: str, event: Event, *_: object
    ) -> None:
        self.finished[transfer.id] = (state, event)

    async def retry_transfer(
        self, transfer_id: int, _at: dt.datetime, error: str, _for_credentials: bool = False
    ) -> None:
        self.retried[transfer_id] = error

    async def retry_now(self, route: str, now: dt.datetime) -> None:
        pass

    async def due_now(self, transfer_ids: Collection[int], now: dt.datetime) -> None:
        self.due.append(sorted(transfer_ids))


_LONG_AGO = dt.datetime.now(dt.UTC) - dt.timedelta(days=2)  # past give_up_after


def _accepted(hub_id: int) -> wire.PackageAccepted:
    return wire.PackageAccepted(hub_id, "document", "d", None, ("000.00.01.H34",), "2026-12-01")


def _state(hub: _Hub, store: _Store | None = None) -> tuple[NodeState, _Store]:
    store = store or _Store()
    config = SimpleNamespace(give_up_after=dt.timedelta(days=1), retry_base=0.1, retry_cap=1.0)
    state = SimpleNamespace(
        hub=hub,
        store=store,
        config=config,
        hub_unreachable=False,
        hub_refused_node=False,
        waiting_on_credentials=set(),
        hub_took_node_at=None,
        outbox_wakeup=asyncio.Event(),
    )
    return cast(NodeState, state), store


async def test_each_transfer_of_a_batch_ends_by_its_own_answer() -> None:
    hub = _Hub([
        _accepted(7),
        errors.RemoteError("EDOC-HUB-003", "other content", 409),
        errors.HubUnavailable("hub answered 429 EDOC-HUB-004: full"),
    ])  # fmt: skip
    state, store = _state(hub)
    transfers = [_transfer(1), _transfer(2), _transfer(3)]
    await outbox.carry_batch(state, transfers)
    assert hub.batches == [[_package(t.outgoing_id) for t in transfers]]
    assert store.finished[1] == (TransferState.DONE, Event("sent", "hub id 7"))
    assert (
        store.finished[2][0] == TransferState.FAILED
        and "EDOC-HUB-003" in store.finished[2][1].detail
    )
    assert list(store.retried) == [3] and 2 not in store.retried


async def test_a_batch_reads_its_packages_in_one_read_as_it_is_carried() -> None:
    hub = _Hub([_accepted(1), _accepted(2), _accepted(3)])
    state, store = _state(hub)
    await outbox.carry_batch(state, [_transfer(3), _transfer(1), _transfer(2)])
    assert store.reads == [[1, 2, 3]]
    assert hub.batches == [[_package(3), _package(1), _package(2)]]  # each its own bytes


async def test_a_transfer_carried_alone_reads_its_package_then() -> None:
    hub = _Hub([])
    state, store = _state(hub)
    await outbox.carry(state, _transfer(5))
    assert (store.reads, hub.singles) == ([[5]], [_package(5)])
    assert store.finished[5][0] == TransferState.DONE


@pytest.mark.parametrize("lost", [False, True], ids=["store fails", "package lost"])
async def test_packages_the_store_does_not_give_are_tried_again_later(lost: bool) -> None:
    """A store failing as the packages are read, or (against its contract) not giving
    one: nothing is sent, each transfer is retried, none fails for it."""
    hub = _Hub([_accepted(1), _accepted(2)])
    state, store = _state(hub)
    if lost:
        store.lost = {2}
    else:
        store.failing = errors.StorageError("disk I/O error")
    await outbox.carry_batch(state, [_transfer(1), _transfer(2)])
    await outbox.carry(state, _transfer(2))
    assert hub.batches == [] and hub.singles == [] and store.finished == {}
    reason = "did not give the packages of outgoing [2]" if lost else "disk I/O error"
    assert sorted(store.retried) == [1, 2]
    assert all(reason in error for error in store.retried.values()), store.retried


@pytest.mark.parametrize(
    "failure", [errors.HubUnreachable("no connection"), errors.HubUnavailable("hub answered 503")]
)
async def test_a_batch_that_fails_whole_is_tried_again_whole(failure: errors.EdocError) -> None:
    state, store = _state(_Hub(failure))
    await outbox.carry_batch(state, [_transfer(1), _transfer(2)])
    assert store.finished == {} and list(store.retried) == [1, 2]
    assert state.hub_unreachable is isinstance(failure, errors.HubUnreachable)


@pytest.mark.parametrize("status", sorted(outbox.NO_BATCHES))
async def test_a_hub_without_the_batch_door_gets_each_package_alone_for_a_while(
    status: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    hub = _Hub(errors.RemoteError(f"EDOC-HTTP-{status}", "no such door", status))
    state, store = _state(hub)
    transfers = [_transfer(1), _transfer(2)]
    await outbox.carry_batch(state, transfers)
    assert len(hub.batches) == 1 and hub.singles == [_package(1), _package(2)]
    assert [store.finished[t.id][0] for t in transfers] == [TransferState.DONE] * 2
    # remembered: the next ones go alone at once, no doomed batch posted first
    await outbox.carry_batch(state, [_transfer(3), _transfer(4)])
    assert len(hub.batches) == 1 and len(hub.singles) == 4
    # until the time is over: the hub may take batches by then
    later = time.monotonic() + outbox.NO_BATCHES_FOR
    monkeypatch.setattr(client, "time", SimpleNamespace(monotonic=lambda: later))
    await outbox.carry_batch(state, [_transfer(5), _transfer(6)])
    assert len(hub.batches) == 2


@pytest.mark.parametrize(
    "refusal",
    [
        errors.RemoteError("EDOC-IN-001", "a batch is at most 65536 bytes", 413),
        errors.RemoteError("EDOC-IN-004", "the body does not start with EDOCFRM1", 400),
        errors.RemoteError("EDOC-HTTP-413", "the answer carries no edoc error", 413),
    ],
    ids=lambda refusal: refusal.code,
)
async def test_a_batch_refused_whole_for_its_bounds_or_shape_sends_each_alone(
    refusal: errors.RemoteError,
) -> None:
    """A hub or a proxy with bounds of its own: nothing was said of the packages."""
    hub = _Hub(refusal)
    state, store = _state(hub)
    transfers = [_transfer(1), _transfer(2)]
    await outbox.carry_batch(state, transfers)
    assert hub.singles == [_package(1), _package(2)]
    assert store.reads == [[1, 2]]  # read once, sent alone or together
    assert [store.finished[t.id][0] for t in transfers] == [TransferState.DONE] * 2
    await outbox.carry_batch(state, [_transfer(3), _transfer(4)])
    assert len(hub.batches) == 2  # not remembered: the next batch may fit


@pytest.mark.parametrize(
    "refusal",
    [
        errors.RemoteError("EDOC-AUTH-001", "unknown node token", 401),
        errors.RemoteError("EDOC-AUTH-002", "not the node's certificate", 403),
    ],
    ids=lambda refusal: str(refusal.status),
)
async def test_a_batch_refused_for_the_node_waits_whole_and_goes_again(
    refusal: errors.RemoteError,
) -> None:
    """The node's token or certificate refused: its configuration, not the documents'
    fault. None is failed (each single post would be refused the same: none is sent),
    each is tried again later, and the operator is told once, as an error."""
    hub = _Hub(refusal)
    state, store = _state(hub)
    with capture_logs() as logs:
        await outbox.carry_batch(state, [_transfer(1), _transfer(2)])
    assert store.finished == {} and hub.singles == []
    assert sorted(store.retried) == [1, 2] and refusal.code in store.retried[1]
    told = [e for e in logs if e["log_level"] == "error"]
    assert len(told) == 1 and "refused this node's credentials" in told[0]["event"]
    assert state.hub_refused_node

    # once the hub takes the node again, what waited for that is due at once; one that
    # waits for another reason (the hub busy) keeps its own next try
    hub.answers = [HubBusy("busy", 30), _accepted(3)]
    await outbox.carry_batch(state, [_transfer(4), _transfer(3)])
    assert store.finished[3][0] == TransferState.DONE and not state.hub_refused_node
    assert store.due == [[1, 2]] and "busy" in store.retried[4]
    assert state.waiting_on_credentials == set()


class _HeldStore(_Store):
    """Stores a retry only once let go."""

    def __init__(self) -> None:
        super().__init__()
        self.storing, self.go = asyncio.Event(), asyncio.Event()

    async def retry_transfer(
        self, transfer_id: int, at: dt.datetime, error: str, for_credentials: bool = False
    ) -> None:
        self.storing.set()
        await self.go.wait()
        await super().retry_transfer(transfer_id, at, error, for_credentials)


class _HeldHub(_Hub):
    """Answers a batch only once let go."""

    def __init__(self, answers: errors.EdocError) -> None:
        super().__init__(answers)
        self.asked, self.go = asyncio.Event(), asyncio.Event()

    async def post_packages(
        self, packages: Sequence[bytes]
    ) -> list[wire.PackageAccepted | errors.EdocError]:
        self.asked.set()
        await self.go.wait()
        return await super().post_packages(packages)


NODE_REFUSED = errors.RemoteError("EDOC-AUTH-001", "unknown node token", 401)


async def test_a_transfer_refused_as_the_hub_takes_the_node_again_is_due_at_once() -> None:
    """The hub takes the node again while a refused transfer's retry is being stored: it
    does not wait for a refusal that has ended."""
    store = _HeldStore()
    state, _ = _state(_Hub(NODE_REFUSED), store)
    carried = asyncio.create_task(outbox.carry_batch(state, [_transfer(1)]))
    await store.storing.wait()
    await refusal.accepted(state)
    store.go.set()
    await carried
    assert store.due == [[1]] and not state.hub_refused_node
    assert state.waiting_on_credentials == set()


async def test_a_refusal_of_a_request_sent_before_the_hub_took_the_node_again_is_stale() -> None:
    """Sent with the credentials since put right, refused after the hub took the node
    again: the node is not said refused again, and the transfer goes at once."""
    hub = _HeldHub(NODE_REFUSED)
    state, store = _state(hub)
    carried = asyncio.create_task(outbox.carry_batch(state, [_transfer(1)]))
    await hub.asked.wait()
    state.hub_refused_node = True  # (refused before: the operator then let the node in)
    await refusal.accepted(state)
    hub.go.set()
    with capture_logs() as logs:
        await carried
    assert not state.hub_refused_node
    assert not [e for e in logs if e["log_level"] == "error"]
    assert store.due == [[1]] and state.waiting_on_credentials == set()


@pytest.mark.parametrize(
    "refusal",
    [
        errors.RemoteError("EDOC-AUTH-001", "unknown node token", 401),
        errors.RemoteError("EDOC-AUTH-002", "not the node's certificate", 403),
        errors.RemoteError("EDOC-HUB-002", "sender not of the calling node's province", 403),
    ],
    ids=lambda refusal: refusal.code,
)
async def test_in_a_batch_answer_only_a_refusal_of_the_package_fails_it(
    refusal: errors.RemoteError,
) -> None:
    hub = _Hub([refusal])
    state, store = _state(hub)
    await outbox.carry_batch(state, [_transfer(1)])
    about_the_package = refusal.code == "EDOC-HUB-002"
    assert (1 in store.finished) is about_the_package
    assert (1 in store.retried) is not about_the_package


class _Pending(_Store):
    """Transfers pending until finished, handed out most urgent (lowest id) first."""

    def __init__(self, transfers: list[Transfer]) -> None:
        super().__init__()
        self.pending = {t.id: t for t in transfers}
        self.limits: list[int] = []  # each pass's

    async def due_transfers(
        self, now: dt.datetime, limit: int, under_way: Collection[int] = ()
    ) -> list[Transfer]:
        self.limits.append(limit)
        due = [t for i, t in sorted(self.pending.items()) if i not in under_way]
        return due[:limit]

    async def next_transfer_at(self, after: dt.datetime) -> dt.datetime | None:
        return None

    outbox_pass = _EmptyStore.outbox_pass

    async def finish_transfer(
        self, transfer: Transfer, state: str, error: str, event: Event, *rest: object
    ) -> None:
        await super().finish_transfer(transfer, state, error, event, *rest)
        del self.pending[transfer.id]


class _SlowHub(_Hub):
    """Answers each request when the test lets it."""

    def __init__(self) -> None:
        super().__init__([])
        self.requests: list[list[bytes]] = []
        self.go = asyncio.Event()

    async def post_packages(
        self, packages: Sequence[bytes]
    ) -> list[wire.PackageAccepted | errors.EdocError]:
        self.requests.append(list(packages))
        await self.go.wait()
        return [_accepted(i) for i, _ in enumerate(packages)]

    async def post_package(self, package: bytes | IO[bytes]) -> wire.PackageAccepted:
        assert isinstance(package, bytes)
        await self.post_packages([package])
        return _accepted(0)


async def _until(condition: Callable[[], bool]) -> None:
    async with asyncio.timeout(5):
        while not condition():
            await asyncio.sleep(0.01)


@contextlib.asynccontextmanager
async def _outbox_running(state: NodeState) -> AsyncIterator[asyncio.Task[None]]:
    """``state``'s outbox worker, stopped (cancelled, then awaited) when the block ends."""
    worker = asyncio.create_task(outbox.run_forever(state))
    try:
        yield worker
    finally:
        await tasks.stop(worker)


async def test_what_falls_due_while_requests_are_under_way_goes_together_after() -> None:
    hub = _SlowHub()
    store = _Pending([_transfer(1)])
    state, _ = _state(hub)
    cast(SimpleNamespace, state).store = store
    async with _outbox_running(state):
        await _until(lambda: len(hub.requests) == 1)  # alone, at once
        for number in range(2, 42):
            store.pending[number] = _transfer(number)
            state.outbox_wakeup.set()
            await asyncio.sleep(0)
        await _until(lambda: len(hub.requests) == outbox.HUB_REQUESTS)
        await asyncio.sleep(0.05)
        assert len(hub.requests) == outbox.HUB_REQUESTS  # the rest wait for one to end
        hub.go.set()
        await _until(lambda: not store.pending)
        sizes = [len(packages) for packages in hub.requests]
        assert sum(sizes) == 41 and max(sizes) > 1
        # the passes read no package: each was read once, by the request that carried it
        assert len(store.reads) == len(hub.requests)
        assert sorted(i for read in store.reads for i in read) == list(range(1, 42))
        assert sorted(p for packages in hub.requests for p in packages) == sorted(
            _package(i) for i in range(1, 42)
        )
        assert len(hub.requests) <= 1 + 41 // wire.BATCH_PACKAGES + outbox.HUB_REQUESTS


@pytest.mark.parametrize(
    ("under_way", "requests"),
    [
        (None, outbox.HUB_REQUESTS),  # no batch answered yet, or a hub that does not say
        (outbox.HUB_ROOM + 1, outbox.HUB_REQUESTS),
        (outbox.HUB_ROOM, outbox.HUB_REQUESTS * outbox.WIDER),
        (0, outbox.HUB_REQUESTS * outbox.WIDER),
    ],
)
async def test_a_hub_with_room_gets_more_requests_at_once(
    under_way: int | None, requests: int
) -> None:
    hub = _SlowHub()
    hub.batches_under_way = under_way
    store = _Pending([_transfer(n, size=300 * 1024) for n in range(1, 30)])  # three a batch
    state, _ = _state(hub)
    cast(SimpleNamespace, state).store = store
    async with _outbox_running(state):
        await _until(lambda: len(hub.requests) == requests)
        await asyncio.sleep(0.05)
        assert len(hub.requests) == requests  # the rest wait for one to end
        # the transfers under way widen with the requests
        assert store.limits[0] == outbox.IN_FLIGHT * requests // outbox.HUB_REQUESTS
        hub.go.set()
        await _until(lambda: not store.pending)
        assert sum(len(packages) for packages in hub.requests) == 29


class _FailingPasses(_Pending):
    """Its first ``failures`` passes fail as a store that cannot be read does."""

    def __init__(self, transfers: list[Transfer], failures: int) -> None:
        super().__init__(transfers)
        self.failures = failures

    async def outbox_pass(
        self, now: dt.datetime, limit: int, under_way: Collection[int] = ()
    ) -> OutboxPass:
        if self.failures:
            self.failures -= 1
            raise errors.StorageError("store failed: disk I/O error")
        return await _EmptyStore.outbox_pass(self, now, limit, under_way)  # type: ignore[arg-type]


async def test_passes_the_store_fails_are_tried_again_and_the_outbox_goes_on() -> None:
    hub = _Hub([])
    store = _FailingPasses([_transfer(1)], failures=2)
    state, _ = _state(hub)
    cast(SimpleNamespace, state).store = store
    async with _outbox_running(state) as worker:
        await _until(lambda: not store.pending)
        assert store.failures == 0 and hub.singles == [_package(1)]
        assert store.finished[1][0] == TransferState.DONE
        assert not worker.done()


class _Full(_Pending):
    """Reads work, nothing can be written (a full disk): no transfer can be ended."""

    async def finish_transfer(self, *_: object) -> None:
        raise errors.StorageError("store failed: database or disk is full")

    async def retry_transfer(self, *_: object) -> None:
        raise errors.StorageError("store failed: database or disk is full")


async def test_transfers_that_cannot_be_ended_are_posted_again_only_after_a_wait() -> None:
    """The hub takes the package but the node cannot record it: the transfer stays due,
    and goes again after a wait that grows, not as fast as the hub answers."""
    hub = _Hub([])
    store = _Full([_transfer(1)])
    state, _ = _state(hub)  # retry_base 0.1 s
    cast(SimpleNamespace, state).store = store
    async with _outbox_running(state) as worker:
        await _until(lambda: len(hub.singles) >= 2)  # posted again, the outbox going on
        await asyncio.sleep(0.5)
        assert len(hub.singles) < 15  # without the wait: hundreds
        assert not worker.done()


class _Defective(_Pending):
    """Ending a transfer raises ``failure``: the store's trouble, or a defect of ours."""

    def __init__(self, transfers: list[Transfer], failure: Exception) -> None:
        super().__init__(transfers)
        self.failure = failure

    async def finish_transfer(self, *_: object) -> None:
        raise self.failure

    async def retry_transfer(self, *_: object) -> None:
        raise self.failure


@pytest.mark.parametrize(
    "failure", [errors.StorageError("store failed: disk is full"), AssertionError()]
)
async def test_a_defect_ending_transfers_is_logged_with_its_traceback(failure: Exception) -> None:
    """The store's trouble is logged by its message; anything else (an AssertionError has
    none) is a defect, logged with its traceback to find it by."""
    hub = _Hub([])
    state, _ = _state(hub)
    cast(SimpleNamespace, state).store = _Defective([_transfer(1)], failure)
    with capture_logs() as logs:
        async with _outbox_running(state) as worker:
            await _until(lambda: any(e["event"] == "transfers not ended" for e in logs))
            assert not worker.done()
    for logged in [e for e in logs if e["event"] == "transfers not ended"]:  # once a rest
        if isinstance(failure, errors.EdocError):
            assert logged["reason"] == str(failure) and "exc_info" not in logged
        else:
            assert logged["exc_info"] is failure


class _OneUnrecordable(_Pending):
    """Transfer 1's end can never be recorded (a defect about it); the others' can."""

    async def finish_transfer(self, transfer: Transfer, *rest: object) -> None:
        if transfer.id == 1:
            raise errors.StorageError("store failed: cannot record transfer 1")
        await super().finish_transfer(transfer, *rest)  # type: ignore[arg-type]

    async def retry_transfer(self, transfer_id: int, *_: object) -> None:
        raise errors.StorageError(f"store failed: cannot record transfer {transfer_id}")


async def test_a_transfer_that_cannot_be_ended_rests_alone_and_the_others_go_on(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """It waits out its own rest (a minute and a half here), not posted again meanwhile;
    the others go on (the outbox waits as a whole only while nothing ends well)."""
    monkeypatch.setattr(outbox, "full_jitter", lambda *_: 90.0)  # the rests only
    hub = _Hub([])
    store = _OneUnrecordable([_transfer(1)])
    state, _ = _state(hub)  # the outbox's own wait: retry_base 0.1 s
    cast(SimpleNamespace, state).store = store
    async with _outbox_running(state) as worker:
        for number in range(2, 6):
            await asyncio.sleep(0.1)
            store.pending[number] = _transfer(number)
            state.outbox_wakeup.set()
            await _until(lambda: number in store.finished)  # noqa: B023 (awaited here)
        assert hub.singles.count(_package(1)) == 1 and not worker.done()


def test_a_rest_grows_with_each_failure_in_a_row_and_is_forgotten_after_the_cap(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(outbox, "full_jitter", lambda base, cap, n: min(cap, base * 2**n))
    resting = outbox._Resting(base=1.0, cap=8.0)
    rests = []
    for _ in range(5):
        resting.failed([7], now=0.0)
        rests.append(resting.wake_in(0.0))
    assert rests == [1.0, 2.0, 4.0, 8.0, 8.0]
    assert resting.holding(7.9) == {7} and resting.holding(8.0) == set()
    assert resting.holding(16.1) == set()  # over the cap since it ended: forgotten
    resting.failed([7], now=20.0)
    assert resting.wake_in(20.0) == 1.0  # a new run of failures starts from the base


async def test_packages_sent_one_by_one_all_go_when_one_cannot_be_recorded() -> None:
    """A batch the hub refuses whole goes one package at a time: one whose sending the
    store cannot record does not keep those after it from going."""
    hub = _Hub(errors.RemoteError("EDOC-HTTP-404", "no batch door", 404))
    state, _ = _state(hub)
    store = _OneUnrecordable([_transfer(1), _transfer(2)])
    cast(SimpleNamespace, state).store = store
    with pytest.raises(outbox.NotEnded) as raised:
        await outbox.carry_batch(state, [_transfer(1), _transfer(2)])
    assert raised.value.ids == [1]
    assert hub.singles == [_package(1), _package(2)] and list(store.finished) == [2]


class _SentUnrecordable(_Store):
    """Records any end of a transfer but its being sent (the store failing just then)."""

    async def finish_transfer(
        self, transfer: Transfer, state: str, error: str, event: Event, *rest: object
    ) -> None:
        if state == TransferState.DONE:
            raise errors.StorageError("store failed: disk I/O error")
        await super().finish_transfer(transfer, state, error, event, *rest)


@pytest.mark.parametrize("way", ["alone", "together", "to our own agencies"])
async def test_a_package_carried_whose_end_the_store_cannot_record_is_never_marked_failed(
    way: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The hub (or this node's inbox) has it: the store failing to record that is no
    failure to carry it, and a transfer past give_up_after is not failed for it (nor made
    to retry as if the hub had refused); it stays due, to go again (the hub, or the inbox,
    takes an identical package as the first time)."""
    old = [dataclasses.replace(_transfer(n), created_at=_LONG_AGO) for n in (1, 2)]
    hub = _Hub([_accepted(1), _accepted(2)])
    state, _ = _state(hub)
    store = _SentUnrecordable()
    cast(SimpleNamespace, state).store = store
    received: list[int] = []

    async def receive(_state: NodeState, transfer: Transfer, _package: object) -> None:
        received.append(transfer.id)

    monkeypatch.setattr(outbox, "_to_local", receive)
    with pytest.raises((errors.StorageError, outbox.NotEnded), match="disk I/O") as raised:
        if way == "together":
            await outbox.carry_batch(state, old)
        elif way == "alone":
            await outbox.carry(state, old[0])
        else:
            await outbox.carry(state, dataclasses.replace(old[0], route=Route.LOCAL))
    if way == "together":
        assert isinstance(raised.value, outbox.NotEnded) and raised.value.ids == [1, 2]
    assert received == ([1] if way == "to our own agencies" else [])
    assert store.finished == {} and store.retried == {}


class _SlowFull(_Store):
    """Records a transfer's end when the test lets it; cannot record a retry (full)."""

    def __init__(self) -> None:
        super().__init__()
        self.recording = asyncio.Event()

    async def finish_transfer(
        self, transfer: Transfer, state: str, error: str, event: Event, *rest: object
    ) -> None:
        await self.recording.wait()
        await super().finish_transfer(transfer, state, error, event, *rest)

    async def retry_transfer(self, *_: object) -> None:
        raise errors.StorageError("store failed: database or disk is full")


async def test_a_request_ends_when_all_its_transfers_have_ended_whichever_fail() -> None:
    """One transfer's ending failing does not end the request while another's is still
    being recorded: until then its transfer is under way, not to be handed out again."""
    hub = _Hub([errors.HubUnavailable("hub answered 503"), _accepted(2)])
    state, _ = _state(hub)
    store = _SlowFull()
    cast(SimpleNamespace, state).store = store
    request = asyncio.create_task(outbox.carry_batch(state, [_transfer(1), _transfer(2)]))
    await asyncio.sleep(0.05)
    assert not request.done()  # transfer 2's end is still being recorded
    store.recording.set()
    with pytest.raises(outbox.NotEnded, match="disk is full") as raised:
        await request
    assert raised.value.ids == [1]  # 2 ended well
    assert store.finished[2][0] == TransferState.DONE


@pytest.mark.parametrize(
    "failure",
    [errors.RevokedCertificate("the signer's certificate is revoked"), OSError(5, "I/O error")],
    ids=["refused", "not taken"],
)
async def test_our_own_inbox_refusing_a_package_fails_it_at_once(
    failure: Exception, monkeypatch: pytest.MonkeyPatch
) -> None:
    """As the hub refusing it does: it would be refused again at every try until
    give_up_after. What it could not take (its disk) is tried again."""
    state, store = _state(_Hub([]))

    async def receive(_state: NodeState, _transfer: Transfer, _package: object) -> None:
        raise failure

    monkeypatch.setattr(outbox, "_to_local", receive)
    await outbox.carry(state, dataclasses.replace(_transfer(1), route=Route.LOCAL))
    if isinstance(failure, errors.InputError):
        assert store.finished[1][0] == TransferState.FAILED and store.retried == {}
    else:
        assert store.finished == {} and "I/O error" in store.retried[1]
