"""`edoc up`: a hub and one node per province on this machine, until stopped."""

from __future__ import annotations

from pathlib import Path

import click

from edoc import network
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
def up(provinces: str, data_dir: Path, base_port: int, insecure_http: bool) -> None:
    """Start a hub and one node per province on this machine, until Ctrl-C."""
    codes = [code.strip() for code in provinces.split(",") if code.strip()]
    net = network.plan(data_dir, codes, base_port, tls=not insecure_http)
    network.provision(net)
    network.register_tokens(net)

    def announce() -> None:
        click.echo(f"edoc network up: hub {net.spec['hub']['url']} ({net.path})")
        for node in net.spec["nodes"]:
            click.echo(f"  node {node['province']} {node['name']:<12} {node['url']}")
            for item in node["agencies"]:
                click.echo(f"      {item['org_id']}  {item['name']}")
        click.echo("agency tokens are in network.json; Ctrl-C stops the network")

    network.run(net, announce)  # until SIGINT or SIGTERM
    click.echo("edoc network stopped")
