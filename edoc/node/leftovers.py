"""Files a node left behind, put aside at its start, before anything is received or sent.

A package is written (to outgoing/, or moved into an inbox folder) before the row that
names it is stored. When the store then fails, the post or the delivery is made again
under new names, and the first files stay: no row names them. They cannot be removed at
the failure itself: a PostgreSQL COMMIT whose answer was lost may have stored the row.

At start, what no row names is moved aside to leftovers/, not deleted: a node started on
the wrong store (a `--store` forgotten) or before a pending COMMIT is seen names none of
its packages, and its next start on the right store moves them back. What has been aside
for KEEP is deleted. What incoming/ holds (downloads, uploads, local copies) and a
package's temporary file were only under way, and no row ever names them: deleted.

The files rows name are known by name (a unique hex name each), not by path: a data
folder moved, or named by another path, keeps its files."""

from __future__ import annotations

import datetime as dt
import os
import re
import time
from collections import Counter
from collections.abc import Iterable
from pathlib import Path

import structlog

from edoc import atomic

log = structlog.get_logger()

KEEP = dt.timedelta(days=30)  # how long what no row names is kept aside
ASIDE = "leftovers"
# what edoc.node.submit names an outgoing package, edoc.node.receiving an inbox folder
_PACKAGES = {"outgoing": re.compile(r"[0-9a-f]{32}\.edxml"), "inbox": re.compile(r"[0-9a-f]{32}")}


def sweep(data_dir: Path, named: Iterable[str], now: float | None = None) -> Counter[str]:
    """Put aside what no row names (``named``: NodeStore.package_files), bring back what
    is aside and named again, delete what is only scratch or aside for KEEP; how many of
    each it did."""
    names = {part for path in named for part in Path(path).parts}
    aside = data_dir / ASIDE
    done: Counter[str] = Counter()
    for folder, pattern in _PACKAGES.items():
        for path in _entries(aside / folder):
            if path.name in names:
                done["brought_back"] += _move(path, data_dir / folder / path.name)
        for path in _entries(data_dir / folder):
            if atomic.left_by_a_writer(path):
                done["deleted"] += _delete(path)
            elif pattern.fullmatch(path.name) and path.name not in names:
                done["put_aside"] += _move(path, aside / folder / path.name)
    for path in _entries(data_dir / "incoming"):
        done["deleted"] += _delete(path)
    oldest = (time.time() if now is None else now) - KEEP.total_seconds()
    for folder in _PACKAGES:
        for path in _entries(aside / folder):
            if path.lstat().st_mtime < oldest:
                done["deleted_after_keep"] += _delete(path)
    if +done:
        log.warning("files no row names", folder=str(aside), **(+done))
    return +done


def _entries(folder: Path) -> list[Path]:
    return list(folder.iterdir()) if folder.is_dir() else []


def _move(path: Path, to: Path) -> bool:
    """One rename (the same file system); its time is when it moved, for KEEP."""
    try:
        to.parent.mkdir(parents=True, exist_ok=True)
        path.rename(to)
        os.utime(to, follow_symlinks=False)
    except OSError as exc:  # left where it is: a start is not refused for it
        log.error("left behind, cannot be moved", path=str(path), reason=str(exc))
        return False
    return True


def _delete(path: Path) -> bool:
    try:
        atomic.remove(path)
    except OSError as exc:
        log.error("left behind, cannot be deleted", path=str(path), reason=str(exc))
        return False
    return True
