"""Services on PostgreSQL: a hub's /healthz says whether its database answers, and
several hub instances need a store they can share."""

from __future__ import annotations

import asyncio
import datetime as dt
import time
from dataclasses import replace
from pathlib import Path

import pytest
from click.testing import CliRunner

from edoc import network
from edoc.cli import main
from edoc.cli.failures import EXIT_REFUSED
from edoc.hub import app as hub_app
from edoc.hub import queues
from edoc.hub.state import HubConfig
from tests.store import postgres
from tests.store.test_health import health, running
from tests.store.test_postgres import PACKAGE, SENT
from tests.support.pki import SENDER, Ca


@pytest.fixture(scope="module")
def keys_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("keys")
    Ca.create(path)
    return path


async def test_healthz_says_whether_the_hubs_database_answers(
    keys_dir: Path, tmp_path: Path, fresh: str
) -> None:
    config = HubConfig(tmp_path, keys_dir, org_id=SENDER, tls=False, store_url=fresh)
    async with running(hub_app.create_app(config)) as client:
        assert await health(client) == (200, {"status": "ok", "service": "hub", "store": "ok"})
        await postgres.dropping(fresh.rpartition("/")[2])  # its sessions end with it
        status, body = await health(client)
        assert status == 503
        assert body["error"]["code"] == "EDOC-STORE-001"


def test_several_hubs_need_a_shared_store(tmp_path: Path) -> None:
    refused = CliRunner().invoke(
        main, ["up", "--hubs", "2", "--data-dir", str(tmp_path)], catch_exceptions=False
    )
    assert refused.exit_code == EXIT_REFUSED, refused.output
    assert "shared store" in refused.stderr
    assert not (tmp_path / "network.json").exists()  # nothing planned, nothing started


async def test_a_long_poll_on_one_instance_answers_when_another_accepts(
    keys_dir: Path, tmp_path: Path, fresh: str
) -> None:
    config = HubConfig(tmp_path, keys_dir, org_id=SENDER, tls=False, store_url=fresh)
    apps = [hub_app.create_app(replace(config, data_dir=tmp_path / n)) for n in ("a", "b")]
    async with running(apps[0]), running(apps[1]):
        accepting, polling = (app[hub_app.STATE] for app in apps)
        waiting = asyncio.create_task(queues.collect(polling, "H34", wait=10, limit=10))
        await asyncio.sleep(0.2)  # it found nothing and waits
        began = time.monotonic()
        await accepting.store.accept(PACKAGE, dt.datetime.now(dt.UTC), SENT)
        leased = await waiting
        # woken by the notification, not by its next look a second later
        assert time.monotonic() - began < 0.6
        assert [d.about for d in leased] == [PACKAGE.about]


def test_a_network_comes_up_again_as_planned_unless_told_otherwise(tmp_path: Path) -> None:
    shared = network.HubPlan(2, "postgresql://edoc@db.example/edoc_hub")
    first = network.plan(tmp_path, ["H53"], 24000, tls=True, hubs=shared)
    assert network.hub_names(first) == ["hub 1", "hub 2"]
    again = network.plan(tmp_path, ["H53"], 24000, tls=True)  # `edoc up` without the flags
    assert network.hub_names(again) == ["hub 1", "hub 2"]
    commands = dict(network.commands(again))
    for name in ("hub 1", "hub 2"):  # one data folder and port, one database
        assert commands[name][commands[name].index("--store") + 1] == shared.store
        assert commands[name][commands[name].index("--port") + 1] == "24000"
    back = network.plan(tmp_path, ["H53"], 24000, tls=True, hubs=network.HubPlan())
    assert network.hub_names(back) == ["hub"]
    assert "--store" not in dict(network.commands(back))["hub"]
