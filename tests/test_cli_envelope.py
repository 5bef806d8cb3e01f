"""The real ``edoc`` console script: pack, inspect, unpack, and its one-line error contract."""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from edoc import envelope, xmlsafe
from tests.support.envelope import SAMPLE_METADATA, load_sample_metadata, pack


def _edoc_script() -> str:
    beside = Path(sys.executable).parent / "edoc"
    found = str(beside) if beside.exists() else shutil.which("edoc")
    assert found, "the edoc console script is not installed"
    return found


EDOC = _edoc_script()
PLAN = "Kế hoạch chuyển đổi số năm 2027\n".encode()
SCAN = os.urandom(150_000)


@dataclass(frozen=True)
class Run:
    code: int
    out: str
    err: str


def edoc(*args: str | Path, cwd: Path | None = None) -> Run:
    done = subprocess.run(
        [EDOC, *map(str, args)],
        capture_output=True,
        text=True,
        encoding="utf-8",
        timeout=60,
        cwd=cwd,
        env=os.environ | {"PYTHONWARNINGS": "error"},
    )
    return Run(done.returncode, done.stdout, done.stderr)


def assert_refused(run: Run, code: str) -> None:
    """The CLI contract: exit 1 and exactly one stderr line, ``error CODE: message``."""
    assert run.code == 1, run
    lines = run.err.splitlines()
    assert len(lines) == 1, run.err
    assert lines[0].startswith(f"error {code}: "), run.err


@dataclass(frozen=True)
class Packed:
    folder: Path
    package: Path
    run: Run


@pytest.fixture(scope="module")
def packed(tmp_path_factory: pytest.TempPathFactory) -> Packed:
    folder = tmp_path_factory.mktemp("cli")
    (folder / "kế-hoạch.txt").write_bytes(PLAN)
    (folder / "bản-quét.pdf").write_bytes(SCAN)
    package = folder / "out" / "cong-van.edxml"
    run = edoc("pack", SAMPLE_METADATA, "kế-hoạch.txt", "bản-quét.pdf", "-o", package, cwd=folder)
    return Packed(folder, package, run)


def test_pack(packed: Packed) -> None:
    assert packed.run.code == 0, packed.run.err
    assert packed.run.err == ""
    assert packed.run.out.strip() == (
        f"packed 000.00.12.H53,2026/11/23,123/STTTT-VP → {packed.package}"
    )
    with packed.package.open("rb") as source:
        package = envelope.read_package(source)
    document = package.document
    assert document.subject == "V/v triển khai chuyển đổi số năm 2027"
    assert [a.name for a in document.attachments] == ["kế-hoạch.txt", "bản-quét.pdf"]
    assert [a.sha256 for a in document.attachments] == [
        hashlib.sha256(PLAN).hexdigest(),
        hashlib.sha256(SCAN).hexdigest(),
    ]
    assert len(document.trace) == 1  # the sender's own hop
    assert [p.name for p in packed.package.parent.iterdir()] == ["cong-van.edxml"]


def test_inspect_text(packed: Packed) -> None:
    run = edoc("inspect", packed.package)
    assert run.code == 0, run.err
    lines = run.out.splitlines()
    assert "from:        000.00.12.H53" in lines
    assert "to:          000.00.00.H23, 000.00.07.H53" in lines
    assert "document id: 000.00.12.H53,2026/11/23,123/STTTT-VP" in lines
    assert "subject:     V/v triển khai chuyển đổi số năm 2027" in lines
    assert "priority:    1 (urgent)" in lines
    assert (
        f"attachment:  bản-quét.pdf  {len(SCAN)} bytes  sha256 {hashlib.sha256(SCAN).hexdigest()}"
        in lines
    )


def test_inspect_json(packed: Packed) -> None:
    run = edoc("inspect", packed.package, "--json")
    assert run.code == 0, run.err
    summary: dict[str, Any] = json.loads(run.out)
    assert summary["from"] == "000.00.12.H53"
    assert summary["to"] == ["000.00.00.H23", "000.00.07.H53"]
    assert summary["code"] == "123/STTTT-VP"
    assert summary["type"] == {"code": 1, "name": "Công văn"}
    assert summary["priority"] == 1
    assert summary["business"] == 0
    assert summary["attachments"] == [
        {
            "name": "kế-hoạch.txt",
            "content_id": "cid:1",
            "size": len(PLAN),
            "sha256": hashlib.sha256(PLAN).hexdigest(),
        },
        {
            "name": "bản-quét.pdf",
            "content_id": "cid:2",
            "size": len(SCAN),
            "sha256": hashlib.sha256(SCAN).hexdigest(),
        },
    ]


