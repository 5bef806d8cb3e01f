"""Per-recipient delivery queues, collected by nodes with long polling.

A node asks for what is waiting for its province (most urgent first); what it gets is
hidden for a visibility timeout. Small packages come inside the answer (as bytes in a
frame body, edoc.framing, for a node that asks for one; base64 in JSON otherwise), larger
ones the node fetches; it stores each and acknowledges them, many in one request. Only the
acknowledgement marks a delivery done; an unacknowledged one comes back, for ever: one
collected STUCK_AFTER times is logged once and counted stuck (statistics, /metrics,
dashboard), still owed.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import json
import time
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path

import structlog

from edoc import errors, wire
from edoc.hub import stats
from edoc.hub.state import HubState
from edoc.model import MessageKind
from edoc.store.hub import STUCK_AFTER, Delivery, Receipt

log = structlog.get_logger()

# Seconds between two looks at the store by a held collect that nothing woke: for a lease
# that ran out (a delivery not acknowledged in time), or a wake-up lost (another hub
# instance's, on PostgreSQL). A look is a write transaction; at one a second each, a
# national network's 85 idle long polls made 85 a second. Shorter with a short lease.
RECHECK = 5.0
RECHECK_AT_LEAST = 0.25  # (a 0.1 s lease would otherwise make it 40 looks a second)
INLINE_TOTAL = 16 * 1024 * 1024  # package bytes one collect answer carries at most


def _recheck(state: HubState) -> float:
    return max(RECHECK_AT_LEAST, min(RECHECK, state.config.visibility.total_seconds() / 4))


def _at_most(state: HubState, limit: int) -> int:
    """``limit``, but no more deliveries than INLINE_TOTAL holds of packages as large as
    may come inline: the lease loads the body of each package small enough, so with a
    1 MB bound a limit of 100 loaded 100 MB for an answer that carries 16."""
    inline = state.config.inline_bytes
    return limit if inline <= 0 else max(1, min(limit, INLINE_TOTAL // inline))


def _never_gone() -> bool:
    return False


async def collect(
    state: HubState,
    node: str,
    wait: float,
    limit: int,
    gone: Callable[[], bool] = _never_gone,
    holder: str | None = None,
    still_allowed: Callable[[], Awaitable[object]] | None = None,
) -> list[Delivery]:
    """Up to ``limit`` deliveries for ``node`` (see _at_most), waiting up to ``wait``
    seconds for one. Nothing is leased once ``gone()`` says the asker hung up: a held
    collect is not cancelled when its connection closes (aiohttp's handler_cancellation
    is off), and what it leased then would be hidden from the node's next collect for a
    whole visibility timeout. ``holder`` names the collecting process (HubStore.lease).
    ``still_allowed`` judges the asker's credentials again after each wait, raising once
    they no longer hold: a revocation during a held collect leases it nothing."""
    deadline = time.monotonic() + min(max(wait, 0.0), state.config.max_wait)
    limit = _at_most(state, limit)
    wakeup = state.wakeups[node]
    while True:
        # its store and threads are closing, or no one to answer: nothing leased (and
        # the wake-up left for the node's next poll)
        if _unanswered(state, gone):
            return []
        wakeup.clear()
        now = dt.datetime.now(dt.UTC)
        visibility, inline = state.config.visibility, state.config.inline_bytes
        leased = await state.store.lease(node, now, visibility, limit, inline, holder)
        _warn_of_stuck(node, leased)
        remaining = deadline - time.monotonic()
        if leased or remaining <= 0:
            return leased
        # woken by a new message, or look again after RECHECK (asyncio.timeout, not
        # wait_for, which on Python 3.11 can swallow a cancellation: see
        # edoc.node.outbox.run_forever)
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(min(remaining, _recheck(state))):
                await wakeup.wait()
        # not for an asker gone: over TLS its client certificate went with its connection
        # (judged, it was "no client certificate", a 403 for every node that stopped)
        if still_allowed is not None and not _unanswered(state, gone):
            await still_allowed()


def _warn_of_stuck(node: str, leased: Sequence[Delivery]) -> None:
    """Log the deliveries this lease made stuck (STUCK_AFTER): once each, as a lease adds
    one to a delivery's attempts and only one makes it STUCK_AFTER. It stays owed and is
    offered again; the node's own log says why it does not take it."""
    for item in leased:
        if item.attempts == STUCK_AFTER:
            log.warning(
                "delivery collected again and again, never acknowledged",
                delivery=item.id,
                node=node,
                kind=item.kind,
                recipient=item.recipient,
                attempts=item.attempts,
            )


def _unanswered(state: HubState, gone: Callable[[], bool]) -> bool:
    """Whether a held collect is to end with nothing: the hub stops, or the asker hung up."""
    return state.stopping or gone()


