"""A day's archive of one organization: its containers, linked to the previous day's.

A ZIP of::

    containers/0001.asice ...   one ASiC-E container per document (edoc.archive.container)
    linkinginfo                 JSON: each container's file, document id and SHA-256, and
                                the previous day's archive's name and SHA-256
    linkinginfo.tst             RFC 3161 token over linkinginfo's SHA-256

As X-Road's message-log archives: each day names the hash of the day before, so a
container dropped from any archive (its line in linkinginfo with it) changes that
archive's hash and breaks the next day's link; the token dates linkinginfo, so the
last archive of the chain cannot be rewritten unseen either.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import io
import json
import os
import tempfile
import zipfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from cryptography import x509

from edoc import errors
from edoc.archive import container, tsa
from edoc.archive.verify import ContainerReport, verify_container

LINKING = "linkinginfo"
LINKING_TOKEN = "linkinginfo.tst"  # noqa: S105 - a file name
CONTAINERS = "containers/"


@dataclass(frozen=True)
class Previous:
    """The day archive a day links to: its file name and SHA-256."""

    name: str
    sha256: bytes

    @classmethod
    def of_bytes(cls, name: str, data: bytes) -> Previous:
        return cls(name, hashlib.sha256(data).digest())

    @classmethod
    def of_file(cls, path: Path) -> Previous:
        """``path``'s archive, read in chunks (a day may be larger than memory)."""
        with path.open("rb") as file:
            return cls(path.name, hashlib.file_digest(file, "sha256").digest())


def file_name(org_id: str, day: dt.date) -> str:
    return f"{org_id}-{day:%Y-%m-%d}.zip"


# Writes a container to the (seekable) file it is given: edoc.archive.container.write.
WriteContainer = Callable[[IO[bytes]], object]


class Writer:
    """A day's archive written to ``out`` (seekable) a container at a time, so a day of
    large documents never is whole in memory: each container is written to a temporary
    file in ``staging`` (beside the archive: a temporary folder may be held in memory),
    then copied into the archive in chunks, hashed as it is; linkinginfo lists those
    digests, so it is of the very bytes the archive holds. A context manager: its end,
    unless by an exception, writes linkinginfo, linked to ``previous`` (None: the
    first), and its token."""

    def __init__(
        self,
        out: IO[bytes],
        org_id: str,
        day: dt.date,
        previous: Previous | None,
        stamper: container.Stamper,
        now: dt.datetime,
        staging: Path | None = None,
    ) -> None:
        self._archive = zipfile.ZipFile(out, "w")
        self._linking: dict[str, Any] = {
            "version": 1,
            "org_id": org_id,
            "day": day.isoformat(),
            "previous": None
            if previous is None
            else {"file": previous.name, "sha256": previous.sha256.hex()},
            "containers": [],
        }
        self._stamper = stamper
        self._now = now
        self._staging = staging

    def __enter__(self) -> Writer:
        return self

    def __exit__(self, kind: type[BaseException] | None, *_: object) -> None:
        with self._archive:
            if kind is None:
                self._finish()

    def add(self, document_id: str, write: WriteContainer) -> None:
        """The container ``write`` writes, as the archive's next."""
        listed: list[dict[str, str]] = self._linking["containers"]
        name = f"{CONTAINERS}{len(listed) + 1:04d}.asice"
        with tempfile.TemporaryFile(dir=self._staging) as staged:
            write(staged)
            entry = _entry(name, self._now, zipfile.ZIP_STORED)  # containers are ZIPs already
            entry.file_size = staged.seek(0, os.SEEK_END)  # (whether it needs ZIP64)
            staged.seek(0)
            digest = hashlib.sha256()
            with self._archive.open(entry, "w") as into:
                while chunk := staged.read(container.COPY_CHUNK):
                    digest.update(chunk)
                    into.write(chunk)
        listed.append({"file": name, "document_id": document_id, "sha256": digest.hexdigest()})

    def _finish(self) -> None:
        text = json.dumps(self._linking, ensure_ascii=False, indent=2).encode()
        self._archive.writestr(_entry(LINKING, self._now, zipfile.ZIP_DEFLATED), text)
        token = self._stamper(hashlib.sha256(text).digest())
        self._archive.writestr(_entry(LINKING_TOKEN, self._now, zipfile.ZIP_STORED), token)


