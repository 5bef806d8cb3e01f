"""The durable outbox: every message the node answered 202 for is on disk and in the
store before the answer, and this worker carries it until it is through or has
visibly failed.

Small packages due for the hub at the same moment go to it together, up to
wire.BATCH_PACKAGES and wire.BATCH_BYTES to a request; one due alone goes alone at once
(nothing waits to fill a batch), and so does a large one (streamed). Each transfer ends by
its own answer. Transfers to the hub retry with exponential backoff and full jitter while
the hub is down or busy (5xx, 429, no connection: for a batch, every package in it) or
refuses the node's own credentials (401, 403 EDOC-AUTH-002: the node's configuration, not
the document's fault; edoc.node.refusal sends those at once when the hub takes the node
again); any other refusal (4xx) fails the recipients at once with the hub's
reason, and so does a transfer still failing after ``give_up_after``. A batch refused
whole for a reason not about its packages (a hub without the batch door, a proxy's
bounds) sends each package alone.
Resending is safe: the hub answers an identical package with its first answer.

A pass of the store reads the due transfers with their packages' sizes, not their bytes:
what is due while HUB_REQUESTS requests are under way is read again on the next wake-up,
and the bytes of ~30 documents were most of what each read cost. The packages the store
keeps are read when their transfers are carried, those of a request in one read.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import functools
import shutil
from collections.abc import Collection, Coroutine, Mapping, Sequence
from pathlib import Path
from typing import TypeGuard

import structlog

from edoc import errors, framing, wire
from edoc.client import HubBusy
from edoc.model import DeliveryState, Route, TransferState
from edoc.node import hublink, progress, receiving, refusal
from edoc.node.state import NodeState
from edoc.retry import Backoff, full_jitter
from edoc.store.node import Event, Transfer

log = structlog.get_logger()
IN_FLIGHT = 32  # transfers under way at once
# Requests to the hub under way at once. What falls due while they are on their way
# gathers for the next one: under load a request carries many packages, at rest each
# goes at once, alone (no request waits to fill a batch).
HUB_REQUESTS = 2
# Both twice as many while the hub has room: its last batch answer said it was handling
# at most HUB_ROOM other batches (this node's among them). Fed by four nodes the hub sat
# idle a third of the time at 2 requests each, and 60 days of Tây Ninh took 10 % longer;
# fed by 63 it is busy throughout, and more requests would only carry fewer packages
# each: a national day took 14-28 % longer when every node sent 4 (bench/HISTORY.md,
# part eleven). (Transfers to the node's own agencies widen too: harmless.)
HUB_ROOM = 6
WIDER = 2


async def _packages(state: NodeState, transfers: Sequence[Transfer]) -> dict[int, bytes]:
    """The bytes of the packages the store keeps of ``transfers``, by transfer id, in one
    read. An outgoing message never changes once written: these are the packages whose
    sizes the outbox pass read."""
    kept = [transfer for transfer in transfers if transfer.kept]
    if not kept:
        return {}
    found = await state.store.outgoing_packages([transfer.outgoing_id for transfer in kept])
    lost = sorted({t.outgoing_id for t in kept} - found.keys())
    if lost:  # never, while the store keeps its contract: tried again later, as any failure
        raise errors.StorageError(f"the store did not give the packages of outgoing {lost}")
    return {transfer.id: found[transfer.outgoing_id] for transfer in kept}


async def _package(
    state: NodeState, transfer: Transfer, read: Mapping[int, bytes] | None
) -> bytes | Path:
    """What ``transfer`` carries: the package's bytes (``read`` already with others of a
    request, or read now), or the file the package is in."""
    if not transfer.kept:
        return Path(transfer.path)
    if read is None:
        read = await _packages(state, [transfer])
    return read[transfer.id]


async def _to_local(state: NodeState, transfer: Transfer, package: bytes | Path) -> None:
    outgoing = await state.store.outgoing(transfer.outgoing_id)
    assert outgoing is not None
    local = [r.org_id for r in outgoing.recipients if r.local]
    try:
        await _received_here(state, transfer, package, local)
    except errors.InputError as exc:
        held = await _holding(state, package, local)
        if not held:
            raise
        if held == local:
            log.info("refused, but every local recipient holds it already: delivered as before")
            return
        log.info("refused, but some local recipients hold it already", held=held)
        raise HeldBySome(exc, held) from exc


class HeldBySome(Exception):
    """A local transfer's package refused though some of its recipients, ``held``, hold
    it already (``_holding``): they stay delivered, the others fail for ``refusal``."""

    def __init__(self, refusal: errors.InputError, held: list[str]) -> None:
        super().__init__(str(refusal))
        self.refusal = refusal
        self.held = held


async def _received_here(
    state: NodeState, transfer: Transfer, package: bytes | Path, local: list[str]
) -> None:
    """Hand ``package`` to ``local``, this node's own agencies. receive() takes the file
    it is given (moves it into the inbox once verified): a package in a file goes as a
    copy, the outbox keeps its own. The copy is gone when this ends: taken, or deleted
    here when receive did not take it (refused, or failed before), or every try of a
    transfer refused or failing left one in incoming/ until the node's next start."""
    if isinstance(package, bytes):
        await receiving.receive(state, package, local)
        return
    copy = state.incoming_dir / f"local-{transfer.id}.edxml"
    try:
        await state.offload.run(shutil.copyfile, package, copy)
        await receiving.receive(state, copy, local)
    finally:  # what receive took is in its inbox folder now: nothing left under this name
        copy.unlink(missing_ok=True)


