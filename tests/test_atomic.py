"""Files appear whole or not at all, and a failed write leaves nothing behind."""

from __future__ import annotations

import stat
from pathlib import Path
from typing import IO

import pytest

from edoc import atomic


def test_replaces_whole_with_the_mode_asked(tmp_path: Path) -> None:
    target = tmp_path / "network.json"
    target.write_bytes(b"old")
    atomic.write_bytes(target, b"new", mode=0o600)
    assert target.read_bytes() == b"new"
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
    assert [p.name for p in tmp_path.iterdir()] == ["network.json"]


def test_a_failed_write_keeps_the_old_file_and_leaves_no_temporary(tmp_path: Path) -> None:
    target = tmp_path / "package.edxml"
    target.write_bytes(b"old")

    def half_then_disk_full(out: IO[bytes]) -> None:
        out.write(b"half of the new")
        raise OSError(28, "No space left on device")

    with pytest.raises(OSError, match="No space left"):
        atomic.write_file(target, half_then_disk_full)
    assert target.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["package.edxml"]
