"""/healthz says whether the service's store answers (hub and node)."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from structlog.testing import capture_logs

from edoc import errors
from edoc.hub import app as hub_app
from edoc.hub.state import HubConfig
from edoc.node import app as node_app
from edoc.node.state import NodeConfig
from tests.support.pki import SENDER, Ca


@pytest.fixture(scope="module")
def keys_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("keys")
    Ca.create(path)
    return path


def hub(data_dir: Path, keys_dir: Path) -> web.Application:
    # any identity the CA issued: /healthz does not sign
    config = HubConfig(data_dir=data_dir, keys_dir=keys_dir, org_id=SENDER, tls=False)
    return hub_app.create_app(config)


def node(data_dir: Path, keys_dir: Path) -> web.Application:
    config = NodeConfig(
        "H53",
        data_dir,
        keys_dir,
        hub_url="http://127.0.0.1:9",  # no hub: its link keeps retrying, /healthz still answers
        hub_token="t",
        hub_tls=False,
        retry_base=60,
    )
    return node_app.create_app(config)


@contextlib.asynccontextmanager
async def running(app: web.Application) -> AsyncIterator[TestClient[web.Request, web.Application]]:
    async with TestClient(TestServer(app)) as client:
        yield client


async def health(client: TestClient[web.Request, web.Application]) -> tuple[int, Any]:
    async with client.get("/healthz") as response:
        return response.status, await response.json()


async def _no_answer() -> None:
    raise errors.StorageError("store failed: database disk image is malformed")


@pytest.mark.parametrize(("make", "key"), [(hub, hub_app.STATE), (node, node_app.STATE)])
async def test_healthz_says_the_store_answers(
    make: Any, key: Any, keys_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    app = make(tmp_path / "data", keys_dir)
    async with running(app) as client:
        status, body = await health(client)
        assert status == 200
        assert body["status"] == "ok" and body["store"] == "ok"

        monkeypatch.setattr(app[key].store, "ping", _no_answer)
        status, body = await health(client)
        assert status == 503
        assert body["error"]["code"] == "EDOC-STORE-001"


async def test_healthz_keeps_what_it_said_before(keys_dir: Path, tmp_path: Path) -> None:
    """The fields it had keep their values beside "store" (others may join them)."""
    expected: dict[Callable[[Path, Path], web.Application], dict[str, object]] = {
        hub: {"status": "ok", "service": "hub", "store": "ok"},
        node: {
            "status": "ok",
            "service": "node",
            "province": "H53",
            "registered": False,
            "store": "ok",
        },
    }
    for make, fields in expected.items():
        async with running(make(tmp_path / make.__name__, keys_dir)) as client:
            status, body = await health(client)
        assert status == 200
        assert {name: body.get(name) for name in fields} == fields


async def test_metrics_answer_while_the_store_cannot_count_the_stuck_deliveries(
    keys_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """/metrics counts the stuck deliveries in the store at each scrape: a store that
    fails then costs that gauge its update (the log says why), not the other metrics."""
    app = hub(tmp_path / "data", keys_dir)
    async with running(app) as client:
        monkeypatch.setattr(app[hub_app.STATE].store, "backlogs", _no_answer)
        with capture_logs() as logs:
            async with client.get("/metrics") as response:
                status, text = response.status, await response.text()
    assert status == 200
    assert "edoc_hub_deliveries_stuck 0.0" in text and "edoc_hub_accepted" in text
    (warned,) = [line for line in logs if line["log_level"] == "warning"]
    assert "malformed" in warned["reason"]
