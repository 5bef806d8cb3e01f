"""Per-recipient delivery queues, collected by nodes with long polling.

A node asks for what is waiting for its province (most urgent first); what it gets is
hidden for a visibility timeout; it fetches each package, stores it, and acknowledges.
Only the acknowledgement marks a delivery done; an unacknowledged one comes back.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import time
from pathlib import Path

from edoc import errors
from edoc.hub.state import HubState
from edoc.store.base import Delivery


async def collect(state: HubState, node: str, wait: float, limit: int) -> list[Delivery]:
    """Up to ``limit`` deliveries for ``node``, waiting up to ``wait`` seconds for one."""
    deadline = time.monotonic() + min(max(wait, 0.0), state.config.max_wait)
    wakeup = state.wakeups[node]
    while True:
        wakeup.clear()
        leased = await state.store.lease(
            node, dt.datetime.now(dt.UTC), state.config.visibility, limit
        )
        remaining = deadline - time.monotonic()
        if leased or remaining <= 0:
            return leased
        # woken by a new message, or re-check now and then for expired leases
        # asyncio.timeout, not wait_for, which on Python 3.11 can swallow a cancellation
        # (see edoc.node.outbox.run_forever)
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(min(remaining, 1.0)):
                await wakeup.wait()


async def owned(state: HubState, node: str, delivery_id: int) -> Delivery:
    delivery = await state.store.delivery(delivery_id)
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
    delivery = await owned(state, node, delivery_id)
    if delivery.size > SMALL_PACKAGE:
        return Path(delivery.path)
    try:
        return await state.offload.run(Path(delivery.path).read_bytes)
    except FileNotFoundError:
        raise errors.NotFound(f"the package of delivery {delivery_id} is gone") from None


async def acknowledge(state: HubState, node: str, delivery_id: int) -> bool:
    delivery = await owned(state, node, delivery_id)
    first = await state.store.acknowledge(delivery_id, dt.datetime.now(dt.UTC))
    if first:
        state.delivered.labels(delivery.kind).inc()
    return first