def build(
    org_id: str,
    day: dt.date,
    containers: Sequence[tuple[str, bytes]],  # (document id, container)
    previous: Previous | None,
    stamper: container.Stamper,
    now: dt.datetime,
) -> bytes:
    """The day's archive of ``containers``, linked to ``previous`` (None: the first)."""
    out = io.BytesIO()
    with Writer(out, org_id, day, previous, stamper, now) as writer:
        for document_id, data in containers:
            writer.add(document_id, _written(data))
    return out.getvalue()


def _written(data: bytes) -> WriteContainer:
    return lambda into: into.write(data)


def _entry(name: str, when: dt.datetime, compression: int) -> zipfile.ZipInfo:
    info = zipfile.ZipInfo(name, date_time=when.timetuple()[:6])
    info.compress_type = compression
    info.external_attr = 0o644 << 16
    return info


def is_day_archive(source: bytes | IO[bytes] | Path) -> bool:
    try:
        with zipfile.ZipFile(_seekable(source)) as archive:
            return LINKING in archive.namelist()
    except (zipfile.BadZipFile, ValueError):
        return False


def _seekable(source: bytes | IO[bytes] | Path) -> IO[bytes] | Path:
    return io.BytesIO(source) if isinstance(source, bytes) else source


# --- verifying ---------------------------------------------------------------------------
@dataclass(frozen=True)
class DayReport:
    org_id: str
    day: str
    stamped_at: dt.datetime
    previous: str  # the previous archive's file name, "" for the first
    containers: tuple[ContainerReport, ...]


_NO_LINKING = f"the archive's {LINKING} is missing or unreadable"


def _unreadable(exc: Exception) -> errors.BadContainer:
    return errors.BadContainer(f"not a readable day archive: {exc}")


def _open(source: bytes | IO[bytes] | Path) -> zipfile.ZipFile:
    try:
        archive = zipfile.ZipFile(_seekable(source))
    except (zipfile.BadZipFile, ValueError, OSError) as exc:
        raise _unreadable(exc) from None
    return container.checked(archive, _check_entries)


def _check_entries(archive: zipfile.ZipFile) -> None:
    names = archive.namelist()
    if len(set(names)) != len(names) or len(names) > container.MAX_FILES:
        raise errors.BadContainer("the archive has a file name twice or too many files")
    container.check_compressions(archive)
    for entry in archive.infolist():
        # copied out to be verified: stored (as Writer stores them), a container's copy
        # is no larger than the archive; deflated, a thousand times that (a temporary
        # folder filled from a few MB before its SHA-256 is found wrong)
        if entry.filename.startswith(CONTAINERS) and entry.compress_type != zipfile.ZIP_STORED:
            raise errors.BadContainer(f"{entry.filename} must be stored, not compressed")


def _read(archive: zipfile.ZipFile, name: str, missing: str) -> bytes:
    """A small file of the archive, whole; BadContainer saying ``missing`` if it has none."""
    try:
        return container.read_whole(archive, archive.getinfo(name))
    except KeyError:
        raise errors.BadContainer(missing) from None
    except container.ZIP_FAULTS as exc:
        raise _unreadable(exc) from None


def _linking(text: bytes) -> dict[str, Any]:
    """linkinginfo: an object listing the containers, each an object (read before its
    token is checked: anyone's)."""
    try:
        linking = container.read_json(text, LINKING)
    except errors.BadContainer:
        raise errors.BadContainer(_NO_LINKING) from None
    if not isinstance(linking, dict):
        raise errors.BadContainer(_NO_LINKING)
    listed = linking.get("containers")
    if not isinstance(listed, list) or not all(isinstance(entry, dict) for entry in listed):
        raise errors.BadContainer(_NO_LINKING)
    return linking


