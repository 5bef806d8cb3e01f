"""`edoc simulate`: plan the traffic, bring up (or reuse) a network, drive it, report."""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import signal
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from edoc import errors, network
from edoc.sim import profile as profiles
from edoc.sim import report, runner, traffic


@dataclass(frozen=True)
class Options:
    profile: str
    network_file: Path | None
    data_dir: Path | None
    days: int | None  # None: the profile's whole period
    speedup: float | None  # None: as fast as possible
    seed: int
    scale: float
    concurrency: int
    as_json: bool


def _agencies(spec: dict[str, Any], roots: tuple[str, ...]) -> dict[str, list[traffic.Agency]]:
    nodes = {node["province"]: node for node in spec["nodes"]}
    missing = [root for root in roots if root not in nodes]
    if missing:
        raise errors.InvalidField(f"the network has no node for {', '.join(missing)}")
    return {
        root: [
            traffic.Agency(
                a["org_id"], root, nodes[root]["name"], nodes[root]["url"], a["token"], a["signer"]
            )
            for a in nodes[root]["agencies"]
        ]
        for root in roots
    }


@contextlib.contextmanager
def _network(options: Options, roots: tuple[str, ...], agencies: int) -> Iterator[dict[str, Any]]:
    """The network to drive: the one in --network, or one started here and stopped after."""
    if options.network_file is not None:
        yield json.loads(options.network_file.read_text(encoding="utf-8"))
        return
    data_dir = options.data_dir or Path(tempfile.mkdtemp(prefix="edoc-sim-"))
    base_port = network.random_base_port(100)
    net = network.plan(data_dir, list(roots), base_port, tls=True, agencies=agencies)
    network.provision(net)
    network.register_tokens(net)
    processes = network.start(net)
    try:
        yield net.spec
    finally:
        network.stop(processes)


async def _drive(
    planned: list[traffic.Planned], options: Options, spec: dict[str, Any], console: Console
) -> tuple[runner.Observed, dict[str, dict[str, Any]]]:
    answers = sum(len(p.answers) for p in planned)
    columns = (
        TextColumn("{task.description:<9}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[rate]:>7} /s"),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=console, disable=options.as_json) as progress:
        tasks = {
            "sent": progress.add_task("sent", total=len(planned), rate="–"),
            "arrived": progress.add_task("arrived", total=len(planned), rate="–"),
            "answered": progress.add_task("answered", total=answers, rate="–"),
        }
        loop = asyncio.get_running_loop()
        started = loop.time()

        def tick(what: str) -> None:
            if what in tasks:
                progress.advance(tasks[what])
                done = progress.tasks[tasks[what]].completed
                rate = done / max(loop.time() - started, 1e-9)
                progress.update(tasks[what], rate=f"{rate:.1f}")

        run_id = f"sim-{options.profile}-{options.seed}-{random.getrandbits(32):08x}"
        simulation = runner.Simulation(planned, run_id, options.speedup, options.concurrency, tick)
        observed = await simulation.run()
    final = sum(1 for p in planned if p.answers and p.index in observed.arrived)
    urls = {node["province"]: node["url"] for node in spec["nodes"]}
    stats = await runner.settle(list(urls.values()), final)
    return observed, dict(zip(urls, stats, strict=True))


def _exit_on_sigterm(*_: object) -> None:
    raise SystemExit(143)  # unwinds through the network's `finally`: no orphaned services


def simulate(options: Options) -> dict[str, Any]:
    signal.signal(signal.SIGTERM, _exit_on_sigterm)
    profile = profiles.load(options.profile)
    console = Console(stderr=options.as_json, width=None if sys.stdout.isatty() else 160)
    with _network(options, profile.roots, profile.agencies_per_root) as spec:
        agencies = _agencies(spec, profile.roots)
        planned = traffic.plan(profile, agencies, options.days, options.seed, options.scale)
        try:
            observed, stats = asyncio.run(_drive(planned, options, spec, console))
        except aiohttp.ClientError as exc:
            raise errors.RemoteError("EDOC-SIM-001", f"network unreachable: {exc}", 503) from None
    result = report.build(
        profile,
        planned,
        observed,
        stats,
        {
            "seed": options.seed,
            "days": options.days,
            "scale": options.scale,
            "speedup": options.speedup,
        },
    )
    if not options.as_json:
        report.show(result, console)
    return result
