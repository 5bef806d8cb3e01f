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
import click
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from edoc import errors, folderlock, launcher, network
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


Driven = tuple[dict[str, Any], report.Origin]  # a network's spec, and where it came from


@contextlib.contextmanager
def _network(options: Options, roots: tuple[str, ...], agencies: int) -> Iterator[Driven]:
    """The network to drive: the one in --network, or one started here and stopped after."""
    if options.network_file is not None:
        yield network.read(options.network_file), report.Origin.GIVEN
    elif options.data_dir is not None:
        with _started(options.data_dir, roots, agencies) as driven:
            yield driven
    else:  # a temporary folder goes when the run ends (a national day leaves 3.5 GB)
        with (
            # (a file a stopping service wrote late must not cost the run its report)
            tempfile.TemporaryDirectory(
                prefix="edoc-sim-", ignore_cleanup_errors=True
            ) as temporary,
            _started(Path(temporary), roots, agencies) as driven,
        ):
            yield driven


@contextlib.contextmanager
def _started(data_dir: Path, roots: tuple[str, ...], agencies: int) -> Iterator[Driven]:
    """A network for ``roots`` in ``data_dir``, provisioned and running; stopped after.
    One the folder held before (an earlier run's) keeps its keys, tokens and documents,
    and moves to the free ports probed for this run: its own may have been taken since."""
    with folderlock.held(data_dir, network.HOLDER):  # before network.json changes
        earlier = network.planned(data_dir)
        if earlier is not None:
            _refuse_too_small(earlier, roots, agencies)
        origin = report.Origin.STARTED if earlier is None else report.Origin.REUSED
        base_port = network.random_base_port(100)
        net = network.plan(data_dir, list(roots), base_port, tls=True, agencies=agencies)
        network.move(net, base_port)
        network.provision(net)
        network.register_tokens(net)
        processes = launcher.start_preloaded(net)  # 86 services importing the same, once
        try:
            yield net.spec, origin
        finally:
            launcher.stop(processes)


def _refuse_too_small(earlier: network.Network, roots: tuple[str, ...], agencies: int) -> None:
    """A network an earlier run left keeps its provinces and agencies: a profile asking
    for others is refused before it is moved and started (it failed after)."""
    held = {node["province"]: len(node["agencies"]) for node in earlier.spec["nodes"]}
    missing = [root for root in roots if held.get(root, 0) < agencies]
    if missing:
        raise errors.InputError(
            f"{earlier.path} has no node with {agencies} agencies for {','.join(missing)}:"
            " give another --data-dir for this profile's network"
        )


async def _drive(
    planned: list[traffic.Planned], options: Options, spec: dict[str, Any], console: Console
) -> tuple[runner.Observed, dict[str, report.NodeReports]]:
    urls = {node["province"]: node["url"] for node in spec["nodes"]}
    async with aiohttp.ClientSession() as session:
        before = await runner.node_stats(session, list(urls.values()))
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
    after = await runner.settle(list(urls.values()), runner.final_answers(observed), before)
    reports = (report.NodeReports(b, a) for b, a in zip(before, after, strict=True))
    return observed, dict(zip(urls, reports, strict=True))


def _exit_on_sigterm(*_: object) -> None:
    raise SystemExit(143)  # unwinds through the network's `finally`: no orphaned services


def simulate(options: Options) -> dict[str, Any]:
    signal.signal(signal.SIGTERM, _exit_on_sigterm)
    profile = profiles.load(options.profile)
    console = Console(stderr=options.as_json, width=None if sys.stdout.isatty() else 160)
    with _network(options, profile.roots, profile.agencies_per_root) as (spec, origin):
        agencies = _agencies(spec, profile.roots)
        planned = traffic.plan(profile, agencies, options.days, options.seed, options.scale)
        # a network that stops answering is the client's Unreachable (EDOC-NET-001)
        observed, nodes = asyncio.run(_drive(planned, options, spec, console))
    settings = {
        "seed": options.seed,
        "days": options.days,
        "scale": options.scale,
        "speedup": options.speedup,
    }
    result = report.build(profile, planned, observed, nodes, settings, origin)
    if not options.as_json:
        report.show(result, console)
    return result


