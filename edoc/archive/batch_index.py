"""Which batches time-stamped each package: ``index.sqlite`` beside a service's batches
(edoc.archive.batches), so one document's proof reads the batch that holds it, not every
batch the service ever kept (20,000 batches, a day and some hours of them, took 4 s).

The index only repeats what the batch files say: one made from them when it is new (a
folder kept before there was an index gains it at its first use), and removed by the
operator when it is damaged, it is made again.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import closing, contextmanager
from pathlib import Path

from edoc import errors

_LEAVES = (  # a package stamped again after a crash is in two batches
    "CREATE TABLE IF NOT EXISTS leaves (digest BLOB NOT NULL, batch TEXT NOT NULL,"
    " position INTEGER NOT NULL, PRIMARY KEY (digest, batch)) WITHOUT ROWID"
)
_BY_BATCH = "CREATE INDEX IF NOT EXISTS leaves_by_batch ON leaves (batch)"
_WAIT = 60  # seconds to wait for another process's writing (the first making, mostly)

Kept = Iterable[tuple[str, Sequence[bytes]]]  # each batch's name and digests, in order


class BatchIndex:
    """The index at ``path``; ``kept`` reads the batches already kept, to make it new."""

    def __init__(self, path: Path, kept: Callable[[], Kept]) -> None:
        self.path = path
        self._kept = kept

    def ready(self) -> None:
        """Make the index if it is new."""
        with self._opened():
            pass

    def record(self, name: str, digests: Sequence[bytes]) -> None:
        """The batch ``name`` holds ``digests``, in this order."""
        with self._opened() as index, index:
            _record(index, name, digests)

    def forget_before(self, name: str) -> None:
        """Forget the batches whose names sort before ``name`` (they begin with their time)."""
        with self._opened() as index, index:
            index.execute("DELETE FROM leaves WHERE batch < ?", (name,))

    def places(self, digests: Iterable[bytes]) -> dict[bytes, list[tuple[str, int]]]:
        """Each digest's batches (oldest first) and its position in each."""
        found: dict[bytes, list[tuple[str, int]]] = {}
        with self._opened() as index:
            for digest in digests:
                rows = index.execute(
                    "SELECT batch, position FROM leaves WHERE digest = ? ORDER BY batch",
                    (digest,),
                )
                found[digest] = [(name, position) for name, position in rows]
        return found

    @contextmanager
    def _opened(self) -> Iterator[sqlite3.Connection]:
        """The index, made first if it is new; SQLite's errors told as EDOC-STORE-001."""
        try:
            with closing(sqlite3.connect(self.path, timeout=_WAIT)) as index:
                if _version(index) == 0:
                    _make(index, self._kept())
                yield index
        except sqlite3.OperationalError as exc:  # locked, unreadable: for now, it may pass
            raise errors.StorageError(f"the batch index {self.path}: {exc}") from None
        except sqlite3.DatabaseError as exc:
            raise errors.StorageError(
                f"the batch index {self.path} is damaged ({exc}): remove it and its -wal"
                " and -shm files, it is made again from the batches"
            ) from None


def _version(index: sqlite3.Connection) -> int:
    version: int = index.execute("PRAGMA user_version").fetchone()[0]
    return version


def _make(index: sqlite3.Connection, kept: Kept) -> None:
    """Fill a new index from the batches kept; one process does, another waits for it."""
    index.execute("PRAGMA journal_mode = WAL")  # readers do not wait for the stamping
    with index:
        index.execute("BEGIN IMMEDIATE")
        if _version(index) == 0:
            index.execute(_LEAVES)
            index.execute(_BY_BATCH)
            for name, digests in kept:
                _record(index, name, digests)
            index.execute("PRAGMA user_version = 1")


def _record(index: sqlite3.Connection, name: str, digests: Sequence[bytes]) -> None:
    index.executemany(
        "INSERT OR IGNORE INTO leaves (digest, batch, position) VALUES (?, ?, ?)",
        ((digest, name, position) for position, digest in enumerate(digests)),
    )
