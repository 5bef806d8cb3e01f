"""Two hub instances on one PostgreSQL behind one address, as `edoc up --hubs 2` runs them.

Under load, ``kill -9`` of either instance (sometimes both) at random moments, each
restarted, and once the hub's database gone for two seconds (every session ended, the
instances' LISTEN connections included, and none let in: what a server restart does to
its clients): every document a node
answered 202 for is in its recipients' inboxes exactly once, every 01 came back once,
and the counters agree. Some documents are large enough to be kept as files in the
packages folder the instances share, not in the database.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import asyncpg
import pytest

from edoc import launcher, network, services
from tests.reliability.faults import (
    FaultNetwork,
    Ledger,
    Load,
    crash_loop,
    delivered_once,
    fast_and_long,
    post,
)
from tests.store import postgres
from tests.support.network import metadata


@dataclass
class SharedHubNetwork(FaultNetwork):
    """The fault network with its hub as several instances on one PostgreSQL database."""

    store: str = ""
    hubs: int = 2

    def provision(self) -> SharedHubNetwork:
        self.net = network.plan(
            self.data_dir,
            self.provinces,
            self.base_port,
            tls=self.tls,
            agencies=self.agencies,
            hubs=network.HubPlan(self.hubs, self.store),
        )
        network.provision(self.net)
        network.register_tokens(self.net)
        (self.data_dir / "logs").mkdir(exist_ok=True)
        return self

    def restart(self, name: str) -> None:
        if name not in self.hub_names:
            super().restart(name)
            return
        log = launcher.log_path(self.network, name)
        before = launcher.times_started(log)
        process = launcher.spawn(self.network, name, self.command(name))
        self.processes[name] = process
        service = services.Service(name, self.url(name), process, log)
        services.wait_healthy([service], self.context)  # the address answers (maybe another)
        launcher.wait_listening(service, before, None)  # and this instance listens

    def url(self, name: str) -> str:
        return str(self.spec["hub"]["url"]) if name in self.hub_names else super().url(name)

    def command(self, name: str) -> list[str]:
        if name not in self.hub_names:
            return super().command(name)
        return [*dict(network.commands(self.network, self.node_args))[name], *self.hub_args]


@dataclass(frozen=True)
class Scale:
    documents: int
    large: int  # documents over 1 MB: streamed, kept in the shared packages folder
    crashes: int
    pause: tuple[float, float]
    deliver_within: float


FAST = Scale(documents=50, large=3, crashes=3, pause=(1.0, 2.5), deliver_within=90)
LONG = Scale(documents=2000, large=40, crashes=30, pause=(2.0, 8.0), deliver_within=600)


@pytest.fixture
def hub_database() -> Iterator[str]:
    """A database of this test's own for the hub instances (they create its tables)."""
    yield from postgres.fresh_database("hubs")


async def database_down(url: str, after: float, down: float) -> int:
    """``after`` seconds, the database at ``url`` goes away for ``down`` seconds, as when
    its server restarts: every session ends and no new one is let in meanwhile. Returns
    how many sessions ended."""
    await asyncio.sleep(after)
    database = url.rpartition("/")[2]
    conn = await asyncpg.connect(postgres.SERVER)  # from outside: it may not refuse itself
    try:
        await conn.execute(f'ALTER DATABASE "{database}" ALLOW_CONNECTIONS false')
        try:
            ended = await conn.fetch(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1",
                database,
            )
            await asyncio.sleep(down)
        finally:
            await conn.execute(f'ALTER DATABASE "{database}" ALLOW_CONNECTIONS true')
    finally:
        await conn.close()
    return len(ended)


async def post_large(
    net: SharedHubNetwork, senders: list[str], to: str, count: int, ledger: Ledger
) -> None:
    for n in range(count):
        sender = senders[n % len(senders)]
        files = {"ban-do.pdf": b"%PDF-1.4\n" + random.Random(n).randbytes(1_500_000)}
        await post(net.agency(sender), metadata(sender, [to]), ledger, files)


@pytest.mark.parametrize("scale", fast_and_long(FAST, LONG))
async def test_two_hubs_on_postgresql_lose_and_double_nothing(
    tmp_path: Path, hub_database: str, scale: Scale
) -> None:
    net = SharedHubNetwork(tmp_path / "net", ["H53", "H34"], store=hub_database)
    await asyncio.to_thread(net.start)
    rng = random.Random(22)
    try:
        senders = net.agencies_of("H53") + net.agencies_of("H34")[:1]
        recipients = net.agencies_of("H34") + net.agencies_of("H53")
        load = Load(net, senders, recipients, rng)
        sending_done = asyncio.Event()
        killer = asyncio.create_task(
            crash_loop(
                net, net.hub_names, sending_done, rng, at_least=scale.crashes, pause=scale.pause
            )
        )
        cut = asyncio.create_task(database_down(hub_database, rng.uniform(1.0, 5.0), 2.0))
        try:
            await asyncio.gather(
                load.run(scale.documents),
                post_large(net, senders[:2], recipients[0], scale.large, load.ledger),
            )
            assert await cut > 0
        finally:
            sending_done.set()
        crashes = await killer

        ledger = load.ledger
        assert not ledger.refused, ledger.refused
        assert len(ledger.sent) == scale.documents + scale.large
        served = {  # how the kernel spread the nodes' connections (not asserted: chance)
            f"accepted_by_{name.replace(' ', '_')}": launcher.log_path(net.network, name)
            .read_bytes()
            .count(b"accepted")
            for name in net.hub_names
        }
        figures = {"crashes_injected": crashes, **served}
        await delivered_once(net, ledger, recipients, scale.deliver_within, figures=figures)
    finally:
        await asyncio.to_thread(net.stop)
