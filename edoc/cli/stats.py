"""`edoc stats`: a hub's or a node's counts as tables (or its JSON as it came)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.table import Table

from edoc import tls
from edoc.cli.options import SERVICE_URL, console, existing_keys, json_option, uses_keys
from edoc.client import AgencyClient, HubAdminClient
from edoc.model import recipient_state


@click.command()
@click.option("--hub", "hub_url", type=SERVICE_URL, metavar="URL", help="A hub's base URL.")
@click.option("--node", "node_url", type=SERVICE_URL, metavar="URL", help="A node's base URL.")
@json_option
@uses_keys
def stats(hub_url: str | None, node_url: str | None, as_json: bool, keys_dir: Path) -> None:
    """Sent and received counts of a hub or a node (give exactly one of --hub or --node)."""
    if (hub_url is None) == (node_url is None):
        raise click.UsageError("give exactly one of --hub URL or --node URL")
    report = asyncio.run(_service(hub_url, node_url, keys_dir).stats())
    if as_json:
        click.echo(json.dumps(report, ensure_ascii=False, indent=2))
    elif node_url is not None:
        print_node_stats(report, console())
    else:
        print_hub_stats(report, console())


def _service(
    hub_url: str | None, node_url: str | None, keys_dir: Path
) -> HubAdminClient | AgencyClient:
    """The client of the service asked about; a certificate is checked against the CA in
    ``keys_dir`` (the network's: a hub's, and so a hub's address given as a node's is
    reached, and refused for the statistics it answers, not for its certificate)."""
    url = node_url or hub_url
    assert url is not None
    context = tls.admin_context(existing_keys(keys_dir)) if url.startswith("https") else True
    if node_url is not None:
        return AgencyClient(node_url, ssl_context=context)
    return HubAdminClient(url, ssl_context=context)


def count(value: object) -> str:
    return f"{value:,}" if isinstance(value, int) else "0" if value is None else str(value)


def share(value: object, what: str) -> str:
    """A share as a percentage, or n/a with the reason when there is nothing to divide."""
    if isinstance(value, int | float):
        return f"{value:.1%}"
    return f"n/a ({what})"


def state_label(state: str) -> str:
    """`03 accepted`, `queued`: a recipient state with what it means."""
    try:
        known = recipient_state(state)
    except ValueError:
        return state
    name = known.name.lower().replace("_", " ")
    return name if known.value == name else f"{known.value} {name}"


def print_node_stats(report: Mapping[str, Any], out: Console) -> None:
    agencies = Table("agency", "documents sent", "documents received", title="by agency")
    for org, row in report.get("by_agency", {}).items():
        agencies.add_row(org, count(row.get("sent")), count(row.get("received")))
    agencies.add_row("total", count(report["sent"]), count(report["received"]), style="bold")
    out.print(agencies)
    partners = Table(
        "province / ministry", "documents sent to", "documents received from", title="by partner"
    )
    for root, row in report.get("by_partner_province", {}).items():
        partners.add_row(root, count(row.get("sent")), count(row.get("received")))
    out.print(partners)
    states = Table("state", "recipients", title="where the documents sent stand, by recipient")
    for state, number in report.get("status_breakdown", {}).items():
        states.add_row(state_label(state), count(number))
    out.print(states)
    out.print(f"signed by a person:  {share(report.get('share_signed'), 'nothing sent')}")
    out.print(f"delivered:           {share(report.get('share_delivered'), 'no recipients')}")
    on_time = share(report.get("on_time_share"), "nothing with a due date completed yet")
    out.print(f"completed on time:   {on_time}")


HUB_COLUMNS = (
    ("sent", "documents sent"),
    ("received", "documents received"),
    ("status_sent", "statuses sent"),
    ("status_received", "statuses received"),
    ("rejected", "refused"),
)


def _print_stuck(report: Mapping[str, Any], out: Console) -> None:
    """The deliveries nodes collect again and again without acknowledging them (said by
    hubs since they count them: an earlier one's report has none, and none is shown)."""
    if "stuck" not in report:
        return
    by_node = report.get("stuck_by_node") or {}
    nodes = ", ".join(f"{node}: {count(n)}" for node, n in sorted(by_node.items()))
    after = count(report.get("stuck_after"))
    line = f"stuck (collected {after} times or more, not acknowledged): {count(report['stuck'])}"
    out.print(f"{line} ({nodes})" if nodes else line)


def print_hub_stats(report: Mapping[str, Any], out: Console) -> None:
    table = Table(
        "province / ministry",
        *(title for _, title in HUB_COLUMNS),
        title="by province or ministry",
        caption="statuses: status messages (01 arrived … 06 completed) relayed by the hub",
    )
    for root, row in sorted(report.get("by_province", {}).items()):
        table.add_row(root, *(count(row.get(key)) for key, _ in HUB_COLUMNS))
    totals = report.get("totals", {})
    table.add_row("total", *(count(totals.get(key)) for key, _ in HUB_COLUMNS), style="bold")
    out.print(table)
    out.print(f"in flight: {count(report.get('in_flight'))}")
    _print_stuck(report, out)
    refused = report.get("rejected_by_code", {})
    if refused:
        codes = Table("error code", "refused", title="refused, by error code")
        for code, number in sorted(refused.items()):
            codes.add_row(code, count(number))
        out.print(codes)
