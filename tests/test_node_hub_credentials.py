"""A node whose own credentials the hub refuses (a wrong hub token): its configuration, not
the documents' fault. Against a real hub process: the documents wait in the outbox, tried
again and again, and go as soon as the hub takes the node."""

from __future__ import annotations

import asyncio
import dataclasses
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer
from structlog.testing import capture_logs

from edoc.client import AgencyClient
from edoc.node import app as node_app
from edoc.node import outbox
from edoc.node.state import NodeConfig
from tests.support.hub import EDOC, HubProcess, hub_ca
from tests.support.network import metadata

SENDER, NGHE_AN = "000.00.12.H53", "000.00.00.H41"
AGENCY_TOKEN = "agency-token-of-the-sender"
NODE_TOKEN = "the-token-this-node-was-given"


async def _document(agency: AgencyClient, outgoing_id: int, done: Any) -> dict[str, Any]:
    """The document's state at the node once ``done`` holds of it (the outbox is busy)."""
    async with asyncio.timeout(30):
        while not done(found := await agency.document(outgoing_id)):
            await asyncio.sleep(0.1)
    return found


def _tried_thrice_or_failed(document: dict[str, Any]) -> bool:
    (transfer,) = document["transfers"]
    return bool(transfer["attempts"] >= 3 or transfer["state"] == "failed")


def _left_the_queue(document: dict[str, Any]) -> bool:
    return bool(document["recipients"][0]["state"] != "queued")


def _refused_once(document: dict[str, Any]) -> bool:
    (transfer,) = document["transfers"]
    return bool(transfer["attempts"] >= 1 or transfer["state"] == "failed")


def _let_in(hub: HubProcess) -> None:
    """The operator lets the node in with the token it has (`hub add-node --replace`)."""
    letting_in = ("hub", "add-node", "H53", "--token", NODE_TOKEN, "--replace")
    subprocess.run(
        [EDOC, *letting_in, "--data-dir", str(hub.data_dir)], check=True, capture_output=True
    )


def _node_config(tmp_path: Path, hub: HubProcess) -> NodeConfig:
    """A node the hub knows by another token than it has (hub.add_node gave another)."""
    return NodeConfig(
        "H53",
        tmp_path / "node",
        hub.keys_dir,
        hub_url=hub.url,
        hub_token=NODE_TOKEN,
        hub_tls=False,
        retry_base=0.05,
        retry_cap=0.2,
        poll_wait=1,
        workers=1,
    )


async def test_documents_refused_for_the_nodes_token_wait_until_the_hub_takes_it(
    tmp_path: Path,
) -> None:
    ca = hub_ca(tmp_path / "keys")
    ca.keys.issue(SENDER, org_name="Sở Thông tin và Truyền thông tỉnh Tây Ninh")
    hub = HubProcess(tmp_path / "hub", ca.keys.path).start()
    try:
        hub.add_node("H53")  # the hub knows the node by another token than the node has
        config = _node_config(tmp_path, hub)
        await node_app.add_agency(config, SENDER, "Sở TTTT", AGENCY_TOKEN)
        async with TestClient(TestServer(node_app.create_app(config))) as client:
            agency = AgencyClient(str(client.make_url("")), AGENCY_TOKEN)
            with capture_logs() as logs:
                posted = [await agency.post_document(metadata(SENDER, [NGHE_AN])) for _ in range(3)]
                waiting = [
                    await _document(agency, p["id"], _tried_thrice_or_failed) for p in posted
                ]
            for document in waiting:
                (transfer,) = document["transfers"]
                assert transfer["state"] == "pending", transfer
                assert "EDOC-AUTH-001" in transfer["last_error"]
                assert [r["state"] for r in document["recipients"]] == ["queued"]
            told = [e for e in logs if e["log_level"] == "error" and "credentials" in e["event"]]
            assert len(told) == 1 and told[0]["code"] == "EDOC-AUTH-001", told

            # the operator lets the node in with the token it has (or restarts it with the
            # hub's): the documents go (alone or together), no reopening asked
            _let_in(hub)
            for p in posted:
                sent = await _document(agency, p["id"], _left_the_queue)
                assert [r["state"] for r in sent["recipients"]] == ["sent"], sent
                assert sent["transfers"][0]["state"] == "done"
    finally:
        hub.stop()


