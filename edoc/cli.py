"""The ``edoc`` command.

Every command exits 0 on success; on failure it prints one line,
``error CODE: message``, on stderr and exits non-zero (1 for refused input, 2 for
usage errors as click reports them, 3 for edoc's own faults).
"""

from __future__ import annotations

import functools
import json
import os
import shutil
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from edoc import envelope, errors, metadata
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


@main.command()
@click.argument("metadata_file", metavar="METADATA.json", type=click.Path(path_type=Path))
@click.argument("files", nargs=-1, type=click.Path(path_type=Path))
@click.option("-o", "--output", type=click.Path(path_type=Path), required=True, help="Package.")
@reports_errors
def pack(metadata_file: Path, files: tuple[Path, ...], output: Path) -> None:
    """Pack METADATA.json and FILEs into an edXML package."""
    data = _read_metadata(metadata_file)
    attached = envelope.attachments_from_files(files)
    document = metadata.to_document(data, tuple(item for item, _ in attached))
    root = envelope.build_envelope(document)
    envelope.validate(root)
    _write_atomically(output, lambda out: envelope.write_package(root, attached, out))
    click.echo(f"packed {document.document_id} → {output}")


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