def test_unpack(packed: Packed, tmp_path: Path) -> None:
    target = tmp_path / "unpacked"
    run = edoc("unpack", packed.package, "-d", target)
    assert run.code == 0, run.err
    assert sorted(p.name for p in target.iterdir()) == [
        "bản-quét.pdf",
        "envelope.xml",
        "kế-hoạch.txt",
    ]
    assert (target / "kế-hoạch.txt").read_bytes() == PLAN
    assert (target / "bản-quét.pdf").read_bytes() == SCAN
    root = xmlsafe.parse((target / "envelope.xml").read_bytes())
    assert [child.tag for child in root] == [envelope.q("edXMLEnvelope")]
    envelope.validate(root)
    assert envelope.document_from_envelope(root).subject == "V/v triển khai chuyển đổi số năm 2027"


def test_unpack_refuses_a_name_escaping_the_folder(tmp_path: Path) -> None:
    wire = pack(load_sample_metadata(), {"a.txt": b"harmless"}).wire
    evil = tmp_path / "evil.edxml"
    evil.write_bytes(wire.replace(b">a.txt<", b">../escaped.txt<"))
    target = tmp_path / "inbox" / "unpacked"
    run = edoc("unpack", evil, "-d", target)
    assert_refused(run, "EDOC-ATT-003")
    assert "../escaped.txt" in run.err
    assert not (tmp_path / "inbox" / "escaped.txt").exists()
    assert not any(tmp_path.rglob("escaped.txt"))
    assert list(target.iterdir()) == []  # no staging folder or half file left behind


def test_unpack_writes_nothing_when_an_attachment_is_changed(tmp_path: Path) -> None:
    wire = pack(load_sample_metadata(), {"a.txt": b"original bytes", "b.txt": b"b"}).wire
    changed = wire.replace(b"b3JpZ2luYWwgYnl0ZXM=", b"T1JJR0lOQUwgQllURVM=")
    assert changed != wire
    package = tmp_path / "changed.edxml"
    package.write_bytes(changed)
    target = tmp_path / "out"
    assert_refused(edoc("unpack", package, "-d", target), "EDOC-ATT-002")
    assert list(target.iterdir()) == []


def test_pack_refuses_bad_metadata(tmp_path: Path) -> None:
    data = load_sample_metadata()
    data["to"] = ["000.00.00.H00"]
    metadata_file = tmp_path / "bad.json"
    metadata_file.write_text(json.dumps(data, ensure_ascii=False), encoding="utf-8")
    output = tmp_path / "out.edxml"
    assert_refused(edoc("pack", metadata_file, "-o", output), "EDOC-ORG-001")
    assert not output.exists()
    assert list(tmp_path.iterdir()) == [metadata_file]  # no temporary file left


def test_pack_refuses_a_missing_attachment(tmp_path: Path) -> None:
    output = tmp_path / "out.edxml"
    assert_refused(
        edoc("pack", SAMPLE_METADATA, tmp_path / "không-có.pdf", "-o", output), "EDOC-IN-002"
    )
    assert not output.exists()


def test_pack_refuses_non_json_metadata(tmp_path: Path) -> None:
    metadata_file = tmp_path / "meta.json"
    metadata_file.write_bytes(b"\xff not json")
    assert_refused(edoc("pack", metadata_file, "-o", tmp_path / "o.edxml"), "EDOC-ENV-004")


@pytest.mark.parametrize(
    ("data", "code"),
    [
        pytest.param(
            b'<!DOCTYPE x [<!ENTITY e SYSTEM "file:///etc/passwd">]><x>&e;</x>',
            "EDOC-XML-002",
            id="xxe",
        ),
        pytest.param(b"", "EDOC-XML-001", id="empty"),
        pytest.param(b"<a xmlns='urn:evil'/>", "EDOC-XML-006", id="wrong-namespace"),
    ],
)
def test_inspect_refuses_hostile_input(tmp_path: Path, data: bytes, code: str) -> None:
    package = tmp_path / "hostile.edxml"
    package.write_bytes(data)
    run = edoc("inspect", package)
    assert_refused(run, code)
    assert run.out == ""
    assert "root:" not in run.err  # never the content of /etc/passwd


def test_inspect_missing_file(tmp_path: Path) -> None:
    assert_refused(edoc("inspect", tmp_path / "missing.edxml"), "EDOC-IN-002")


def test_packed_file_reads_in_process(packed: Packed) -> None:
    """The package the CLI wrote is byte for byte readable through the library."""
    data = packed.package.read_bytes()
    assert data.startswith(b"<?xml")
    assert envelope.read_package(io.BytesIO(data)).received[1].size == len(SCAN)
