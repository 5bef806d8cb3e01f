"""Collecting from the hub: long polls for what waits for this province, each delivery
fetched, received (verified, stored, answered) and then acknowledged, many
acknowledgements in one request."""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import functools
import uuid
from collections.abc import Callable
from pathlib import Path

import structlog

from edoc import envelope, errors, tasks, wire
from edoc.model import Document, MessageKind, StatusCode
from edoc.node import hublink, receiving, refusal
from edoc.node.answers import response_for, status_message
from edoc.node.state import NodeState
from edoc.retry import Backoff

log = structlog.get_logger()
IN_FLIGHT = 32  # deliveries being fetched, verified and stored at once
# Tries of a download that finds no connection to the hub before its delivery is left to
# the hub's next offer, which comes only when the lease runs out (60 s by default): when a
# national network started, connects to the busy hub timed out and 98 deliveries each
# waited that minute. A hub that answered (4xx, 5xx, 429 with its Retry-After) is not
# asked again sooner than the lease says.
FETCH_TRIES = 3


class Acknowledgements:
    """Stored deliveries waiting to be acknowledged to the hub, many in one request: while
    one acknowledgement is on its way the next ones gather, and a request goes at most
    every PACE seconds, so under load a request carries many and at rest none waits."""

    BATCH = 500
    # An acknowledgement at rest goes at once; the next one not before PACE after it.
    # Without a pace, deliveries stored one after the other went in a request each (the
    # hub's answer is quick): the hub's largest per-message cost after the package itself.
    # What waits is only the hub's tally: the delivery is stored, and its lease (60 s by
    # default) is far longer.
    PACE = 0.1

    def __init__(self) -> None:
        self._waiting: dict[int, None] = {}  # ordered, and a redelivery's id only once
        self._added = asyncio.Event()
        # Taken, and offered again perhaps: the hub offers a delivery again once its lease
        # ran out before an acknowledgement of it reached the hub, and a collect asked
        # before one did may answer with it after. A copy failing then (a store fault)
        # left it untaken in its chain, every later status of which waited for an offer
        # the hub never made. Forgotten once a collect is asked after the hub heard them.
        self._given: set[int] = set()
        self._heard: list[int] = []  # heard by the hub since a collect was last asked

    def add(self, delivery_id: int) -> None:
        self._waiting[delivery_id] = None
        self._given.add(delivery_id)
        self._added.set()

    def given(self, delivery_id: int) -> bool:
        """Whether ``delivery_id`` was taken and its acknowledgement is given (on its
        way, or heard by the hub after the last collect was asked): a copy of it the hub
        offers is not to be taken again."""
        return delivery_id in self._given

    def collecting(self) -> None:
        """A collect is about to be asked: what the hub heard acknowledged by now it no
        longer offers."""
        self._given.difference_update(self._heard)
        self._heard.clear()

    def _batch(self) -> list[int]:
        batch = list(self._waiting)[: self.BATCH]
        for delivery_id in batch:
            del self._waiting[delivery_id]
        if not self._waiting:
            self._added.clear()
        return batch

    async def send_forever(self, state: NodeState) -> None:
        backoff = Backoff(state.config.retry_base, state.config.retry_cap)
        clock = asyncio.get_running_loop().time
        sent_at = -self.PACE
        while True:
            await self._added.wait()
            if len(self._waiting) < self.BATCH:
                await asyncio.sleep(sent_at + self.PACE - clock())
            sent_at = clock()
            batch = self._batch()
            try:
                await state.hub.acknowledge(batch)
                self._heard.extend(batch)
                backoff.succeeded()
            except errors.HubUnavailable as exc:
                # kept for the next try; if the lease runs out first, the hub offers them
                # again and the redelivery is recognised
                log.warning("acknowledgements not sent", reason=exc.message, count=len(batch))
                for delivery_id in batch:
                    self.add(delivery_id)
                await backoff.failed()
            except errors.RemoteError as exc:
                log.error("hub refused acknowledgements", code=exc.code, reason=exc.message)
                self._given.difference_update(batch)  # offered again, each is taken anew


