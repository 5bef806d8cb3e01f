"""One document's evidence as an ASiC-E container (ETSI EN 319 162-1), and reading one.

The container is a ZIP whose first entry is ``mimetype`` (stored, uncompressed, no
extra field) holding ``application/vnd.etsi.asic-e+zip``; then::

    messages/01-received-document.edxml     each package as kept, oldest first
    messages/02-sent-status-01.edxml
    META-INF/evidence.json                  what each message file is (direction, kind, when)
    META-INF/certificates/issuing-<serial>.pem
    META-INF/revocation.crl                 the CRL in force at export (DER)
    META-INF/proofs/01.json                 a message's batch proof, if the node stamped it
    META-INF/ASiCManifest.xml               SHA-256 of every file above
    META-INF/timestamp.tst                  RFC 3161 token over the manifest's SHA-256

Signers' certificates ride in their signatures' KeyInfo and the time-stamping
authority's in its token, so with the issuing CA's certificate here the root alone
verifies everything (edoc.archive.verify).
"""

from __future__ import annotations

import base64
import contextlib
import datetime as dt
import hashlib
import io
import json
import lzma
import os
import zipfile
import zlib
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from cryptography.hazmat.primitives import serialization

from edoc import errors, jsonsafe
from edoc.archive import manifest, merkle
from edoc.archive.evidence import BatchProof, Evidence, open_package

MIMETYPE = "application/vnd.etsi.asic-e+zip"
MANIFEST = "META-INF/ASiCManifest.xml"
TOKEN = "META-INF/timestamp.tst"  # noqa: S105 - a file name, no secret
DESCRIPTION = "META-INF/evidence.json"
CRL = "META-INF/revocation.crl"
CERTIFICATES = "META-INF/certificates/"
PROOFS = "META-INF/proofs/"
MESSAGES = "messages/"
MAX_FILES = 10_000
MAX_BYTES = 4 * 1024 * 1024 * 1024  # uncompressed, all files together
# a file read whole (all but the packages: description, CA, CRL, proofs, manifest, token;
# a day archive's linkinginfo), uncompressed: a national CRL is a few MB
MAX_META_BYTES = 64 * 1024 * 1024
# what edoc writes and a verifier reads: zipfile unfolds bzip2 and LZMA in one call per
# chunk read, however far (a few kB of bzip2 make GBs), deflate only as far as asked
COMPRESSIONS = (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED)
# what reading a damaged ZIP entry raises besides BadZipFile: its deflate stream broken
# (zlib.error), cut short (EOFError), encrypted (RuntimeError), an unknown method
# (NotImplementedError, a RuntimeError), and what BadZipFile's siblings say
ZIP_FAULTS = (
    zipfile.BadZipFile,
    ValueError,
    OSError,
    EOFError,
    RuntimeError,
    zlib.error,
    lzma.LZMAError,
)
COPY_CHUNK = 256 * 1024  # a package file is copied into the container this much at a time

# Given the SHA-256 of a manifest, a time-stamp token over it (edoc.archive.tsa.stamp).
Stamper = Callable[[bytes], bytes]
# Given the SHA-256 of packages, the proofs of those a batch stamped, by digest
# (edoc.archive.batches.BatchLog.proofs_of)
Proofs = Callable[[Sequence[bytes]], Mapping[bytes, BatchProof]]


def _entry(name: str, when: dt.datetime, stored: bool = False) -> zipfile.ZipInfo:
    info = zipfile.ZipInfo(name, date_time=when.timetuple()[:6])
    info.compress_type = zipfile.ZIP_STORED if stored else zipfile.ZIP_DEFLATED
    info.external_attr = 0o644 << 16
    return info


def _description(evidence: Evidence, names: list[str]) -> bytes:
    return json.dumps(
        {
            "version": 1,
            "org_id": evidence.org_id,
            "document_id": evidence.document_id,
            "messages": [
                {
                    "file": name,
                    "direction": kept.direction.value,
                    "kind": kept.kind.value,
                    "status_code": kept.status_code,
                    "at": kept.at.isoformat(),
                }
                for name, kept in zip(names, evidence.messages, strict=True)
            ],
        },
        ensure_ascii=False,
        indent=2,
    ).encode()


def _proof(name: str, proof: BatchProof) -> bytes:
    return json.dumps(
        {
            "file": name,
            "token": base64.b64encode(proof.token).decode("ascii"),
            "path": [[side.value, sibling.hex()] for side, sibling in proof.path],
        },
        indent=2,
    ).encode()


def read_json(data: bytes, name: str) -> Any:
    """A JSON file of a container or day archive, read as edoc reads all JSON
    (edoc.jsonsafe: nested a few levels at most); BadContainer if it is not that."""
    try:
        return jsonsafe.read(data, name)
    except errors.BadMetadataJson as exc:
        raise errors.BadContainer(exc.message) from None


