"""Batched time stamps at the node: one token every few seconds over a Merkle tree of the
packages kept since the last, as X-Road's message log does, so the exchange never waits
for the time-stamping authority and each package is dated close to when it was kept.

A running node does it itself (edoc.archive.stamping; ``edoc archive stamp`` for a node
run without it): it reads the packages the store gained since its mark (outgoing and
inbox rows by id), stamps the root of their SHA-256 digests, and writes the batch (the
digests in order and the token) to ``DATA_DIR/evidence/batches`` before it moves its
mark. A hub stamps the packages it accepted the same way (edoc.archive.hub). An export
then gives each package its proof: the batch's token and the Merkle path from the
package to the stamped root (edoc.archive.verify checks the package's signatures as of
that earlier time). The batch holding each package is recorded in an index beside the
batches as each is kept, so a proof reads one batch, not every batch ever kept.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import json
import sqlite3
from collections import defaultdict
from collections.abc import Awaitable, Callable, Sequence
from contextlib import closing
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, ParamSpec, Protocol, TypeVar

import structlog

from edoc import atomic, errors
from edoc.archive import merkle
from edoc.archive.container import Stamper
from edoc.archive.evidence import BatchProof, KeptMessage
from edoc.archive.stored import Mark, PackageRef, package_digest
from edoc.offload import Offload

_STAMPED = "%Y%m%dT%H%M%S%f"  # a batch file's name begins with when it was stamped (UTC)
BATCH_LIMIT = 10_000  # packages per batch at most: a backlog becomes several batches
log = structlog.get_logger()
P = ParamSpec("P")
T = TypeVar("T")
# the proofs of the packages of these SHA-256 digests, of those a batch stamped
ProofsOf = Callable[[Sequence[bytes]], Awaitable[dict[bytes, BatchProof]]]
_LEAVES = (  # a package restamped after a crash is in two batches: the first proves it
    "CREATE TABLE IF NOT EXISTS leaves (digest BLOB NOT NULL, batch TEXT NOT NULL,"
    " position INTEGER NOT NULL, PRIMARY KEY (digest, batch)) WITHOUT ROWID"
)
_BY_BATCH = "CREATE INDEX IF NOT EXISTS leaves_by_batch ON leaves (batch)"
_FIRST = "SELECT batch, position FROM leaves WHERE digest = ? ORDER BY batch LIMIT 1"


def evidence_folder(node_dir: Path) -> Path:
    """Where a node's batches are kept, in the node's own folder."""
    return node_dir / "evidence"


@dataclass(frozen=True)
class Batch:
    digests: tuple[bytes, ...]
    token: bytes


class BatchLog:
    """A node's batches and its mark, in ``folder`` (the node's ``evidence`` folder), and
    the index of the batches that stamped each package (``index.sqlite``, made from the
    batch files at its first use, so a folder kept before it had one gains it)."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder

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

    def add(self, batch: Batch, mark: Mark, now: dt.datetime) -> Path:
        """Keep ``batch`` and index it, then move the mark past it (a crash before the
        mark moves stamps those packages again: twice, never not at all)."""
        self._batches.mkdir(parents=True, exist_ok=True)
        stamped = now.astimezone(dt.UTC).strftime(_STAMPED)
        path = self._batches / f"{stamped}-{mark.outgoing}-{mark.inbox}.json"
        record = {
            "digests": [d.hex() for d in batch.digests],
            "token": base64.b64encode(batch.token).decode("ascii"),
        }
        atomic.write_bytes(path, json.dumps(record).encode())
        with closing(self._index()) as index, index:
            _record(index, path.name, batch.digests)
        atomic.write_bytes(self._mark_path, json.dumps(mark._asdict()).encode())
        return path

    def _files(self) -> list[tuple[dt.datetime, Path]]:
        """The batch files, oldest first, with when each was stamped (others are left alone)."""
        found = []
        for path in self._batches.glob("*.json"):
            try:
                stamped = dt.datetime.strptime(path.name.partition("-")[0], _STAMPED)
            except ValueError:
                continue
            found.append((stamped.replace(tzinfo=dt.UTC), path))
        return sorted(found)

    def prune(self, before: dt.datetime) -> int:
        """Remove the batches stamped before ``before`` (the retention policy: a day
        exported by then keeps their proofs in its archive); how many went."""
        old = [path for stamped, path in self._files() if stamped < before]
        if old:
            with closing(self._index()) as index, index:
                # a batch's name begins with its time, so names sort as times do
                cutoff = before.astimezone(dt.UTC).strftime(_STAMPED)
                index.execute("DELETE FROM leaves WHERE batch < ?", (cutoff,))
        for path in old:
            path.unlink(missing_ok=True)
        return len(old)

    def batches(self) -> list[Batch]:
        return [_read(path) for _, path in self._files()]

    def proofs_of(self, digests: Sequence[bytes]) -> dict[bytes, BatchProof]:
        """The proofs of the packages of these SHA-256 ``digests`` that a batch stamped
        (its first), reading only the batches that hold them."""
        leaves: dict[str, list[tuple[bytes, int]]] = defaultdict(list)
        with closing(self._index()) as index:
            for digest in set(digests):
                for name, position in index.execute(_FIRST, (digest,)):
                    leaves[name].append((digest, position))
        found = {}
        for name, wanted in leaves.items():
            try:
                batch = _read(self._batches / name)
            except FileNotFoundError:
                continue  # removed by the retention since the index was read
            paths = merkle.proofs(batch.digests)
            for digest, position in wanted:
                if batch.digests[position : position + 1] != (digest,):
                    raise errors.StorageError(f"{self._index_path} disagrees with {name}")
                found[digest] = BatchProof(batch.token, paths[position])
        return found

    @property
    def _index_path(self) -> Path:
        return self.folder / "index.sqlite"

    def _index(self) -> sqlite3.Connection:
        """The index, made from the batch files already kept if it is new."""
        self.folder.mkdir(parents=True, exist_ok=True)
        index = None
        try:
            index = sqlite3.connect(self._index_path, timeout=60)
            with index:
                index.execute("BEGIN IMMEDIATE")  # one process builds it; another waits
                if index.execute("PRAGMA user_version").fetchone()[0] == 0:
                    index.execute(_LEAVES)
                    index.execute(_BY_BATCH)
                    for _, path in self._files():
                        _index_file(index, path)
                    index.execute("PRAGMA user_version = 1")
        except sqlite3.DatabaseError as exc:
            if index is not None:
                index.close()
            if isinstance(exc, sqlite3.OperationalError):  # locked, unreadable: for now
                raise errors.StorageError(f"the batch index {self._index_path}: {exc}") from None
            raise errors.StorageError(
                f"the batch index {self._index_path} is damaged ({exc}); remove it: it is"
                " made again from the batches"
            ) from None
        return index


