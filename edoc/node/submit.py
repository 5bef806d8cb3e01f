"""POST /api/v1/documents: an agency's multipart upload → a signed package in the outbox.

Files are read under a size limit, into memory while they are small (IN_MEMORY in all),
streamed to disk past that, each measured (size, SHA-256) once, on the way; the metadata
part is checked against the schema; the agency may only send as itself; every recipient
must be known (an agency of this node, or in the hub's address book when the node has
one). Nothing is answered 202 before the package file is fsynced and its outbox rows are
committed. A post of more parts than the metadata and the most files a package carries
is refused (413) at the first part past them, the rest of its body unread.

An ``Idempotency-Key`` makes a post safe to repeat: the same key with the same content
answers the first document again (``X-Edoc-Retry: true``); the same key with other
content is refused (EDOC-NODE-002), never taken for a retry that would lose it.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import json
import shutil
import unicodedata
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO
from urllib.parse import unquote

from aiohttp import BodyPartReader, MultipartReader, hdrs, web
from aiohttp.http_exceptions import HttpProcessingError

from edoc import envelope, errors, metadata
from edoc.envelope.attachments import MeasuredFile
from edoc.model import Document, MessageKind
from edoc.node import compose, formdata, stats
from edoc.node.addressbook import AddressBook
from edoc.node.state import NodeState
from edoc.store.node import NewOutgoing, Outgoing


def _file_name(name: str, filename: str | None) -> str:
    if filename is None:
        raise errors.BadMultipart(f"part {name!r} is neither metadata nor a file")
    # RFC 7578 §4.2 lets clients percent-encode file names (aiohttp does)
    return unicodedata.normalize("NFC", unquote(filename, errors="strict"))


@dataclass
class Upload:
    """What a post carried: the metadata part, and each file with the name, size and
    SHA-256 measured as it arrived, in the order posted."""

    metadata: bytes = b""
    files: list[MeasuredFile] = field(default_factory=list)

    @property
    def digests(self) -> list[tuple[str, str]]:
        return [(item.name, item.sha256) for item in self.files]


# A post is a metadata part and its files, each an attachment of the package: a part past
# these is refused as its headers are read, the rest of the body unread. (aiohttp's reader
# spends 0.2-0.3 ms a part, read from memory or buffered: a post of 100,000 1-byte files
# held a node's loop for 18 s before the schema refused its package.)
MAX_PARTS = 1 + envelope.MAX_ATTACHMENTS
# aiohttp's reader does not yield to the loop while the body is buffered (every await
# completes at once): a turn is given every so many parts (a few milliseconds of reading).
YIELD_EVERY = 16

# A post's files are kept in memory while they come to at most this in all (the bound of
# the hub's packages read whole): no folder made, written, read back and removed for them.
IN_MEMORY = 1024 * 1024


class Staging:
    """Where a post's files go: memory, up to IN_MEMORY bytes in all; past that, files in
    a folder of the post's own under ``root``, made when the first is needed."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.folder: Path | None = None
        self.held = 0  # bytes kept in memory

    def may_hold(self, size: int) -> bool:
        return self.held + size <= IN_MEMORY

    def open(self, name: str) -> BinaryIO:
        if self.folder is None:
            self.folder = self.root / f"upload-{uuid.uuid4().hex}"
            self.folder.mkdir(parents=True)
        return (self.folder / name).open("xb")


async def _receive(
    part: BodyPartReader | formdata.HeldPart, name: str, staging: Staging, room: int, limit: int
) -> MeasuredFile:
    """Read a file part (the upload may still take ``room`` bytes of ``limit``) into
    memory, or to disk once it outgrows what memory may hold; its size and SHA-256 are
    computed on the way, of the very bytes kept."""
    digest = hashlib.sha256()
    size = 0
    held: list[bytes] = []
    out: BinaryIO | None = None
    try:
        while chunk := await part.read_chunk(256 * 1024):
            size += len(chunk)
            if size > room:
                raise errors.TooLarge(f"upload larger than {limit} bytes")
            digest.update(chunk)
            if out is None and staging.may_hold(size):
                held.append(chunk)
                continue
            if out is None:
                out = staging.open(name)
                out.writelines(held)
                held = []
            out.write(chunk)
    finally:
        if out is not None:
            out.close()
    if out is not None:
        assert staging.folder is not None
        return MeasuredFile(name, staging.folder / name, size, digest.hexdigest())
    staging.held += size
    return MeasuredFile(name, b"".join(held), size, digest.hexdigest())