def nothing_got_through(result: dict[str, Any]) -> errors.NothingDelivered | None:
    """The error for a run of which not one document arrived, if it is one."""
    if result["documents"] == 0 or result["arrived"] > 0:
        return None
    refused = report.counts(result["refused"])
    again = (
        "; the network has these DocumentIds from an earlier run: drive it with another --seed"
        if errors.DuplicateDocument.code in result["refused"]
        else ""
    )
    return errors.NothingDelivered(
        f"none of {result['documents']:,} documents arrived"
        f" ({result['sent']:,} accepted; refused: {refused}){again}"
    )


def something_lost(result: dict[str, Any]) -> errors.SomethingLost | None:
    """The error for a run in which the network lost something it had accepted: a
    document, or a final status on its way back, if it is one."""
    lost = result["lost"]
    seen, expected = result["final_statuses_seen"], result["final_statuses_expected"]
    if not lost and seen >= expected:
        return None
    return errors.SomethingLost(
        f"{lost:,} of {result['sent']:,} documents accepted did not arrive;"
        f" final statuses (02, 06) at the senders' nodes: {seen:,} of {expected:,}"
    )


@click.command("simulate")
@click.argument("profile_name", metavar="PROFILE")
@click.option(
    "--network",
    "network_file",
    type=click.Path(path_type=Path, exists=True, dir_okay=False),
    help="Drive the network in this network.json instead of starting one.",
)
@click.option(
    "--data-dir",
    type=click.Path(path_type=Path, file_okay=False),
    help="Where the network started for the run lives (default: a temporary folder); one"
    " an earlier run left there starts again, on the free ports this run finds.",
)
@click.option(
    "--days",
    type=click.IntRange(1),
    help="The first N working days of the period.  [default: 1, unless --year]",
)
@click.option("--year", is_flag=True, help="The profile's whole period (a year).")
@click.option("--speedup", type=click.FloatRange(min=0.001), help="Simulated seconds per second.")
@click.option(
    "--as-fast-as-possible",
    is_flag=True,
    help="Send as fast as the network takes it (the default without --speedup).",
)
@click.option(
    "--seed",
    type=int,
    default=0,
    show_default=True,
    help="Chooses the documents: the same seed plans the same ones.",
)
@click.option(
    "--scale",
    type=click.FloatRange(min=0.0001),
    default=1.0,
    show_default=True,
    help="Multiply every volume (e.g. 0.05 for a small national day).",
)
@click.option(
    "--concurrency",
    type=click.IntRange(1, 256),
    default=16,
    show_default=True,
    help="Documents posted at a time.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
def simulate_command(
    profile_name: str,
    network_file: Path | None,
    data_dir: Path | None,
    days: int | None,
    year: bool,
    speedup: float | None,
    as_fast_as_possible: bool,
    seed: int,
    scale: float,
    concurrency: int,
    as_json: bool,
) -> None:
    """Drive a network with a traffic profile's documents and report what happened.

    Exits non-zero when not one document got through (EDOC-SIM-002), or when a document
    the network accepted or a final status never arrived (EDOC-SIM-003)."""
    if year and days is not None:
        raise click.UsageError("give --days N or --year, not both")
    if as_fast_as_possible and speedup is not None:
        raise click.UsageError("give --speedup X or --as-fast-as-possible, not both")
    options = Options(
        profile=profile_name,
        network_file=network_file,
        data_dir=data_dir,
        days=None if year else (days or 1),
        speedup=speedup,
        seed=seed,
        scale=scale,
        concurrency=concurrency,
        as_json=as_json,
    )
    result = simulate(options)
    if as_json:
        click.echo(json.dumps(result, ensure_ascii=False, indent=2))
    failure = nothing_got_through(result) or something_lost(result)
    if failure is not None:
        raise failure
