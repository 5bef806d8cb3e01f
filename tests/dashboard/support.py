"""A hub in-process (aiohttp's test server) with the operator's dashboard open, and what
the dashboard tests send it."""

from __future__ import annotations

import contextlib
import datetime as dt
import io
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aiohttp.test_utils import TestClient, TestServer

from edoc.hub import app as hub_app
from edoc.hub.state import HUB_ORG_ID, HubConfig
from tests.support.hub import hub_ca
from tests.support.pki import Ca

OPERATOR = "operator-credential-of-the-test"
NODE_TOKEN = "node-token-of-tay-ninh"
NGHE_AN_TOKEN = "node-token-of-nghe-an"
TAY_NINH, NGHE_AN = "000.00.00.H53", "000.00.00.H41"


@dataclass
class Hub:
    ca: Ca
    client: TestClient[Any, Any]

    async def get(self, path: str, token: str | None = OPERATOR) -> tuple[int, Any]:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        async with self.client.get(path, headers=headers, allow_redirects=False) as response:
            body = await (
                response.json() if response.content_type == "application/json" else response.text()
            )
            return response.status, body

    async def post_package(self, package: bytes, token: str = NODE_TOKEN) -> int:
        headers = {"Authorization": f"Bearer {token}"}
        packages = "/api/v1/packages"  # a stream: aiohttp warns about large raw bytes
        async with self.client.post(
            packages, data=io.BytesIO(package), headers=headers
        ) as response:
            return response.status

    async def poll(self) -> None:
        headers = {"Authorization": f"Bearer {NODE_TOKEN}"}
        async with self.client.get("/api/v1/deliveries", headers=headers) as response:
            assert response.status == 200

    async def collect_and_acknowledge(self, token: str) -> int:
        """What a node does: collect its deliveries, then acknowledge them; how many."""
        headers = {"Authorization": f"Bearer {token}"}
        async with self.client.get("/api/v1/deliveries", headers=headers) as response:
            ids = [item["id"] for item in (await response.json())["deliveries"]]
        if ids:
            ack = "/api/v1/deliveries/ack"
            async with self.client.post(ack, json={"ids": ids}, headers=headers) as response:
                assert response.status == 200
        return len(ids)


@contextlib.asynccontextmanager
async def hub(
    tmp_path: Path,
    operator: str | None = OPERATOR,
    flow_every: float = 0.0,
    store_url: str | None = None,
    visibility: float = 60.0,
) -> AsyncIterator[Hub]:
    """A hub over plain HTTP with Tây Ninh's and Nghệ An's nodes registered, its dashboard open to
    ``operator`` (closed with None); its flow figures computed again at each look unless
    ``flow_every`` says otherwise. On its own SQLite file unless ``store_url`` names a store;
    a delivery collected is offered again after ``visibility`` seconds."""
    ca = hub_ca(tmp_path / "keys")
    config = HubConfig(
        data_dir=tmp_path / "hub",
        keys_dir=tmp_path / "keys",
        org_id=HUB_ORG_ID,
        tls=False,
        operator_token=operator,
        workers=1,
        flow_every=flow_every,
        store_url=store_url,
        visibility=dt.timedelta(seconds=visibility),
    )
    await hub_app.add_node(config, "H53", NODE_TOKEN)
    await hub_app.add_node(config, "H41", NGHE_AN_TOKEN)
    async with TestClient(TestServer(hub_app.create_app(config))) as client:
        yield Hub(ca, client)