def _notice(item: Delivery, package: bytes | None) -> wire.DeliveryNotice:
    return wire.DeliveryNotice(
        id=item.id,
        hub_id=item.package_id,
        recipient=item.recipient,
        kind=item.kind,
        sender=item.sender,
        document_id=item.about,
        status_code=item.status_code or None,
        priority=item.priority,
        size=item.size,
        attempts=item.attempts,
        package=package,
    )


def _package_bytes(item: Delivery) -> bytes | None:
    """The package to put inline: kept in the store (the lease loaded it), or its file;
    None if neither is at hand (fetching it will say why)."""
    if item.body is not None:
        return item.body
    try:
        return Path(item.path).read_bytes() if item.path else None
    except FileNotFoundError:
        return None
    except OSError as exc:  # a storage fault under this one: the others still go
        log.error("package unreadable", delivery=item.id, reason=str(exc))
        return None


def answer_body(items: Sequence[Delivery], inline_bytes: int, framed: bool) -> bytes:
    """The collect answer: each delivery, with its package when it is small enough and
    the answer still has room; a frame body (the package bytes as they are) if
    ``framed``, else JSON (base64). May read files: run it off the loop."""
    notices = []
    room = INLINE_TOTAL
    for item in items:
        package = _package_bytes(item) if item.size <= min(inline_bytes, room) else None
        if package is not None:
            room -= item.size
        notices.append(_notice(item, package))
    if framed:
        return wire.deliveries_to_frames(notices)
    return json.dumps({"deliveries": [notice.to_json() for notice in notices]}).encode()


def _owned(node: str, delivery_id: int, delivery: Delivery | None) -> Delivery:
    if delivery is None:
        raise errors.NotFound(f"no delivery {delivery_id}")
    if delivery.node != node:
        raise errors.Forbidden(f"delivery {delivery_id} is not for node {node}")
    return delivery


SMALL_PACKAGE = 1024 * 1024  # read whole in one offload call; larger ones stream from disk


async def package(state: HubState, node: str, delivery_id: int) -> bytes | Path:
    """A delivery's package: its bytes when small (streaming a file costs an offload call
    per open, stat, chunk and close, which dominated fetching a one-page document), else
    its path to stream."""
    delivery = _owned(node, delivery_id, await state.store.delivery(delivery_id))
    if delivery.body is not None:
        return delivery.body
    if not delivery.path:  # acknowledged long ago (edoc.hub.retention)
        raise errors.NotFound(f"the package of delivery {delivery_id} is no longer kept")
    path = Path(delivery.path)
    try:
        if delivery.size > SMALL_PACKAGE:
            # opened first: what aiohttp's FileResponse cannot open it answers with a
            # bare 403 or 404, not an error of ours
            await state.offload.run(_openable, path)
            return path
        return await state.offload.run(path.read_bytes)
    except FileNotFoundError:
        raise errors.NotFound(f"the package of delivery {delivery_id} is gone") from None
    except OSError as exc:
        reason = f"the package of delivery {delivery_id} cannot be read: {exc.strerror or exc}"
        raise errors.StorageError(reason) from None


def _openable(path: Path) -> None:
    with path.open("rb"):
        pass


MAX_ACKS = 1000  # delivery ids one acknowledgement may carry


def delivery_ids(data: object) -> list[int]:
    """The ids of an acknowledgement body ``{"ids": [1, 2, …]}``."""
    ids = data.get("ids") if isinstance(data, dict) else None
    if (
        not isinstance(ids, list)
        or not 1 <= len(ids) <= MAX_ACKS
        or not all(type(i) is int and 0 < i < 2**63 for i in ids)
    ):
        raise errors.InvalidField(f"ids must be a list of 1 to {MAX_ACKS} delivery ids")
    return list(dict.fromkeys(ids))


async def acknowledge(state: HubState, node: str, ids: list[int]) -> list[int]:
    """Mark ``ids`` delivered, all or none; the ids acknowledged for the first time. The
    deliveries are read, checked to be ``node``'s and marked in one change of the store
    (a read, then a change, were two trips to it)."""
    now = dt.datetime.now(dt.UTC)

    def receipts(existing: Sequence[Delivery]) -> list[Receipt]:  # may run on the store's thread
        found = {d.id: d for d in existing}
        deliveries = [_owned(node, i, found.get(i)) for i in ids]  # in the order asked
        return [Receipt(d.id, stats.received(d.kind, d.recipient, now.date())) for d in deliveries]

    first = await state.store.acknowledge_checked(ids, now, receipts)
    for delivery in first:
        state.delivered.labels(delivery.kind).inc()
    if any(delivery.kind == MessageKind.STATUS for delivery in first):
        # the next status of its chain may have waited for this one, leased by another
        # holder (HubStore.lease): the node's held collect takes it now, not at its next
        # look at the store
        state.wake({node})
    return [delivery.id for delivery in first]
