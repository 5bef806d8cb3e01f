"""Files a node left behind are put aside at its start, and brought back once a row names
them; scratch is deleted (edoc.node.leftovers). The node doing it at start, as a process:
tests/test_node.py."""

from __future__ import annotations

import time
import uuid
from pathlib import Path

import pytest
import structlog.testing

from edoc.node import leftovers


def _file(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"<edXML/>")
    return path


def _hex() -> str:
    return uuid.uuid4().hex


def test_what_no_row_names_goes_aside_and_what_one_names_stays(tmp_path: Path) -> None:
    named_out = _file(tmp_path / "outgoing" / f"{_hex()}.edxml")
    lost_out = _file(tmp_path / "outgoing" / f"{_hex()}.edxml")
    named_in = tmp_path / "inbox" / _hex()
    _file(named_in / "package.edxml")
    by_attachment = tmp_path / "inbox" / _hex()  # (a store of an older release)
    _file(by_attachment / "parts" / "0")
    lost_in = tmp_path / "inbox" / _hex()
    _file(lost_in / "parts" / "0")
    not_ours = [_file(tmp_path / "outgoing" / "README"), _file(tmp_path / "inbox" / "notes.txt")]
    scratch = [
        _file(tmp_path / "incoming" / "local-7.edxml"),
        _file(tmp_path / "incoming" / "upload-1" / "to-trinh.pdf").parent,
        _file(tmp_path / "outgoing" / f".{_hex()}.edxml.{_hex()}.tmp"),  # a write cut short
    ]
    # the rows name the same files by another path: the data folder was moved since
    named = [
        f"/old/place/outgoing/{named_out.name}",
        f"/old/place/inbox/{named_in.name}/package.edxml",
        f"/old/place/inbox/{by_attachment.name}/parts/0",
    ]

    done = leftovers.sweep(tmp_path, named)

    assert done == {"put_aside": 2, "deleted": 3}
    assert not any(path.exists() for path in (lost_out, lost_in, *scratch))
    aside = tmp_path / leftovers.ASIDE
    assert (aside / "outgoing" / lost_out.name).read_bytes() == b"<edXML/>"
    assert (aside / "inbox" / lost_in.name / "parts" / "0").exists()
    assert all(path.exists() for path in (named_out, named_in, by_attachment, *not_ours))


def test_a_start_on_the_wrong_store_loses_nothing(tmp_path: Path) -> None:
    """Started on a store that names none of its files (its --store forgotten), a node
    puts every package aside; started again on its own store, it has them all back."""
    package = _file(tmp_path / "outgoing" / f"{_hex()}.edxml")
    received = tmp_path / "inbox" / _hex()
    _file(received / "package.edxml")
    named = [str(package), str(received / "package.edxml")]

    assert leftovers.sweep(tmp_path, []) == {"put_aside": 2}
    assert not package.exists() and not received.exists()
    assert leftovers.sweep(tmp_path, named) == {"brought_back": 2}
    assert package.read_bytes() == b"<edXML/>" and (received / "package.edxml").exists()


def test_what_is_aside_long_enough_is_deleted(tmp_path: Path) -> None:
    lost = _file(tmp_path / "outgoing" / f"{_hex()}.edxml")
    assert leftovers.sweep(tmp_path, []) == {"put_aside": 1}
    almost = time.time() + leftovers.KEEP.total_seconds() - 60
    assert leftovers.sweep(tmp_path, [], now=almost) == {}
    later = time.time() + leftovers.KEEP.total_seconds() + 60
    assert leftovers.sweep(tmp_path, [], now=later) == {"deleted_after_keep": 1}
    assert list((tmp_path / leftovers.ASIDE / "outgoing").iterdir()) == [] and not lost.exists()


def test_a_file_that_cannot_be_deleted_does_not_stop_the_start(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    stuck = _file(tmp_path / "incoming" / "local-7.edxml")
    gone = _file(tmp_path / "incoming" / "local-8.edxml")
    unlink = Path.unlink

    def refusing(path: Path, missing_ok: bool = False) -> None:
        if path == stuck:  # (a root-owned file, a read-only folder)
            raise PermissionError(13, "Permission denied", str(path))
        unlink(path, missing_ok=missing_ok)

    monkeypatch.setattr(Path, "unlink", refusing)
    with structlog.testing.capture_logs() as logs:
        assert leftovers.sweep(tmp_path, []) == {"deleted": 1}
    assert stuck.exists() and not gone.exists()
    assert [e["event"] for e in logs if e["log_level"] == "error"] == [
        "left behind, cannot be deleted"
    ]


def test_a_folder_not_made_yet_is_nothing_to_sweep(tmp_path: Path) -> None:
    assert leftovers.sweep(tmp_path, []) == {}
