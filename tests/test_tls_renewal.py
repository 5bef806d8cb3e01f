"""A TLS certificate the CA revoked, and a new one issued, while a real hub process and a
node serve over mutual TLS: as an operator does it (`edoc keys revoke SERIAL`, then
`edoc keys issue ORGID --tls-host HOST`). Refused while the revoked one is presented, the
exchange resumes with the new one, neither service restarted: each takes its
organization's newest valid TLS certificate for its next connection, and says so."""

from __future__ import annotations

import asyncio
import json
import subprocess
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer
from structlog.testing import capture_logs

from edoc import pki
from edoc.client import AgencyClient
from edoc.keystore import KeyStore
from edoc.node import app as node_app
from edoc.node.state import NodeConfig
from tests.support.hub import EDOC, HUB_ORG, HubProcess, hub_ca
from tests.support.network import metadata

H53, SENDER, NGHE_AN = "000.00.00.H53", "000.00.12.H53", "000.00.00.H41"
AGENCY_TOKEN = "agency-token-of-the-sender"


def _edoc_keys(keys: KeyStore, *arguments: str) -> None:
    command = [EDOC, "keys", *arguments, "--keys-dir", str(keys.path)]
    subprocess.run(command, check=True, capture_output=True)


def _revoke_tls(keys: KeyStore, org_id: str) -> str:
    serial = keys.current(org_id, kind=pki.CertKind.TLS).shown_serial
    _edoc_keys(keys, "revoke", serial, "--reason", "keyCompromise")
    return serial


def _issue_tls(keys: KeyStore, org_id: str) -> str:
    _edoc_keys(keys, "issue", org_id, "--tls-host", "localhost", "--tls-host", "127.0.0.1")
    return keys.current(org_id, kind=pki.CertKind.TLS).shown_serial


async def _document(agency: AgencyClient, outgoing_id: int, done: Any) -> dict[str, Any]:
    """The document's state at the node once ``done`` holds of it."""
    async with asyncio.timeout(30):
        while not done(found := await agency.document(outgoing_id)):
            await asyncio.sleep(0.1)
    return found


def _sent(document: dict[str, Any]) -> bool:
    return [r["state"] for r in document["recipients"]] == ["sent"]


def _refused_for(said: str) -> Callable[[dict[str, Any]], bool]:
    def refused(document: dict[str, Any]) -> bool:
        (transfer,) = document["transfers"]
        return transfer["state"] == "pending" and said in (transfer["last_error"] or "")

    return refused


async def _send(agency: AgencyClient) -> int:
    posted: int = (await agency.post_document(metadata(SENDER, [NGHE_AN])))["id"]
    return posted


@pytest.fixture
async def hub(tmp_path: Path) -> AsyncIterator[HubProcess]:
    ca = hub_ca(tmp_path / "keys")
    ca.keys.issue(SENDER, org_name="Sở Thông tin và Truyền thông tỉnh Tây Ninh")
    running = HubProcess(tmp_path / "hub", ca.keys.path, tls=True).start()
    try:
        yield running
    finally:
        running.stop()


@pytest.fixture
async def agency(tmp_path: Path, hub: HubProcess) -> AsyncIterator[AgencyClient]:
    """An agency of node H53, the node talking to ``hub`` over mutual TLS."""
    config = NodeConfig(
        "H53",
        tmp_path / "node",
        hub.keys_dir,
        hub_url=hub.url,
        hub_token=hub.add_node("H53"),
        retry_base=0.05,
        retry_cap=0.2,
        poll_wait=1,
        workers=1,
    )
    await node_app.add_agency(config, SENDER, "Sở TTTT", AGENCY_TOKEN)
    async with TestClient(TestServer(node_app.create_app(config))) as client:
        yield AgencyClient(str(client.make_url("")), AGENCY_TOKEN)


def _hub_log(hub: HubProcess) -> list[dict[str, Any]]:
    lines = (hub.data_dir / "hub.log").read_text().splitlines()
    return [json.loads(line) for line in lines if line.startswith("{")]


async def _logged(hub: HubProcess, event: str) -> None:
    async with asyncio.timeout(30):
        while not any(e["event"] == event for e in _hub_log(hub)):
            await asyncio.sleep(0.1)


async def test_a_running_hub_serves_with_the_certificate_issued_after_its_revocation(
    hub: HubProcess, agency: AgencyClient
) -> None:
    keys = KeyStore(hub.keys_dir)
    assert _sent(await _document(agency, await _send(agency), _sent))
    started = hub.process.pid if hub.process else None

    revoked = _revoke_tls(keys, HUB_ORG)
    waiting = await _send(agency)  # the node refuses the hub's certificate: it waits
    await _document(agency, waiting, _refused_for(f"server certificate {revoked}"))
    # a new connection comes while the hub has no valid certificate (the refused one is
    # closed: the node's next try connects anew), before one is issued
    await _logged(hub, "TLS certificate kept: no valid one to take its place")

    renewed = _issue_tls(keys, HUB_ORG)
    assert _sent(await _document(agency, waiting, _sent))
    assert _sent(await _document(agency, await _send(agency), _sent))
    assert hub.process is not None and hub.process.pid == started  # no restart

    log = _hub_log(hub)
    kept = [e for e in log if e["event"].startswith("TLS certificate kept")]
    assert len(kept) == 1 and kept[0]["level"] == "error", kept  # said once
    assert kept[0]["serial"] == revoked
    (switched,) = [e for e in log if e["event"] == "TLS certificate switched"]
    assert (switched["serial"], switched["replaced"]) == (renewed, revoked)
    assert "PRIVATE KEY" not in (hub.data_dir / "hub.log").read_text()


async def test_a_running_node_presents_the_certificate_issued_after_its_revocation(
    hub: HubProcess, agency: AgencyClient
) -> None:
    keys = KeyStore(hub.keys_dir)
    with capture_logs() as logs:
        assert _sent(await _document(agency, await _send(agency), _sent))

        revoked = _revoke_tls(keys, H53)
        waiting = await _send(agency)  # the hub refuses the node's certificate: it waits
        await _document(agency, waiting, _refused_for("EDOC-AUTH-002"))

        renewed = _issue_tls(keys, H53)
        assert _sent(await _document(agency, waiting, _sent))
        assert _sent(await _document(agency, await _send(agency), _sent))

    kept = [e for e in logs if e["event"].startswith("TLS certificate kept")]
    assert len(kept) == 1 and kept[0]["log_level"] == "error", kept  # said once
    assert (kept[0]["org_id"], kept[0]["serial"]) == (H53, revoked)
    (switched,) = [e for e in logs if e["event"] == "TLS certificate switched"]
    assert (switched["org_id"], switched["serial"], switched["replaced"]) == (H53, renewed, revoked)