def _record(index: sqlite3.Connection, name: str, digests: Sequence[bytes]) -> None:
    """Index the batch ``name``: where each package is in it."""
    index.executemany(
        "INSERT OR IGNORE INTO leaves (digest, batch, position) VALUES (?, ?, ?)",
        ((digest, name, position) for position, digest in enumerate(digests)),
    )


def _index_file(index: sqlite3.Connection, path: Path) -> None:
    try:
        _record(index, path.name, _read(path).digests)
    except errors.StorageError as exc:  # its packages have no proof; the others do
        log.error("a damaged batch is not indexed", reason=str(exc))


def _read(path: Path) -> Batch:
    try:
        record: dict[str, Any] = json.loads(path.read_text())
        return Batch(
            tuple(bytes.fromhex(d) for d in record["digests"]),
            base64.b64decode(record["token"]),
        )
    except (ValueError, KeyError, TypeError):
        raise errors.StorageError(f"the batch {path} is damaged") from None


def proofs_lookup(batches: BatchLog, offload: Offload | None = None) -> ProofsOf:
    """``batches.proofs_of`` for an export: on the offload's threads (a running service's
    loop), or here."""

    async def proofs_of(digests: Sequence[bytes]) -> dict[bytes, BatchProof]:
        return await _run(offload, batches.proofs_of, digests)

    return proofs_of


class Kept(Protocol):
    """What a batch stamps: the packages a store kept after a mark (a node's store,
    edoc.archive.stored; a hub's, edoc.archive.hub)."""

    async def kept_after(self, mark: Mark, limit: int) -> tuple[list[PackageRef], Mark]: ...


def digests_of(refs: list[PackageRef]) -> tuple[bytes, ...]:
    """The SHA-256 of each package, read from its row or its file."""
    return tuple(package_digest(ref) for ref in refs)


async def with_proofs(
    messages: Sequence[KeptMessage], proofs_of: ProofsOf | None
) -> tuple[KeptMessage, ...]:
    """``messages``, each with its batch's proof where a batch stamped it."""
    if proofs_of is None:
        return tuple(messages)
    digests = [hashlib.sha256(m.package).digest() for m in messages]
    found = await proofs_of(digests)
    return tuple(replace(m, proof=found.get(d)) for m, d in zip(messages, digests, strict=True))


async def _run(
    offload: Offload | None, function: Callable[P, T], *args: P.args, **kwargs: P.kwargs
) -> T:
    """``function`` on the offload's threads (a running service's loop), or here."""
    if offload is None:
        return function(*args, **kwargs)
    return await offload.run(function, *args, **kwargs)


async def stamp_new(
    stored: Kept,
    batches: BatchLog,
    stamper: Stamper,
    now: dt.datetime,
    offload: Offload | None = None,
) -> int:
    """Stamp the packages kept since the mark, in batches; how many were stamped. With
    ``offload``, reading, hashing, stamping and writing run off the loop."""
    count = 0
    while True:
        mark = await _run(offload, batches.mark)
        refs, moved = await stored.kept_after(mark, BATCH_LIMIT)
        if not refs:
            return count
        digests = await _run(offload, digests_of, refs)
        token = await _run(offload, stamper, merkle.root(digests))
        await _run(offload, batches.add, Batch(digests, token), moved, now)
        count += len(refs)
