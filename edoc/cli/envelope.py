"""Documents and packages: pack, unpack, inspect and verify a package; send a document
to a node's agency API."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import click

from edoc import atomic, envelope, errors, metadata, signing
from edoc.cli.options import SERVICE_URL, existing_keys, json_option, uses_keys
from edoc.client import AgencyClient
from edoc.keyindex import SigningIdentity, utcnow
from edoc.keystore import KeyStore
from edoc.model import Document


@click.command()
@click.argument("metadata_file", metavar="METADATA.json", type=click.Path(path_type=Path))
@click.argument("files", nargs=-1, type=click.Path(path_type=Path))
@click.option(
    "-o",
    "--output",
    type=click.Path(path_type=Path, dir_okay=False),
    required=True,
    help="The package file to write (its folder is made if needed).",
)
@click.option("--sign-as", metavar="ORGID", help="Seal with this organization's certificate.")
@click.option(
    "--signer-cert",
    metavar="NAME|SERIAL",
    help="Also sign with this personal certificate (full name or serial).",
)
@uses_keys
def pack(
    metadata_file: Path,
    files: tuple[Path, ...],
    output: Path,
    sign_as: str | None,
    signer_cert: str | None,
    keys_dir: Path,
) -> None:
    """Pack METADATA.json and FILEs into an edXML package (signed with --sign-as)."""
    data = metadata.load(metadata_file.read_bytes())
    attached = envelope.attachments_from_files(files)
    document = metadata.to_document(data, tuple(item for item, _ in attached))
    document = envelope.stamp_origin(document, utcnow())
    root = envelope.build_envelope(document)
    if sign_as is not None:
        root = _sign(root, document, sign_as, signer_cert, existing_keys(keys_dir))
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
        of_serial = [
            r.full_name for r in keys.records() if r.org_id == sign_as and r.has_serial(signer_cert)
        ]
        personal = keys.identity(sign_as, of_serial[0] if of_serial else signer_cert)
    return signing.sign(root, keys.identity(sign_as), personal)


@click.command()
@click.argument("package", metavar="IN", type=click.Path(path_type=Path))
@click.option(
    "-d",
    "--directory",
    type=click.Path(path_type=Path, file_okay=False),
    required=True,
    help="Where envelope.xml and the attachments go (made if needed).",
)
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

        with package.open("rb") as source:
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


@click.command()
@click.argument("package", metavar="IN", type=click.Path(path_type=Path))
@json_option
def inspect(package: Path, as_json: bool) -> None:
    """Print the header of package IN."""
    with package.open("rb") as source:
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


@click.command()
@click.argument("package", metavar="IN", type=click.Path(path_type=Path))
@json_option
@uses_keys
def verify(package: Path, as_json: bool, keys_dir: Path) -> None:
    """Verify the signatures and attachments of package IN."""
    trust = existing_keys(keys_dir).trust()
    with package.open("rb") as source:
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


@click.command()
@click.option(
    "--node",
    "node_url",
    type=SERVICE_URL,
    required=True,
    metavar="URL",
    help="The node's base URL.",
)
@click.option("--token", required=True, help="The agency's bearer token.")
@click.argument("metadata_file", metavar="METADATA.json", type=click.Path(path_type=Path))
@click.argument("files", nargs=-1, type=click.Path(path_type=Path))
@click.option(
    "--idempotency-key",
    help="Retrying with the same key and the same content never sends twice.",
)
def send(
    node_url: str,
    token: str,
    metadata_file: Path,
    files: tuple[Path, ...],
    idempotency_key: str | None,
) -> None:
    """Post a document to a node's agency API; prints the node's JSON answer."""
    agency = AgencyClient(node_url, token)
    uploads = [(path.name, path) for path in files]
    answer = asyncio.run(agency.post_document(metadata_file.read_bytes(), uploads, idempotency_key))
    click.echo(json.dumps(answer, ensure_ascii=False))


COMMANDS = (pack, unpack, inspect, verify, send)
