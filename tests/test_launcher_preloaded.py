"""Services forked from the preloaded server (launcher.start_preloaded, what `edoc simulate`
starts its network with) behave as the ones started as new interpreters: same logs,
environment and exchange, stopped with exit 0; a failing one is reported with its log."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from edoc import errors, launcher, network
from tests.support.network import (
    FAST_RETRIES,
    Agency,
    eventually,
    metadata,
    provision,
    simulate,
)


@pytest.fixture
def planned(tmp_path: Path) -> Iterator[network.Network]:
    net = network.plan(tmp_path, ["H53", "H34"], network.random_base_port(), tls=True)
    provision(net)
    network.register_tokens(net)
    yield net


async def test_a_network_forked_from_the_preloaded_server_exchanges_and_stops(
    planned: network.Network,
) -> None:
    processes = await asyncio.to_thread(launcher.start_preloaded, planned, FAST_RETRIES)
    try:
        assert [name for name, _ in processes] == ["hub", "node H53", "node H34"]
        assert len({process.pid for _, process in processes}) == 3
        for name, process in processes:
            assert process.poll() is None
            assert b"started" in launcher.log_path(planned, name).read_bytes()
        (sender, recipient) = (
            Agency(n["url"], n["agencies"][0]["token"], n["agencies"][0]["org_id"])
            for n in planned.spec["nodes"]
        )
        await sender.post_document(metadata(sender.org_id, [recipient.org_id]))
        await eventually(recipient.inbox)
    finally:
        await asyncio.to_thread(launcher.stop, processes)
    assert [process.returncode for _, process in processes] == [0, 0, 0]


def test_the_hub_token_is_in_no_services_arguments(planned: network.Network) -> None:
    """A forked service's /proc cmdline is the server's, whatever it was given: what must
    hold no secret is the arguments fork gives it (tokens go in its environment)."""
    tokens = [node["hub_token"] for node in planned.spec["nodes"]]
    secrets = [*tokens, planned.spec["operator"]["token"]]
    for name, command in network.commands(planned, FAST_RETRIES):
        assert not [s for s in secrets if any(s in argument for argument in command)], name
        if name != "hub":
            assert launcher.environment(planned, name)["EDOC_HUB_TOKEN"] in tokens


def test_a_service_that_fails_to_start_is_reported_with_its_log(
    planned: network.Network,
) -> None:
    taken = planned.spec["nodes"][1]["port"]
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", taken))
        holder.listen()
        with pytest.raises(errors.AddressInUse, match="node H34 exited: ") as failed:
            launcher.start_preloaded(planned, FAST_RETRIES)
    assert str(taken) in str(failed.value) and "node-H34.log" in str(failed.value)


def test_simulate_starts_its_own_network_preloaded_and_stops_it(tmp_path: Path) -> None:
    report = simulate(
        "tay-ninh-2021", "--days", "1", "--scale", "0.2", "--data-dir", str(tmp_path / "net")
    )
    assert report["documents"] > 0 and report["arrived"] == report["documents"]
    logs = sorted(p.name for p in (tmp_path / "net" / "logs").iterdir())
    assert logs == ["hub.log", "node-H12.log", "node-H34.log", "node-H44.log", "node-H53.log"]


def test_simulate_without_a_data_dir_leaves_no_folder_behind(tmp_path: Path) -> None:
    report = simulate(
        "tay-ninh-2021", "--days", "1", "--scale", "0.05", env={"TMPDIR": str(tmp_path)}
    )
    assert report["documents"] > 0 and report["arrived"] == report["documents"]
    assert list(tmp_path.iterdir()) == []  # its network's temporary folder is gone


def _descendants(pid: int) -> set[int]:
    """The processes ``pid`` started, those they started, and so on."""
    parents = {}
    for entry in Path("/proc").iterdir():
        with contextlib.suppress(OSError, ValueError):
            parents[int(entry.name)] = int(
                (entry / "stat").read_text().rpartition(")")[2].split()[1]
            )
    found, last = set(), {pid}
    while last:
        last = {child for child, parent in parents.items() if parent in last}
        found |= last
    return found


def _running(pids: set[int]) -> set[int]:
    """Those of ``pids`` still running (an ended one no process waited for is a zombie)."""
    alive = set()
    for pid in pids:
        with contextlib.suppress(OSError):
            if Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0] != "Z":
                alive.add(pid)
    return alive


def _all_started(data: Path, services: int) -> bool:
    logs = list((data / "logs").glob("*.log")) if (data / "logs").is_dir() else []
    return len(logs) == services and all(b" started" in log.read_bytes() for log in logs)


def test_forked_services_end_with_a_simulate_killed_outright(tmp_path: Path) -> None:
    """Killed with SIGKILL, `edoc simulate` left its network's services running: forked
    from the preloaded server, which ended with it, they ran on with nobody to stop them."""
    data = tmp_path / "net"
    slowly = ("--days", "1", "--speedup", "0.01", "--data-dir", str(data))
    simulating = subprocess.Popen(
        [*network.edoc_command(), "simulate", "tay-ninh-2021", *slowly],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 300
        while not _all_started(data, 5) and simulating.poll() is None:
            assert time.monotonic() < deadline, "the network did not start"
            time.sleep(0.2)
        started = _descendants(simulating.pid)  # the fork server, the services it forked
        assert simulating.poll() is None and len(started) >= 6
        os.kill(simulating.pid, signal.SIGKILL)  # simulate alone, not its process group
        simulating.wait()
        deadline = time.monotonic() + 15  # a service's stop takes up to its shutdown_timeout
        while _running(started) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not _running(started)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(simulating.pid, signal.SIGKILL)  # whatever is left, on a failure
