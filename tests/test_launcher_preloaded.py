"""Services forked from the preloaded server (launcher.start_preloaded, what `edoc simulate`
starts its network with) behave as the ones started as new interpreters: same logs,
environment and exchange, stopped with exit 0; a failing one is reported with its log."""

from __future__ import annotations

import asyncio
import socket
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