async def _open_multipart(request: web.Request) -> MultipartReader | formdata.HeldForm:
    if not request.body_exists:
        raise errors.BadMultipart(
            "the body is empty: post multipart/form-data with a metadata part and the files"
        )
    if not formdata.is_form_data(request):
        raise errors.NotMultipart(
            f"Content-Type must be multipart/form-data (a metadata part and the files),"
            f" not {request.headers.get(hdrs.CONTENT_TYPE) or 'none'}"
        )
    try:
        return await formdata.open_form(request, IN_MEMORY, MAX_PARTS)
    except (AssertionError, ValueError, KeyError) as exc:
        raise errors.BadMultipart(f"unreadable multipart/form-data header: {exc}") from None


async def _metadata_part(part: BodyPartReader | formdata.HeldPart) -> bytes:
    """The metadata part, refused as soon as it outgrows its limit (not read whole first:
    the part could be as large as the whole upload)."""
    held, size = [], 0
    while chunk := await part.read_chunk():
        size += len(chunk)
        if size > metadata.MAX_METADATA_BYTES:
            raise errors.TooLarge("metadata part too large")
        held.append(chunk)
    return b"".join(held)


async def _counted(count: int) -> None:
    """Refuse the part numbered ``count`` past MAX_PARTS; every YIELD_EVERY, a turn of the loop."""
    if count > MAX_PARTS:
        raise errors.TooLarge(
            f"more than {MAX_PARTS} parts: a post is its metadata and at most"
            f" {envelope.MAX_ATTACHMENTS} files (the most attachments a package carries)"
        )
    if count % YIELD_EVERY == 0:
        await asyncio.sleep(0)


async def _read_parts(request: web.Request, staging: Staging, limit: int) -> Upload:
    reader = await _open_multipart(request)
    upload, raw, total, count = Upload(), None, 0, 0
    names: set[str] = set()
    try:
        while (part := await reader.next()) is not None:
            count += 1
            await _counted(count)
            if isinstance(part, MultipartReader):
                raise errors.BadMultipart("nested multipart is not accepted")
            part_name = part.name
            if part_name is None:
                raise errors.BadMultipart("every part needs a Content-Disposition with a name")
            if part_name == "metadata":
                raw = await _metadata_part(part)
                continue
            filename = part.filename
            name = envelope.safe_attachment_name(_file_name(part_name, filename))
            if name in names:
                raise errors.UnsafeAttachmentName(f"two files named {name!r}")
            names.add(name)
            received = await _receive(part, name, staging, limit - total, limit)
            if received.size == 0:
                raise errors.EmptyAttachment(
                    f"{name!r} is empty (0 bytes): there is nothing to send"
                )
            total += received.size
            upload.files.append(received)
    except (ValueError, AssertionError, RuntimeError, HttpProcessingError) as exc:
        raise errors.BadMultipart(f"malformed multipart body: {exc}") from None
    if raw is None:
        raise errors.MissingField("the multipart body has no metadata part")
    upload.metadata = raw
    return upload


# Kept in an outgoing document's summary (and there only: the agency's view leaves it out).
FINGERPRINT = "content_sha256"


def content_fingerprint(data: dict[str, Any], digests: list[tuple[str, str]]) -> str:
    """What "the same content" means for an Idempotency-Key: the metadata as the agency
    posted it (parsed and normalised, before the node adds anything: a generated
    DocumentId, the recipients of a revoked original), then each file's name and SHA-256,
    in order. Two posts with the same fingerprint make the same document."""
    canonical = json.dumps(
        {"metadata": data, "files": [list(pair) for pair in digests]},
        ensure_ascii=False,
        sort_keys=True,
        separators=(",", ":"),
    )
    return hashlib.sha256(canonical.encode()).hexdigest()


def public_summary(summary: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in summary.items() if key != FINGERPRINT}


def _retried(earlier: Outgoing, key: str, fingerprint: str) -> Outgoing:
    """The earlier document a post repeats; refused if the key came with other content.
    A document stored before fingerprints were kept has none: taken for a retry, as then."""
    kept = earlier.summary.get(FINGERPRINT)
    if kept is not None and kept != fingerprint:
        raise errors.IdempotencyKeyReused(
            f"Idempotency-Key {key!r} was used for other content (document"
            f" {earlier.document_id}); a new document needs a new key"
        )
    return earlier


def _org_id(to: str | dict[str, Any]) -> str:
    """A recipient in metadata is its organization id, or an object with it as ``id``."""
    return to if isinstance(to, str) else str(to["id"])


