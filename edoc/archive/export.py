"""Exporting evidence: a document's container, or an organization's day archive.

The CA material in a container is the key store's as of the export (the issuing CA
and the CRL then published); the container's and the day archive's tokens are taken
at export, and each package carries the proof of the batch that stamped it soon after
the node kept it (the node's own task, edoc.archive.stamping). Day archives are
kept in one folder per organization, where each new one links to the newest earlier
day's.
"""

from __future__ import annotations

import datetime as dt
import functools
import re
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from edoc import atomic, errors
from edoc.archive import container, day, tsa
from edoc.archive.evidence import Evidence, KeptDocument
from edoc.archive.stored import StoredEvidence, kept_messages
from edoc.envelope import VIETNAM
from edoc.keystore import KeyStore

_DAY_FILE = re.compile(r"^(?P<org>.+)-(?P<day>\d{4}-\d{2}-\d{2})\.zip$")


def stamper(keys: KeyStore, now: dt.datetime) -> container.Stamper:
    """Stamps by the CA's time-stamping authority at ``now``, its issuing CA in the token."""
    authority = keys.tsa_identity()
    chain = keys.trust().issuing

    def stamp(digest: bytes) -> bytes:
        return tsa.stamp(authority, digest, now, chain)

    return stamp


async def kept_of(stored: StoredEvidence, org_id: str, document_id: str) -> KeptDocument:
    """What ``org_id``'s node kept of ``document_id`` (its packages' files not read here)."""
    return KeptDocument(org_id, document_id, await kept_messages(stored, org_id, document_id))


def write_container(
    kept: KeptDocument,
    keys: KeyStore,
    stamp: container.Stamper,
    now: dt.datetime,
    out: IO[bytes],
    proofs: container.Proofs | None = None,
) -> None:
    """``kept``'s container written to ``out`` (seekable), with the CA material in force
    and each package's batch proof (``proofs``: edoc.archive.batches.BatchLog.proofs_of).
    It reads files (the CRL, the packages, the batches), so a service runs it on a worker
    thread, never on its loop."""
    evidence = Evidence(
        kept.org_id, kept.document_id, kept.messages, keys.trust().issuing, keys.crl()
    )
    container.write(evidence, stamp, now, out, proofs)


def write_file(
    target: Path,
    kept: KeptDocument,
    keys: KeyStore,
    now: dt.datetime,
    proofs: container.Proofs | None = None,
) -> None:
    """``kept``'s container, stamped at ``now``, written to ``target`` as its packages
    are read: whole or not at all, and its owner's only (official documents)."""
    stamp = stamper(keys, now)
    atomic.write_file(
        target, lambda out: write_container(kept, keys, stamp, now, out, proofs), mode=0o600
    )


async def export_document(
    stored: StoredEvidence,
    keys: KeyStore,
    org_id: str,
    document_id: str,
    target: Path,
    now: dt.datetime,
    proofs: container.Proofs | None = None,
) -> None:
    """The ASiC-E container of one document ``org_id`` sent or received, in ``target``."""
    write_file(target, await kept_of(stored, org_id, document_id), keys, now, proofs)


def day_bounds(of: dt.date) -> tuple[dt.datetime, dt.datetime]:
    """A day as the agencies live it: midnight to midnight in Vietnam (UTC+7)."""
    start = dt.datetime.combine(of, dt.time(), VIETNAM)
    return start, start + dt.timedelta(days=1)


def _archives(folder: Path, org_id: str) -> list[tuple[str, Path]]:
    """``org_id``'s day archives in ``folder``, by day."""
    found = []
    for path in folder.glob("*.zip") if folder.is_dir() else ():
        named = _DAY_FILE.match(path.name)
        if named and named["org"] == org_id:
            found.append((named["day"], path))
    return sorted(found)


def previous_archive(folder: Path, org_id: str, of: dt.date) -> day.Previous | None:
    """The newest day archive of ``org_id`` in ``folder`` before ``of``; an error if
    one of a later day is there (the chain grows at its end only, never forks)."""
    archives = _archives(folder, org_id)
    later = [path.name for when, path in archives if when >= of.isoformat()]
    if later:
        raise errors.InvalidField(
            f"{folder} already holds {later[-1]}: day archives are chained in order, so"
            f" {of} can no longer be exported there"
        )
    if not archives:
        return None
    path = archives[-1][1]
    return day.Previous.of_file(path)


@dataclass(frozen=True)
class DayExport:
    path: Path
    documents: int
    previous: str  # the archive it links to, "" for the first


async def export_day(
    stored: StoredEvidence,
    keys: KeyStore,
    org_id: str,
    of: dt.date,
    folder: Path,
    now: dt.datetime,
    proofs: container.Proofs | None = None,
) -> DayExport:
    """``org_id``'s day archive of ``of`` in ``folder``, linked to the day before there."""
    target = folder / day.file_name(org_id, of)
    previous = previous_archive(folder, org_id, of)
    start, end = day_bounds(of)
    documents = await stored.documents(org_id, start, end)
    if not documents:
        raise errors.NothingToArchive(f"{org_id} sent or received no document on {of}")
    stamp = stamper(keys, now)
    folder.mkdir(parents=True, exist_ok=True)
    # official documents: their owner's only; written a container at a time (a day of
    # large documents is not whole in memory), whole or not at all
    with (
        atomic.replacing(target, mode=0o600) as out,
        day.Writer(out, org_id, of, previous, stamp, now, staging=folder) as writer,
    ):
        for document_id in documents:
            kept = await kept_of(stored, org_id, document_id)
            writer.add(
                document_id,
                functools.partial(write_container, kept, keys, stamp, now, proofs=proofs),
            )
    return DayExport(target, len(documents), previous.name if previous else "")
