"""How long the hub keeps the bytes of what it relayed (``serve hub --package-days``).

The hub keeps each package it accepts, as it relays it, in its store's row or in a file
of DATA_DIR/packages. Without a bound a national hub grows by its day's traffic, every
day. Once a package has been acknowledged by every recipient and is older than the
bound, its bytes go; its row stays, so a resend is still answered with its first answer
and the statistics still count it. The nodes keep what they sent and received (their
archives, edoc.archive).

A step's change lists the files of the packages it dropped (HubStore.dropped_files),
and they come off the list once removed. A hub killed in between (SIGKILL, a power cut)
leaves them listed: every pass, and so every start, first removes what is listed.
Looking for files no row names instead would not do: the instances sharing a
PostgreSQL store share DATA_DIR/packages, and another one's new file is named by no
row until its change commits.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
from collections.abc import Sequence
from pathlib import Path

import structlog

from edoc import errors
from edoc.hub.state import HubState
from edoc.offload import Offload
from edoc.store.hub import Drop, HubStore

log = structlog.get_logger("edoc.hub.retention")

PASS_EVERY = 3600.0  # seconds between passes: the bound counts in days
AT_ONCE = 500  # packages looked at in one change of the store: short write transactions
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
    acknowledged; how many. (One acknowledged once a step has passed it over is
    dropped by the next pass, which starts from the oldest again.)"""
    await _remove_listed(store, offload)  # what an earlier pass was killed before removing
    dropped, after = 0, EPOCH
    while True:
        # a step runs to its end, a cancel (the hub stopping) waiting for it: its files
        # go now, not at the next start (stopped between its change and their removal,
        # they would stay listed until then)
        step = asyncio.ensure_future(_step(store, offload, after, before))
        try:
            done = await asyncio.shield(step)
        except asyncio.CancelledError:
            # the stop goes on whatever the step ends with: a store fault raised here
            # instead would be taken by drop_forever for a pass's, and wait an hour
            with contextlib.suppress(Exception):
                await step
            raise
        dropped += done.dropped
        if done.reached is None:
            if dropped:
                log.info("old packages dropped", packages=dropped, before=before.isoformat())
            return dropped
        # the next step looks after what this one looked at, owed packages too: a step's
        # work is bounded however many are owed, and none is looked at twice a pass
        after = done.reached


async def _step(store: HubStore, offload: Offload, after: dt.datetime, before: dt.datetime) -> Drop:
    done = await store.drop_delivered_bytes(after, before, AT_ONCE)
    # after the change: a file is never gone while its row still names it
    await _remove(store, offload, done.files)
    return done


async def _remove_listed(store: HubStore, offload: Offload) -> None:
    """Remove the files the store lists as dropped, AT_ONCE at a time. Those that cannot
    be removed stay listed for the next pass: this one walks on past them, to the end."""
    after = ""
    while True:
        listed = await store.dropped_files(after, AT_ONCE)
        await _remove(store, offload, listed)
        if len(listed) < AT_ONCE:
            return
        after = listed[-1]


async def _remove(store: HubStore, offload: Offload, paths: Sequence[str]) -> None:
    """Remove the files at ``paths``, then take those gone off the store's list."""
    if paths:
        await store.files_removed(await offload.run(_remove_files, paths))


def _remove_files(paths: Sequence[str]) -> list[str]:
    """Those of ``paths`` gone from the disk now."""
    gone = []
    for path in paths:
        try:
            Path(path).unlink(missing_ok=True)  # (another instance's pass may be first)
        except OSError as exc:  # left on disk and listed: the others still go
            log.error("old package file not removed", path=path, reason=str(exc))
        else:
            gone.append(path)
    return gone
