"""Files a node left behind, swept at its start, before anything is received or sent.

A package is written (to outgoing/, or moved into an inbox folder) before the row that
names it is stored. When the store then fails, the post or the delivery is made again
under new names, and the first files stay: no row names them. They cannot be removed at
the failure itself: a PostgreSQL COMMIT whose answer was lost may have stored the row.
incoming/ holds only what was under way (downloads, uploads, local copies), which a
start abandons.

The files rows name are kept by name (a unique hex name each), not by path: a data
folder moved, or named by another path, keeps its files."""

from __future__ import annotations

import re
import shutil
from collections.abc import Iterable
from pathlib import Path

import structlog

log = structlog.get_logger()

# what edoc.node.submit names an outgoing package, edoc.node.receiving an inbox folder
_OUTGOING = re.compile(r"[0-9a-f]{32}\.edxml")
_INBOX = re.compile(r"[0-9a-f]{32}")


def sweep(data_dir: Path, named: Iterable[str]) -> list[Path]:
    """Remove what no row names (``named``: edoc.store.node.NodeStore.package_files) and
    what incoming/ holds; return what was removed."""
    names = {part for path in named for part in Path(path).parts}
    removed = [
        *_entries(data_dir / "incoming"),
        *(p for p in _entries(data_dir / "outgoing") if _unnamed(p, _OUTGOING, names)),
        *(p for p in _entries(data_dir / "inbox") if _unnamed(p, _INBOX, names)),
    ]
    for path in removed:
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)
    if removed:
        log.warning("files left behind removed", count=len(removed), first=str(removed[0]))
    return removed


def _entries(folder: Path) -> list[Path]:
    return list(folder.iterdir()) if folder.is_dir() else []


def _unnamed(path: Path, pattern: re.Pattern[str], names: set[str]) -> bool:
    return pattern.fullmatch(path.name) is not None and path.name not in names
