"""The node's outbox worker, alone: it stops when told, even as it is woken."""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Collection
from types import SimpleNamespace
from typing import cast

import pytest

from edoc.node import outbox
from edoc.node.state import NodeState
from edoc.store.node import Transfer


class _EmptyStore:
    """Nothing due, nothing coming: the outbox only waits for its wakeup."""

    async def due_transfers(
        self, now: dt.datetime, limit: int, under_way: Collection[int] = ()
    ) -> list[Transfer]:
        return []

    async def next_transfer_at(self, after: dt.datetime) -> dt.datetime | None:
        return None


async def test_a_stop_as_the_outbox_is_woken_still_stops_it() -> None:
    state = cast(NodeState, SimpleNamespace(store=_EmptyStore(), outbox_wakeup=asyncio.Event()))
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
