"""`edoc up`: a hub and one node per province on this machine, until stopped."""

from __future__ import annotations

from pathlib import Path

import click

from edoc import launcher, network
from edoc.cli.options import network_dir_option


@click.command()
@click.option(
    "--provinces",
    default=",".join(network.PROVINCES),
    show_default=True,
    help="Root codes of the provinces to start a node for.",
)
@network_dir_option
@click.option(
    "--base-port",
    type=click.IntRange(1024, 65000),
    default=8700,
    show_default=True,
    help="The hub's port; the nodes take the ports after it.",
)
@click.option("--insecure-http", is_flag=True, help="Hub without TLS (tests only).")
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
    provinces: str,
    data_dir: Path,
    base_port: int,
    insecure_http: bool,
    hubs: int | None,
    store_url: str | None,
) -> None:
    """Start a hub and one node per province on this machine, until Ctrl-C."""
    codes = [code.strip() for code in provinces.split(",") if code.strip()]
    # a network started again comes up as planned, unless told otherwise
    given = hubs is not None or store_url is not None
    hub_plan = network.HubPlan(hubs or 1, store_url) if given else None
    net = network.plan(data_dir, codes, base_port, tls=not insecure_http, hubs=hub_plan)

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
