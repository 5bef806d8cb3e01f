"""POST /api/v1/documents: an agency's multipart upload → a signed package in the outbox.

Files are streamed to disk under a size limit; the metadata part is checked against
the schema; the agency may only send as itself. Nothing is answered 202 before the
package file is fsynced and its outbox rows are committed.
"""

from __future__ import annotations

import datetime as dt
import shutil
import unicodedata
import uuid
from pathlib import Path
from typing import Any
from urllib.parse import unquote

from aiohttp import BodyPartReader, web
from aiohttp.http_exceptions import HttpProcessingError

from edoc import envelope, errors, metadata
from edoc.model import MessageKind
from edoc.node import compose, stats
from edoc.node.state import NodeState
from edoc.store.node import NewOutgoing, Outgoing


def _file_name(part: BodyPartReader) -> str:
    name = part.filename
    if name is None:
        raise errors.BadMultipart(f"part {part.name!r} is neither metadata nor a file")
    # RFC 7578 §4.2 lets clients percent-encode file names (aiohttp does)
    return unicodedata.normalize("NFC", unquote(name, errors="strict"))


async def _read_parts(request: web.Request, staging: Path, limit: int) -> tuple[bytes, list[Path]]:
    try:
        reader = await request.multipart()
    except (AssertionError, ValueError, KeyError) as exc:
        raise errors.BadMultipart(f"expected multipart/form-data: {exc}") from None
    raw: bytes | None = None
    files: list[Path] = []
    total = 0
    try:
        while (part := await reader.next()) is not None:
            if not isinstance(part, BodyPartReader):
                raise errors.BadMultipart("nested multipart is not accepted")
            if part.name is None:
                raise errors.BadMultipart("every part needs a Content-Disposition with a name")
            if part.name == "metadata":
                raw = await part.read(decode=False)
                if len(raw) > metadata.MAX_METADATA_BYTES:
                    raise errors.TooLarge("metadata part too large")
                continue
            name = envelope.safe_attachment_name(_file_name(part))
            path = staging / name
            if path.exists():
                raise errors.UnsafeAttachmentName(f"two files named {name!r}")
            with path.open("wb") as out:
                while chunk := await part.read_chunk(256 * 1024):
                    total += len(chunk)
                    if total > limit:
                        raise errors.TooLarge(f"upload larger than {limit} bytes")
                    out.write(chunk)
            files.append(path)
    except (ValueError, AssertionError, RuntimeError, HttpProcessingError) as exc:
        raise errors.BadMultipart(f"malformed multipart body: {exc}") from None
    if raw is None:
        raise errors.MissingField("the multipart body has no metadata part")
    return raw, files


def _org_id(to: str | dict[str, Any]) -> str:
    """A recipient in metadata is its organization id, or an object with it as ``id``."""
    return to if isinstance(to, str) else str(to["id"])


async def _recipients(state: NodeState, data: dict[str, Any], sender: str) -> None:
    """Local recipients must be agencies of this node; a revoke/update/replace also goes
    to every recipient of the original."""
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
    local = [org for org in map(_org_id, data["to"]) if state.serves(org)]
    if not local:  # the usual case: no need to read the agencies
        return
    agencies = {agency.org_id for agency in await state.store.agencies()}
    for org in local:
        if org not in agencies:
            raise errors.UnknownRecipient(f"{org} is not an agency of this node")


async def submit(state: NodeState, request: web.Request, agency: str) -> tuple[Outgoing, bool]:
    """Returns the stored outgoing document and whether it is a retry of an earlier post."""
    key = request.headers.get("Idempotency-Key")
    if key is not None:
        if not 0 < len(key) <= 200:
            raise errors.InvalidField("Idempotency-Key must be 1 to 200 characters")
        earlier = await state.store.outgoing_by_key(agency, key)
        if earlier is not None:
            return earlier, True
    staging = state.incoming_dir / f"upload-{uuid.uuid4().hex}"
    staging.mkdir(parents=True)
    try:
        raw, files = await _read_parts(request, staging, state.config.max_upload_bytes)
        data = metadata.load(raw)
        sender = _org_id(data["from"])
        if sender != agency:
            raise errors.Forbidden(f"agency {agency} cannot send as {sender}")
        await _recipients(state, data, sender)
        now = dt.datetime.now(dt.UTC)
        target = state.outgoing_dir / f"{uuid.uuid4().hex}.edxml"
        document, personally, body = await state.offload.run(
            compose.document_package, state.keys, data, files, target, now
        )
        if document.business.doc_type == 0 and await state.store.find_outgoing(
            sender, document.document_id
        ):
            target.unlink(missing_ok=True)
            raise errors.DuplicateDocument(f"{document.document_id} was sent already")
        recipients = tuple(to.org_id for to in document.recipients)
        new = NewOutgoing(
            kind=MessageKind.DOCUMENT,
            sender=sender,
            document_id=document.document_id,
            status_code="",
            idempotency_key=key,
            priority=int(document.priority),
            path="" if body is not None else str(target),
            summary={
                "subject": document.subject,
                "code": str(document.code),
                "due_date": document.due_date.isoformat() if document.due_date else None,
                "business": int(document.business.doc_type),
                "personally_signed": personally,
                "attachments": [
                    {"name": a.name, "size": a.size, "sha256": a.sha256}
                    for a in document.attachments
                ],
            },
            recipients=recipients,
            local=tuple(r for r in recipients if state.serves(r)),
            body=body,
        )
        outgoing = await state.store.add_outgoing(
            new, now, stats.sent_tallies(new, personally, now.date())
        )
        state.outbox_wakeup.set()
        return outgoing, False
    finally:  # off the loop: unlinks wait for the file system's journal
        await state.offload.run(shutil.rmtree, staging, ignore_errors=True)
