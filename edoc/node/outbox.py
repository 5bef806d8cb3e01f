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
import random
import shutil
from pathlib import Path

import structlog

from edoc import errors
from edoc.node import hublink, inbox
from edoc.node.state import NodeState
from edoc.store.base import Transfer

log = structlog.get_logger()
BATCH = 16


def backoff(state: NodeState, attempts: int) -> float:
    """Full jitter: uniform in [0, min(cap, base·2^attempts)]."""
    ceiling = min(state.config.retry_cap, state.config.retry_base * 2**attempts)
    return random.uniform(0, ceiling)  # noqa: S311 - jitter, not secrecy


async def _to_hub(state: NodeState, transfer: Transfer) -> None:
    answer = await hublink.post_package(state, Path(transfer.path))
    await state.store.finish_transfer(
        transfer, "done", "sent", f"hub id {answer.get('id')}", dt.datetime.now(dt.UTC)
    )


async def _to_local(state: NodeState, transfer: Transfer) -> None:
    outgoing = await state.store.outgoing(transfer.outgoing_id)
    assert outgoing is not None
    copy = state.incoming_dir / f"local-{transfer.id}.edxml"
    await state.offload.run(shutil.copyfile, transfer.path, copy)  # receive() takes its own
    local = [r["org_id"] for r in outgoing.recipients if r["local"]]
    await inbox.receive(state, copy, local)
    await state.store.finish_transfer(transfer, "done", "delivered", "", dt.datetime.now(dt.UTC))


async def carry(state: NodeState, transfer: Transfer) -> None:
    structlog.contextvars.bind_contextvars(
        outgoing=transfer.outgoing_id, route=transfer.route, document_id=transfer.document_id
    )
    now = dt.datetime.now(dt.UTC)
    try:
        if transfer.route == "hub":
            await _to_hub(state, transfer)
        else:
            await _to_local(state, transfer)
    except hublink.HubRefused as exc:
        log.warning("refused by the hub", code=exc.code, reason=exc.message)
        await state.store.finish_transfer(transfer, "failed", "failed", str(exc), now)
    except (errors.EdocError, OSError) as exc:
        if now - transfer.created_at > state.config.give_up_after:
            await state.store.finish_transfer(transfer, "failed", "failed", str(exc), now)
            return
        delay = backoff(state, transfer.attempts)
        log.info("will retry", reason=str(exc), attempts=transfer.attempts + 1, delay=delay)
        await state.store.retry_transfer(transfer.id, now + dt.timedelta(seconds=delay), str(exc))


def _chains(due: list[Transfer]) -> list[list[Transfer]]:
    """Transfers about one document from one sender (e.g. statuses 03, 04, 05) go one after
    the other, oldest first, so they arrive in the order they were given; the rest in
    parallel."""
    chains: dict[tuple[str, str, str], list[Transfer]] = {}
    for transfer in sorted(due, key=lambda t: t.id):
        chains.setdefault((transfer.sender, transfer.document_id, transfer.route), []).append(
            transfer
        )
    return list(chains.values())


async def _in_order(state: NodeState, chain: list[Transfer]) -> None:
    for transfer in chain:
        await carry(state, transfer)


async def run_forever(state: NodeState) -> None:
    while True:
        due = await state.store.due_transfers(dt.datetime.now(dt.UTC), BATCH)
        if due:
            await asyncio.gather(*(_in_order(state, chain) for chain in _chains(due)))
            continue
        state.outbox_wakeup.clear()
        upcoming = await state.store.next_transfer_at()
        pause = 5.0
        if upcoming is not None:
            pause = max(0.0, min(pause, (upcoming - dt.datetime.now(dt.UTC)).total_seconds()))
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(state.outbox_wakeup.wait(), timeout=pause)
