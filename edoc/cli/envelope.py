"""The ``edoc`` command.

Every command exits 0 on success; on failure it prints one line,
``error CODE: message``, on stderr and exits non-zero (1 for refused input, 2 for
usage errors as click reports them, 3 for edoc's own faults).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import functools
import json
import os
import secrets
import shutil
import signal
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import aiohttp
import click
from rich.console import Console
from rich.table import Table

from edoc import atomic, envelope, errors, logs, metadata, network, pki, signing, tls
from edoc.bench import command as bench_command
from edoc.hub import app as hub_app
from edoc.hub.state import HUB_ORG_ID, HubConfig
from edoc.keystore import KeyStore, SigningIdentity, utcnow
from edoc.model import Document
from edoc.node import app as node_app
from edoc.node.state import NodeConfig
from edoc.orgid import OrgId, parse_root_code
from edoc.sim import command as sim_command

F = TypeVar("F", bound=Callable[..., Any])


def reports_errors(command: F) -> F:
    """Turn an EdocError into the one-line message and exit code of the CLI contract."""

    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return command(*args, **kwargs)
        except errors.EdocError as exc:
            click.echo(f"error {exc.code}: {exc.message}", err=True)
            sys.exit(1 if exc.status < 500 else 3)
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError) as exc:
            click.echo(f"error {errors.FileMissing.code}: {exc}", err=True)
            sys.exit(1)
        except OSError as exc:  # e.g. the port is taken: not a missing file, and not ours
            click.echo(f"error {errors.SystemRefused.code}: {exc}", err=True)
            sys.exit(3)

    return wrapper  # type: ignore[return-value]


@click.group()
@click.version_option(package_name="edoc")
def main() -> None:
    """edoc: electronic document exchange between state agencies (edXML)."""


# --- pack / unpack / inspect --------------------------------------------------------
def _read_metadata(path: Path) -> dict[str, Any]:
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise errors.FileMissing(f"cannot read {path}: {exc.strerror}") from None
    return metadata.load(raw)


keys_dir_option = click.option(
    "--keys-dir",
    type=click.Path(path_type=Path),
    default=Path("keys"),
    show_default=True,
    help="Where the CA, certificates and keys live.",
)


@main.command()
@click.argument("metadata_file", metavar="METADATA.json", type=click.Path(path_type=Path))
@click.argument("files", nargs=-1, type=click.Path(path_type=Path))
@click.option("-o", "--output", type=click.Path(path_type=Path), required=True, help="Package.")
@click.option("--sign-as", metavar="ORGID", help="Seal with this organization's certificate.")
@click.option(
    "--signer-cert",
    metavar="NAME|SERIAL",
    help="Also sign with this personal certificate (full name or serial).",
)
@keys_dir_option
@reports_errors
def pack(
    metadata_file: Path,
    files: tuple[Path, ...],
    output: Path,
    sign_as: str | None,
    signer_cert: str | None,
    keys_dir: Path,
) -> None:
    """Pack METADATA.json and FILEs into an edXML package (signed with --sign-as)."""
    data = _read_metadata(metadata_file)
    attached = envelope.attachments_from_files(files)
    document = metadata.to_document(data, tuple(item for item, _ in attached))
    document = envelope.stamp_origin(document, utcnow())
    root = envelope.build_envelope(document)
    if sign_as is not None:
        root = _sign(root, document, sign_as, signer_cert, KeyStore(keys_dir))
    elif signer_cert is not None:
        raise click.UsageError("--signer-cert needs --sign-as")
    envelope.validate(root)
    output.parent.mkdir(parents=True, exist_ok=True)
    atomic.write_file(output, lambda out: envelope.write_package(root, attached, out))
    click.echo(f"packed {document.document_id} → {output}")


def _sign(
    root: Any, document: Document, sign_as: str, signer_cert: str | None, keys: KeyStore
) -> Any:
    if sign_as != document.sender.org_id:
        raise errors.WrongOrganization(
            f"--sign-as {sign_as} but the document is from {document.sender.org_id}"
        )
    personal: SigningIdentity | None = None
    if signer_cert is not None:
        by_serial = {r.serial: r.full_name for r in keys.records() if r.org_id == sign_as}
        personal = keys.identity(sign_as, by_serial.get(signer_cert.lower(), signer_cert))
    return signing.sign(root, keys.identity(sign_as), personal)


def _open_package(path: Path) -> Any:
    try:
        return path.open("rb")
    except OSError as exc:
        raise errors.FileMissing(f"cannot read {path}: {exc.strerror}") from None


@main.command()
@click.argument("package", metavar="IN", type=click.Path(path_type=Path))
@click.option("-d", "--directory", type=click.Path(path_type=Path), required=True)
@reports_errors
def unpack(package: Path, directory: Path) -> None:
    """Write IN's envelope to DIR/envelope.xml and its attachments beside it."""
    directory.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=directory, prefix=".unpack-"))
    try:
        names: set[str] = set()

        def sink(_content_id: str, name: str) -> envelope.Writable:
            if name in names or name == "envelope.xml":
                raise errors.UnsafeAttachmentName(f"attachment name used twice: {name!r}")
            names.add(name)
            return (staging / name).open("xb")

        with _open_package(package) as source:
            result = envelope.read_package(source, sink)
        (staging / "envelope.xml").write_bytes(
            envelope.to_bytes(envelope.envelope_only(result.root))
        )
        for item in staging.iterdir():
            os.replace(item, directory / item.name)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    click.echo(f"unpacked {len(names)} attachment(s) and envelope.xml into {directory}")