async def collect_forever(state: NodeState) -> None:
    """Long-poll the hub for what waits for this province, keeping up to IN_FLIGHT
    deliveries being verified and stored at once; each is acknowledged once stored."""
    acks = Acknowledgements()
    async with asyncio.TaskGroup() as group:
        group.create_task(acks.send_forever(state), name="acks")
        await _collect_forever(state, acks)


StatusChain = tuple[str, str]  # (document id, responder)


def _chain(delivery: wire.DeliveryNotice) -> StatusChain | None:
    """Statuses about one document from one responder are stored in the order the hub
    relays them (it accepted them in the order given): 05 before 06, though both come in
    one answer and are verified side by side."""
    if delivery.kind != MessageKind.STATUS:
        return None
    return (delivery.document_id, delivery.sender)


class _Chains:
    """The statuses of a chain are stored in the order the hub accepted them, which is
    the order of their delivery ids. A delivery waits for the latest earlier one of its
    chain being taken (which waits for its own), and is left for the hub while an
    earlier one was offered and not taken (failed, or left so) and is not being taken:
    the hub offers them all again, in any order, and a 06 stored before the 05 whose
    failure held it back would be out of order. (Kept in memory: a node restarted while
    its hub lease of a 05 runs may still be offered the 06 first.)"""

    def __init__(self) -> None:
        self._taking: dict[StatusChain, dict[int, asyncio.Task[bool]]] = {}
        self._untaken: dict[StatusChain, set[int]] = {}  # offered, not taken since
        # taken by a copy while another copy of it, offered again, still runs: that one
        # failing leaves it taken (acknowledged: the hub offers it no more)
        self._taken_meanwhile: set[tuple[StatusChain, int]] = set()

    def take(
        self,
        chain: StatusChain,
        delivery_id: int,
        start: Callable[[asyncio.Task[bool] | None], asyncio.Task[bool]],
    ) -> asyncio.Task[bool] | None:
        """The task ``start`` makes for ``delivery_id``, given the one it waits for;
        None when it must wait for an earlier one offered again later."""
        taking = self._taking.get(chain, {})
        if any(
            other < delivery_id and other not in taking for other in self._untaken.get(chain, ())
        ):
            self._untaken[chain].add(delivery_id)
            return None
        taking = self._taking.setdefault(chain, taking)
        earlier = [other for other in taking if other < delivery_id]
        task = start(taking[max(earlier)] if earlier else None)
        taking[delivery_id] = task  # (a copy offered again replaces one still running)
        task.add_done_callback(functools.partial(self._done, chain, delivery_id))
        return task

    def _done(self, chain: StatusChain, delivery_id: int, task: asyncio.Task[bool]) -> None:
        taking = self._taking.get(chain, {})
        current = taking.get(delivery_id) is task
        took = not task.cancelled() and task.exception() is None and task.result()
        if current:
            del taking[delivery_id]
            if not taking:
                del self._taking[chain]
            if (chain, delivery_id) in self._taken_meanwhile:
                self._taken_meanwhile.discard((chain, delivery_id))
                took = True
        elif took and delivery_id in taking:
            self._taken_meanwhile.add((chain, delivery_id))
        untaken = self._untaken.setdefault(chain, set())
        if took:
            untaken.discard(delivery_id)  # (by any copy of it: it is acknowledged)
        elif current:
            untaken.add(delivery_id)
        if not untaken:
            del self._untaken[chain]


async def _collect_forever(state: NodeState, acks: Acknowledgements) -> None:
    taking: set[asyncio.Task[bool]] = set()
    try:
        await _collect_into(state, acks, taking)
    finally:  # stopped: what is being received stops too, before the store closes
        await tasks.stop(*taking)


