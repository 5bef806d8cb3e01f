"""The durable outbox: every message the node answered 202 for is on disk and in the
store before the answer, and this worker carries it until it is through or has
visibly failed.

Transfers to the hub retry with exponential backoff and full jitter while the hub is
down or busy (5xx, 429, no connection); a refusal (4xx) fails the recipients at once
with the hub's reason, and so does a transfer still failing after ``give_up_after``.
Resending is safe: the hub answers an identical package with its first answer.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import shutil
from pathlib import Path

import structlog

from edoc import errors
from edoc.model import DeliveryState, Route, TransferState
from edoc.node import hublink, progress, receiving
from edoc.node.state import NodeState
from edoc.retry import full_jitter
from edoc.store.node import Event, Transfer

log = structlog.get_logger()
IN_FLIGHT = 32  # transfers under way at once


async def _to_hub(state: NodeState, transfer: Transfer) -> None:
    package = transfer.body if transfer.body is not None else Path(transfer.path)
    answer = await hublink.post_package(state, package)
    now = dt.datetime.now(dt.UTC)
    sent = Event(DeliveryState.SENT, f"hub id {answer.id}")
    await state.store.finish_transfer(
        transfer, TransferState.DONE, "", sent, now, progress.next_state
    )
    if state.hub_unreachable:
        # The hub is back after an outage. Each transfer waiting for it has its own random
        # retry time; left alone, those timers, not the priorities, would decide what goes
        # first (hỏa tốc documents went out after a backlog of ordinary ones). All due now.
        state.hub_unreachable = False
        await state.store.retry_now(Route.HUB, now)
        state.outbox_wakeup.set()


async def _to_local(state: NodeState, transfer: Transfer) -> None:
    outgoing = await state.store.outgoing(transfer.outgoing_id)
    assert outgoing is not None
    local = [r.org_id for r in outgoing.recipients if r.local]
    package: bytes | Path
    if transfer.body is not None:
        package = transfer.body
    else:  # receive() takes the file it is given: a copy, the outbox keeps its own
        package = state.incoming_dir / f"local-{transfer.id}.edxml"
        await state.offload.run(shutil.copyfile, transfer.path, package)
    await receiving.receive(state, package, local)
    delivered = Event(DeliveryState.DELIVERED, "")
    await state.store.finish_transfer(
        transfer, TransferState.DONE, "", delivered, dt.datetime.now(dt.UTC), progress.next_state
    )


async def _fail(state: NodeState, transfer: Transfer, reason: str, now: dt.datetime) -> None:
    failed = Event(DeliveryState.FAILED, reason)
    await state.store.finish_transfer(
        transfer, TransferState.FAILED, reason, failed, now, progress.next_state
    )


async def carry(state: NodeState, transfer: Transfer) -> None:
    structlog.contextvars.bind_contextvars(
        outgoing=transfer.outgoing_id, route=transfer.route, document_id=transfer.document_id
    )
    now = dt.datetime.now(dt.UTC)
    try:
        if transfer.route == Route.HUB:
            await _to_hub(state, transfer)
        else:
            await _to_local(state, transfer)
    except errors.RemoteError as exc:
        log.warning("refused by the hub", code=exc.code, reason=exc.message)
        await _fail(state, transfer, str(exc), now)
    except (errors.EdocError, OSError) as exc:
        if isinstance(exc, errors.HubUnreachable):
            state.hub_unreachable = True
        if now - transfer.created_at > state.config.give_up_after:
            await _fail(state, transfer, str(exc), now)
            return
        delay = full_jitter(state.config.retry_base, state.config.retry_cap, transfer.attempts)
        log.info("will retry", reason=str(exc), attempts=transfer.attempts + 1, delay=delay)
        await state.store.retry_transfer(transfer.id, now + dt.timedelta(seconds=delay), str(exc))


async def run_forever(state: NodeState) -> None:
    """Keep up to IN_FLIGHT transfers under way, starting the next as soon as one ends.

    The store hands out only the head of each (sender, document, route) chain, so the
    statuses about one document still go one after the other, oldest first; a finished
    transfer wakes this loop, and so does every new message."""
    carrying: dict[int, asyncio.Task[None]] = {}

    def finished(task: asyncio.Task[None]) -> None:
        carrying.pop(int(task.get_name()), None)
        state.outbox_wakeup.set()

    while True:
        state.outbox_wakeup.clear()
        now = dt.datetime.now(dt.UTC)
        if len(carrying) < IN_FLIGHT:
            due = await state.store.due_transfers(now, IN_FLIGHT - len(carrying), carrying)
            for transfer in due:
                task = asyncio.create_task(carry(state, transfer), name=str(transfer.id))
                carrying[transfer.id] = task
                task.add_done_callback(finished)
        upcoming = await state.store.next_transfer_at(after=now)
        pause = 5.0 if upcoming is None else min(5.0, (upcoming - now).total_seconds())
        # asyncio.timeout, not wait_for: on Python 3.11 wait_for swallows a cancellation that
        # comes as the event is set (CPython gh-86296), a transfer ending as the node stops;
        # this loop then went on and the node's shutdown waited for it for ever.
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(max(0.0, pause)):
                await state.outbox_wakeup.wait()
