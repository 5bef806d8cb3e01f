"""The hub across restarts, under back-pressure, and over mutual TLS."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import ssl
import subprocess
import time
from pathlib import Path

import pytest

from edoc import tls, web
from edoc.keystore import KeyStore
from tests.support.hub import EDOC, HubProcess, NodeClient, document, hub_ca
from tests.support.pki import Ca

H23, H41, H53 = "000.00.00.H23", "000.00.00.H41", "000.00.00.H53"


@pytest.fixture(scope="module")
def ca(tmp_path_factory: pytest.TempPathFactory) -> Ca:
    return hub_ca(tmp_path_factory.mktemp("hubca") / "keys")


async def test_kill_9_loses_nothing_and_delivers_nothing_twice(ca: Ca, tmp_path: Path) -> None:
    hub = HubProcess(tmp_path / "hub", ca.keys.path, options=("--visibility", "1")).start()
    try:
        sender = NodeClient(hub, hub.add_node("H53"))
        receiver = NodeClient(hub, hub.add_node("H23"))
        accepted = set()
        for _ in range(12):
            code, answer, _ = await sender.post(document(ca, to=[H23]))
            assert code == 202
            accepted.add(answer["id"])
        leased = await receiver.collect(limit=5)  # collected, never acknowledged
        assert len(leased) == 5

        hub.stop(kill=True)
        hub.start()
        await asyncio.sleep(1.1)  # the visibility timeout of the unacknowledged five
        delivered = [item.hub_id for item in await receiver.drain()]
        assert sorted(delivered) == sorted(accepted)  # all twelve, each once
        code, report, _ = await receiver.request("GET", "/api/v1/stats")
        assert report["totals"]["sent"] == 12 and report["totals"]["received"] == 12
        assert report["in_flight"] == 0
    finally:
        hub.stop()


async def test_back_pressure_and_size_limit(ca: Ca, tmp_path: Path) -> None:
    hub = HubProcess(
        tmp_path / "hub", ca.keys.path, options=("--queue-bound", "2", "--max-package-mb", "1")
    ).start()
    try:
        sender = NodeClient(hub, hub.add_node("H53"))
        for _ in range(2):
            assert (await sender.post(document(ca, to=[H41])))[0] == 202
        code, body, headers = await sender.post(document(ca, to=[H41]))
        assert (code, body["error"]["code"]) == (429, "EDOC-HUB-004")
        assert int(headers["Retry-After"]) > 0
        assert (await sender.post(document(ca, to=[H23])))[0] == 202  # others still flow
        _, report, _ = await sender.request("GET", "/api/v1/stats")
        assert "EDOC-HUB-004" not in report["rejected_by_code"]  # "later", not a refusal

        code, body, _ = await sender.post(b"<" * (1024 * 1024 + 1))
        assert (code, body["error"]["code"]) == (413, "EDOC-IN-001")
    finally:
        hub.stop()


def _client(keys: KeyStore, org: str) -> ssl.SSLContext:
    return tls.client_context(keys, org)


async def test_mutual_tls(ca: Ca, tmp_path: Path) -> None:
    hub = HubProcess(tmp_path / "hub", ca.keys.path, tls=True).start()
    try:
        token = hub.add_node("H53")
        with_cert = NodeClient(hub, token, _client(ca.keys, "000.00.00.H53"))
        assert (await with_cert.post(document(ca, to=[H23])))[0] == 202

        no_cert = NodeClient(hub, token, tls.admin_context(ca.keys))
        code, body, _ = await no_cert.post(document(ca, to=[H23]))
        assert (code, body["error"]["code"]) == (403, "EDOC-AUTH-002")
        assert body["error"]["message"] == (  # it said "client certificate of None"
            "no client certificate: the hub takes node H53 over mutual TLS, with its TLS"
            " certificate"
        )

        other_province = NodeClient(hub, token, _client(ca.keys, "000.00.00.H23"))
        code, body, _ = await other_province.post(document(ca, to=[H41]))
        assert (code, body["error"]["code"]) == (403, "EDOC-AUTH-002")
        assert body["error"]["message"] == (
            "client certificate of 000.00.00.H23 does not belong to node H53"
        )

        result = subprocess.run(
            [EDOC, "stats", "--hub", hub.url, "--json", "--keys-dir", str(ca.keys.path)],
            capture_output=True,
            text=True,
            check=True,
        )
        assert json.loads(result.stdout)["totals"]["sent"] == 1
        table = subprocess.run(
            [EDOC, "stats", "--hub", hub.url, "--keys-dir", str(ca.keys.path)],
            capture_output=True,
            text=True,
            check=True,
        )
        assert "000.00.00.H53" in table.stdout and "in flight: 1" in table.stdout
    finally:
        hub.stop()


async def test_a_port_in_use_is_said_as_such(ca: Ca, tmp_path: Path) -> None:
    hub = HubProcess(tmp_path / "hub", ca.keys.path).start()
    try:
        second = HubProcess(tmp_path / "second", ca.keys.path, port=hub.port)
        started = subprocess.run(second.command(), capture_output=True, text=True, timeout=60)
        assert started.returncode == 4, started.stderr  # the operating system refused
        last = started.stderr.strip().splitlines()[-1]
        assert last.startswith("error EDOC-SYS-003: ") and "address already in use" in last, last
        # "started" is said once the port is ours, not before
        assert "hub started" in (tmp_path / "hub" / "hub.log").read_text()
        assert "hub started" not in started.stdout + started.stderr
    finally:
        hub.stop()


async def test_a_stop_during_long_polls_is_quick_and_leaves_no_traceback(
    ca: Ca, tmp_path: Path
) -> None:
    hub = HubProcess(tmp_path / "hub", ca.keys.path, tls=True).start()
    try:
        # several nodes waiting at once: aiohttp shuts their connections down together,
        # and one left waiting past its grace used to fail the others with InvalidStateError
        nodes = [
            NodeClient(hub, hub.add_node(root), _client(ca.keys, f"000.00.00.{root}"))
            for root in ("H53", "H23")
        ]
        nodes.append(nodes[0])  # a second poll of one node, each on its own connection
        polls = [asyncio.ensure_future(node.collect(wait=25)) for node in nodes]
        await asyncio.sleep(1)  # all three are waiting at the hub
        assert hub.process is not None
        started = time.monotonic()
        hub.process.send_signal(signal.SIGTERM)
        assert await asyncio.to_thread(hub.process.wait, 20) == 0
        stopped_in = time.monotonic() - started
        log = (tmp_path / "hub" / "hub.log").read_text()
        assert "Traceback" not in log, log
        assert stopped_in < 4  # the waits end at once, not at the grace's end
        assert await asyncio.gather(*polls) == [[], [], []]  # answered, not cut off
    finally:
        hub.stop()


async def test_a_held_collect_gets_a_delivery_whose_lease_ran_out(ca: Ca, tmp_path: Path) -> None:
    """Nothing wakes a held collect when a lease runs out: it looks at the store again
    now and then (edoc.hub.queues.RECHECK, a quarter of a short lease)."""
    hub = HubProcess(tmp_path / "hub", ca.keys.path, options=("--visibility", "2")).start()
    try:
        sender = NodeClient(hub, hub.add_node("H53"))
        receiver = NodeClient(hub, hub.add_node("H23"))
        assert (await sender.post(document(ca, to=[H23])))[0] == 202
        (leased,) = await receiver.collect(limit=5)  # never acknowledged
        started = time.monotonic()
        (again,) = await receiver.collect(wait=20)  # held: nothing else is waiting
        waited = time.monotonic() - started
        assert again.id == leased.id and again.attempts == 2
        assert 1.5 < waited < 5  # when the 2 s lease ran out, not when the 20 s wait did
    finally:
        hub.stop()


async def test_a_long_poll_whose_node_hung_up_leases_nothing(ca: Ca, tmp_path: Path) -> None:
    """A held collect outlives its connection (aiohttp does not cancel the handler): had it
    leased the next delivery, it would write it to a closed socket and hide it from the
    node's next collect for the whole visibility timeout."""
    hub = HubProcess(tmp_path / "hub", ca.keys.path).start()
    try:
        sender = NodeClient(hub, hub.add_node("H53"))
        token = hub.add_node("H41")
        receiver = NodeClient(hub, token)
        await receiver.collect()  # the token is known before the poll is abandoned
        _, writer = await asyncio.open_connection("127.0.0.1", hub.port)
        writer.write(
            b"GET /api/v1/deliveries?wait=20 HTTP/1.1\r\nHost: hub\r\n"
            + f"Authorization: Bearer {token}\r\n\r\n".encode()
        )
        await writer.drain()
        await asyncio.sleep(0.5)  # the hub holds the poll
        writer.close()
        await writer.wait_closed()
        await asyncio.sleep(0.5)  # the hub sees the connection closed
        assert (await sender.post(document(ca, to=[H41])))[0] == 202
        await asyncio.sleep(0.5)  # the held collect wakes to the new delivery
        assert len(await receiver.collect()) == 1
    finally:
        hub.stop()


