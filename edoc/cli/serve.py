"""Services in the foreground (`edoc serve hub|node`) and their administration
(`edoc hub add-node`, `edoc agency add`)."""

from __future__ import annotations

import asyncio
import datetime as dt
import secrets
from pathlib import Path
from typing import TYPE_CHECKING

import click

from edoc import errors, logs, services
from edoc.cli import failures
from edoc.cli.options import SERVICE_URL, service_keys_dir_option
from edoc.dashboard.auth import VARIABLE as OPERATOR_VARIABLE
from edoc.hub.state import HUB_ORG_ID, HubConfig
from edoc.keystore import KeyStore
from edoc.node.state import NodeConfig
from edoc.orgid import OrgId
from edoc.store import refuse_unless_held

if TYPE_CHECKING:  # edoc.network is imported by the commands that use it: it brings both apps
    from edoc.network import TokenEntry


@click.group()
def serve() -> None:
    """Run a service in the foreground."""
    services.tie_to_launcher()  # started by `edoc up` or `edoc simulate`: ends with it


data_dir_option = click.option(
    "--data-dir",
    type=click.Path(path_type=Path, file_okay=False),
    required=True,
    help="This service's own folder: its store, packages and log (`edoc up` uses"
    " DATA/hub and DATA/nodes/ROOT).",
)
store_option = click.option(
    "--store",
    "store_url",
    metavar="URL",
    help="Where the service keeps its data: sqlite:///relative/file,"
    " sqlite:////absolute/file or postgresql://user:password@host:port/database"
    " (default: the SQLite file in --data-dir).",
)
host_option = click.option(
    "--host", default="127.0.0.1", show_default=True, help="The address to listen on."
)
operator_option = click.option(
    "--operator-token",
    envvar=OPERATOR_VARIABLE,
    show_envvar=True,
    help="The operator's credential for the dashboard at /dashboard/ (the environment keeps"
    " it out of `ps`); without it the dashboard is closed.",
)
evidence_days_option = click.option(
    "--evidence-days",
    type=click.IntRange(1, 36500),
    default=None,
    help="Keep the batches time-stamping what the service kept (DATA_DIR/evidence) this"
    " many days, then remove them; a day archive exported by then keeps their proofs."
    "  [default: keep them all]",
)


@serve.command("hub")
@data_dir_option
@store_option
@service_keys_dir_option
@host_option
@click.option(
    "--port",
    type=click.IntRange(1, 65535),
    default=8700,
    show_default=True,
    help="The port to listen on.",
)
@click.option("--org-id", default=HUB_ORG_ID, show_default=True, help="The hub's own identity.")
@click.option(
    "--queue-bound",
    type=click.IntRange(1),
    default=10_000,
    show_default=True,
    help="Undelivered messages per recipient beyond which the hub answers 429.",
)
@click.option(
    "--visibility",
    type=click.FloatRange(0.1),
    default=60.0,
    show_default=True,
    help="Seconds a collected delivery stays hidden before it is offered again.",
)
@click.option(
    "--max-package-mb",
    type=click.IntRange(1),
    default=600,
    show_default=True,
    help="Larger packages are refused (413).",
)
@click.option(
    "--inline-kb",
    type=click.IntRange(0),
    default=1024,
    show_default=True,
    help="Packages up to this size come inside the collect answer; larger ones are fetched.",
)
@evidence_days_option
@click.option(
    "--package-days",
    type=click.IntRange(1, 36500),
    default=None,
    help="Keep the bytes of a package every recipient acknowledged this many days after"
    " the hub accepted it, then remove them (its row stays: resends and statistics are"
    " as before); the nodes' archives keep the packages.  [default: keep them all]",
)
@click.option("--insecure-http", is_flag=True, help="Plain HTTP instead of mutual TLS (tests).")
@operator_option
def serve_hub(
    data_dir: Path,
    store_url: str | None,
    keys_dir: Path,
    host: str,
    port: int,
    org_id: str,
    queue_bound: int,
    visibility: float,
    max_package_mb: int,
    inline_kb: int,
    evidence_days: int | None,
    package_days: int | None,
    insecure_http: bool,
    operator_token: str | None,
) -> None:
    """The national axis hub."""
    from edoc.hub import app as hub_app  # here: a node's process need not import the hub

    logs.configure()
    config = HubConfig(
        data_dir=data_dir.resolve(),  # package paths are stored: absolute, for every instance
        keys_dir=keys_dir,
        org_id=org_id,
        host=host,
        port=port,
        tls=not insecure_http,
        queue_bound=queue_bound,
        visibility=dt.timedelta(seconds=visibility),
        max_package_bytes=max_package_mb * 1024 * 1024,
        inline_bytes=inline_kb * 1024,
        evidence_days=evidence_days,
        package_days=package_days,
        store_url=store_url,
        operator_token=operator_token,
    )
    hub_app.run(config)


