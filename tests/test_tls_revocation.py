"""A TLS certificate the CA revoked opens no door, over mutual TLS with a real hub: the
hub refuses a node's revoked client certificate (403 EDOC-AUTH-002, what the node reads
as its credentials refused), the node refuses a hub's revoked server certificate (the hub
unreachable: documents wait); at once on a kept-alive connection, after a restart too,
and a certificate issued anew works again."""

from __future__ import annotations

import asyncio
import contextlib
import os
import ssl
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from edoc import errors, pki, tls
from edoc.client import Answer, HubClient
from edoc.keystore import KeyStore
from edoc.node import hublink
from edoc.node.state import NodeConfig
from tests.support.hub import HUB_ORG, HubProcess, NodeClient, document, hub_ca
from tests.support.pki import Ca

H53 = "000.00.00.H53"
H41 = "000.00.00.H41"
PATHS = ("/api/v1/directory", "/api/v1/deliveries")


def _presenting(keys: KeyStore, serial: str) -> ssl.SSLContext:
    """A client context presenting certificate ``serial``, whatever its state (the key
    store's own picks a valid one only)."""
    context = tls.admin_context(keys)
    context.load_cert_chain(keys.cert_path(serial), keys.key_path(serial))
    return context


def _tls_of(ca: Ca, org_id: str) -> ssl.SSLContext:
    """A client context for ``org_id``, its TLS certificate issued now."""
    ca.keys.issue(org_id, tls_hosts=("localhost",))
    return tls.client_context(ca.keys, org_id)


def _revoke_tls(keys: KeyStore, org_id: str) -> str:
    serial = keys.current(org_id, kind=pki.CertKind.TLS).serial
    keys.revoke(serial, "keyCompromise")
    return serial


async def _refused_for_revocation(node: NodeClient) -> None:
    for path in PATHS:
        code, body, _ = await node.request("GET", path)
        assert code == 403, body
        assert body["error"]["code"] == "EDOC-AUTH-002"
        assert "revoked (keyCompromise" in body["error"]["message"]


async def test_the_hub_refuses_a_revoked_client_certificate(tmp_path: Path) -> None:
    ca = hub_ca(tmp_path / "keys")
    hub = HubProcess(tmp_path / "hub", ca.keys.path, tls=True).start()
    try:
        token = hub.add_node("H53")
        async with NodeClient(hub, token, tls.client_context(ca.keys, H53)) as kept_alive:
            assert (await kept_alive.request("GET", PATHS[0]))[0] == 200
            revoked = _revoke_tls(ca.keys, H53)
            await _refused_for_revocation(kept_alive)  # its connection made before
        hub.stop()
        hub.start()
        await _refused_for_revocation(NodeClient(hub, token, _presenting(ca.keys, revoked)))

        ca.keys.issue(H53, tls_hosts=("localhost",))  # the node's new certificate
        renewed = NodeClient(hub, token, tls.client_context(ca.keys, H53))
        for path in PATHS:
            assert (await renewed.request("GET", path))[0] == 200
    finally:
        hub.stop()


async def _held_collect(node: NodeClient) -> asyncio.Task[Answer]:
    """A collect of ``node``'s, under way and held at the hub (nothing waits for it)."""
    held = asyncio.create_task(node.request("GET", f"{PATHS[1]}?wait=20"))
    await asyncio.sleep(0.5)
    return held


async def _post_for_h53(hub: HubProcess, ca: Ca) -> None:
    """A document for H53 from node H41 (a TLS certificate issued to it now)."""
    async with NodeClient(hub, hub.add_node("H41"), _tls_of(ca, H41)) as sender:
        posted = await sender.post(document(ca, to=[H53], sender=H41))
        assert posted[0] == 202, posted


async def test_a_collect_held_across_a_revocation_is_refused_and_leases_nothing(
    tmp_path: Path,
) -> None:
    """The certificate was good when the long poll began: what comes for the node while
    it is held goes to no one presenting the revoked certificate, and stays owed."""
    ca = hub_ca(tmp_path / "keys")
    hub = HubProcess(tmp_path / "hub", ca.keys.path, tls=True).start()
    try:
        token = hub.add_node("H53")
        async with NodeClient(hub, token, tls.client_context(ca.keys, H53)) as holding:
            held = await _held_collect(holding)
            _revoke_tls(ca.keys, H53)
            ca.keys.issue(H53, tls_hosts=("localhost",))
            await _post_for_h53(hub, ca)
            code, body, _ = await asyncio.wait_for(held, 10)
        assert (code, body["error"]["code"]) == (403, "EDOC-AUTH-002"), body
        async with NodeClient(hub, token, tls.client_context(ca.keys, H53)) as renewed:
            assert len(await renewed.collect()) == 1  # owed still, not leased
    finally:
        hub.stop()


def _collects_answered(metrics: bytes) -> dict[str, float]:
    """The hub's answers to collects so far, by HTTP status (its /metrics)."""
    answered = {}
    for line in metrics.decode().splitlines():
        if line.startswith("edoc_http_requests_total{") and 'route="/api/v1/deliveries"' in line:
            status = line.split('status="')[1].split('"')[0]
            answered[status] = float(line.rsplit(" ", 1)[1])
    return answered