def header_summary(document: Document) -> dict[str, Any]:
    return {
        "from": document.sender.org_id,
        "to": [to.org_id for to in document.recipients],
        "document_id": document.document_id,
        "code": str(document.code),
        "subject": document.subject,
        "type": {"code": document.doc_type.code, "name": document.doc_type.name},
        "priority": int(document.priority),
        "business": int(document.business.doc_type),
        "attachments": [
            {"name": a.name, "content_id": a.content_id, "size": a.size, "sha256": a.sha256}
            for a in document.attachments
        ],
    }


@main.command()
@click.argument("package", metavar="IN", type=click.Path(path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@reports_errors
def inspect(package: Path, as_json: bool) -> None:
    """Print the header of package IN."""
    with _open_package(package) as source:
        document = envelope.read_package(source).document
    summary = header_summary(document)
    if as_json:
        click.echo(json.dumps(summary, ensure_ascii=False, indent=2))
        return
    click.echo(f"from:        {summary['from']}")
    click.echo(f"to:          {', '.join(summary['to'])}")
    click.echo(f"document id: {summary['document_id']}")
    click.echo(f"code:        {summary['code']}")
    click.echo(f"subject:     {summary['subject']}")
    click.echo(f"type:        {document.doc_type.code} {document.doc_type.name}")
    click.echo(f"priority:    {int(document.priority)} ({document.priority.name.lower()})")
    for item in document.attachments:
        click.echo(f"attachment:  {item.name}  {item.size} bytes  sha256 {item.sha256}")


@main.command()
@click.argument("package", metavar="IN", type=click.Path(path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@keys_dir_option
@reports_errors
def verify(package: Path, as_json: bool, keys_dir: Path) -> None:
    """Verify the signatures and attachments of package IN."""
    trust = KeyStore(keys_dir).trust()
    with _open_package(package) as source:
        verified = signing.verify_package(envelope.read_package(source), trust, utcnow())
    signers = [s for s in (verified.seal, verified.personal) if s is not None]
    if as_json:
        result = {
            "document_id": verified.message.about,
            "signed_at": verified.signed_at.isoformat(),
            "signers": [
                {"kind": s.kind.value, "org_id": s.org_id, "name": s.name, "serial": s.serial}
                for s in signers
            ],
        }
        click.echo(json.dumps(result, ensure_ascii=False, indent=2))
        return
    click.echo(f"verified {verified.message.about} signed {verified.signed_at:%Y-%m-%d %H:%M}")
    for s in signers:
        click.echo(f"  {s.kind.value:<12} {s.org_id}  {s.name}  serial {s.serial}")


# --- keys -------------------------------------------------------------------------------
@main.group()
def keys() -> None:
    """Run the simulated Government CA: certificates, rotation, revocation."""


@keys.command("init")
@keys_dir_option
@click.option("--exist-ok", is_flag=True, help="Succeed quietly when the CA already exists.")
@reports_errors
def keys_init(keys_dir: Path, exist_ok: bool) -> None:
    """Create the root and issuing CA."""
    store = KeyStore(keys_dir)
    if exist_ok and store.exists():
        click.echo(f"CA already in {keys_dir}")
        return
    store.init()
    click.echo(f"created root and issuing CA in {keys_dir}")


@keys.command("issue")
@click.argument("org_id", metavar="ORGID")
@click.option("--name", "org_name", default="", help="The organization's name.")
@click.option("--personal", "full_name", default="", help="Issue a personal certificate.")
@click.option("--days", type=click.IntRange(1, 3650), default=730, show_default=True)
@click.option(
    "--tls-host",
    "tls_hosts",
    multiple=True,
    help="Issue a TLS server/client certificate for these host names (hub or node).",
)
@click.option("--exist-ok", is_flag=True, help="Succeed quietly when one is already valid.")
@keys_dir_option
@reports_errors
def keys_issue(
    org_id: str,
    org_name: str,
    full_name: str,
    days: int,
    tls_hosts: tuple[str, ...],
    exist_ok: bool,
    keys_dir: Path,
) -> None:
    """Issue an organization seal (or a signer's certificate, or a TLS certificate)."""
    store = KeyStore(keys_dir)
    kind = pki.CertKind.TLS if tls_hosts else None
    if exist_ok:
        try:
            found = store.identity(org_id, full_name, kind).record
        except errors.UnknownCertificate:
            pass
        else:
            click.echo(f"{found.kind.value} certificate {found.serial} already valid")
            return
    record = store.issue(
        org_id, org_name=org_name, full_name=full_name, days=days, tls_hosts=tls_hosts
    )
    click.echo(f"issued {record.kind.value} certificate {record.serial} for {org_id}")


@keys.command("rotate")
@click.argument("org_id", metavar="ORGID")
@click.option("--overlap-days", type=click.FloatRange(0, 365), default=7.0, show_default=True)
@keys_dir_option
@reports_errors
def keys_rotate(org_id: str, overlap_days: float, keys_dir: Path) -> None:
    """New key and seal for ORGID; the old one verifies until the overlap ends."""
    record = KeyStore(keys_dir).rotate(org_id, overlap_days=overlap_days)
    click.echo(f"rotated {org_id}: now signing with {record.serial}")


@keys.command("revoke")
@click.argument("target", metavar="ORGID|SERIAL")
@click.option("--reason", default="unspecified", show_default=True, help="RFC 5280 reason.")
@keys_dir_option
@reports_errors
def keys_revoke(target: str, reason: str, keys_dir: Path) -> None:
    """Revoke certificates and publish the CRL."""
    for record in KeyStore(keys_dir).revoke(target, reason):
        click.echo(f"revoked {record.kind.value} certificate {record.serial} ({reason})")


@keys.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@keys_dir_option
@reports_errors
def keys_list(as_json: bool, keys_dir: Path) -> None:
    """Every certificate with its state; warns of those expiring within 30 days."""
    store = KeyStore(keys_dir)
    now = utcnow()
    expiring = {r.serial for r in store.expiring(now)}
    records = sorted(store.records(), key=lambda r: (r.org_id, r.kind, r.not_before))
    if as_json:
        rows = [
            {**r.to_json(), "state": r.state(now), "expiring_soon": r.serial in expiring}
            for r in records
        ]
        click.echo(json.dumps(rows, ensure_ascii=False, indent=2))
        return
    table = Table("organization", "kind", "name", "serial", "valid from", "valid to", "state")
    for r in records:
        state = r.state(now) + (" [yellow]⚠ expires soon[/]" if r.serial in expiring else "")
        table.add_row(
            r.org_id,
            r.kind.value,
            r.full_name or r.org_name,
            r.serial[:16],
            f"{r.not_before:%Y-%m-%d}",
            f"{r.expires():%Y-%m-%d}",
            state,
        )
    _console().print(table)
    for serial in sorted(expiring):
        click.echo(f"warning: certificate {serial} expires within 30 days", err=True)


# --- services ------------------------------------------------------------------------------
@main.group()
def serve() -> None:
    """Run a service in the foreground."""


data_dir_option = click.option(
    "--data-dir", type=click.Path(path_type=Path), required=True, help="Where it stores."
)


@serve.command("hub")
@data_dir_option
@keys_dir_option
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", type=click.IntRange(1, 65535), default=8700, show_default=True)
@click.option("--org-id", default=HUB_ORG_ID, show_default=True, help="The hub's own identity.")
@click.option("--queue-bound", type=click.IntRange(1), default=10_000, show_default=True)
@click.option(
    "--visibility",
    type=click.FloatRange(0.1),
    default=60.0,
    show_default=True,
    help="Seconds a collected delivery stays hidden before it is offered again.",
)
@click.option("--max-package-mb", type=click.IntRange(1), default=600, show_default=True)
@click.option(
    "--inline-kb",
    type=click.IntRange(0),
    default=256,
    show_default=True,
    help="Packages up to this size come inside the collect answer; larger ones are fetched.",
)
@click.option("--insecure-http", is_flag=True, help="Plain HTTP instead of mutual TLS (tests).")
@reports_errors
def serve_hub(
    data_dir: Path,
    keys_dir: Path,
    host: str,
    port: int,
    org_id: str,
    queue_bound: int,
    visibility: float,
    max_package_mb: int,
    inline_kb: int,
    insecure_http: bool,
) -> None:
    """The national axis hub."""
    logs.configure()
    config = HubConfig(
        data_dir=data_dir,
        keys_dir=keys_dir,
        org_id=org_id,
        host=host,
        port=port,
        tls=not insecure_http,
        queue_bound=queue_bound,
        visibility=dt.timedelta(seconds=visibility),
        max_package_bytes=max_package_mb * 1024 * 1024,
        inline_bytes=inline_kb * 1024,
    )
    hub_app.run(config)


@main.group()
def hub() -> None:
    """Administer a hub."""


@hub.command("add-node")
@click.argument("node", metavar="ROOT")
@data_dir_option
@click.option("--token", help="Use this token instead of a new random one.")
@reports_errors
def hub_add_node(node: str, data_dir: Path, token: str | None) -> None:
    """Let the node of province/ministry ROOT (e.g. H53) connect; prints its token."""
    token = token or secrets.token_urlsafe(32)
    asyncio.run(hub_app.add_node(HubConfig(data_dir=data_dir, keys_dir=Path()), node, token))
    click.echo(token)


@main.command()
@click.option("--hub", "hub_url", metavar="URL", help="A hub's base URL.")
@click.option("--node", "node_url", metavar="URL", help="A node's base URL.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@keys_dir_option
@reports_errors
def stats(hub_url: str | None, node_url: str | None, as_json: bool, keys_dir: Path) -> None:
    """Sent and received counts of a hub or a node."""
    if (hub_url is None) == (node_url is None):
        raise click.UsageError("give one of --hub URL or --node URL")
    base = (hub_url or node_url or "").rstrip("/")
    report = asyncio.run(_fetch_json(f"{base}/api/v1/stats", keys_dir))
    if as_json:
        click.echo(json.dumps(report, ensure_ascii=False, indent=2))
    elif node_url is not None:
        _print_node_stats(report)
    else:
        _print_hub_stats(report)


def _console() -> Console:
    return Console(width=None if sys.stdout.isatty() else 160)


def _print_node_stats(report: dict[str, Any]) -> None:
    console = _console()
    table = Table("agency", "sent", "received")
    for org, row in report["by_agency"].items():
        table.add_row(org, str(row.get("sent", 0)), str(row.get("received", 0)))
    table.add_row("total", str(report["sent"]), str(report["received"]), style="bold")
    console.print(table)
    partners = Table("partner province", "sent to", "received from")
    for root, row in report["by_partner_province"].items():
        partners.add_row(root, str(row.get("sent", 0)), str(row.get("received", 0)))
    console.print(partners)
    console.print(
        f"share signed by a person: {report['share_signed']}   "
        f"share delivered: {report['share_delivered']}   on time: {report['on_time_share']}"
    )
    console.print(f"recipient states: {report['status_breakdown']}")


def _print_hub_stats(report: dict[str, Any]) -> None:
    table = Table("province / ministry", "sent", "received", "statuses", "rejected")
    for root, row in sorted(report["by_province"].items()):
        table.add_row(
            root,
            str(row["sent"]),
            str(row["received"]),
            f"{row['status_sent']}/{row['status_received']}",
            str(row["rejected"]),
        )
    totals = report["totals"]
    table.add_row(
        "total",
        str(totals["sent"]),
        str(totals["received"]),
        f"{totals['status_sent']}/{totals['status_received']}",
        str(totals["rejected"]),
        style="bold",
    )
    console = _console()
    console.print(table)
    console.print(f"in flight: {report['in_flight']}")
    for code, count in sorted(report["rejected_by_code"].items()):
        console.print(f"rejected {code}: {count}")


async def _answer(response: aiohttp.ClientResponse) -> Any:
    """The JSON body of a service's answer; its error, under its own code, if it refused."""
    try:
        data = await response.json(content_type=None)
    except ValueError:
        raise errors.RemoteError("EDOC-HTTP-" + str(response.status), "not JSON", 502) from None
    if response.status >= 400:
        error = data.get("error", {}) if isinstance(data, dict) else {}
        raise errors.RemoteError(
            error.get("code", f"EDOC-HTTP-{response.status}"),
            error.get("message", response.reason or ""),
            response.status,
        )
    return data


async def _fetch_json(url: str, keys_dir: Path) -> Any:
    context = tls.admin_context(KeyStore(keys_dir)) if url.startswith("https") else True
    try:
        async with aiohttp.ClientSession() as session, session.get(url, ssl=context) as response:
            return await _answer(response)
    except aiohttp.ClientError as exc:
        raise errors.InputError(f"cannot reach {url}: {exc}") from None


@serve.command("node")
@click.option("--province", required=True, help="Root code of what it serves, e.g. H53.")
@data_dir_option
@keys_dir_option
@click.option("--hub", "hub_url", required=True, metavar="URL", help="The hub's base URL.")
@click.option("--hub-token", required=True, help="This node's token at the hub.")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", type=click.IntRange(1, 65535), default=8800, show_default=True)
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
@click.option("--hub-insecure-http", is_flag=True, help="Talk to the hub over plain HTTP.")
@reports_errors
def serve_node(
    province: str,
    data_dir: Path,
    keys_dir: Path,
    hub_url: str,
    hub_token: str,
    host: str,
    port: int,
    retry_base: float,
    retry_cap: float,
    give_up_after: float,
    hub_insecure_http: bool,
) -> None:
    """A provincial node: the agency API and the link to the hub."""
    logs.configure()
    config = NodeConfig(
        province=parse_root_code(province).root_code,
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
    )
    node_app.run(config)


@main.group()
def agency() -> None:
    """Administer the agencies of a node."""


@agency.command("add")
@click.argument("org_id", metavar="ORGID")
@click.option("--name", default="", help="The agency's name.")
@data_dir_option
@keys_dir_option
@click.option("--token", help="Use this token instead of a new random one.")
@reports_errors
def agency_add(org_id: str, name: str, data_dir: Path, keys_dir: Path, token: str | None) -> None:
    """Let agency ORGID use the node in --data-dir; issues its seal if it has none and
    prints its bearer token."""
    org = OrgId.parse(org_id)
    keys = KeyStore(keys_dir)
    try:
        keys.identity(org_id)
    except errors.UnknownCertificate:
        keys.issue(org_id, org_name=name)
    token = token or secrets.token_urlsafe(32)
    config = NodeConfig(org.root_code, data_dir, keys_dir, hub_url="", hub_token="")
    asyncio.run(node_app.add_agency(config, org_id, name, token))
    click.echo(token)


@main.command()
@click.option("--node", "node_url", required=True, metavar="URL", help="The node's base URL.")
@click.option("--token", required=True, help="The agency's bearer token.")
@click.argument("metadata_file", metavar="METADATA.json", type=click.Path(path_type=Path))
@click.argument("files", nargs=-1, type=click.Path(path_type=Path))
@click.option("--idempotency-key", help="Retrying with the same key never sends twice.")
@reports_errors
def send(
    node_url: str,
    token: str,
    metadata_file: Path,
    files: tuple[Path, ...],
    idempotency_key: str | None,
) -> None:
    """Post a document to a node's agency API; prints the node's JSON answer."""
    answer = asyncio.run(_post_document(node_url, token, metadata_file, files, idempotency_key))
    click.echo(json.dumps(answer, ensure_ascii=False))


async def _post_document(
    node_url: str, token: str, metadata_file: Path, files: tuple[Path, ...], key: str | None
) -> Any:
    form = aiohttp.FormData()
    form.add_field("metadata", metadata_file.read_bytes(), content_type="application/json")
    handles = [path.open("rb") for path in files]
    try:
        for path, handle in zip(files, handles, strict=True):
            form.add_field("file", handle, filename=path.name)
        headers = {"Authorization": f"Bearer {token}"}
        if key:
            headers["Idempotency-Key"] = key
        url = f"{node_url.rstrip('/')}/api/v1/documents"
        async with (
            aiohttp.ClientSession() as session,
            session.post(url, data=form, headers=headers) as response,
        ):
            return await _answer(response)
    except aiohttp.ClientError as exc:
        raise errors.InputError(f"cannot reach {node_url}: {exc}") from None
    finally:
        for handle in handles:
            handle.close()


@main.command()
@click.option(
    "--provinces",
    default=",".join(network.PROVINCES),
    show_default=True,
    help="Root codes of the provinces to start a node for.",
)
@click.option(
    "--data-dir", type=click.Path(path_type=Path), default=Path("data"), show_default=True
)
@click.option("--base-port", type=click.IntRange(1024, 65000), default=8700, show_default=True)
@click.option("--insecure-http", is_flag=True, help="Hub without TLS (tests only).")
@reports_errors
def up(provinces: str, data_dir: Path, base_port: int, insecure_http: bool) -> None:
    """Start a hub and one node per province on this machine, until Ctrl-C."""
    codes = [code.strip() for code in provinces.split(",") if code.strip()]
    net = network.plan(data_dir, codes, base_port, tls=not insecure_http)
    network.provision(net)
    network.register_tokens(net)
    processes = network.start(net)
    click.echo(f"edoc network up: hub {net.spec['hub']['url']} ({net.path})")
    for node in net.spec["nodes"]:
        click.echo(f"  node {node['province']} {node['name']:<12} {node['url']}")
        for item in node["agencies"]:
            click.echo(f"      {item['org_id']}  {item['name']}")
    click.echo("agency tokens are in network.json; Ctrl-C stops the network")
    stopping = {"now": False}

    def request_stop(*_: object) -> None:
        stopping["now"] = True

    signal.signal(signal.SIGTERM, request_stop)
    try:
        while not stopping["now"]:
            for name, process in processes:
                if process.poll() is not None:
                    raise errors.EdocError(f"{name} exited with {process.returncode}")
            time.sleep(0.5)
    except KeyboardInterrupt:
        pass
    finally:
        network.stop(processes)
        click.echo("edoc network stopped")


@main.command()
@click.argument("profile_name", metavar="PROFILE")
@click.option(
    "--network",
    "network_file",
    type=click.Path(path_type=Path, exists=True),
    help="Drive the network in this network.json instead of starting one.",
)
@click.option(
    "--data-dir",
    type=click.Path(path_type=Path),
    help="Where the network started for the run lives (default: a temporary folder).",
)
@click.option("--days", type=click.IntRange(1), help="The first N working days of the period.")
@click.option("--year", is_flag=True, help="The profile's whole period (a year).")
@click.option("--speedup", type=click.FloatRange(min=0.001), help="Simulated seconds per second.")
@click.option("--as-fast-as-possible", is_flag=True, help="Send as fast as the network takes it.")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option(
    "--scale",
    type=click.FloatRange(min=0.0001),
    default=1.0,
    show_default=True,
    help="Multiply every volume (e.g. 0.05 for a small national day).",
)
@click.option("--concurrency", type=click.IntRange(1, 256), default=16, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@reports_errors
def simulate(
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
    """Drive a network with a traffic profile's documents and report what happened."""
    if year and days is not None:
        raise click.UsageError("give --days N or --year, not both")
    if as_fast_as_possible and speedup is not None:
        raise click.UsageError("give --speedup X or --as-fast-as-possible, not both")
    options = sim_command.Options(
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
    result = sim_command.simulate(options)
    if as_json:
        click.echo(json.dumps(result, ensure_ascii=False, indent=2))


@main.command()
@click.option(
    "--quick", is_flag=True, help="A one-minute version: fewer documents, no year replay."
)
@click.option(
    "--output",
    type=click.Path(path_type=Path, file_okay=False),
    default=Path("bench"),
    show_default=True,
    help="Where results.json and RESULTS.md go.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the results as JSON.")
@reports_errors
def bench(quick: bool, output: Path, as_json: bool) -> None:
    """Measure the machine's signing limit, then a real network against it."""
    console = Console(stderr=True)
    plan = bench_command.QUICK if quick else bench_command.FULL
    results = bench_command.run(plan, lambda step: console.log(step))
    as_file, summary = bench_command.save(results, output)
    if as_json:
        click.echo(json.dumps(results, ensure_ascii=False, indent=2))
        return
    table = Table("goal", "target", "observed", "met", title="edoc bench")
    for goal in results["targets"]:
        table.add_row(
            goal["goal"], goal["target"], str(goal["observed"]), "yes" if goal["met"] else "no"
        )
    Console().print(table)
    Console().print(summary.read_text(encoding="utf-8"))
    click.echo(f"written: {as_file}, {summary}")
