"""What a document and its 01 cost the hub's SQLite store in trips to its connection's
thread (each a queue hop there and a future back to the event loop; aiosqlite's
Connection._execute was the largest single item of each process's profile, issue 21):
the intake reads what it judges a package by in one trip, an acknowledgement checks and
marks its deliveries in one."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from types import SimpleNamespace
from typing import cast

import pytest
from aiohttp.test_utils import TestServer

from edoc.client import HubClient
from edoc.hub import app as hub_app
from edoc.hub import queues
from edoc.hub.state import HubConfig, HubState
from edoc.model import StatusCode
from tests.store.trips import counted
from tests.support.hub import HUB_ORG, document, hub_ca, status
from tests.support.pki import Ca

H41 = "000.00.00.H41"
# per package: the intake's one read, the acceptance; per collect: the lease; per
# acknowledgement: one change (the check of whose deliveries they are included)
INTAKE, ACCEPT, LEASE, ACK = 1, 1, 1, 1


@pytest.fixture(scope="module")
def ca(tmp_path_factory: pytest.TempPathFactory) -> Ca:
    return hub_ca(tmp_path_factory.mktemp("hubca") / "keys")


@pytest.fixture
async def hub(ca: Ca, tmp_path: Path) -> AsyncIterator[tuple[TestServer, dict[str, str]]]:
    config = HubConfig(data_dir=tmp_path, keys_dir=ca.keys.path, org_id=HUB_ORG, tls=False)
    tokens = {root: f"token-{root}" for root in ("H53", "H41")}
    for root, token in tokens.items():
        await hub_app.add_node(config, root, token)
    server = TestServer(hub_app.create_app(config))
    await server.start_server()
    yield server, tokens
    await server.close()


async def test_a_document_and_its_01_in_few_trips(
    ca: Ca, hub: tuple[TestServer, dict[str, str]]
) -> None:
    server, tokens = hub
    url = str(server.make_url("")).rstrip("/")
    store = server.app[hub_app.STATE].store
    sent = document(ca, to=[H41])
    async with HubClient(url, tokens["H53"]) as h53, HubClient(url, tokens["H41"]) as h41:
        await h41.collect()  # the token checks of both nodes are cached before counting
        await h53.collect()
        with counted(store) as trips:
            await h53.post_package(sent)
            (item,) = await h41.collect()
            assert (await h41.acknowledge([item.id])).first == (item.id,)
            await h41.post_package(status(ca, H41, sent, StatusCode.ARRIVED))
            (answer,) = await h53.collect()
            assert (await h53.acknowledge([answer.id])).first == (answer.id,)
    assert len(trips) == 2 * (INTAKE + ACCEPT + LEASE + ACK)


def test_a_collect_leases_no_more_than_one_answer_carries() -> None:
    """The lease loads the body of every package small enough to come inline: a limit is
    cut to what INLINE_TOTAL holds of such packages."""

    def state(inline_bytes: int) -> HubState:
        return cast(HubState, SimpleNamespace(config=SimpleNamespace(inline_bytes=inline_bytes)))

    assert queues._at_most(state(1024 * 1024), 100) == 16
    assert queues._at_most(state(256 * 1024), 100) == 64
    assert queues._at_most(state(256 * 1024), 10) == 10
    assert queues._at_most(state(64 * 1024 * 1024), 10) == 1
    assert queues._at_most(state(0), 100) == 100  # nothing inline: nothing loaded