async def test_a_held_collect_whose_token_went_to_another_node_leases_nothing(
    ca: Ca, tmp_path: Path
) -> None:
    """Without TLS a node is its token alone. A held collect judges its token again after
    each wait: once the token is another node's (H53's replaced, `hub add-node --replace`,
    and the old one given to H23), it must not go on leasing H53's deliveries to
    whoever holds it. The hub trusts a known token from memory for web.TOKEN_TTL."""
    hub = HubProcess(tmp_path / "hub", ca.keys.path).start()
    try:
        sender = NodeClient(hub, hub.add_node("H41"))
        old = hub.add_node("H53")
        poll = asyncio.create_task(
            NodeClient(hub, old).request("GET", "/api/v1/deliveries?wait=20", held=20)
        )
        await asyncio.sleep(0.5)  # the hub holds the poll, the token known as H53's
        new = hub.add_node("H53", replace=True)
        hub.add_node("H23", token=old)
        await asyncio.sleep(web.TOKEN_TTL)  # what the hub remembers of the token is gone
        to_h53 = document(ca, to=[H53], sender=H41)
        assert (await sender.post(to_h53))[0] == 202  # wakes the held poll
        code, body, _ = await poll
        assert (code, body.get("error", {}).get("code")) == (401, "EDOC-AUTH-001"), body
        (delivery,) = await NodeClient(hub, new).collect()  # nothing leased by the old one
        assert delivery.attempts == 1
    finally:
        hub.stop()