def read_proofs(files: dict[str, bytes]) -> dict[str, BatchProof]:
    """The batch proofs in a container, by the message file each is for."""
    proofs = {}
    for name, data in files.items():
        if not name.startswith(PROOFS):
            continue
        record = read_json(data, name)
        try:
            path = tuple((merkle.Side(side), bytes.fromhex(h)) for side, h in record["path"])
            proofs[str(record["file"])] = BatchProof(base64.b64decode(record["token"]), path)
        except (ValueError, KeyError, TypeError):
            raise errors.BadContainer(f"{name} is not a batch proof") from None
    return proofs


def _message_names(evidence: Evidence) -> list[str]:
    return [f"{MESSAGES}{n:02d}-{kept.label}.edxml" for n, kept in enumerate(evidence.messages, 1)]


def _described(
    evidence: Evidence, names: list[str], proofs: list[BatchProof | None]
) -> dict[str, bytes]:
    """The files the manifest covers besides the packages, by their names in the
    container: each package's batch proof (if it has one), what each package is, the CA
    material."""
    files = {
        f"{PROOFS}{n:02d}.json": _proof(name, proof)
        for n, (name, proof) in enumerate(zip(names, proofs, strict=True), 1)
        if proof is not None
    }
    files[DESCRIPTION] = _description(evidence, names)
    for ca in evidence.issuing:
        pem = ca.public_bytes(serialization.Encoding.PEM)
        files[f"{CERTIFICATES}issuing-{ca.serial_number:x}.pem"] = pem
    files[CRL] = evidence.crl.public_bytes(serialization.Encoding.DER)
    return files


def build(evidence: Evidence, stamper: Stamper, now: dt.datetime) -> bytes:
    """The container of ``evidence``, its manifest time-stamped by ``stamper``."""
    out = io.BytesIO()
    write(evidence, stamper, now, out)
    return out.getvalue()


def write(
    evidence: Evidence,
    stamper: Stamper,
    now: dt.datetime,
    out: IO[bytes],
    proofs: Proofs | None = None,
) -> None:
    """The container of ``evidence`` written to ``out`` (seekable), its manifest
    time-stamped by ``stamper``. Each package is read once (a file in chunks, so a
    container of any size passes through a few chunks of memory): hashed as it is
    copied, then given the batch proof ``proofs`` finds for that digest. The manifest
    and the proofs are thus of the very bytes the container holds."""
    names = _message_names(evidence)
    with zipfile.ZipFile(out, "w") as archive:
        archive.writestr(_entry("mimetype", now, stored=True), MIMETYPE)
        digests = {
            name: _copied(archive, _entry(name, now), kept.package)
            for name, kept in zip(names, evidence.messages, strict=True)
        }
        found = proofs(list(digests.values())) if proofs is not None else {}
        proven = [found.get(digest) for digest in digests.values()]
        for name, data in _described(evidence, names, proven).items():
            archive.writestr(_entry(name, now), data)
            digests[name] = hashlib.sha256(data).digest()
        listed = manifest.of_digests(digests, TOKEN)
        archive.writestr(_entry(MANIFEST, now), listed)
        archive.writestr(_entry(TOKEN, now), stamper(hashlib.sha256(listed).digest()))


def _copied(archive: zipfile.ZipFile, entry: zipfile.ZipInfo, package: bytes | Path) -> bytes:
    """``package`` written to ``archive`` as ``entry``; the SHA-256 of what was written."""
    if isinstance(package, bytes):
        archive.writestr(entry, package)
        return hashlib.sha256(package).digest()
    digest = hashlib.sha256()
    with open_package(package) as file:
        entry.file_size = os.fstat(file.fileno()).st_size  # (whether it needs ZIP64)
        with archive.open(entry, "w") as into:
            while chunk := file.read(COPY_CHUNK):
                digest.update(chunk)
                into.write(chunk)
    return digest.digest()


# --- reading ---------------------------------------------------------------------------
@dataclass(frozen=True)
class Container:
    """A container's parts, its layout checked; its proofs not yet (edoc.archive.verify).
    Its packages stay in the archive, each read in chunks where it is used
    (``package``): a 200 MB document's container is never whole in memory."""

    files: dict[str, bytes]  # every file the manifest must cover but the packages, by name
    digests: dict[str, bytes]  # the SHA-256 of every file the manifest must cover
    manifest: bytes
    token: bytes
    archive: zipfile.ZipFile  # open while the container is (``opened``)

    def description(self) -> dict[str, Any]:
        """evidence.json: an object (stamped, but by whoever held an authority's key)."""
        if DESCRIPTION not in self.files:
            raise errors.BadContainer(f"{DESCRIPTION} is missing")
        data = read_json(self.files[DESCRIPTION], DESCRIPTION)
        if not isinstance(data, dict):
            raise errors.BadContainer(f"{DESCRIPTION} is not a JSON object")
        return data

    def message_files(self) -> list[str]:
        """The message files the description lists, in its order."""
        listed = self.description().get("messages", [])
        if not isinstance(listed, list) or not all(isinstance(m, dict) for m in listed):
            raise errors.BadContainer(f"{DESCRIPTION}'s messages are not a list of objects")
        return [str(message.get("file", "")) for message in listed]

    def package(self, name: str) -> IO[bytes]:
        """A package file of the container, open for reading."""
        return self.archive.open(name)

    def package_size(self, name: str) -> int:
        return self.archive.getinfo(name).file_size