async def _holding(state: NodeState, package: bytes | Path, recipients: list[str]) -> list[str]:
    """Those of ``recipients`` that hold ``package`` already: a transfer carried again
    after the node stopped (or its store failed) between the inbox and the transfer's end,
    its package refused now (its signer revoked since) though they hold it and answered
    01 (all of them, or the first few the inbox stored it for). Looked at only once
    refused: a package that verifies is found held by the inbox itself, and a transfer's
    attempts do not tell it was carried before (a transfer's end not recorded does not
    count)."""
    return [r for r in recipients if await receiving.held(state, package, r)]


def _sent(answer: wire.PackageAccepted) -> Event:
    return Event(DeliveryState.SENT, f"hub id {answer.id}")


DELIVERED = Event(DeliveryState.DELIVERED, "")  # to this node's own agencies


async def _done(state: NodeState, transfer: Transfer, event: Event) -> None:
    """Record that ``transfer`` got through. The store failing here is raised, not taken
    for a failure to carry it (which, past give_up_after, fails the document): the
    transfer rests (run_forever) and goes again, and the hub, or this node's inbox, takes
    an identical package as the first time."""
    now = dt.datetime.now(dt.UTC)
    await state.store.finish_transfer(
        transfer, TransferState.DONE, "", event, now, progress.next_state
    )
    if transfer.route != Route.HUB:
        return
    state.waiting_on_credentials.discard(transfer.id)
    if state.hub_unreachable:
        # The hub is back after an outage. Each transfer waiting for it has its own random
        # retry time; left alone, those timers, not the priorities, would decide what goes
        # first (hỏa tốc documents went out after a backlog of ordinary ones). All due now.
        await state.store.retry_now(Route.HUB, now)
        # only now: the next one sent tries again if it failed
        state.hub_unreachable = False
        state.outbox_wakeup.set()
    await refusal.accepted(state)  # a package the hub took takes the node's credentials


async def _fail(
    state: NodeState,
    transfer: Transfer,
    reason: str,
    now: dt.datetime,
    held: Collection[str] = (),
) -> None:
    """Fail ``transfer`` for ``reason``: each of its recipients fails, but those that
    ``held`` its package already, which were delivered it."""
    state.waiting_on_credentials.discard(transfer.id)
    failed = Event(DeliveryState.FAILED, reason)
    await state.store.finish_transfer(
        transfer,
        TransferState.FAILED,
        reason,
        failed,
        now,
        progress.next_state,
        dict.fromkeys(held, DELIVERED),
    )


def _about(transfer: Transfer) -> None:
    structlog.contextvars.bind_contextvars(
        outgoing=transfer.outgoing_id, route=transfer.route, document_id=transfer.document_id
    )


async def carry(
    state: NodeState, transfer: Transfer, read: Mapping[int, bytes] | None = None
) -> None:
    """Carry ``transfer`` alone (its package's bytes in ``read`` when read already)."""
    _about(transfer)
    now = dt.datetime.now(dt.UTC)
    try:
        package = await _package(state, transfer, read)
        if transfer.route == Route.HUB:
            event = _sent(await hublink.post_package(state, package))
        else:
            await _to_local(state, transfer, package)
            event = DELIVERED
    except HeldBySome as refused:
        await _not_carried(state, transfer, refused.refusal, now, refused.held)
        return
    except (errors.EdocError, OSError) as exc:
        await _not_carried(state, transfer, exc, now)
        return
    await _done(state, transfer, event)


