"""`edoc archive export` from what a node's store keeps, and `edoc archive verify`."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import os
import tracemalloc
import zipfile
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from edoc import envelope
from edoc.archive import day, export
from edoc.archive.batches import BatchLog, Kept, evidence_folder, stamp_new
from edoc.archive.hub import open_hub_packages
from edoc.archive.stored import open_stored
from edoc.archive.verify import verify_container
from edoc.cli import main
from edoc.cli.failures import EXIT_REFUSED
from edoc.hub.state import HUB_ORG_ID
from edoc.model import MessageKind
from edoc.store import open_hub_store, open_node_store, sqlite_url
from edoc.store.hub import Addressee, NewPackage, Tally
from edoc.store.node import NewOutgoing
from tests.archive import support
from tests.support.pki import SENDER, Ca, signed_root

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


@pytest.fixture(scope="module")
def large(ca: Ca, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """A signed document of one 16 MB attachment (random: a container cannot deflate it
    away), kept in a file as a node and the hub keep a large package; and its id."""
    folder = tmp_path_factory.mktemp("large")
    attachment = folder / "phu-luc.bin"
    attachment.write_bytes(os.urandom(16 * 1024 * 1024))
    files: list[tuple[Any, Path]] = envelope.attachments_from_files([attachment])
    package = folder / "1.edxml"
    with package.open("wb") as out:
        envelope.write_package(signed_root(ca, files=files), files, out)
    return package, envelope.read_package(package).message.about


async def _stamped(kept: Kept, folder: Path, ca: Ca, at: dt.datetime) -> None:
    stamped = await stamp_new(
        kept, BatchLog(evidence_folder(folder)), export.stamper(ca.keys, at), at
    )
    assert stamped.packages


async def _kept_by_a_node(ca: Ca, folder: Path, package: Path, about: str) -> list[str]:
    url = sqlite_url(folder / "node.sqlite")
    store = await open_node_store(url)
    try:
        document = NewOutgoing(
            MessageKind.DOCUMENT, SENDER, about, "", None, 0, str(package), {},
            (support.RECIPIENT,), (), None,
        )  # fmt: skip
        await store.add_outgoing(document, ca.clock(), ())
    finally:
        await store.close()
    stored = await open_stored(url)
    try:
        await _stamped(stored, folder, ca, ca.clock() + dt.timedelta(seconds=2))
    finally:
        await stored.close()
    return ["--org", SENDER]


async def _kept_by_the_hub(ca: Ca, folder: Path, package: Path, about: str) -> list[str]:
    url = sqlite_url(folder / "hub.sqlite")
    store = await open_hub_store(url)
    try:
        document = NewPackage(
            kind="document", sender=SENDER, about=about, status_code="", business_type=0,
            priority=0, digest="1", path=str(package), size=package.stat().st_size,
            recipients=(Addressee(support.RECIPIENT, "H23"),),
        )  # fmt: skip
        await store.accept(document, ca.clock(), Tally(ca.clock().date(), SENDER, "sent", ""))
    finally:
        await store.close()
    packages = await open_hub_packages(url)
    try:
        await _stamped(packages, folder, ca, ca.clock() + dt.timedelta(seconds=2))
    finally:
        await packages.close()
    return ["--hub"]


_KEPT: dict[str, Callable[[Ca, Path, Path, str], Coroutine[Any, Any, list[str]]]] = {
    SENDER: _kept_by_a_node,
    HUB_ORG_ID: _kept_by_the_hub,
}


@pytest.mark.parametrize("keeper", list(_KEPT))
def test_a_large_documents_evidence_passes_through_a_few_chunks_of_memory(
    ca: Ca, large: tuple[Path, str], keeper: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A node's and the hub's: the container is written to its file as its package is
    read, in chunks (the hub read each package whole, a node held the container whole: a
    200 MB document cost 270 MB more), and the package is read once, hashed as it is
    copied, its batch proof looked up by that digest (it was read three times: for the
    proof, for the manifest, to be copied)."""
    package, about = large
    folder = tmp_path / "service"
    folder.mkdir()
    which = asyncio.run(_KEPT[keeper](ca, folder, package, about))
    opened: list[Path] = []
    real_open = Path.open

    def watched_open(path: Path, *args: Any, **kwargs: Any) -> Any:
        if path == package:
            opened.append(path)
        return real_open(path, *args, **kwargs)

    out = tmp_path / "evidence.asice"
    monkeypatch.setattr(Path, "open", watched_open)
    tracemalloc.start()
    try:
        result = _export(ca, folder, *which, "--document", about, "--out", str(out))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
        monkeypatch.undo()
    assert result.exit_code == 0, result.output
    assert peak < package.stat().st_size / 10
    assert len(opened) == 1
    report = verify_container(out.read_bytes(), ca.keys.trust().root)  # the proof with it
    assert (report.org_id, report.document_id) == (keeper, about)
    with zipfile.ZipFile(out) as made:
        assert "META-INF/proofs/01.json" in made.namelist()


def test_a_day_of_a_large_document_passes_through_a_few_chunks_of_memory(
    ca: Ca, large: tuple[Path, str], tmp_path: Path
) -> None:
    """A day's archive is written a container at a time, each copied into it in chunks,
    and the next day hashes it in chunks to link to it: the export held every container
    of the day in memory, then the archive whole, and the next day read it whole (a day
    of 200 MB documents cost a multiple of the day in memory). Verifying it reads it in
    chunks too (it read the day whole, then each container whole, then its packages)."""
    package, about = large
    folder = tmp_path / "node"
    folder.mkdir()
    asyncio.run(_kept_by_a_node(ca, folder, package, about))
    kept_on = ca.clock().astimezone(envelope.VIETNAM)
    next_day = kept_on + dt.timedelta(days=1)
    small = support.document_package(ca, number=7)
    status = support.status_package(ca, small)
    asyncio.run(support.keep(folder / "node.sqlite", small, status, next_day))
    out = tmp_path / "archive"
    tracemalloc.start()
    try:
        for when in (kept_on, next_day):
            result = _export(
                ca, folder, "--org", SENDER, "--day", f"{when:%Y-%m-%d}", "--out", str(out)
            )
            assert result.exit_code == 0, result.output
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    first, second = (out / day.file_name(SENDER, d.date()) for d in (kept_on, next_day))
    assert peak < first.stat().st_size / 10
    assert first.stat().st_mode & 0o777 == 0o600
    assert sorted(p.name for p in out.iterdir()) == [first.name, second.name]  # no leftovers
    root = str(ca.keys.root_path)
    tracemalloc.start()
    try:
        checked = _edoc(ca, "archive", "verify", str(first), str(second), "--root", root, "--json")
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert checked.exit_code == 0, checked.output
    assert peak < first.stat().st_size / 10
    reports = json.loads(checked.output)
    assert [[c["document_id"] for c in r["containers"]] for r in reports] == [
        [about],
        [envelope.read_package(small).message.about],
    ]
    assert reports[1]["previous"] == first.name