async def _recipients(
    state: NodeState, book: AddressBook, data: dict[str, Any], sender: str
) -> None:
    """Local recipients must be agencies of this node, the others in the hub's address
    book; a revoke/update/replace also goes to every recipient of the original."""
    business = data.get("business", {})
    if business.get("type", 0):
        original_id = business.get("document_id") or data.get("document_id", "")
        original = await state.store.find_outgoing(sender, original_id)
        if original is None:
            raise errors.UnknownDocument(f"{sender} sent no document {original_id!r}")
        named = {_org_id(to) for to in data["to"]}
        data["to"] = [
            *data["to"],
            *(r.org_id for r in original.recipients if r.org_id not in named),
        ]
    recipients = list(map(_org_id, data["to"]))
    local = [org for org in recipients if state.serves(org)]
    if local:  # not the usual case: read the agencies only then
        agencies = {agency.org_id for agency in await state.store.agencies()}
        for org in local:
            if org not in agencies:
                raise errors.UnknownRecipient(f"{org} is not an agency of this node")
    remote = [org for org in recipients if not state.serves(org)]
    if remote and (unknown := await book.unknown(state, remote)):
        raise errors.UnknownRecipient(f"not in the hub's address book: {', '.join(unknown)}")


def _idempotency_key(request: web.Request) -> str | None:
    key = request.headers.get("Idempotency-Key")
    if key is not None and not 0 < len(key) <= 200:
        raise errors.InvalidField("Idempotency-Key must be 1 to 200 characters")
    return key


def _summary(document: Document, personally: bool, fingerprint: str) -> dict[str, Any]:
    return {
        "subject": document.subject,
        "code": str(document.code),
        "due_date": document.due_date.isoformat() if document.due_date else None,
        "business": int(document.business.doc_type),
        "personally_signed": personally,
        "attachments": [
            {"name": a.name, "size": a.size, "sha256": a.sha256} for a in document.attachments
        ],
        FINGERPRINT: fingerprint,
    }


async def submit(
    state: NodeState, book: AddressBook, request: web.Request, agency: str
) -> tuple[Outgoing, bool]:
    """Returns the stored outgoing document and whether it is a retry of an earlier post."""
    key = _idempotency_key(request)
    staging = Staging(state.incoming_dir)
    try:
        upload = await _read_parts(request, staging, state.config.max_upload_bytes)
        data = metadata.load(upload.metadata)
        fingerprint = content_fingerprint(data, upload.digests)
        if key is not None and (earlier := await state.store.outgoing_by_key(agency, key)):
            return _retried(earlier, key, fingerprint), True
        sender = _org_id(data["from"])
        if sender != agency:
            raise errors.Forbidden(f"agency {agency} cannot send as {sender}")
        await _recipients(state, book, data, sender)
        return await _store(state, data, upload.files, key, fingerprint)
    finally:  # off the loop: unlinks wait for the file system's journal
        if staging.folder is not None:
            await state.offload.run(shutil.rmtree, staging.folder, ignore_errors=True)


async def _store(
    state: NodeState,
    data: dict[str, Any],
    files: list[MeasuredFile],
    key: str | None,
    fingerprint: str,
) -> tuple[Outgoing, bool]:
    """Pack, sign and store the document (a retry if a post with the same key won the race)."""
    now = dt.datetime.now(dt.UTC)
    target = state.outgoing_dir / f"{uuid.uuid4().hex}.edxml"
    document, personally, body = await state.offload.run_small_here(
        compose.in_memory(files), compose.document_package, state.keys, data, files, target, now
    )
    sender = document.sender.org_id
    recipients = tuple(to.org_id for to in document.recipients)
    try:
        if document.business.doc_type == 0 and await state.store.find_outgoing(
            sender, document.document_id
        ):
            raise errors.DuplicateDocument(f"{document.document_id} was sent already")
        new = NewOutgoing(
            kind=MessageKind.DOCUMENT,
            sender=sender,
            document_id=document.document_id,
            status_code="",
            idempotency_key=key,
            priority=int(document.priority),
            path="" if body is not None else str(target),
            summary=_summary(document, personally, fingerprint),
            recipients=recipients,
            local=tuple(r for r in recipients if state.serves(r)),
            body=body,
        )
        outgoing = await state.store.add_outgoing(
            new, now, stats.sent_tallies(new, personally, now.date())
        )
    except errors.DuplicateDocument:
        target.unlink(missing_ok=True)
        if key is None or (earlier := await state.store.outgoing_by_key(sender, key)) is None:
            raise
        return _retried(earlier, key, fingerprint), True
    state.outbox_wakeup.set()
    return outgoing, False