def _safe(name: str) -> bool:
    parts = name.split("/")
    return not name.startswith("/") and "\\" not in name and ".." not in parts and "" not in parts


def check_compressions(archive: zipfile.ZipFile) -> None:
    """Refuse (BadContainer) a ZIP with a file compressed but as edoc writes them."""
    for entry in archive.infolist():
        if entry.compress_type not in COMPRESSIONS:
            raise errors.BadContainer(
                f"{entry.filename} is compressed with method {entry.compress_type}:"
                " only stored and deflated files are read"
            )


def read_whole(archive: zipfile.ZipFile, entry: zipfile.ZipInfo) -> bytes:
    """A small file of ``archive``, whole: at most MAX_META_BYTES, and only as much as it
    says it holds (``read()`` would first unfold all of a forged deflate stream, however
    much more than that it makes, and only then cut it to the size said)."""
    if entry.file_size > MAX_META_BYTES:
        raise errors.BadContainer(
            f"{entry.filename} is larger than this verifier reads whole ({MAX_META_BYTES} bytes)"
        )
    with archive.open(entry) as file:
        return file.read(entry.file_size)


def _open(source: bytes | IO[bytes] | Path) -> zipfile.ZipFile:
    try:
        archive = zipfile.ZipFile(io.BytesIO(source) if isinstance(source, bytes) else source)
    except (zipfile.BadZipFile, ValueError) as exc:
        raise errors.BadContainer(f"not a ZIP container: {exc}") from None
    return checked(archive, _check_entries)


def checked(archive: zipfile.ZipFile, check: Callable[[zipfile.ZipFile], None]) -> zipfile.ZipFile:
    """``archive`` once ``check`` passed it; closed when it did not."""
    try:
        check(archive)
    except errors.BadContainer:
        archive.close()
        raise
    return archive


def _check_entries(archive: zipfile.ZipFile) -> None:
    entries = archive.infolist()
    names = [e.filename for e in entries]
    if len(entries) > MAX_FILES or sum(e.file_size for e in entries) > MAX_BYTES:
        raise errors.BadContainer("the container holds more than this verifier reads")
    if len(set(names)) != len(names) or not all(_safe(n) for n in names):
        raise errors.BadContainer("the container has a file name twice or an unsafe name")
    check_compressions(archive)


def _check_mimetype(archive: zipfile.ZipFile) -> None:
    first = archive.infolist()[0] if archive.infolist() else None
    if first is None or first.filename != "mimetype":
        raise errors.BadContainer("the container's first file must be mimetype")
    if first.compress_type != zipfile.ZIP_STORED or first.extra:
        raise errors.BadContainer("the container's mimetype must be stored, with no extra field")
    try:
        said = read_whole(archive, first)
    except ZIP_FAULTS as exc:
        raise errors.BadContainer(f"the container's mimetype is unreadable: {exc}") from None
    if said != MIMETYPE.encode():
        raise errors.BadContainer(f"the container's mimetype is not {MIMETYPE}")


def member_sha256(archive: zipfile.ZipFile, member: str | zipfile.ZipInfo) -> bytes:
    """The SHA-256 of a file of ``archive``, read in chunks."""
    digest = hashlib.sha256()
    with archive.open(member) as file:
        while chunk := file.read(COPY_CHUNK):
            digest.update(chunk)
    return digest.digest()


def _read_files(archive: zipfile.ZipFile) -> tuple[dict[str, bytes], dict[str, bytes]]:
    """The container's files but mimetype: the packages' digests (read in chunks), the
    others' bytes and digests."""
    files, digests = {}, {}
    try:
        for entry in archive.infolist()[1:]:
            if entry.is_dir():
                continue
            if entry.filename.startswith(MESSAGES):
                digests[entry.filename] = member_sha256(archive, entry)
            else:
                files[entry.filename] = read_whole(archive, entry)
                digests[entry.filename] = hashlib.sha256(files[entry.filename]).digest()
    except ZIP_FAULTS as exc:  # CRC, bad compression, encrypted
        raise errors.EvidenceTampered(f"a file of the container is damaged: {exc}") from None
    return files, digests


@contextlib.contextmanager
def opened(source: bytes | IO[bytes] | Path) -> Iterator[Container]:
    """The parts of a container (a file, or its bytes), open in the block; BadContainer
    if it is not of this layout."""
    with _open(source) as archive:
        _check_mimetype(archive)
        files, digests = _read_files(archive)
        try:
            listed, token = files.pop(MANIFEST), files.pop(TOKEN)
        except KeyError as exc:
            raise errors.BadContainer(f"the container lacks {exc.args[0]}") from None
        del digests[MANIFEST], digests[TOKEN]
        yield Container(files, digests, listed, token, archive)
