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
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import aiohttp
import click
from rich.console import Console
from rich.table import Table

from edoc import envelope, errors, logs, metadata, pki, signing, tls
from edoc.hub import app as hub_app
from edoc.hub.state import HUB_ORG_ID, HubConfig
from edoc.keystore import KeyStore, SigningIdentity, utcnow
from edoc.model import Document

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
        except OSError as exc:
            click.echo(f"error {errors.FileMissing.code}: {exc}", err=True)
            sys.exit(1)

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
    _write_atomically(output, lambda out: envelope.write_package(root, attached, out))
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


def _write_atomically(path: Path, write: Callable[[Any], None]) -> None:
    """Write through a temporary file beside ``path`` so a failure leaves no half file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(handle, "wb") as out:
            write(out)
        os.replace(temporary, path)
    except BaseException:
        os.unlink(temporary)
        raise


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
    Console(width=None if sys.stdout.isatty() else 160).print(table)
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
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@keys_dir_option
@reports_errors
def stats(hub_url: str | None, as_json: bool, keys_dir: Path) -> None:
    """Sent and received counts of a hub."""
    if hub_url is None:
        raise click.UsageError("give --hub URL")
    report = asyncio.run(_fetch_json(f"{hub_url.rstrip('/')}/api/v1/stats", keys_dir))
    if as_json:
        click.echo(json.dumps(report, ensure_ascii=False, indent=2))
        return
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
    console = Console(width=None if sys.stdout.isatty() else 160)
    console.print(table)
    console.print(f"in flight: {report['in_flight']}")
    for code, count in sorted(report["rejected_by_code"].items()):
        console.print(f"rejected {code}: {count}")


async def _fetch_json(url: str, keys_dir: Path) -> Any:
    context = tls.admin_context(KeyStore(keys_dir)) if url.startswith("https") else True
    try:
        async with aiohttp.ClientSession() as session, session.get(url, ssl=context) as response:
            data = await response.json()
            if response.status >= 400:
                error = data.get("error", {})
                raise errors.InputError(f"{url}: {error.get('code')} {error.get('message')}")
            return data
    except aiohttp.ClientError as exc:
        raise errors.InputError(f"cannot reach {url}: {exc}") from None
