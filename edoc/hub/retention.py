"""How long the hub keeps the bytes of what it relayed (``serve hub --package-days``).

The hub keeps each package it accepts, as it relays it, in its store's row or in a file
of DATA_DIR/packages. Without a bound a national hub grows by its day's traffic, every
day. Once a package has been acknowledged by every recipient and is older than the
bound, its bytes go; its row stays, so a resend is still answered with its first answer
and the statistics still count it. The nodes keep what they sent and received (their
archives, edoc.archive).

A hub killed between a step's change and its files' removal leaves those files in
DATA_DIR/packages, named by no row: a start does not look for them.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Sequence
from pathlib import Path

import structlog

from edoc import errors
from edoc.hub.state import HubState
from edoc.offload import Offload
from edoc.store.hub import Dropped, HubStore

log = structlog.get_logger("edoc.hub.retention")

PASS_EVERY = 3600.0  # seconds between passes: the bound counts in days
AT_ONCE = 500  # packages dropped in one change of the store: short write transactions
EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)  # before every package a hub accepted


async def drop_forever(state: HubState, keep_days: int) -> None:
    """A pass now, then one every PASS_EVERY seconds; a store fault waits for the next."""
    while True:
        try:
            before = dt.datetime.now(dt.UTC) - dt.timedelta(days=keep_days)
            await drop_old(state.store, state.offload, before)
        except errors.StorageError as exc:
            log.error("old packages not dropped", reason=str(exc))
        await asyncio.sleep(PASS_EVERY)


async def drop_old(store: HubStore, offload: Offload, before: dt.datetime) -> int:
    """Drop the bytes of every package accepted before ``before`` that every recipient
    acknowledged; how many."""
    dropped, since = 0, EPOCH
    while True:
        # a step runs to its end, a cancel (the hub stopping) waiting for it: stopped
        # between the store's change and the files' removal, the files would stay for good
        step = asyncio.ensure_future(_step(store, offload, since, before))
        try:
            gone = await asyncio.shield(step)
        except asyncio.CancelledError:
            await step
            raise
        dropped += len(gone)
        if len(gone) < AT_ONCE:
            if dropped:
                log.info("old packages dropped", packages=dropped, before=before.isoformat())
            return dropped
        # what is older is still owed to someone: the next step does not walk it again
        since = gone[-1].accepted_at


async def _step(
    store: HubStore, offload: Offload, since: dt.datetime, before: dt.datetime
) -> list[Dropped]:
    gone = await store.drop_delivered_bytes(since, before, AT_ONCE)
    # after the change: a file is never gone while its row still names it
    await offload.run(_remove_files, [package.path for package in gone if package.path])
    return gone


def _remove_files(paths: Sequence[str]) -> None:
    for path in paths:
        try:
            Path(path).unlink(missing_ok=True)  # (another instance's pass may be first)
        except OSError as exc:  # left on disk: the others still go
            log.error("old package file not removed", path=path, reason=str(exc))
