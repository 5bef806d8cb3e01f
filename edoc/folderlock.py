"""A node's hold on its data folder: one running node per folder.

A node tidies its folder as it starts (edoc.node.leftovers: uploads cut short, package
files no row names), and only then listens. A second node started on the same folder by
mistake, on another port or the same one, tidied the running node's uploads under way
and put its package files aside before it found the port taken, or ran beside it. The
first node holds an exclusive lock on ``DATA_DIR/.lock`` while it runs; a second one is
refused before it touches anything. The kernel lets the lock go when the process ends,
however it ends: a node killed leaves no stale lock behind.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Iterator
from pathlib import Path

from edoc import errors

LOCK_NAME = ".lock"


@contextlib.contextmanager
def held(folder: Path) -> Iterator[None]:
    """Hold ``folder`` for this service while the block runs; FolderInUse if another
    process (or another opening in this one) holds it."""
    folder.mkdir(parents=True, exist_ok=True)
    # read-only: a lock needs no more, and a folder turned read-only (a disk fault) that
    # held a node before opens, so the node says what is wrong with its store
    descriptor = os.open(folder / LOCK_NAME, os.O_RDONLY | os.O_CREAT, 0o600)
    try:
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise errors.FolderInUse(
                f"{folder} is in use by another running node: stop it first, or give this"
                " one a --data-dir of its own"
            ) from None
        yield
    finally:
        os.close(descriptor)
