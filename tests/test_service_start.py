"""Hub and node start in process: what a service opened is closed whatever fails after it."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
from aiohttp import web

from edoc import errors
from edoc.hub.app import create_app as create_hub
from edoc.hub.state import HubConfig
from edoc.node.app import create_app as create_node
from edoc.node.state import NodeConfig


async def _fails_leaving_no_thread(app: web.Application, error: type[Exception]) -> None:
    runner = web.AppRunner(app)
    before = set(threading.enumerate())
    with pytest.raises(error) as failed:
        await runner.setup()
    await runner.cleanup()

    # While the error is reported (the CLI prints it, then exits), no thread of the store
    # may be left: it is no daemon, and the process would wait for it for ever.
    started = [thread for thread in threading.enumerate() if thread not in before]
    for thread in started:
        thread.join(timeout=2)
    assert not [thread.name for thread in started if thread.is_alive()], failed.value


async def test_a_node_failing_after_its_store_opened_leaves_no_thread(tmp_path: Path) -> None:
    config = NodeConfig(
        province="H53",
        data_dir=tmp_path / "node",
        keys_dir=tmp_path / "no-keys",  # the store opens, then the hub link has no certificate
        hub_url="https://127.0.0.1:9",
        hub_token="t",
    )
    await _fails_leaving_no_thread(create_node(config), errors.KeyStoreMissing)


async def test_a_hub_failing_after_its_store_opened_leaves_no_thread(tmp_path: Path) -> None:
    # plain HTTP, so the store opens before anything looks for the hub's keys
    config = HubConfig(data_dir=tmp_path / "hub", keys_dir=tmp_path / "no-keys", tls=False)
    await _fails_leaving_no_thread(create_hub(config), errors.EdocError)


def test_a_node_logs_its_hubs_url_without_the_password(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """ "node started" carried --hub as given, password and all, into the node's log."""
    from edoc.node import app as node_app

    logged: dict[str, object] = {}
    monkeypatch.setattr(node_app, "create_app", lambda _config: web.Application())
    monkeypatch.setattr(node_app, "serve", lambda *_args, **details: logged.update(details))
    config = NodeConfig(
        province="H53",
        data_dir=tmp_path,
        keys_dir=tmp_path / "keys",
        hub_url="https://admin:s3cret@hub.example:8700",
        hub_token="t",
    )
    (tmp_path / "node.sqlite").touch()  # the store `edoc agency add` made
    node_app.run(config)
    assert logged["hub"] == "https://admin:***@hub.example:8700"


def test_a_configs_secrets_are_not_in_its_printed_form(tmp_path: Path) -> None:
    node = NodeConfig("H53", tmp_path, tmp_path, "https://hub", "hub-secret", operator_token="op")
    hub = HubConfig(tmp_path, tmp_path, operator_token="op-secret")
    assert "hub-secret" not in repr(node) and "'op'" not in repr(node)
    assert "op-secret" not in repr(hub)
