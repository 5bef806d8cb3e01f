"""Evidence from a running network: what real nodes kept of a document that crossed the
hub (the receiving side's package carries the hub's hop), exported through the agency API
and the CLI, checked by `edoc archive verify`, xmlsec1 and openssl."""

from __future__ import annotations

import asyncio
import datetime as dt
import io
import subprocess
import zipfile
from collections.abc import Iterator
from functools import partial
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from edoc import envelope
from edoc.archive import container, merkle, tsa
from edoc.archive.batches import BatchLog, digests_of, evidence_folder
from edoc.archive.hub import open_hub_packages
from edoc.archive.stored import Mark
from edoc.archive.verify import verify_container
from edoc.cli import main
from edoc.cli.failures import EXIT_REFUSED
from edoc.hub.state import HUB_ORG_ID
from edoc.keystore import KeyStore
from edoc.store import sqlite_url
from tests.archive.tools import needs_openssl, needs_xmlsec1
from tests.support.network import Agency, LocalNetwork, eventually, metadata
from tests.support.pki import SENDER, Ca, Clock
from tests.test_xmlsec1 import xmlsec1_verify

KON_TUM = "000.00.00.H34"


@pytest.fixture(scope="module")
def net(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalNetwork]:
    network = LocalNetwork(tmp_path_factory.mktemp("net"), ["H53", "H34"]).start()
    yield network
    network.stop()


async def _arrived(agency: Agency, document_id: str) -> list[dict[str, Any]]:
    return [d for d in await agency.inbox() if d["document_id"] == document_id]


async def _answered(sender: Agency, outgoing_id: int) -> bool:
    recipients = (await sender.document(outgoing_id))["recipients"]
    return all(r["state"] == "01" for r in recipients)


async def _edoc(*arguments: str) -> Result:
    """The CLI, off the test's event loop (each command runs a loop of its own)."""
    return await asyncio.to_thread(CliRunner().invoke, main, list(arguments))


# a small package is kept in the stores, a large one in files of its own
@needs_xmlsec1
@pytest.mark.parametrize("blocks", [16, 2400])
async def test_both_sides_evidence_of_a_document_that_crossed_the_hub(
    net: LocalNetwork, blocks: int, tmp_path: Path
) -> None:
    sender, recipient = net.agency(SENDER), net.agency(KON_TUM)
    files = {"ke-hoach.pdf": b"%PDF-1.4\n" + bytes(range(256)) * blocks}
    code, answer, _ = await sender.send(metadata(SENDER, [KON_TUM]), files)
    assert code == 202, answer
    (item,) = await eventually(partial(_arrived, recipient, answer["document_id"]))
    await eventually(partial(_answered, sender, answer["id"]))
    keys = KeyStore(net.data_dir / "keys")
    root = keys.trust().root
    sides = {
        "sent": (sender, f"/api/v1/documents/{answer['id']}/evidence", [SENDER, KON_TUM]),
        "received": (recipient, f"/api/v1/inbox/{item['id']}/evidence", [SENDER, KON_TUM]),
    }
    for side, (agency, path, senders) in sides.items():
        status, body, _ = await agency.request("GET", path)
        assert status == 200, body
        report = verify_container(body, root)
        assert [m.sender for m in report.messages] == senders, side
        with zipfile.ZipFile(io.BytesIO(body)) as archive:
            archive.extractall(tmp_path / side)
        for message in sorted((tmp_path / side / "messages").iterdir()):
            checked = xmlsec1_verify(Ca(keys, Clock()), message, 1)
            assert checked.returncode == 0, (side, message.name, checked.stderr)


def _proven(body: bytes) -> list[str]:
    """The messages of a container that carry their batch's proof."""
    with zipfile.ZipFile(io.BytesIO(body)) as archive:
        return [n for n in archive.namelist() if n.startswith(container.PROOFS)]


async def test_a_running_node_stamps_what_it_keeps_by_itself(net: LocalNetwork) -> None:
    """No `edoc archive stamp`: each node's own task stamps its packages within seconds,
    and the evidence the agency API answers carries every message's batch proof."""
    sender, recipient = net.agency(SENDER), net.agency(KON_TUM)
    code, answer, _ = await sender.send(metadata(SENDER, [KON_TUM]))
    assert code == 202, answer
    (item,) = await eventually(partial(_arrived, recipient, answer["document_id"]))
    await eventually(partial(_answered, sender, answer["id"]))
    root = KeyStore(net.data_dir / "keys").trust().root
    sides = {
        "sent": (sender, f"/api/v1/documents/{answer['id']}/evidence"),
        "received": (recipient, f"/api/v1/inbox/{item['id']}/evidence"),
    }
    for side, (agency, path) in sides.items():

        async def proven(agency: Agency = agency, path: str = path) -> bytes:
            status, body, _ = await agency.request("GET", path)
            assert status == 200, body
            return body if len(_proven(body)) == 2 else b""  # the document and its status

        body = await eventually(proven, timeout=15)
        assert len(verify_container(body, root).messages) == 2, side