async def _collect_into(
    state: NodeState, acks: Acknowledgements, taking: set[asyncio.Task[bool]]
) -> None:
    backoff = Backoff(state.config.retry_base, state.config.retry_cap)
    refused = refusal.backoff(state.config)  # while the hub refuses the node's credentials
    chains = _Chains()
    while True:
        while len(taking) > IN_FLIGHT // 2:  # then ask for half a window at a time, not one
            await asyncio.wait(taking, return_when=asyncio.FIRST_COMPLETED)
        # a long poll returns as soon as anything waits; those under way go on meanwhile.
        # Refused last time, not held: its answer alone says the hub takes the node again.
        wait = 0.0 if refused.failures else state.config.poll_wait
        acks.collecting()
        try:
            deliveries = await state.hub.collect(wait, IN_FLIGHT - len(taking))
            backoff.succeeded()
        except errors.HubUnavailable as exc:
            log.warning("hub unavailable for collection", reason=exc.message)
            await backoff.failed()
            continue
        except errors.RemoteError as exc:
            if refusal.refuses_the_node(exc):
                refusal.refused(state, exc)
                await refused.failed()
                continue
            log.error("hub refused collection", code=exc.code, reason=exc.message)
            await asyncio.sleep(state.config.retry_cap)
            continue
        if refused.failures:
            refused.succeeded()
            await refusal.accepted(state)
        for delivery in deliveries:
            if acks.given(delivery.id):  # (its lease ran out as its acknowledgement went)
                log.info("delivery offered again was taken already", hub_delivery=delivery.id)
                continue
            start = functools.partial(_start, state, delivery, acks)
            chain = _chain(delivery)
            task = start(None) if chain is None else chains.take(chain, delivery.id, start)
            if task is None:
                log.warning(
                    "delivery not taken: an earlier status of its chain was not yet; the"
                    " hub offers both",
                    hub_delivery=delivery.id,
                )
                continue
            taking.add(task)
            task.add_done_callback(taking.discard)


def _start(
    state: NodeState,
    delivery: wire.DeliveryNotice,
    acks: Acknowledgements,
    after: asyncio.Task[bool] | None,
) -> asyncio.Task[bool]:
    return asyncio.create_task(_take(state, delivery, acks, after))


def _claimed_document(source: bytes | Path) -> Document | None:
    """The document a package says it is, unverified: only to address a refusal."""
    message = envelope.read_package(source).message
    return message if isinstance(message, Document) else None


async def _refuse(
    state: NodeState, source: bytes | Path, recipient: str, exc: errors.EdocError
) -> None:
    """Answer a document we refused with status 02 (từ chối tiếp nhận) and the reason.

    The hub accepted it, so without an answer the sender would wait at 'sent' for ever.
    The claimed sender is not trusted here: the hub relays a status only to the sender of
    a document the responder received, and this one it did relay to us."""
    reason = f"{exc.code}: {exc.message}"
    try:
        document = await state.offload.run(_claimed_document, source)
        if document is None:
            return
        answered = response_for(document)
        answer = await state.offload.run(
            status_message, state, recipient, answered, StatusCode.REJECTED, reason
        )
        # one 02 however often it is offered (its acknowledgement lost): a second one the
        # hub would refuse, and its transfer would show failed. Its key holds a line
        # break, which no agency's Idempotency-Key header can.
        once = f"refused\n{answered.org_id}\n{answered.document_id}"
        answer = dataclasses.replace(answer, idempotency_key=once)
        try:
            await state.store.add_outgoing(answer, dt.datetime.now(dt.UTC), tallies=())
        except errors.DuplicateDocument:
            if await state.store.outgoing_by_key(recipient, once) is None:
                raise errors.StorageError("the 02 was neither added nor found") from None
            return  # answered when it was first offered
    except errors.StorageError:
        raise  # the 02 not kept: the delivery is not acknowledged, the hub offers it again
    except errors.EdocError as failed:  # unreadable, or we cannot sign: the log must do
        log.error("could not answer a refused package", code=failed.code, reason=failed.message)
        return
    state.outbox_wakeup.set()


