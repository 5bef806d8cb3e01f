"""Files that appear whole or not at all.

Written to a temporary file beside the final name, fsynced, then renamed over it: a
crash leaves the old file or the new one, never half of one, and a failure (a full disk)
leaves no temporary file behind to fill it further. Files that several processes read,
change and write back take turns (:func:`one_writer`).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO

TEMPORARY = ".tmp"  # how write_file's temporary files end (with a dot before their name)


def left_by_a_writer(path: Path) -> bool:
    """Whether ``path`` is a temporary file of write_file: left, once no write is under
    way, by a writer that was stopped (killed) before it could remove it."""
    return path.name.startswith(".") and path.name.endswith(TEMPORARY)


def remove(path: Path) -> None:
    """``path`` gone: a file, or a folder with all it holds (a link, not what it points
    to). Raises OSError when it cannot be."""
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    else:
        path.unlink(missing_ok=True)


@contextlib.contextmanager
def replacing(path: Path, mode: int = 0o644) -> Iterator[IO[bytes]]:
    """A file open for writing that creates or replaces ``path`` once the block ends
    (not at all if it raises): for a writer that awaits between its writes."""
    temporary = path.with_name(f".{path.name}.{uuid.uuid4().hex}{TEMPORARY}")  # one per writer
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    try:
        with os.fdopen(fd, "wb") as out:
            yield out
            out.flush()
            os.fsync(out.fileno())
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise


def write_file(path: Path, write: Callable[[IO[bytes]], object], mode: int = 0o644) -> None:
    """Create or replace ``path`` with what ``write`` writes to the open file."""
    with replacing(path, mode) as out:
        write(out)


def write_bytes(path: Path, data: bytes, mode: int = 0o644) -> None:
    write_file(path, lambda out: out.write(data), mode)


@contextlib.contextmanager
def one_writer(lock: Path) -> Iterator[None]:
    """An exclusive lock on the file ``lock`` (made if missing) while the block runs,
    waiting for as long as another process holds it: one writer at a time of files that
    several processes read, change and write back, none undoing another's change."""
    with lock.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def sync(path: Path) -> None:
    """Make a file written without write_file durable (fsync of its data)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