async def _hub_stamped(net: LocalNetwork) -> str:
    """A document crossed the hub, and the hub's batches (DATA_DIR/evidence) came to cover
    every package it keeps, as it relays it; the document's id."""
    sender = net.agency(SENDER)
    code, answer, _ = await sender.send(metadata(SENDER, [KON_TUM]))
    assert code == 202, answer
    await eventually(partial(_answered, sender, answer["id"]))
    hub_dir = net.data_dir / "hub"
    packages = await open_hub_packages(sqlite_url(hub_dir / "hub.sqlite"))
    try:
        refs, _ = await packages.kept_after(Mark(0, 0), 10_000)
    finally:
        await packages.close()
    accepted = set(digests_of(refs))
    assert len(accepted) >= 2  # the document and its status, at least

    async def stamped() -> bool:
        return set(BatchLog(evidence_folder(hub_dir)).proofs_of(list(accepted))) == accepted

    await eventually(stamped, timeout=15)
    root = KeyStore(net.data_dir / "keys").trust().root
    for batch in BatchLog(evidence_folder(hub_dir)).batches():
        stamp = tsa.check_token(batch.token, merkle.root(batch.digests), root)
        assert stamp.time <= dt.datetime.now(dt.UTC)
    return str(answer["document_id"])


async def test_the_hubs_evidence_of_a_document_exports_and_verifies(
    net: LocalNetwork, tmp_path: Path
) -> None:
    document_id = await _hub_stamped(net)
    out = tmp_path / "hub.asice"
    keys = ["--keys-dir", str(net.data_dir / "keys")]
    hub_dir = str(net.data_dir / "hub")
    arguments = ["archive", "export", "--hub", "--data-dir", hub_dir, *keys]
    exported = await _edoc(*arguments, "--document", document_id, "--out", str(out))
    assert exported.exit_code == 0, exported.output
    assert len(_proven(out.read_bytes())) == 2  # the document and its status, each proven
    assert out.stat().st_mode & 0o777 == 0o600
    root = str(net.data_dir / "keys" / "ca" / "root.pem")
    checked = await _edoc("archive", "verify", str(out), "--root", root)
    assert checked.exit_code == 0, checked.output
    assert f"evidence of {document_id} kept by {HUB_ORG_ID}, 2 messages" in checked.output
    unknown = await _edoc(*arguments, "--document", "no-such-document", "--out", str(out))
    assert (unknown.exit_code, "EDOC-ARC-007" in unknown.output) == (EXIT_REFUSED, True)


@needs_openssl
async def test_the_cli_stamps_and_exports_a_nodes_day(net: LocalNetwork, tmp_path: Path) -> None:
    sender = net.agency(SENDER)
    code, answer, _ = await sender.send(metadata(SENDER, [KON_TUM]))
    assert code == 202, answer
    await eventually(partial(_answered, sender, answer["id"]))
    node = net.data_dir / "nodes" / "H53"
    keys = ["--keys-dir", str(net.data_dir / "keys")]
    # the node stamps by itself too: beside it the command stamps what is left, if any
    stamped = await _edoc("archive", "stamp", "--once", "--data-dir", str(node), *keys)
    assert stamped.exit_code == 0, stamped.output
    today = f"{dt.datetime.now(envelope.VIETNAM):%Y-%m-%d}"
    out = tmp_path / "archive"
    arguments = ["archive", "export", "--data-dir", str(node), *keys, "--org", SENDER]
    exported = await _edoc(*arguments, "--day", today, "--out", str(out))
    assert exported.exit_code == 0, exported.output
    (made,) = out.iterdir()
    root = str(net.data_dir / "keys" / "ca" / "root.pem")
    checked = await _edoc("archive", "verify", str(made), "--root", root)
    assert checked.exit_code == 0, checked.output
    assert f"day {today} of {SENDER}" in checked.output
    with zipfile.ZipFile(made) as archive:
        (tmp_path / "linkinginfo").write_bytes(archive.read("linkinginfo"))
        (tmp_path / "linkinginfo.tst").write_bytes(archive.read("linkinginfo.tst"))
    chain = tmp_path / "chain.pem"
    chain.write_bytes(
        (net.data_dir / "keys" / "ca" / "root.pem").read_bytes()
        + (net.data_dir / "keys" / "ca" / "issuing.pem").read_bytes()
    )
    result = subprocess.run(
        ["openssl", "ts", "-verify", "-data", str(tmp_path / "linkinginfo"),
         "-in", str(tmp_path / "linkinginfo.tst"), "-token_in", "-CAfile", str(chain)],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
