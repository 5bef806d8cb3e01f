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
that earlier time).
"""

from __future__ import annotations

import base64
import datetime as dt
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ParamSpec, Protocol, TypeVar

from edoc import atomic, errors
from edoc.archive import merkle
from edoc.archive.container import Stamper
from edoc.archive.evidence import BatchProof
from edoc.archive.stored import Mark, PackageRef, package_digest
from edoc.offload import Offload

_STAMPED = "%Y%m%dT%H%M%S%f"  # a batch file's name begins with when it was stamped (UTC)
BATCH_LIMIT = 10_000  # packages per batch at most: a backlog becomes several batches
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
    """A node's batches and its mark, in ``folder`` (the node's ``evidence`` folder)."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    @property
    def _mark_path(self) -> Path:
        return self.folder / "mark.json"

    def mark(self) -> Mark:
        try:
            data = json.loads(self._mark_path.read_text())
            return Mark(int(data["outgoing"]), int(data["inbox"]))
        except FileNotFoundError:
            return Mark(0, 0)
        except (ValueError, KeyError, TypeError):
            raise errors.StorageError(f"{self._mark_path} is damaged") from None

    def add(self, batch: Batch, mark: Mark, now: dt.datetime) -> Path:
        """Keep ``batch``, then move the mark past it (a crash between the two stamps
        those packages again: twice, never not at all)."""
        folder = self.folder / "batches"
        folder.mkdir(parents=True, exist_ok=True)
        stamped = now.astimezone(dt.UTC).strftime(_STAMPED)
        path = folder / f"{stamped}-{mark.outgoing}-{mark.inbox}.json"
        record = {
            "digests": [d.hex() for d in batch.digests],
            "token": base64.b64encode(batch.token).decode("ascii"),
        }
        atomic.write_bytes(path, json.dumps(record).encode())
        atomic.write_bytes(self._mark_path, json.dumps(mark._asdict()).encode())
        return path

    def _files(self) -> list[tuple[dt.datetime, Path]]:
        """The batch files, oldest first, with when each was stamped (others are left alone)."""
        found = []
        for path in (self.folder / "batches").glob("*.json"):
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
        for path in old:
            path.unlink(missing_ok=True)
        return len(old)

    def batches(self) -> list[Batch]:
        found = []
        for _, path in self._files():
            try:
                record: dict[str, Any] = json.loads(path.read_text())
                found.append(
                    Batch(
                        tuple(bytes.fromhex(d) for d in record["digests"]),
                        base64.b64decode(record["token"]),
                    )
                )
            except (ValueError, KeyError, TypeError):
                raise errors.StorageError(f"the batch {path} is damaged") from None
        return found

    def proofs(self) -> dict[bytes, BatchProof]:
        """Each stamped package's proof, by the SHA-256 of its bytes (its first batch)."""
        index: dict[bytes, BatchProof] = {}
        for batch in self.batches():
            # the tree built once per batch: a proof each from scratch is quadratic
            for digest, path in zip(batch.digests, merkle.proofs(batch.digests), strict=True):
                if digest not in index:
                    index[digest] = BatchProof(batch.token, path)
        return index


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


async def stamp_new(
    stored: Kept,
    log: BatchLog,
    stamper: Stamper,
    now: dt.datetime,
    offload: Offload | None = None,
) -> int:
    """Stamp the packages kept since the mark, in batches; how many were stamped. With
    ``offload``, reading, hashing, stamping and writing run off the loop."""
    count = 0
    while True:
        mark = await _run(offload, log.mark)
        refs, moved = await stored.kept_after(mark, BATCH_LIMIT)
        if not refs:
            return count
        digests = await _run(offload, digests_of, refs)
        token = await _run(offload, stamper, merkle.root(digests))
        await _run(offload, log.add, Batch(digests, token), moved, now)
        count += len(refs)
