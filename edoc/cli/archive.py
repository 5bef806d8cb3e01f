"""`edoc archive …`: export a node's evidence (containers, day archives), verify it offline."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import json
from pathlib import Path
from typing import Any

import click
from cryptography import x509

from edoc import errors
from edoc.archive import day, export, hub
from edoc.archive.batches import BatchLog, Retention, Stamped, evidence_folder, stamp_new
from edoc.archive.stored import open_stored
from edoc.archive.verify import ContainerReport, verify_container
from edoc.cli.options import existing_keys, json_option, service_keys_dir_option
from edoc.hub.state import HUB_ORG_ID
from edoc.keyindex import utcnow
from edoc.store import sqlite_url


@click.group()
def archive() -> None:
    """Non-repudiation archive: time-stamped evidence, verifiable with the root alone."""


_node_dir = click.option(
    "--data-dir",
    type=click.Path(path_type=Path, file_okay=False),
    required=True,
    help="The node's own folder (`edoc up` uses DATA/nodes/ROOT).",
)
_store = click.option(
    "--store",
    "store_url",
    metavar="URL",
    help="The node's store (default: the SQLite file in --data-dir).",
)


@archive.command("stamp")
@_node_dir
@_store
@service_keys_dir_option
@click.option(
    "--every",
    type=click.FloatRange(0.5, 3600),
    default=5.0,
    show_default=True,
    help="Seconds between batches.",
)
@click.option("--once", is_flag=True, help="Stamp what is new once, then stop.")
@click.option(
    "--evidence-days",
    type=click.IntRange(1, 36500),
    default=None,
    help="Keep batches this many days, then remove them (export the days before: the"
    " exported archive is the copy that lasts).  [default: keep them all]",
)
def archive_stamp(
    data_dir: Path,
    store_url: str | None,
    keys_dir: Path,
    every: float,
    once: bool,
    evidence_days: int | None,
) -> None:
    """Time-stamp the packages a node kept since the last batch, one token over a Merkle
    tree of them, every few seconds (DATA_DIR/evidence). A running node does this itself
    when its key store has a time-stamping certificate: this is for a node run without."""
    keys = existing_keys(keys_dir)
    keys.tsa_identity()  # no authority: say so now, not at the first package
    url = store_url or sqlite_url(data_dir / "node.sqlite")
    log = BatchLog(evidence_folder(data_dir))
    retention = Retention(evidence_days)

    async def run() -> None:
        stored = await open_stored(url)
        try:
            while True:
                now = utcnow()
                stamped = await stamp_new(stored, log, export.stamper(keys, now), now)
                if stamped.packages or once:
                    click.echo(_stamped_line(stamped, log.folder, now))
                cutoff = retention.due(now)
                if cutoff is not None:
                    gone = log.prune(cutoff)
                    if gone:
                        removed = _plural(gone, "batch", "batches")
                        click.echo(f"removed {removed} older than {evidence_days} days")
                if once:
                    return
                await asyncio.sleep(every)
        finally:
            await stored.close()

    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(run())


def _plural(count: int, word: str, words: str) -> str:
    return f"{count} {word if count == 1 else words}"


def _stamped_line(stamped: Stamped, folder: Path, now: dt.datetime) -> str:
    """What a pass stamped and where it wrote it, or that there was nothing new (said
    only once: a pass every few seconds would repeat it)."""
    if not stamped.packages:
        return f"nothing new to stamp: every package kept is in a batch of {folder}"
    packages = _plural(stamped.packages, "package", "packages")
    batches = _plural(len(stamped.files), "batch", "batches")
    # the batch file, or the folder of them all
    where = stamped.files[0] if len(stamped.files) == 1 else stamped.files[0].parent
    return f"stamped {packages} in {batches} at {now:%Y-%m-%d %H:%M:%S}Z: {where}"


@archive.command("export")
@_node_dir
@_store
@service_keys_dir_option
@click.option(
    "--org", "org_id", metavar="ORGID", help="Whose evidence (with --hub: the hub's identity)."
)
@click.option("--document", "document_id", metavar="ID", help="One document, by its DocumentId.")
@click.option(
    "--day",
    "on_day",
    type=click.DateTime(formats=["%Y-%m-%d"]),
    help="Every document the organization sent or received that day (Vietnam time).",
)
@click.option(
    "--out",
    type=click.Path(path_type=Path),
    help="The container's file (--document; default evidence.asice), or the folder of"
    " the organization's day archives (--day; default archive).",
)
@click.option(
    "--hub",
    "of_hub",
    is_flag=True,
    help="The hub's evidence of --document (--data-dir: the hub's): the packages it"
    " accepted about it, each with its batch's proof.",
)
def archive_export(
    data_dir: Path,
    store_url: str | None,
    keys_dir: Path,
    org_id: str | None,
    document_id: str | None,
    on_day: dt.datetime | None,
    out: Path | None,
    of_hub: bool,
) -> None:
    """Export one document's ASiC-E container, or an organization's day archive linked
    to the previous day's in the same folder; with --hub, what the hub accepted of a
    document."""
    if (document_id is None) == (on_day is None):
        raise click.UsageError("give exactly one of --document and --day")
    if of_hub:
        if document_id is None:
            raise click.UsageError("--hub exports one --document")
        _export_hub(data_dir, store_url, keys_dir, org_id or HUB_ORG_ID, document_id, out)
        return
    if org_id is None:
        raise click.UsageError("give --org: whose evidence")
    keys = existing_keys(keys_dir)
    url = store_url or sqlite_url(data_dir / "node.sqlite")
    proofs = BatchLog(evidence_folder(data_dir)).proofs_of

    async def run() -> str:
        stored = await open_stored(url)
        try:
            if document_id is not None:
                target = out or Path("evidence.asice")
                await export.export_document(
                    stored, keys, org_id, document_id, target, utcnow(), proofs
                )
                return f"exported {document_id} to {target}"
            assert on_day is not None
            made = await export.export_day(
                stored, keys, org_id, on_day.date(), out or Path("archive"), utcnow(), proofs
            )
        finally:
            await stored.close()
        link = f", linked to {made.previous}" if made.previous else " (first of its chain)"
        return f"exported {made.documents} documents to {made.path}{link}"

    click.echo(asyncio.run(run()))


def _export_hub(
    data_dir: Path,
    store_url: str | None,
    keys_dir: Path,
    hub_org_id: str,
    document_id: str,
    out: Path | None,
) -> None:
    keys = existing_keys(keys_dir)
    url = store_url or sqlite_url(data_dir / "hub.sqlite")
    proofs = BatchLog(evidence_folder(data_dir)).proofs_of
    target = out or Path("evidence.asice")

    async def run() -> None:
        packages = await hub.open_hub_packages(url)
        try:
            await hub.export_document(
                packages, keys, hub_org_id, document_id, target, utcnow(), proofs
            )
        finally:
            await packages.close()

    asyncio.run(run())
    click.echo(f"exported the hub's evidence of {document_id} to {target}")


def _root(path: Path) -> x509.Certificate:
    try:
        return x509.load_pem_x509_certificate(path.read_bytes())
    except ValueError:
        raise errors.BadRootCertificate(f"{path} is not a PEM certificate") from None


def _container_json(report: ContainerReport) -> dict[str, Any]:
    return {
        "org_id": report.org_id,
        "document_id": report.document_id,
        "stamped_at": report.stamped_at.isoformat(),
        "messages": [
            {"file": m.file, "sender": m.sender, "signed_at": m.signed_at.isoformat()}
            for m in report.messages
        ],
    }


def _verify_one(
    path: Path, root: x509.Certificate, previous: day.Previous | None
) -> tuple[str, dict[str, Any]]:
    with path.open("rb") as file:  # read in chunks: a day of large documents may not fit
        if day.is_day_archive(file):
            return _verified_day(path, day.verify_day(file, root, previous))
        report = verify_container(file, root)
    line = (
        f"OK {path}: evidence of {report.document_id} kept by {report.org_id},"
        f" {len(report.messages)} messages, stamped {report.stamped_at:%Y-%m-%d %H:%M:%S}Z"
    )
    return line, {"file": str(path), "container": _container_json(report)}


def _verified_day(path: Path, checked: day.DayReport) -> tuple[str, dict[str, Any]]:
    link = f", linked to {checked.previous}" if checked.previous else ""
    line = (
        f"OK {path}: day {checked.day} of {checked.org_id}, {len(checked.containers)}"
        f" containers, stamped {checked.stamped_at:%Y-%m-%d %H:%M:%S}Z{link}"
    )
    return line, {
        "file": str(path),
        "day": checked.day,
        "org_id": checked.org_id,
        "previous": checked.previous,
        "containers": [_container_json(c) for c in checked.containers],
    }


@archive.command("verify")
@click.argument("files", nargs=-1, required=True, type=click.Path(path_type=Path, dir_okay=False))
@click.option(
    "--root",
    "root_path",
    required=True,
    type=click.Path(path_type=Path, dir_okay=False),
    help="The Government CA's root certificate (PEM): the only thing trusted.",
)
@json_option
def archive_verify(files: tuple[Path, ...], root_path: Path, as_json: bool) -> None:
    """Verify containers and day archives offline. Day archives given in order are
    checked as a chain: each must link to the one before it."""
    root = _root(root_path)
    previous: day.Previous | None = None
    results = []
    for path in files:
        line, result = _verify_one(path, root, previous)
        previous = day.Previous.of_file(path) if "day" in result else None
        results.append(result)
        if not as_json:
            click.echo(line)
    if as_json:
        click.echo(json.dumps(results, ensure_ascii=False, indent=2))