@click.group()
def hub() -> None:
    """Administer a hub."""


@hub.command("add-node")
@click.argument("node", metavar="ROOT")
@data_dir_option
@store_option
@click.option("--token", help="Use this token instead of a new random one.")
@click.option(
    "--replace",
    is_flag=True,
    help="Replace the token of a node already connected (its running node is refused"
    " until restarted with the new one).",
)
def hub_add_node(
    node: str, data_dir: Path, store_url: str | None, token: str | None, replace: bool
) -> None:
    """Let the node of province/ministry ROOT (e.g. H53) connect; prints its token. A node
    already connected keeps its token (refused, EDOC-HUB-008) unless --replace."""
    from edoc import network
    from edoc.hub import app as hub_app
    from edoc.hub.directory import known_root

    root = known_root(node).root_code
    token = token or secrets.token_urlsafe(32)
    config = HubConfig(data_dir=data_dir, keys_dir=Path(), store_url=store_url)
    _refuse_no_hub(config)
    in_network = network.node_token_entry(data_dir, store_url, root)  # before the change
    asyncio.run(hub_app.add_node(config, node, token, replace=replace))
    click.echo(token)  # the store holds it: printed whatever becomes of network.json
    _record(in_network, token)


def _record(in_network: TokenEntry | None, token: str) -> None:
    """Write ``token``, printed already, into the network.json of the `edoc up` network
    whose service was given it (edoc.network.TokenEntry: its next start would put the old
    one back). Not written, the command fails (its cause's code and exit code) saying
    so: a script must not carry on as if the network were as it said, and the token it
    printed, which the store holds, is still the operator's to give."""
    if in_network is None:
        return
    try:
        written = in_network.record(token)
    except OSError as exc:
        raise _not_recorded(in_network, failures.from_os_error(exc)) from None
    except errors.EdocError as exc:
        raise _not_recorded(in_network, exc) from None
    if written:
        click.echo(
            f"(written into {in_network.path} too: `edoc up` gives it at every start)", err=True
        )


def _not_recorded(in_network: TokenEntry, cause: errors.EdocError) -> errors.EdocError:
    return type(cause)(
        f"{in_network.path} could not be updated ({cause.message}): the token printed is"
        " given all the same (the store holds it), but the next `edoc up` would give the old"
        " one back; once that is fixed, run this command again with --token <the token"
        " printed> --replace"
    )


def _refuse_no_hub(config: HubConfig) -> None:
    """A store without the hub's tables is refused: opening it would make them (an SQLite
    file at a mistyped path, its folders too; the tables in whatever database --store
    names), and the token would go to a hub that never reads it. `edoc serve hub` makes
    the store; one an older edoc made has the hub's tables, upgraded as the hub would."""
    making = "`edoc serve hub --data-dir …` makes one"
    asyncio.run(refuse_unless_held(config.store, "hub", making, new=False))


def _refuse_anothers_store(config: NodeConfig) -> None:
    """A store holding another service's tables and not a node's (a hub's, a mistyped
    --store or --data-dir) is refused: the node's tables would be made beside them. No
    store yet (no SQLite file, an empty database) is a new node's: this command makes it."""
    making = "`edoc agency add` makes one where no store is"
    asyncio.run(refuse_unless_held(config.store, "node", making))


