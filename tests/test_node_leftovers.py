"""Files a node left behind are swept at its start; what a row names is kept
(edoc.node.leftovers). The node doing it at start, as a process: tests/test_node.py."""

from __future__ import annotations

import uuid
from pathlib import Path

from edoc.node import leftovers


def _file(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"<edXML/>")
    return path


def test_what_no_row_names_goes_and_what_one_names_stays(tmp_path: Path) -> None:
    named_out = _file(tmp_path / "outgoing" / f"{uuid.uuid4().hex}.edxml")
    lost_out = _file(tmp_path / "outgoing" / f"{uuid.uuid4().hex}.edxml")
    named_in = tmp_path / "inbox" / uuid.uuid4().hex
    _file(named_in / "package.edxml")
    by_attachment = tmp_path / "inbox" / uuid.uuid4().hex  # (a store of an older release)
    _file(by_attachment / "parts" / "0")
    lost_in = tmp_path / "inbox" / uuid.uuid4().hex
    _file(lost_in / "parts" / "0")
    not_ours = [_file(tmp_path / "outgoing" / "README"), _file(tmp_path / "inbox" / "notes.txt")]
    under_way = [_file(tmp_path / "incoming" / "local-7.edxml"), tmp_path / "incoming" / "upload-1"]
    _file(under_way[1] / "to-trinh.pdf")
    # the rows name the same files by another path: the data folder was moved since
    named = [
        f"/old/place/outgoing/{named_out.name}",
        f"/old/place/inbox/{named_in.name}/package.edxml",
        f"/old/place/inbox/{by_attachment.name}/parts/0",
    ]

    removed = leftovers.sweep(tmp_path, named)

    assert sorted(removed) == sorted([lost_out, lost_in, *under_way])
    assert not any(path.exists() for path in removed)
    assert all(path.exists() for path in (named_out, named_in, by_attachment, *not_ours))


def test_a_folder_not_made_yet_is_nothing_to_sweep(tmp_path: Path) -> None:
    assert leftovers.sweep(tmp_path, []) == []
