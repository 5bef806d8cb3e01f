"""`edoc archive export` from what a node's store keeps, and `edoc archive verify`."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import zipfile
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from edoc import envelope
from edoc.archive import day
from edoc.cli import main
from edoc.cli.failures import EXIT_REFUSED
from tests.archive import support
from tests.support.pki import SENDER, Ca

TODAY = dt.datetime.now(envelope.VIETNAM).replace(hour=12)
YESTERDAY = TODAY - dt.timedelta(days=1)


@pytest.fixture(scope="module")
def node(ca: Ca, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[str]]:
    """A node's folder whose store keeps two documents: one yesterday, one today."""
    folder = tmp_path_factory.mktemp("node")
    kept = []
    for number, at in enumerate((YESTERDAY, TODAY), 1):
        document = support.document_package(ca, number=number)
        status = support.status_package(ca, document)
        kept.append(asyncio.run(support.keep(folder / "node.sqlite", document, status, at)))
    return folder, kept


def _edoc(ca: Ca, *arguments: str) -> Result:
    return CliRunner().invoke(main, [*arguments])


def _export(ca: Ca, node: Path, *arguments: str) -> Result:
    return _edoc(
        ca, "archive", "export", "--data-dir", str(node), "--keys-dir", str(ca.keys.path),
        *arguments,
    )  # fmt: skip


def test_one_document_of_each_side(ca: Ca, node: tuple[Path, list[str]], tmp_path: Path) -> None:
    folder, documents = node
    for org, expected in (
        (support.RECIPIENT, ["received-document", "sent-status-01"]),
        (SENDER, ["sent-document", "received-status-01"]),
    ):
        out = tmp_path / f"{org}.asice"
        result = _export(ca, folder, "--org", org, "--document", documents[0], "--out", str(out))
        assert result.exit_code == 0, result.output
        assert out.stat().st_mode & 0o777 == 0o600  # official documents: their owner's only
        with zipfile.ZipFile(out) as made:
            described = json.loads(made.read("META-INF/evidence.json"))
        files = [m["file"] for m in described["messages"]]
        assert [f.split("-", 1)[1].removesuffix(".edxml") for f in files] == expected
        checked = _edoc(ca, "archive", "verify", str(out), "--root", str(ca.keys.root_path))
        assert checked.exit_code == 0, checked.output
        assert checked.output.startswith(f"OK {out}: evidence of {documents[0]} kept by {org}")


def test_an_unknown_document_is_refused(ca: Ca, node: tuple[Path, list[str]]) -> None:
    folder, _ = node
    result = _export(ca, folder, "--org", SENDER, "--document", "no such document")
    assert result.exit_code == EXIT_REFUSED
    assert "EDOC-ARC-007" in result.output


def test_days_chain_and_verify_in_order(
    ca: Ca, node: tuple[Path, list[str]], tmp_path: Path
) -> None:
    folder, documents = node
    out = tmp_path / "archive"
    for when in (YESTERDAY, TODAY):
        result = _export(
            ca, folder, "--org", SENDER, "--day", f"{when:%Y-%m-%d}", "--out", str(out)
        )
        assert result.exit_code == 0, result.output
    assert "linked to" in result.output
    first, second = (out / day.file_name(SENDER, d.date()) for d in (YESTERDAY, TODAY))
    assert second.stat().st_mode & 0o777 == 0o600
    root = str(ca.keys.root_path)
    checked = _edoc(ca, "archive", "verify", str(first), str(second), "--root", root, "--json")
    assert checked.exit_code == 0, checked.output
    reports = json.loads(checked.output)
    assert [r["containers"][0]["document_id"] for r in reports] == documents
    assert reports[1]["previous"] == first.name
    again = _export(
        ca, folder, "--org", SENDER, "--day", f"{YESTERDAY:%Y-%m-%d}", "--out", str(out)
    )
    assert again.exit_code == EXIT_REFUSED
    assert "chained in order" in again.output


def test_verify_says_what_fails(ca: Ca, node: tuple[Path, list[str]], tmp_path: Path) -> None:
    folder, _ = node
    out = tmp_path / "archive"
    result = _export(
        ca, folder, "--org", support.RECIPIENT, "--day", f"{YESTERDAY:%Y-%m-%d}", "--out", str(out)
    )
    assert result.exit_code == 0, result.output
    made = out / day.file_name(support.RECIPIENT, YESTERDAY.date())
    emptied = tmp_path / "emptied.zip"
    emptied.write_bytes(
        support.rewrite(made.read_bytes(), lambda n, d: None if n.endswith(".asice") else d)
    )
    failed = _edoc(ca, "archive", "verify", str(emptied), "--root", str(ca.keys.root_path))
    assert failed.exit_code == EXIT_REFUSED
    assert (
        "error EDOC-ARC-006: containers/0001.asice, listed in linkinginfo, is not in"
        in failed.output
    )
    junk = tmp_path / "root.pem"
    junk.write_text("not a certificate")
    refused = _edoc(ca, "archive", "verify", str(made), "--root", str(junk))
    assert refused.exit_code == EXIT_REFUSED
    assert "EDOC-ARC-008" in refused.output


def test_export_wants_one_of_document_and_day(ca: Ca, node: tuple[Path, list[str]]) -> None:
    folder, _ = node
    assert _export(ca, folder, "--org", SENDER).exit_code == 2
