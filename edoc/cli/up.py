"""`edoc up`: a hub and one node per province on this machine, until stopped."""

from __future__ import annotations

import asyncio
from pathlib import Path

import click

from edoc import folderlock, launcher, network
from edoc.cli.options import network_dir_option
from edoc.hub.directory import known_root
from edoc.store import check_url, refuse_unless_held

DEFAULT_BASE_PORT = 8700


@click.command()
@click.option(
    "--provinces",
    help="Root codes of the provinces to start a node for, for a new network  [default:"
    f" {','.join(network.PROVINCES)}]. A network DATA_DIR already holds keeps its"
    " provinces: others are refused.",
)
@network_dir_option
@click.option(
    "--base-port",
    type=click.IntRange(1024, 65000),
    help=f"The hub's port; the nodes take the ports after it  [default: {DEFAULT_BASE_PORT}"
    " for a new network; a network DATA_DIR holds keeps its ports, and moves to these"
    " when given].",
)
@click.option(
    "--insecure-http",
    is_flag=True,
    help="Hub without TLS (tests only), for a new network. A network DATA_DIR already"
    " holds keeps its transport: --insecure-http for one planned with TLS is refused.",
)
@click.option(
    "--hubs",
    type=click.IntRange(1, 16),
    help="Hub instances, all on the hub's port (SO_REUSEPORT, TLS in each); more than one"
    " needs a shared --store. --hubs and --store replace what network.json planned"
    " (default: as planned; at first 1).",
)
@click.option(
    "--store",
    "store_url",
    metavar="URL",
    help="The hub's store, e.g. postgresql://user@host/edoc_hub (default: as planned; at"
    " first SQLite in DATA_DIR/hub). The nodes keep SQLite.",
)
def up(
    provinces: str | None,
    data_dir: Path,
    base_port: int | None,
    insecure_http: bool,
    hubs: int | None,
    store_url: str | None,
) -> None:
    """Start a hub and one node per province on this machine, until Ctrl-C."""
    codes = [code.strip() for code in provinces.split(",") if code.strip()] if provinces else None
    for code in codes or ():
        known_root(code)  # before DATA_DIR is made (to hold it)
    if store_url is not None:  # before DATA_DIR is made (to hold it), as a bad root code
        check_url(store_url)
        asyncio.run(refuse_unless_held(store_url, "hub", "`edoc up` makes one where none is"))
    with folderlock.held(data_dir, network.HOLDER):  # before network.json changes
        hub_plan = _hub_plan(data_dir, hubs, store_url)
        _run(_plan(data_dir, codes, base_port, tls=not insecure_http, hubs=hub_plan))


def _hub_plan(data_dir: Path, hubs: int | None, store_url: str | None) -> network.HubPlan | None:
    """The hub's plan --hubs and --store change, each its own part: what neither gives is
    as network.json planned it (at first one instance on SQLite); None when neither is
    given (a network started again comes up as planned). `--hubs 1` alone put a hub
    planned on another store on a new, empty SQLite store in its folder."""
    if hubs is None and store_url is None:
        return None
    before = network.planned(data_dir)
    hub = before.spec["hub"] if before is not None else {}
    instances = hubs if hubs is not None else int(hub.get("instances", 1))
    return network.HubPlan(instances, store_url if store_url is not None else hub.get("store"))


def _run(net: network.Network) -> None:
    """Start ``net`` and serve until SIGINT or SIGTERM, saying where everything is."""

    def announce() -> None:
        hub = net.spec["hub"]
        count = int(hub.get("instances", 1))
        instances = f", {count} instances" if count > 1 else ""
        click.echo(f"edoc network up: hub {hub['url']}{instances} ({net.path})")
        for node in net.spec["nodes"]:
            click.echo(f"  node {node['province']} {node['name']:<12} {node['url']}")
            for item in node["agencies"]:
                click.echo(f"      {item['org_id']}  {item['name']}")
        click.echo("dashboards (log in with network.json's operator.token):")
        for service, url in network.dashboards(net):
            click.echo(f"  {service:<8} {url}")
        click.echo("agency tokens are in network.json; Ctrl-C stops the network")

    launcher.run(net, announce)  # provisions, starts, serves until SIGINT or SIGTERM
    click.echo("edoc network stopped")


def _plan(
    data_dir: Path,
    codes: list[str] | None,
    base_port: int | None,
    tls: bool,
    hubs: network.HubPlan | None,
) -> network.Network:
    """The network in ``data_dir``, new or planned before. Started again, it keeps its
    provinces (refusing others: their nodes' stores are there) and its transport
    (refusing --insecure-http for one planned with TLS), and moves to the ports
    asked for (README: a busy port is answered by another --base-port); what was asked
    of it is honoured or refused, never silently ignored."""
    before = network.planned(data_dir)
    if before is not None and codes is not None:
        network.keep_provinces(before, codes)  # before anything is written
    if before is not None and not tls:  # --insecure-http; without it, as planned
        network.keep_tls(before, tls)
    net = network.plan(
        data_dir,
        codes or list(network.PROVINCES),
        base_port or DEFAULT_BASE_PORT,
        tls=tls,
        hubs=hubs,
    )
    if before is not None and base_port is not None:
        network.move(net, base_port)
    return net