def _check_containers(archive: zipfile.ZipFile, listed: list[dict[str, Any]]) -> None:
    """Each container listed is in the archive, and no other (each one's SHA-256 is
    checked as it is copied to be verified: _staged)."""
    held = {name for name in archive.namelist() if name.startswith(CONTAINERS)}
    named = [str(entry.get("file", "")) for entry in listed]
    for name in named:
        if name not in held:
            raise errors.BrokenArchiveChain(f"{name}, listed in {LINKING}, is not in the archive")
    for name in sorted(held - set(named)):
        raise errors.BrokenArchiveChain(f"{name} is in the archive but not in {LINKING}")


def _staged(archive: zipfile.ZipFile, entry: dict[str, Any], staged: IO[bytes]) -> None:
    """The container ``entry`` lists copied into ``staged`` in chunks, and found to be
    the one it lists by the SHA-256 of the very bytes copied: hashed in a read of its own
    before, a file changed between the two reads would be verified as another."""
    name = str(entry["file"])
    digest = hashlib.sha256()
    try:
        with archive.open(name) as file:
            while chunk := file.read(container.COPY_CHUNK):
                digest.update(chunk)
                staged.write(chunk)
    except container.ZIP_FAULTS as exc:
        raise _unreadable(exc) from None
    if not hmac.compare_digest(digest.hexdigest(), str(entry.get("sha256", "")).lower()):
        raise errors.BrokenArchiveChain(f"{name} does not match its SHA-256 in {LINKING}")


def _check_previous(linking: dict[str, Any], previous: Previous | None) -> str:
    link = linking.get("previous")
    if previous is None:
        return str(link.get("file", "")) if isinstance(link, dict) else ""
    if not isinstance(link, dict):
        raise errors.BrokenArchiveChain(
            f"this archive links to no previous day, but {previous.name} was given before it"
        )
    if not hmac.compare_digest(previous.sha256.hex(), str(link.get("sha256", ""))):
        raise errors.BrokenArchiveChain(
            f"the previous day's archive {previous.name} does not match the hash this archive"
            f" links to ({link.get('file', '?')})"
        )
    return previous.name


def verify_day(
    source: bytes | IO[bytes] | Path, root: x509.Certificate, previous: Previous | None = None
) -> DayReport:
    """Check a day's archive (a file, or its bytes): its token, each container listed
    and present, each container's proofs, and (given ``previous``) its link to the day
    before. Its containers are read in chunks, each into a temporary file to be checked:
    a day of large documents is never whole in memory."""
    with _open(source) as archive:
        text = _read(archive, LINKING, _NO_LINKING)
        linking = _linking(text)
        token = _read(archive, LINKING_TOKEN, f"the archive lacks {LINKING_TOKEN}")
        stamp = tsa.check_token(token, hashlib.sha256(text).digest(), root)
        linked_to = _check_previous(linking, previous)
        _check_containers(archive, linking["containers"])
        reports = tuple(
            _verify_listed(archive, entry, linking, root) for entry in linking["containers"]
        )
    return DayReport(
        org_id=str(linking.get("org_id", "")),
        day=str(linking.get("day", "")),
        stamped_at=stamp.time,
        previous=linked_to,
        containers=reports,
    )


def _verify_listed(
    archive: zipfile.ZipFile, entry: dict[str, Any], linking: dict[str, Any], root: x509.Certificate
) -> ContainerReport:
    """A container of the archive checked, and found to be the one ``entry`` lists."""
    name = str(entry["file"])
    # A file of its own (not the archive's stream of it: reading a ZIP inside a ZIP seeks
    # back, and a member's stream seeks back by reading again from its start), in the
    # temporary folder: the archive's own may be read-only.
    with tempfile.TemporaryFile() as staged:
        _staged(archive, entry, staged)
        try:
            report = verify_container(staged, root)
        except errors.ArchiveError as exc:
            raise type(exc)(f"{name}: {exc.message}") from None
    if (report.org_id, report.document_id) != (linking.get("org_id"), entry.get("document_id")):
        raise errors.BrokenArchiveChain(
            f"{name} is the evidence of {report.document_id} kept by {report.org_id},"
            f" not what {LINKING} says"
        )
    return report