async def test_a_collect_its_node_hung_up_on_is_no_refusal(tmp_path: Path) -> None:
    """A node that stops (or gives up) during a long poll takes its TLS connection, and its
    client certificate, with it: the collect ends leasing nothing, as without TLS. Its
    credentials judged again after the wait said "no client certificate" (403,
    EDOC-AUTH-002) in the hub's log and metrics at every node restart."""
    ca = hub_ca(tmp_path / "keys")
    hub = HubProcess(tmp_path / "hub", ca.keys.path, tls=True).start()
    try:
        token = hub.add_node("H53")
        async with NodeClient(hub, token, tls.client_context(ca.keys, H53)) as leaving:
            held = await _held_collect(leaving)
            held.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await held
        await _post_for_h53(hub, ca)  # (it would wake the held collect)
        async with NodeClient(hub, "", tls.admin_context(ca.keys)) as admin, asyncio.timeout(20):
            while not (answered := _collects_answered((await admin.request("GET", "/metrics"))[1])):
                await asyncio.sleep(0.1)
        assert answered == {"200": 1.0}, answered
        assert "no client certificate" not in (hub.data_dir / "hub.log").read_text()
        async with NodeClient(hub, token, tls.client_context(ca.keys, H53)) as back:
            assert len(await back.collect()) == 1  # owed still, not leased
    finally:
        hub.stop()


async def _directory_status(client: HubClient) -> int:
    return (await client.request("GET", PATHS[0]))[0]


@contextlib.asynccontextmanager
async def _node_of(hub: HubProcess, tmp_path: Path) -> AsyncIterator[HubClient]:
    """Node H53's own client of ``hub`` (its connector judges the hub's certificate), the
    hub running until it is closed."""
    try:
        keys = hub.keys_dir
        config = NodeConfig("H53", tmp_path / "node", keys, hub.url, hub.add_node("H53"))
        client = hublink.open_hub(config, KeyStore(keys))
        try:
            yield client
        finally:
            await client.close()
    finally:
        hub.stop()


async def test_the_node_refuses_a_hub_whose_server_certificate_is_revoked(
    tmp_path: Path,
) -> None:
    ca = hub_ca(tmp_path / "keys")
    hub = HubProcess(tmp_path / "hub", ca.keys.path, tls=True).start()
    async with _node_of(hub, tmp_path) as client:
        assert await _directory_status(client) == 200
        _revoke_tls(ca.keys, HUB_ORG)
        said = rf"server certificate \w+ of {HUB_ORG} is revoked \(keyCompromise"
        with pytest.raises(errors.HubUnreachable, match=said):
            await _directory_status(client)  # its kept-alive connection too
        with pytest.raises(errors.HubUnreachable, match="revoked"):
            await _directory_status(client)  # a new connection

        ca.keys.issue(HUB_ORG, tls_hosts=("localhost", "127.0.0.1"))
        hub.stop()
        hub.start()  # serving with its new certificate: the same node client takes it
        assert await _directory_status(client) == 200


def _damage_the_crl(keys: KeyStore) -> None:
    """A CRL half copied (keys/ synced from the CA while a service reads it): the key
    index reads it again at its next look, as the index's time moved."""
    (keys.path / "ca" / "crl.pem").write_bytes(b"-----BEGIN X509 CRL-----\nhalf")
    index = keys.path / "index.json"
    stamp = index.stat().st_mtime_ns + 1_000_000_000
    os.utime(index, ns=(stamp, stamp))


async def test_a_key_store_the_hub_cannot_read_is_its_fault_not_said_with_its_paths(
    tmp_path: Path,
) -> None:
    ca = hub_ca(tmp_path / "keys")
    hub = HubProcess(tmp_path / "hub", ca.keys.path, tls=True).start()
    try:
        token = hub.add_node("H53")
        async with NodeClient(hub, token, tls.client_context(ca.keys, H53)) as node:
            assert (await node.request("GET", PATHS[0]))[0] == 200
            _damage_the_crl(ca.keys)
            code, body, _ = await node.request("GET", PATHS[0])
        assert (code, body["error"]["code"]) == (500, "EDOC-KEY-000"), body
        assert str(tmp_path) not in body["error"]["message"]
        assert "crl.pem" not in body["error"]["message"]
    finally:
        hub.stop()


async def test_a_node_that_cannot_read_its_key_store_leaves_no_connection_acquired(
    tmp_path: Path,
) -> None:
    ca = hub_ca(tmp_path / "keys")
    hub = HubProcess(tmp_path / "hub", ca.keys.path, tls=True).start()
    async with _node_of(hub, tmp_path) as client:
        assert await _directory_status(client) == 200
        _damage_the_crl(ca.keys)
        for _ in range(3):
            with pytest.raises(errors.KeyStoreError):
                await _directory_status(client)
        connector = client._session.connector if client._session else None
        assert connector is not None
        assert not connector._acquired  # (none leaked)


async def test_the_node_refuses_a_server_certificate_of_another_organization_than_the_hubs(
    tmp_path: Path,
) -> None:
    """A certificate the CA issued to another organization (a node's, stolen, for the
    hub's address) is not the hub's: OpenSSL checks the chain and the host only."""
    ca = hub_ca(tmp_path / "keys")
    posing = "000.00.00.H41"
    ca.keys.issue(posing, tls_hosts=("localhost", "127.0.0.1"))
    hub = HubProcess(tmp_path / "hub", ca.keys.path, ("--org-id", posing), tls=True).start()
    async with _node_of(hub, tmp_path) as client:
        with pytest.raises(errors.HubUnreachable, match=f"of {posing}, not the hub's"):
            await _directory_status(client)
