"""Batched time stamps at the node: one token every few seconds over a Merkle tree of the
packages kept since the last, as X-Road's message log does, so the exchange never waits
for the time-stamping authority and each package is dated close to when it was kept.

A running node does it itself (edoc.archive.stamping; ``edoc archive stamp`` for a node
run without it): it reads the packages the store gained since its mark (outgoing and
inbox rows by id), stamps the root of their SHA-256 digests, and writes the batch (the
digests in order and the token) to ``DATA_DIR/evidence/batches`` before it moves its
mark. A hub stamps the packages it accepted the same way (edoc.archive.hub). An export
then gives each package its proof (:meth:`BatchLog.proofs_of`, by the digest of the
package as its container copies it): the batch's token and the Merkle path from the
package to the stamped root (edoc.archive.verify checks the package's signatures as of
that earlier time). The batches holding each package are recorded in an index as each
is kept (edoc.archive.batch_index), so a proof reads one batch, not every batch kept.
"""

from __future__ import annotations

import base64
import datetime as dt
import functools
import json
import os
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ParamSpec, Protocol, TypeVar

import structlog

from edoc import atomic, errors
from edoc.archive import merkle
from edoc.archive.batch_index import BatchIndex
from edoc.archive.container import Stamper
from edoc.archive.evidence import BatchProof
from edoc.archive.stored import Mark, PackageRef, package_digest
from edoc.offload import Offload

_STAMPED = "%Y%m%dT%H%M%S%f"  # a batch file's name begins with when it was stamped (UTC)
BATCH_LIMIT = 10_000  # packages per batch at most: a backlog becomes several batches
PRUNE_EVERY = dt.timedelta(hours=1)
log = structlog.get_logger()
P = ParamSpec("P")
T = TypeVar("T")


def evidence_folder(node_dir: Path) -> Path:
    """Where a node's batches are kept, in the node's own folder."""
    return node_dir / "evidence"


@dataclass(frozen=True)
class Batch:
    digests: tuple[bytes, ...]
    token: bytes


class BatchLog:
    """A node's batches and its mark, in ``folder`` (the node's ``evidence`` folder), and
    the index of the batches that stamped each package (edoc.archive.batch_index)."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.index = BatchIndex(folder / "index.sqlite", self._kept)
        # a day's export asks for its documents one by one, most in a few batches
        self._proven = functools.lru_cache(maxsize=8)(self._prove)

    @property
    def _mark_path(self) -> Path:
        return self.folder / "mark.json"

    @property
    def _batches(self) -> Path:
        return self.folder / "batches"

    def mark(self) -> Mark:
        try:
            data = json.loads(self._mark_path.read_text())
            return Mark(int(data["outgoing"]), int(data["inbox"]))
        except FileNotFoundError:
            return Mark(0, 0)
        except (ValueError, KeyError, TypeError):
            raise errors.StorageError(f"{self._mark_path} is damaged") from None

    def ready(self) -> None:
        """Check the index opens (made now if it is new) before anything is stamped."""
        self.folder.mkdir(parents=True, exist_ok=True)
        self.index.ready()

    def add(self, batch: Batch, mark: Mark, now: dt.datetime) -> Path:
        """Keep ``batch`` and index it, then move the mark past it (a crash before the
        mark moves stamps those packages again: twice, never not at all). A batch the
        index refuses is not kept: the next pass stamps its packages again."""
        self._batches.mkdir(parents=True, exist_ok=True)
        stamped = now.astimezone(dt.UTC).strftime(_STAMPED)
        path = self._batches / f"{stamped}-{mark.outgoing}-{mark.inbox}.json"
        record = {
            "digests": [d.hex() for d in batch.digests],
            "token": base64.b64encode(batch.token).decode("ascii"),
        }
        atomic.write_bytes(path, json.dumps(record).encode())
        try:
            self.index.record(path.name, batch.digests)
        except errors.StorageError:
            path.unlink(missing_ok=True)
            raise
        atomic.write_bytes(self._mark_path, json.dumps(mark._asdict()).encode())
        return path

    def _files(self) -> list[Path]:
        """The batch files, oldest first (others are left alone)."""
        return sorted(path for path in self._batches.glob("*.json") if _stamped(path.name))

    def _kept(self) -> Iterator[tuple[str, tuple[bytes, ...]]]:
        """Each batch file's name and digests, oldest first, for a new index."""
        for path in self._files():
            try:
                yield path.name, _read(path).digests
            except (errors.StorageError, OSError) as exc:  # its packages have no proof
                log.error("a batch is not indexed", batch=path.name, reason=str(exc))

    def prune(self, before: dt.datetime) -> int:
        """Remove the batches stamped before ``before`` (the retention policy: a day
        exported by then keeps their proofs in its archive); how many went. Names are
        compared as text (they begin with their time, in a fixed width): a month kept is
        some 450,000 files, each parsed as a time took seconds."""
        cutoff = before.astimezone(dt.UTC).strftime(_STAMPED)
        if not self._batches.is_dir():
            return 0
        with os.scandir(self._batches) as entries:
            old = [
                Path(entry.path)
                for entry in entries
                if entry.name < cutoff and entry.name.endswith(".json") and _stamped(entry.name)
            ]
        if old:
            self.index.forget_before(cutoff)
        for path in old:
            path.unlink(missing_ok=True)
        return len(old)

    def batches(self) -> list[Batch]:
        return [_read(path) for path in self._files()]

    def proofs_of(self, digests: Sequence[bytes]) -> dict[bytes, BatchProof]:
        """The proofs of the packages of these SHA-256 ``digests`` that a batch stamped
        (the first of theirs that can be read), reading only the batches that hold them."""
        if not self._batches.is_dir():
            return {}
        found = {}
        for digest, places in self.index.places(set(digests)).items():
            for name, position in places:
                proof = self._proof(name, position, digest)
                if proof is not None:
                    found[digest] = proof
                    break
        return found

    def _proof(self, name: str, position: int, digest: bytes) -> BatchProof | None:
        """The proof of the package at ``position`` in the batch ``name``, if it is there."""
        try:
            batch, paths = self._proven(name)
        except FileNotFoundError:
            return None  # removed by the retention since the index was read
        except errors.StorageError as exc:
            log.error("a batch cannot prove its packages", batch=name, reason=str(exc))
            return None
        if batch.digests[position : position + 1] != (digest,):
            log.error("the batch index disagrees with a batch", batch=name)
            return None
        return BatchProof(batch.token, paths[position])

    def _prove(self, name: str) -> tuple[Batch, list[merkle.Proof]]:
        batch = _read(self._batches / name)
        return batch, merkle.proofs(batch.digests)


