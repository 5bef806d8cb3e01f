"""A full or read-only disk under a node or the hub: a clear error with a stable code, no
corrupted store, and everything flowing again once there is room.

Each data dir (or folder) is a small tmpfs mounted for the test, so this needs root (or
CAP_SYS_ADMIN); without it the tests are skipped with the reason.
"""

from __future__ import annotations

import asyncio
import random
import subprocess
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path

import pytest

from edoc import launcher
from edoc.node import submit
from tests.reliability.faults import (
    FaultNetwork,
    Ledger,
    Load,
    Mount,
    delivered_once,
    delivery_check,
    integrity,
    needs_root_mount,
    post,
)
from tests.support.network import eventually, metadata

pytestmark = pytest.mark.skipif(
    (why := needs_root_mount()) is not None, reason=why or "tmpfs mounts work"
)
ATTACHMENT = {"phu-luc.pdf": b"%PDF-1.4\n" + random.Random(1).randbytes(64 * 1024)}
# staged on disk by the node's door (a smaller post is kept in memory)
LARGE = {"scan.pdf": random.Random(2).randbytes(submit.IN_MEMORY + 1)}
STORAGE = (503, "EDOC-STORE-001")


@pytest.fixture
def mounts() -> Iterator[ExitStack]:
    with ExitStack() as stack:
        yield stack


async def _start(net: FaultNetwork, mounts: ExitStack, *where: Path) -> list[Mount]:
    """Provision, put each of ``where`` (data dirs) on its own small tmpfs, start."""
    await asyncio.to_thread(net.provision)
    placed = [mounts.enter_context(Mount(path, size="16m")) for path in where]
    mounts.callback(net.stop)  # before the unmounts (LIFO)
    await asyncio.to_thread(net.launch)
    return placed


async def test_node_disk_full_refuses_clearly_and_recovers(
    tmp_path: Path, mounts: ExitStack
) -> None:
    net = FaultNetwork(tmp_path / "net", ["H53", "H34"])
    (disk,) = await _start(net, mounts, net.node_dir("H53"))
    tay_ninh, kon_tum = net.agencies_of("H53"), net.agencies_of("H34")
    load = Load(net, tay_ninh + kon_tum, tay_ninh + kon_tum, random.Random(7))
    await load.run(8, concurrency=4)  # both ways, before the disk fills

    disk.fill()
    refused = Ledger()
    for sender in tay_ninh[:3]:  # the full node refuses, clearly, and stays up
        await post(net.agency(sender), metadata(sender, kon_tum[:1]), refused, ATTACHMENT)
    assert refused.refusals() == {STORAGE}
    assert not refused.sent
    # documents for it keep coming; the hub holds them until it has room
    incoming = Load(net, kon_tum, tay_ninh, load.rng, load.ledger, most_recipients=2)
    await incoming.run(6, concurrency=2)
    assert (await net.node_stats("H53"))["sent"] >= 1  # it still answers what it can
    assert integrity(net.node_dir("H53") / "node.sqlite") == "ok"

    disk.free()
    await load.run(4, concurrency=2)  # and it takes new documents again
    assert not load.ledger.refused, load.ledger.refused
    await delivered_once(net, load.ledger, tay_ninh + kon_tum, 60, figures={"disk_faults": 1})
    assert integrity(net.node_dir("H53") / "node.sqlite") == "ok"


async def test_hub_disk_full_holds_back_then_delivers_everything(
    tmp_path: Path, mounts: ExitStack
) -> None:
    net = FaultNetwork(tmp_path / "net", ["H53", "H34"])
    (disk,) = await _start(net, mounts, net.hub_dir)
    tay_ninh, kon_tum = net.agencies_of("H53"), net.agencies_of("H34")
    load = Load(net, tay_ninh, kon_tum, random.Random(8))
    await load.run(4, concurrency=2)
    await delivery_check(net, load.ledger.sent, kon_tum, timeout=30)

    disk.fill()
    sender = net.agency(tay_ninh[0])
    held = await post(sender, metadata(sender.org_id, kon_tum[:1]), load.ledger, ATTACHMENT)
    assert held is not None  # the node takes it and keeps it while the hub cannot

    async def hub_says_why() -> str:
        assert held is not None
        document = await sender.document(held.outgoing_id)
        return str(document["transfers"][0]["last_error"])

    reason = await eventually(hub_says_why, timeout=30)
    assert "503 EDOC-STORE-001" in reason, reason
    await load.run(4, concurrency=2)  # more, while the hub is full
    assert integrity(net.hub_dir / "hub.sqlite") == "ok"

    disk.free()
    assert not load.ledger.refused, load.ledger.refused
    await delivered_once(net, load.ledger, kon_tum, 60, figures={"disk_faults": 1})
    assert integrity(net.hub_dir / "hub.sqlite") == "ok"


# stopped cleanly, or killed: then SQLite's WAL files are left, and with them SQLite opens
# a read-only store without complaint, so the node must look at its folder itself
@pytest.mark.parametrize("stop", ["terminate", "kill"])
async def test_read_only_data_dir_refuses_clearly_and_recovers(
    tmp_path: Path, mounts: ExitStack, stop: str
) -> None:
    net = FaultNetwork(tmp_path / "net", ["H53", "H34"])
    (disk,) = await _start(net, mounts, net.node_dir("H53"))
    tay_ninh, kon_tum = net.agencies_of("H53"), net.agencies_of("H34")
    load = Load(net, tay_ninh + kon_tum, tay_ninh + kon_tum, random.Random(9))
    await load.run(6, concurrency=3)
    await delivery_check(net, load.ledger.sent, tay_ninh + kon_tum, timeout=30)

    # 1. A folder of the running node turns read-only (the one an upload too large to keep
    # in memory is staged in): such posts are refused with the code.
    refused = Ledger()
    with Mount(net.node_dir("H53") / "incoming", size="1m", carry=False, read_only=True):
        for sender in tay_ninh[:2]:
            await post(net.agency(sender), metadata(sender, kon_tum[:1]), refused, LARGE)
    assert refused.refusals() == {STORAGE}
    await load.run(3, concurrency=3)  # writable again: accepted

    # 2. The whole data dir read-only at start: the node says why and exits, once.
    getattr(net, stop)("node H53")
    incoming = Load(net, kon_tum, tay_ninh, load.rng, load.ledger, most_recipients=2)
    await incoming.run(4, concurrency=2)  # for it while it is down
    disk.remount("ro")
    started = await asyncio.to_thread(
        subprocess.run,
        net.command("node H53"),
        env=launcher.environment(net.network, "node H53"),  # its hub token
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert started.returncode == 3, started.stderr
    assert started.stderr.strip().splitlines()[-1].startswith("error EDOC-STORE-001: "), (
        started.stderr
    )
    disk.remount("rw")
    assert integrity(net.node_dir("H53") / "node.sqlite") == "ok"
    await asyncio.to_thread(net.restart, "node H53")

    assert not load.ledger.refused, load.ledger.refused
    await delivered_once(net, load.ledger, tay_ninh + kon_tum, 60, figures={"disk_faults": 2})
    assert integrity(net.node_dir("H53") / "node.sqlite") == "ok"
