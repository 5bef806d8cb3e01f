"""A running service's hold on its data folder: one node per folder, one `edoc up` per
network.

A node tidies its folder as it starts (edoc.node.leftovers: uploads cut short, package
files no row names), and only then listens. A second node started on the same folder by
mistake, on another port or the same one, tidied the running node's uploads under way
and put its package files aside before it found the port taken, or ran beside it; a
second `edoc up --base-port` on a running network rewrote its network.json. The first
holds an exclusive lock on ``DATA_DIR/.lock`` while it runs; a second one is refused
before it touches anything. The kernel lets the lock go when the process ends, however
it ends: a service killed leaves no stale lock behind.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
from collections.abc import Iterator
from pathlib import Path

from edoc import errors

LOCK_NAME = ".lock"


@contextlib.contextmanager
def held(folder: Path, holder: str) -> Iterator[None]:
    """Hold ``folder`` for this ``holder`` (a node, a network) while the block runs;
    FolderInUse if another process (or another opening in this one) holds it."""
    folder.mkdir(parents=True, exist_ok=True)
    descriptor = _opened(folder / LOCK_NAME)
    try:
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise errors.FolderInUse(
                f"{folder} is in use by another running {holder}: stop it first, or give"
                " this one a --data-dir of its own"
            ) from None
        yield
    finally:
        os.close(descriptor)


def _opened(path: Path) -> int:
    """The lock file, open for writing (NFS emulates flock with a write lock); in a folder
    turned read-only (a disk fault) that held a service before, open for reading, so the
    service starts far enough to say what is wrong with its store."""
    try:
        return os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    except OSError as exc:
        if exc.errno != errno.EROFS:
            raise
        return os.open(path, os.O_RDONLY)