async def test_a_package_file_the_hub_cannot_read_fails_its_own_fetch_alone(
    ca: Ca, tmp_path: Path
) -> None:
    """A storage fault under one package (here its file is a folder; a disk error does
    the same) must not fail every collect of its node: the others come, and fetching
    that one says the store failed."""
    hub = HubProcess(tmp_path / "hub", ca.keys.path, options=("--inline-kb", "4096")).start()
    try:
        sender = NodeClient(hub, hub.add_node("H53"))
        receiver = NodeClient(hub, hub.add_node("H41"))
        large = document(ca, to=[H41], files={"ban-do.bin": os.urandom(2 * 1024 * 1024)})
        assert (await sender.post(large))[0] == 202
        assert (await sender.post(document(ca, to=[H41])))[0] == 202
        (kept,) = (tmp_path / "hub" / "packages").glob("*.edxml")
        kept.unlink()
        kept.mkdir()
        items = await receiver.collect()
        assert [item.package is None for item in items] == [True, False]
        code, answer, _ = await receiver.request("GET", f"/api/v1/deliveries/{items[0].id}/package")
        assert (code, answer["error"]["code"]) == (503, "EDOC-STORE-001")
    finally:
        hub.stop()


async def test_scratch_a_stopped_hub_left_is_removed_at_start_once_old(
    ca: Ca, tmp_path: Path
) -> None:
    """An upload, its parts, a package's temporary file: of a hub stopped mid-way. Those
    still changing may be another instance's (edoc up --hubs), under way: kept."""
    data = tmp_path / "hub"
    old_upload = data / "incoming" / "a.edxml"
    old_parts = data / "incoming" / "b.parts"
    old_temporary = data / "packages" / ".c.edxml.d.tmp"
    new_upload = data / "incoming" / "e.edxml"
    for path in (old_upload, old_parts / "0", old_temporary, new_upload):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"<edXML/>")
    long_ago = time.time() - 2 * 86400
    for path in (old_upload, old_parts, old_temporary):
        os.utime(path, (long_ago, long_ago))
    hub = HubProcess(data, ca.keys.path).start()
    hub.stop()
    assert not any(path.exists() for path in (old_upload, old_parts, old_temporary))
    assert new_upload.exists()