async def _not_carried(
    state: NodeState,
    transfer: Transfer,
    exc: errors.EdocError | OSError,
    now: dt.datetime,
    held: Collection[str] = (),
) -> None:
    """A refusal of the package (the hub's, or this node's inbox's for its own agencies)
    fails the transfer (but for the recipients that ``held`` it already); anything else,
    a refusal of the node's own credentials included, is tried again later, until
    ``give_up_after``."""
    if refusal.refuses_the_node(exc):
        refusal.refused(state, exc, asked_at=now)
    elif isinstance(exc, errors.RemoteError | errors.InputError):
        log.warning("refused", code=exc.code, reason=exc.message)
        await _fail(state, transfer, str(exc), now, held)
        return
    if isinstance(exc, errors.HubUnreachable):
        state.hub_unreachable = True
    if now - transfer.created_at > state.config.give_up_after:
        await _fail(state, transfer, str(exc), now)
        return
    delay = full_jitter(state.config.retry_base, state.config.retry_cap, transfer.attempts)
    if isinstance(exc, HubBusy):  # the hub said when (Retry-After): not before, up to the cap
        delay = max(delay, min(exc.retry_after, state.config.retry_cap))
    log.info("will retry", reason=str(exc), attempts=transfer.attempts + 1, delay=delay)
    for_credentials = refusal.refuses_the_node(exc)  # kept too: a restart forgets the set
    at = now + dt.timedelta(seconds=delay)
    await state.store.retry_transfer(transfer.id, at, str(exc), for_credentials)
    if transfer.route == Route.HUB:
        await refusal.transfer_waits(state, transfer.id, for_credentials)


NO_BATCHES = frozenset({404, 405})  # a hub without the batch door (older): one at a time
# Seconds a hub without the batch door is remembered (its batches go as single posts at
# once); then a batch is tried again, in case the hub was upgraded meanwhile.
NO_BATCHES_FOR = 600.0
NOT_THIS_NODE = frozenset({401, 403})  # its single posts would be refused the same: all wait


def _about_the_request(exc: errors.EdocError | OSError) -> TypeGuard[errors.RemoteError]:
    """Whether the batch request was refused whole for a reason that says nothing of its
    packages: a door the hub lacks (404, 405), bounds of the hub's or a proxy's own (413,
    400): each package then goes alone, to be judged by the single door. A refusal of the
    node itself (401, 403) refuses each single post too; 5xx and 429 are retried whole."""
    return (
        isinstance(exc, errors.RemoteError)
        and 400 <= exc.status < 500
        and exc.status not in NOT_THIS_NODE
    )


async def _one_by_one(
    state: NodeState, transfers: Sequence[Transfer], read: Mapping[int, bytes]
) -> None:
    """Each alone, one after the other: one whose ending fails does not stop the rest."""
    outcomes: list[BaseException | None] = []
    for transfer in transfers:
        try:
            await carry(state, transfer, read)
            outcomes.append(None)
        except Exception as exc:
            outcomes.append(exc)
    _raise_not_ended(transfers, outcomes)


class NotEnded(Exception):
    """The endings of some transfers of a request failed (the store could not record
    them): which, and the first failure, which says why."""

    def __init__(self, ids: list[int], first: Exception) -> None:
        super().__init__(str(first))
        self.ids = ids
        self.first = first


def _raise_not_ended(
    transfers: Sequence[Transfer], outcomes: Sequence[BaseException | None]
) -> None:
    """Raise what the endings of ``transfers`` came to, if any failed: a cancellation or
    the like as it is, else NotEnded."""
    for outcome in outcomes:
        if isinstance(outcome, BaseException) and not isinstance(outcome, Exception):
            raise outcome
    failed = [
        (t.id, o) for t, o in zip(transfers, outcomes, strict=True) if isinstance(o, Exception)
    ]
    if failed:
        raise NotEnded([i for i, _ in failed], failed[0][1])


async def carry_batch(state: NodeState, transfers: Sequence[Transfer]) -> None:
    """Small packages to the hub in one request, each transfer ended by its own answer;
    the request failing as a whole (5xx, 429, no connection) is every one's to retry, a
    refusal of the request that says nothing of its packages sends each alone. Their
    bytes are read from the store once, whichever way they go."""
    now = dt.datetime.now(dt.UTC)
    try:
        read = await _packages(state, transfers)
    except (errors.EdocError, OSError) as exc:  # the store's failure: each tried again later
        await _each_ended(state, transfers, [exc] * len(transfers), now)
        return
    if not state.hub.takes_batches:  # the hub was found without the batch door a moment ago
        await _one_by_one(state, transfers, read)
        return
    answers: Sequence[wire.PackageAccepted | errors.EdocError | OSError]
    try:
        answers = await state.hub.post_packages([read[t.id] for t in transfers])
    except (errors.EdocError, OSError) as exc:
        if _about_the_request(exc):
            log.info("batch refused whole: each package alone", code=exc.code, status=exc.status)
            if exc.status in NO_BATCHES:
                state.hub.without_batches(NO_BATCHES_FOR)
            await _one_by_one(state, transfers, read)
            return
        answers = [exc] * len(transfers)
    await _each_ended(state, transfers, answers, now)


