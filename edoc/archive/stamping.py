"""Batched time stamps as a running service's background task: a node stamps the packages
its store kept, a hub the packages it accepted, every few seconds, with no operator
starting anything (``edoc archive stamp`` does the same for a node run without it).

Everything that reads files, hashes, signs or writes runs on the service's offload
threads, so the exchange does not wait for it; a pass that fails (the store briefly
unreachable, a package file gone) is logged and tried again at the next.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import aiosqlite
import asyncpg
import structlog

from edoc import errors
from edoc.archive import export
from edoc.archive.batches import BatchLog, Kept, Retention, stamp_new
from edoc.keystore import KeyStore
from edoc.offload import Offload

log = structlog.get_logger()

# what a pass may meet and try again after: not a fault of the service
_PASSING = (errors.EdocError, aiosqlite.Error, asyncpg.PostgresError, OSError)


class ClosableKept(Kept, Protocol):
    async def close(self) -> None: ...


@dataclass(frozen=True)
class Stamping:
    """Where a service's batches go and how often, how long they are kept."""

    folder: Path  # the service's evidence folder (batches and the mark)
    every: float = 5.0  # seconds between passes
    keep_days: int | None = None  # None: keep every batch


def _stamp(keys: KeyStore, now: dt.datetime, digest: bytes) -> bytes:
    """One token at ``now`` (on an offload thread: the key store reads its files)."""
    return export.stamper(keys, now)(digest)


def has_authority(keys: KeyStore) -> bool:
    try:
        keys.tsa_identity()
    except errors.UnknownCertificate:
        return False
    return True


async def stamp_pass(
    stored: Kept,
    stamping: Stamping,
    keys: KeyStore,
    offload: Offload,
    now: dt.datetime,
    retention: Retention,
) -> int:
    """Stamp what is new, then remove the batches past ``retention`` (the passes' own)
    when a prune is due; how many packages."""
    batches = BatchLog(stamping.folder)
    stamped = await stamp_new(
        stored, batches, lambda digest: _stamp(keys, now, digest), now, offload
    )
    cutoff = retention.due(now)
    if cutoff is not None:
        gone = await offload.run(batches.prune, cutoff)
        if gone:
            log.info("old batches removed", batches=gone, keep_days=retention.keep_days)
    return stamped.packages


async def stamp_forever(
    open_kept: Callable[[], Awaitable[ClosableKept]],
    stamping: Stamping,
    keys: KeyStore,
    offload: Offload,
) -> None:
    """Every ``stamping.every`` seconds, stamp what the store kept since the last batch;
    without a time-stamping authority in ``keys``, say so once and stamp nothing."""
    if not await offload.run(has_authority, keys):
        log.info("no time-stamping certificate: packages are not stamped in batches")
        return
    try:
        stored = await open_kept()
    except _PASSING as exc:
        log.warning("batch stamping does not start", reason=str(exc) or type(exc).__name__)
        return
    retention = Retention(stamping.keep_days)
    try:
        while True:
            try:
                now = keys.clock()
                count = await stamp_pass(stored, stamping, keys, offload, now, retention)
                if count:
                    log.info("packages stamped", packages=count)
            except _PASSING as exc:
                log.warning("batch stamping failed", reason=str(exc) or type(exc).__name__)
            await asyncio.sleep(stamping.every)
    finally:
        await stored.close()
