"""register_tokens: the hub gets every node's token and each node its agencies', all at
once, and again without harm."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path

import pytest

from edoc import errors, network
from edoc.hub.state import HubConfig
from edoc.node.state import NodeConfig
from edoc.store import open_hub_store, open_node_store
from edoc.web import token_digest


async def _registered(net: network.Network) -> tuple[dict[str, str | None], dict[str, str | None]]:
    hub = await open_hub_store(HubConfig(data_dir=net.data_dir / "hub", keys_dir=Path()).store)
    try:
        nodes = {
            n["province"]: await hub.node_for_token(token_digest(n["hub_token"]))
            for n in net.spec["nodes"]
        }
    finally:
        await hub.close()
    agencies: dict[str, str | None] = {}
    for node in net.spec["nodes"]:
        config = NodeConfig(
            node["province"], net.data_dir / "nodes" / node["province"], Path(), "", ""
        )
        store = await open_node_store(config.store)
        try:
            for agency in node["agencies"]:
                found = await store.agency_for_token(token_digest(agency["token"]))
                agencies[agency["org_id"]] = found
        finally:
            await store.close()
    return nodes, agencies


def test_every_token_is_registered_once_and_again_harmlessly(tmp_path: Path) -> None:
    net = network.plan(tmp_path, ["H53", "H34", "H44", "G01"], 21000, tls=True, agencies=3)
    for _ in range(2):
        network.register_tokens(net)
        nodes, agencies = asyncio.run(_registered(net))
        assert nodes == {n["province"]: n["province"] for n in net.spec["nodes"]}
        assert agencies == {
            a["org_id"]: a["org_id"] for n in net.spec["nodes"] for a in n["agencies"]
        }


def test_a_store_that_fails_leaves_none_of_the_others_opening(
    tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    """The hub's store refused (an unknown scheme, as `edoc up --store foo://bar` saved
    one) while the nodes' were opening: those were left half open, and each one's thread
    answered after the loop had closed, "RuntimeError: Event loop is closed" tracebacks
    after the error's line."""
    net = network.plan(tmp_path, ["H53", "H34", "H44", "H12"], 21000, tls=True)
    net.spec["hub"]["store"] = "foo://bar"  # as network.json has it, saved before the check
    with pytest.raises(errors.UnknownStore):
        network.register_tokens(net)
    for thread in threading.enumerate():  # the stores' threads, had any been left
        if thread is not threading.current_thread():
            thread.join(timeout=10)
    assert "Event loop is closed" not in capfd.readouterr().err