def _stamped(name: str) -> bool:
    """Whether ``name`` is a batch's: it begins with when it was stamped."""
    try:
        dt.datetime.strptime(name.partition("-")[0], _STAMPED)
    except ValueError:
        return False
    return True


def _read(path: Path) -> Batch:
    try:
        record: dict[str, Any] = json.loads(path.read_text())
        return Batch(
            tuple(bytes.fromhex(d) for d in record["digests"]),
            base64.b64decode(record["token"]),
        )
    except (ValueError, KeyError, TypeError):
        raise errors.StorageError(f"the batch {path} is damaged") from None


@dataclass
class Retention:
    """How many days batches are kept (None: all), and when they were last pruned: a
    pass every few seconds prunes at most every PRUNE_EVERY (a month kept is a folder
    of some 450,000 files to list)."""

    keep_days: int | None
    pruned_at: dt.datetime | None = None

    def due(self, now: dt.datetime) -> dt.datetime | None:
        """The time before which batches go, when a prune is due at ``now``."""
        if self.keep_days is None:
            return None
        if self.pruned_at is not None and now - self.pruned_at < PRUNE_EVERY:
            return None
        self.pruned_at = now
        return now - dt.timedelta(days=self.keep_days)


class Kept(Protocol):
    """What a batch stamps: the packages a store kept after a mark (a node's store,
    edoc.archive.stored; a hub's, edoc.archive.hub)."""

    async def kept_after(self, mark: Mark, limit: int) -> tuple[list[PackageRef], Mark]: ...


def digests_of(refs: list[PackageRef]) -> tuple[bytes, ...]:
    """The SHA-256 of each package, read from its row or its file."""
    return tuple(package_digest(ref) for ref in refs)


async def _run(
    offload: Offload | None, function: Callable[P, T], *args: P.args, **kwargs: P.kwargs
) -> T:
    """``function`` on the offload's threads (a running service's loop), or here."""
    if offload is None:
        return function(*args, **kwargs)
    return await offload.run(function, *args, **kwargs)


@dataclass(frozen=True)
class Stamped:
    """What a pass stamped: how many packages, into which batch files (oldest first)."""

    packages: int = 0
    files: tuple[Path, ...] = ()


async def stamp_new(
    stored: Kept,
    batches: BatchLog,
    stamper: Stamper,
    now: dt.datetime,
    offload: Offload | None = None,
) -> Stamped:
    """Stamp the packages kept since the mark, in batches. With ``offload``, reading,
    hashing, stamping and writing run off the loop."""
    await _run(offload, batches.ready)  # an index that does not open fails it first
    count = 0
    files: list[Path] = []
    while True:
        mark = await _run(offload, batches.mark)
        refs, moved = await stored.kept_after(mark, BATCH_LIMIT)
        if not refs:
            return Stamped(count, tuple(files))
        digests = await _run(offload, digests_of, refs)
        token = await _run(offload, stamper, merkle.root(digests))
        files.append(await _run(offload, batches.add, Batch(digests, token), moved, now))
        count += len(refs)
