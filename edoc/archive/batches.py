"""Batched time stamps at the node: one token every few seconds over a Merkle tree of the
packages kept since the last, as X-Road's message log does, so the exchange never waits
for the time-stamping authority and each package is dated close to when it was kept.

``edoc archive stamp`` runs beside a node: it reads the packages the store gained since
its mark (outgoing and inbox rows by id), stamps the root of their SHA-256 digests, and
writes the batch (the digests in order and the token) to ``DATA_DIR/evidence/batches``
before it moves its mark. An export then gives each package its proof: the batch's
token and the Merkle path from the package to the stamped root (edoc.archive.verify
checks the package's signatures as of that earlier time).
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edoc import atomic, errors
from edoc.archive import merkle
from edoc.archive.container import Stamper
from edoc.archive.evidence import BatchProof
from edoc.archive.stored import Mark, StoredEvidence

_STAMPED = "%Y%m%dT%H%M%S%f"  # a batch file's name begins with when it was stamped (UTC)
BATCH_LIMIT = 10_000  # packages per batch at most: a backlog becomes several batches


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
            for n, digest in enumerate(batch.digests):
                if digest not in index:
                    index[digest] = BatchProof(batch.token, merkle.proof(batch.digests, n))
        return index


async def stamp_new(
    stored: StoredEvidence, log: BatchLog, stamper: Stamper, now: dt.datetime
) -> int:
    """Stamp the packages kept since the mark, in batches; how many were stamped."""
    count = 0
    while True:
        mark = log.mark()
        packages, moved = await stored.packages_after(mark, BATCH_LIMIT)
        if not packages:
            return count
        digests = tuple(hashlib.sha256(p).digest() for p in packages)
        log.add(Batch(digests, stamper(merkle.root(digests))), moved, now)
        count += len(packages)