async def _taken(task: asyncio.Task[bool]) -> bool:
    """Once ``task`` is over: whether it took its delivery (its failure is its own)."""
    await asyncio.wait([task])
    return not task.cancelled() and task.exception() is None and task.result()


async def _fetch(state: NodeState, delivery: wire.DeliveryNotice, target: Path) -> Path:
    """``delivery``'s package downloaded to ``target``, tried again (after a jittered wait)
    while the hub cannot be reached, up to FETCH_TRIES times."""
    backoff = Backoff(state.config.retry_base, state.config.retry_cap)
    for _ in range(FETCH_TRIES - 1):
        try:
            return await hublink.fetch(state, delivery, target)
        except errors.HubUnreachable as exc:
            log.info("download failed, trying again", reason=exc.message)
            await backoff.failed()
    return await hublink.fetch(state, delivery, target)


def _offered_before(delivery: wire.DeliveryNotice) -> bool:
    """Whether the hub offered ``delivery`` before (its lease ran out, or its
    acknowledgement was lost): the hub counts each lease in its attempts, the first 1.
    Only such a one may be held already; a first offer is verified at once, with no
    look in the store before."""
    return delivery.attempts > 1


async def _take(
    state: NodeState,
    delivery: wire.DeliveryNotice,
    acks: Acknowledgements,
    after: asyncio.Task[bool] | None,
) -> bool:
    """Fetch, verify and store a delivery, then have it acknowledged; whether it was taken.
    One with ``after`` (the status before it in its chain) waits for it, and is left
    for the hub to offer again, after it, if that one was not taken."""
    # only a package that did not come inside the collect answer is downloaded to a file
    # (a path made and unlinked for each inline one was a syscall per message for nothing)
    target: Path | None = None
    structlog.contextvars.bind_contextvars(hub_delivery=delivery.id)
    try:
        if delivery.kind == MessageKind.DOCUMENT:
            # its 01 is signed with the recipient's seal: checked before the work
            state.keys.current(delivery.recipient)
        package: bytes | Path | None = delivery.package
        if package is None:
            target = state.incoming_dir / f"{uuid.uuid4().hex}.edxml"
            package = await _fetch(state, delivery, target)
        if after is not None and not await _taken(after):
            log.warning("delivery not taken: the status before it was not; the hub offers both")
            return False
        try:
            if _offered_before(delivery) and await receiving.held(
                state, package, delivery.recipient
            ):
                log.info("delivery offered again is held already: acknowledged as before")
            else:
                await receiving.receive(state, package, [delivery.recipient])
        except errors.InputError as exc:
            # The hub relayed something we cannot accept (it verified it, so this is a
            # revocation or clock edge): keep it out, tell the sender, do not ask again.
            log.error("refused relayed package", code=exc.code, reason=exc.message)
            await _refuse(state, package, delivery.recipient, exc)
        acks.add(delivery.id)
        return True
    except errors.UnknownCertificate as exc:
        # no 01 can be signed, nor a 02: the hub keeps it (not acknowledged) and offers it
        # again after each lease, until the operator issues the agency a seal
        log.error(
            "delivery waits at the hub until its recipient has a valid seal",
            recipient=delivery.recipient,
            reason=exc.message,
        )
        return False
    except errors.EdocError as exc:
        # not acknowledged: the hub offers it again when its lease runs out
        log.warning("delivery not taken, the hub will offer it again", reason=exc.message)
        return False
    except Exception:  # a fault of ours (an OSError, a bug): the same, with its traceback
        log.exception("delivery not taken, the hub will offer it again")
        return False
    finally:
        if target is not None:
            target.unlink(missing_ok=True)