@serve.command("node")
@click.option("--province", required=True, help="Root code of what it serves, e.g. H53.")
@data_dir_option
@store_option
@service_keys_dir_option
@click.option(
    "--hub", "hub_url", type=SERVICE_URL, required=True, metavar="URL", help="The hub's base URL."
)
@click.option(
    "--hub-token",
    required=True,
    envvar="EDOC_HUB_TOKEN",
    show_envvar=True,
    help="This node's token at the hub (the environment keeps it out of `ps`).",
)
@host_option
@click.option(
    "--port",
    type=click.IntRange(1, 65535),
    default=8800,
    show_default=True,
    help="The port of the agency API and the node's endpoints.",
)
@click.option(
    "--retry-base",
    type=click.FloatRange(0.01),
    default=1.0,
    show_default=True,
    help="First retry delay (s) of the outbox; doubles with jitter.",
)
@click.option(
    "--retry-cap",
    type=click.FloatRange(0.01),
    default=60.0,
    show_default=True,
    help="Longest retry delay (s) of the outbox.",
)
@click.option(
    "--give-up-after",
    type=click.FloatRange(1),
    default=86400.0,
    show_default=True,
    help="Seconds after which an undeliverable message is marked failed.",
)
@evidence_days_option
@click.option("--hub-insecure-http", is_flag=True, help="Talk to the hub over plain HTTP.")
@operator_option
def serve_node(
    province: str,
    data_dir: Path,
    store_url: str | None,
    keys_dir: Path,
    hub_url: str,
    hub_token: str,
    host: str,
    port: int,
    retry_base: float,
    retry_cap: float,
    give_up_after: float,
    evidence_days: int | None,
    hub_insecure_http: bool,
    operator_token: str | None,
) -> None:
    """A provincial node: the agency API and the link to the hub."""
    from edoc.hub.directory import known_root
    from edoc.node import app as node_app  # here: the hub's process need not import a node

    logs.configure()
    config = NodeConfig(
        province=known_root(province).root_code,
        data_dir=data_dir,
        keys_dir=keys_dir,
        hub_url=hub_url,
        hub_token=hub_token,
        host=host,
        port=port,
        hub_tls=not hub_insecure_http,
        retry_base=retry_base,
        retry_cap=retry_cap,
        give_up_after=dt.timedelta(seconds=give_up_after),
        evidence_days=evidence_days,
        store_url=store_url,
        operator_token=operator_token,
    )
    node_app.run(config)


@click.group()
def agency() -> None:
    """Administer the agencies of a node."""


@agency.command("add")
@click.argument("org_id", metavar="ORGID")
@click.option("--name", help="The agency's name  [default: as the node has it; none at first].")
@data_dir_option
@store_option
@service_keys_dir_option
@click.option("--token", help="Use this token instead of a new random one.")
@click.option(
    "--replace",
    is_flag=True,
    help="Replace the token of an agency the node already lets in (its software is refused"
    " until given the new one).",
)
def agency_add(
    org_id: str,
    name: str | None,
    data_dir: Path,
    store_url: str | None,
    keys_dir: Path,
    token: str | None,
    replace: bool,
) -> None:
    """Let agency ORGID use the node in --data-dir; issues its seal if it has none and
    prints its bearer token. An agency the node lets in already keeps its token (refused,
    EDOC-NODE-005) unless --replace."""
    from edoc import network
    from edoc.hub import directory
    from edoc.node import app as node_app

    org = OrgId.parse(org_id)
    directory.known_root(org.root_code)  # its node's province
    if name is not None:  # (none given: the name the node has is kept)
        directory.organization_name(org_id, name)  # as the hub's registration holds it
    config = NodeConfig(
        org.root_code, data_dir, keys_dir, hub_url="", hub_token="", store_url=store_url
    )
    _refuse_anothers_store(config)
    token = token or secrets.token_urlsafe(32)
    in_network = network.agency_token_entry(data_dir, store_url, org_id)  # before the change
    # what would be refused is, before its seal is issued: a refusal leaves nothing behind
    asyncio.run(node_app.admit_agency(config, org, token, replace=replace))
    keys = KeyStore(keys_dir)
    try:
        keys.current(org_id)
    except errors.UnknownCertificate:
        keys.issue(org_id, org_name=name or "")
    asyncio.run(node_app.add_agency(config, org_id, name, token, replace=replace))
    click.echo(token)  # the store holds it: printed whatever becomes of network.json
    _record(in_network, token)


COMMANDS = (serve, hub, agency)