async def _each_ended(
    state: NodeState,
    transfers: Sequence[Transfer],
    answers: Sequence[wire.PackageAccepted | errors.EdocError | OSError],
    now: dt.datetime,
) -> None:
    # side by side, so that the store commits them together (each transfer in a batch is
    # the head of its own chain: no order among them to keep)
    endings = (_ended(state, t, answer, now) for t, answer in zip(transfers, answers, strict=True))
    # all of them over before this ends, whichever fail: the transfers of this request
    # stay under way until then, and none is handed out again while one still runs
    outcomes = await asyncio.gather(*endings, return_exceptions=True)
    _raise_not_ended(transfers, outcomes)


async def _ended(
    state: NodeState,
    transfer: Transfer,
    answer: wire.PackageAccepted | errors.EdocError | OSError,
    now: dt.datetime,
) -> None:
    """End ``transfer`` by the hub's answer for its package."""
    _about(transfer)
    if isinstance(answer, wire.PackageAccepted):
        await _done(state, transfer, _sent(answer))
    else:
        await _not_carried(state, transfer, answer, now)


def _batchable(transfer: Transfer) -> bool:
    return (
        transfer.route == Route.HUB
        and transfer.size is not None  # kept by the store (a file goes alone, streamed)
        and hublink.batched(transfer.size)
    )


def batches(due: Sequence[Transfer]) -> list[list[Transfer]]:
    """The due transfers in the requests that carry them: small packages to the hub
    together, up to wire.BATCH_PACKAGES and wire.BATCH_BYTES (framing included) a request,
    each other transfer alone. Each request keeps the store's order (most urgent first),
    and the requests come in the order of their first transfer: when every request to
    the hub is under way, the most urgent go with the next."""
    carried: list[list[Transfer]] = []
    batch: list[Transfer] = []
    size = 0
    for transfer in due:
        if not _batchable(transfer):
            carried.append([transfer])
            continue
        grown = size + (transfer.size or 0)
        if batch and (
            len(batch) == wire.BATCH_PACKAGES
            or framing.overhead(len(batch) + 1) + grown > wire.BATCH_BYTES
        ):
            carried.append(batch)
            batch, grown = [], transfer.size or 0
        batch.append(transfer)
        size = grown
    place = {transfer.id: place for place, transfer in enumerate(due)}
    return sorted([*carried, batch] if batch else carried, key=lambda group: place[group[0].id])


def _carrying(state: NodeState, transfers: list[Transfer]) -> Coroutine[None, None, None]:
    if len(transfers) == 1:  # alone, or nothing else due to go with it: the single door
        return carry(state, transfers[0])
    return carry_batch(state, transfers)


def _to_the_hub(transfers: list[Transfer]) -> bool:
    return transfers[0].route == Route.HUB


def _widening(state: NodeState) -> int:
    """How many times IN_FLIGHT and HUB_REQUESTS go now: WIDER while the hub has room."""
    others = state.hub.batches_under_way
    return WIDER if others is not None and others <= HUB_ROOM else 1


def _log_troubled(troubled: list[BaseException]) -> None:
    """The first of what the requests ended raised, and how many: an edoc error by its
    message, anything else (a defect of ours) with its traceback."""
    first = troubled[0].first if isinstance(troubled[0], NotEnded) else troubled[0]
    if isinstance(first, errors.EdocError):
        log.error("transfers not ended", reason=str(first), requests=len(troubled))
    else:
        log.error("transfers not ended", requests=len(troubled), exc_info=first)