async def test_what_waited_for_the_hub_to_take_the_node_goes_at_once_when_it_does(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A refused document's own next try comes after a jittered wait up to the retry cap
    (an hour here, so that it never comes during the test): the node asks the hub again
    far sooner while refused, and once the hub takes it, what waited for that goes at
    once, not at its next try."""
    # each try's wait the whole cap, not a random share of it: the test never passes by luck
    monkeypatch.setattr(outbox, "full_jitter", lambda base, cap, attempts: cap)
    ca = hub_ca(tmp_path / "keys")
    ca.keys.issue(SENDER, org_name="Sở Thông tin và Truyền thông tỉnh Tây Ninh")
    hub = HubProcess(tmp_path / "hub", ca.keys.path).start()
    try:
        hub.add_node("H53")
        config = dataclasses.replace(_node_config(tmp_path, hub), retry_base=3600, retry_cap=3600)
        await node_app.add_agency(config, SENDER, "Sở TTTT", AGENCY_TOKEN)
        async with TestClient(TestServer(node_app.create_app(config))) as client:
            agency = AgencyClient(str(client.make_url("")), AGENCY_TOKEN)
            posted = await agency.post_document(metadata(SENDER, [NGHE_AN]))
            waiting = await _document(agency, posted["id"], _refused_once)
            (transfer,) = waiting["transfers"]
            assert transfer["state"] == "pending" and "EDOC-AUTH-001" in transfer["last_error"]

            _let_in(hub)
            let_in = time.monotonic()
            sent = await _document(agency, posted["id"], _left_the_queue)
            assert [r["state"] for r in sent["recipients"]] == ["sent"], sent
            assert time.monotonic() - let_in < 20  # the retry cap is 3600 s
    finally:
        hub.stop()


async def test_what_waited_for_the_hub_to_take_the_node_goes_at_once_after_a_restart(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The operator puts the node's token right in its configuration and restarts it: what
    the hub refused before the restart goes as soon as the hub takes the restarted node,
    not at its own next try (an hour away, as above). The store kept why it waited."""
    monkeypatch.setattr(outbox, "full_jitter", lambda base, cap, attempts: cap)
    ca = hub_ca(tmp_path / "keys")
    ca.keys.issue(SENDER, org_name="Sở Thông tin và Truyền thông tỉnh Tây Ninh")
    hub = HubProcess(tmp_path / "hub", ca.keys.path).start()
    try:
        known_by = hub.add_node("H53")  # the token the hub knows the node by
        config = dataclasses.replace(_node_config(tmp_path, hub), retry_base=3600, retry_cap=3600)
        await node_app.add_agency(config, SENDER, "Sở TTTT", AGENCY_TOKEN)
        async with TestClient(TestServer(node_app.create_app(config))) as client:
            agency = AgencyClient(str(client.make_url("")), AGENCY_TOKEN)
            posted = await agency.post_document(metadata(SENDER, [NGHE_AN]))
            await _document(agency, posted["id"], _refused_once)

        put_right = dataclasses.replace(config, hub_token=known_by)
        async with TestClient(TestServer(node_app.create_app(put_right))) as client:
            agency = AgencyClient(str(client.make_url("")), AGENCY_TOKEN)
            restarted = time.monotonic()
            sent = await _document(agency, posted["id"], _left_the_queue)
            assert [r["state"] for r in sent["recipients"]] == ["sent"], sent
            assert time.monotonic() - restarted < 20  # the retry cap is 3600 s
    finally:
        hub.stop()