class _Resting:
    """Transfers whose ending the store could not record (a full disk, or a defect about
    one of them): the store cannot make them wait for their next try, so they wait here,
    each longer after each failure in a row, while the others go on. Not handed out again
    as fast as the hub answers, and one that always fails does not hold up the rest."""

    def __init__(self, base: float, cap: float) -> None:
        self.base = base
        self.cap = cap
        # by transfer: its failures in a row, and until when it rests (the loop's clock)
        self._rests: dict[int, tuple[int, float]] = {}

    def failed(self, ids: Sequence[int], now: float) -> None:
        for transfer_id in ids:
            failures = self._rests.get(transfer_id, (0, now))[0]
            self._rests[transfer_id] = (
                failures + 1,
                now + full_jitter(self.base, self.cap, failures),
            )

    def ended(self, ids: Sequence[int]) -> None:
        for transfer_id in ids:
            self._rests.pop(transfer_id, None)

    def holding(self, now: float) -> set[int]:
        """The transfers still resting at ``now``. Those whose rest ended over ``cap`` ago
        are forgotten (they went again without failing, ended otherwise, or have not gone
        again yet: their next failure waits from the base again)."""
        self.ended([i for i, (_, until) in self._rests.items() if until < now - self.cap])
        return {i for i, (_, until) in self._rests.items() if until > now}

    def wake_in(self, now: float) -> float | None:
        """Seconds until the next one is done resting; None if none rests."""
        waits = [until - now for _, until in self._rests.values() if until > now]
        return min(waits) if waits else None


async def run_forever(state: NodeState) -> None:
    """Keep up to IN_FLIGHT transfers under way, in up to HUB_REQUESTS requests to the
    hub (each WIDER while the hub has room: ``_widening``), starting the next as soon as
    some end; those due together go in batches (``batches``).

    The store hands out only the head of each (sender, document, route) chain, so the
    statuses about one document still go one after the other, oldest first; a finished
    transfer wakes this loop, and so does every new message."""
    loop = asyncio.get_running_loop()
    under_way: dict[int, asyncio.Task[None]] = {}
    requests: set[asyncio.Task[None]] = set()  # those of under_way's tasks that go to the hub
    # The store failing fails passes (a lost database), or the endings of transfers it
    # cannot record: each failure in a row waits longer before the next pass, rather than
    # ending this loop (nothing would restart it) or, when nothing ends well (a full disk),
    # posting the whole backlog to the hub as fast as it answers.
    passes = Backoff(state.config.retry_base, state.config.retry_cap)
    endings = Backoff(state.config.retry_base, state.config.retry_cap)
    resting = _Resting(state.config.retry_base, state.config.retry_cap)
    troubled: list[BaseException] = []  # what the requests ended since the last pass raised
    ended_well = False  # any transfer, since the last pass

    def finished(ids: list[int], task: asyncio.Task[None]) -> None:
        nonlocal ended_well
        for transfer_id in ids:
            under_way.pop(transfer_id, None)
        requests.discard(task)
        failure = None if task.cancelled() else task.exception()
        failed: list[int] = []
        if failure is not None:
            troubled.append(failure)
            failed = failure.ids if isinstance(failure, NotEnded) else ids
            resting.failed(failed, loop.time())
        well = [transfer_id for transfer_id in ids if transfer_id not in failed]
        resting.ended(well)
        ended_well = ended_well or bool(well)
        state.outbox_wakeup.set()

    while True:
        went_well, ended_well = ended_well, False
        if troubled:
            _log_troubled(troubled)
            troubled.clear()
            if not went_well:  # nothing ended well: the store records nothing
                await endings.failed()
        if went_well:
            endings.succeeded()
        state.outbox_wakeup.clear()
        now = dt.datetime.now(dt.UTC)
        widening = _widening(state)
        # what is due and when the next falls due, in one read of the store (two were a
        # trip each on every pass); nothing is due while IN_FLIGHT are under way
        held = resting.holding(loop.time()).union(under_way)
        try:
            found = await state.store.outbox_pass(now, IN_FLIGHT * widening - len(under_way), held)
        except errors.StorageError as exc:
            log.error("outbox pass failed", reason=exc.message)
            await passes.failed()
            continue
        passes.succeeded()
        if found.due:
            for transfers in batches(found.due):
                if _to_the_hub(transfers) and len(requests) >= HUB_REQUESTS * widening:
                    continue  # due still: it goes with the next request, when one ends
                task = asyncio.create_task(_carrying(state, transfers))
                ids = [transfer.id for transfer in transfers]
                under_way.update(dict.fromkeys(ids, task))
                if _to_the_hub(transfers):
                    requests.add(task)
                task.add_done_callback(functools.partial(finished, ids))
        upcoming = found.next_at
        pause = 5.0 if upcoming is None else min(5.0, (upcoming - now).total_seconds())
        rest = resting.wake_in(loop.time())
        if rest is not None:
            pause = min(pause, rest)
        # asyncio.timeout, not wait_for: on Python 3.11 wait_for swallows a cancellation that
        # comes as the event is set (CPython gh-86296), a transfer ending as the node stops;
        # this loop then went on and the node's shutdown waited for ever.
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(max(0.0, pause)):
                await state.outbox_wakeup.wait()
