"""Receiving: every package that reaches an agency here is verified again, stored once,
and answered with status 01 (arrived); statuses about our documents update them.

Packages come from the hub (edoc.node.collector) or straight from this node's outbox for
recipients in the same province.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import shutil
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import structlog

from edoc import atomic, envelope, errors, signing
from edoc.model import (
    Document,
    Message,
    StatusCode,
    kind_of,
)
from edoc.node import progress, stats
from edoc.node.answers import response_for, status_message
from edoc.node.state import NodeState
from edoc.offload import held_small
from edoc.store.node import InboxAttachment, InboxKey, NewInboxItem, NewOutgoing, Received

log = structlog.get_logger()
PACKAGE = "package.edxml"  # a received package's name in its inbox folder
FEW_RECIPIENTS = 4  # a package for more of our agencies is received in a thread


@dataclass(frozen=True)
class Kept:
    """A verified package as this node keeps it: in the store when it came in memory
    (small: a file of its own cost a create, fsync and rename per message, most of a
    document's wait under load), its attachments read from it when an agency asks for
    them (stored apart as well, they doubled what the store wrote per document); else as
    files in its inbox folder, each attachment a file beside it."""

    verified: signing.Verified
    package: bytes | Path
    parts: dict[str, Path]  # a package in a file: each attachment's file, by content id
    arrived: dict[str, NewOutgoing]  # for a document: each recipient's signed status 01

    def inbox_item(self, recipient: str) -> NewInboxItem:
        message = self.verified.message
        return NewInboxItem(
            *_inbox_key(message, recipient),
            path="" if isinstance(self.package, bytes) else str(self.package),
            summary=_summary(self.verified),
            attachments=tuple(
                # by content id: the bodies may come in another order than the manifest's
                InboxAttachment(
                    n,
                    a.name,
                    a.content_type,
                    a.size,
                    a.sha256,
                    "" if isinstance(self.package, bytes) else str(self.parts[a.content_id]),
                )
                for n, a in enumerate(message.attachments)
            ),
            body=self.package if isinstance(self.package, bytes) else None,
        )


def _inbox_key(message: Message, recipient: str) -> InboxKey:
    """What makes ``message`` one item of ``recipient``'s inbox (NewInboxItem.key)."""
    return (
        recipient,
        message.sender.org_id,
        kind_of(message),
        message.about,
        int(message.business.doc_type),
        "" if isinstance(message, Document) else message.code.value,
    )


def attachment_in(package: bytes, entry: InboxAttachment) -> bytes:
    """The bytes of inbox attachment ``entry`` from the package kept in the store, read
    again and checked against its manifest as on arrival, and against the entry: a
    package altered or replaced in the store since is the store's failure
    (EDOC-STORE-001), never bytes under another file's name."""
    bodies: dict[str, envelope.KeptInMemory] = {}

    def sink(content_id: str, _name: str) -> envelope.Writable:
        return bodies.setdefault(content_id, envelope.KeptInMemory())

    try:
        manifest = envelope.read_package(package, sink).message.attachments
    except errors.EdocError as exc:  # the store's bytes, not the agency's request, are bad
        raise errors.StorageError(f"the stored package no longer reads: {exc.message}") from None
    # read_package has checked each body against its manifest entry (size and SHA-256):
    # left to check is that the entry is the file the inbox row names
    listed = manifest[entry.n] if entry.n < len(manifest) else None
    if listed is None or (listed.size, listed.sha256) != (entry.size, entry.sha256):
        raise errors.StorageError(f"the stored package does not hold attachment {entry.n}")
    return bodies[listed.content_id].getvalue()


def holds(entry: InboxAttachment, body: bytes) -> bool:
    """Whether ``body`` is the file ``entry`` names (its size and SHA-256)."""
    return len(body) == entry.size and hashlib.sha256(body).hexdigest() == entry.sha256


def _verify_and_keep(
    state: NodeState, source: bytes | Path, folder: Path | None, recipients: list[str]
) -> Kept:
    """Verify the package (its bytes, or the file ``source``), keep it (in memory for the
    store, or fsynced in ``folder``, given with a file, with its attachments beside it)
    and, for a document, sign each of ``recipients``' status 01. One call, through
    offload.run_small_here: a package in a file is read and kept in a thread, and under
    load a second call per package would queue behind every other package's first."""
    parts: dict[str, Path] = {}  # attachments of a package in a file

    def sink(content_id: str, _name: str) -> envelope.Writable:
        assert folder is not None, "a package in a file is kept in a folder"
        (folder / "parts").mkdir(parents=True, exist_ok=True)
        parts[content_id] = path = folder / "parts" / str(len(parts))
        return path.open("wb")

    package = envelope.read_package(
        source, envelope.discard_sink if isinstance(source, bytes) else sink
    )
    verified = signing.verify_package(package, state.keys.trust(), dt.datetime.now(dt.UTC))
    message = verified.message
    arrived = {
        recipient: status_message(state, recipient, response_for(message), StatusCode.ARRIVED)
        for recipient in recipients
        if isinstance(message, Document)
    }
    if isinstance(source, bytes):
        return Kept(verified, source, {}, arrived)
    assert folder is not None, "a package in a file is kept in a folder"
    for path in parts.values():  # on disk before the inbox row and the hub's ack
        atomic.sync(path)
    atomic.sync(source)
    folder.mkdir(parents=True, exist_ok=True)
    return Kept(verified, source.replace(folder / PACKAGE), parts, arrived)


def _summary(verified: signing.Verified) -> dict[str, Any]:
    message = verified.message
    hops = [*message.trace, *verified.relay_hops]
    summary: dict[str, Any] = {
        "signed_at": verified.signed_at.isoformat(),
        "signers": [
            {"kind": s.kind.value, "org_id": s.org_id, "name": s.name, "serial": s.serial}
            for s in (verified.seal, verified.personal)
            if s is not None
        ],
        "trace": [{"org_id": h.org_id, "at": h.timestamp.isoformat()} for h in hops],
    }
    if isinstance(message, Document):
        summary |= {
            "from": message.sender.org_id,
            "from_name": message.sender.name,
            "to": [to.org_id for to in message.recipients],
            "code": str(message.code),
            "subject": message.subject,
            "type": {"code": message.doc_type.code, "name": message.doc_type.name},
            "priority": int(message.priority),
            "promulgation_date": message.promulgation.date.isoformat(),
            "due_date": message.due_date.isoformat() if message.due_date else None,
            "business": {
                "type": int(message.business.doc_type),
                "reason": message.business.reason,
                "document_id": message.business.document_id,
            },
            "signer": message.signer.full_name if message.signer else None,
        }
    else:
        summary |= {"code": message.code.value, "description": message.description}
    return summary


def _claimed_key(source: bytes | Path, recipient: str) -> InboxKey:
    """The inbox key of the package ``source`` for ``recipient``, as the package says it
    (read, not verified)."""
    return _inbox_key(envelope.read_package(source).message, recipient)


async def held(state: NodeState, source: bytes | Path, recipient: str) -> bool:
    """Whether ``recipient`` holds the package ``source`` already: offered before, and
    verified, stored and answered then. Known by its inbox key, read from the package,
    not verified: verified again, a package whose signer was revoked since would be
    refused (02) though its recipient holds it and answered 01. No copy under that key
    changes what is held (the store keeps one item per key), so none needs verifying."""
    key = await state.offload.run_small_here(held_small(source), _claimed_key, source, recipient)
    return await state.store.received_before(key) is not None


async def receive(state: NodeState, source: bytes | Path, recipients: list[str]) -> None:
    """Verify the package (its bytes, or the file ``source``) and hand it to each of
    ``recipients`` (ours)."""
    for recipient in recipients:
        if not state.serves(recipient):
            raise errors.Forbidden(f"{recipient} is not served by this node")
    # a package in memory is kept in the store: no folder (nor a name for one) for it
    folder = None if isinstance(source, bytes) else state.inbox_dir / uuid.uuid4().hex
    try:
        # small: a package in memory (a collect answer's may be up to the hub's
        # --inline-kb) for a few of our agencies (a status 01 each, signed)
        small = held_small(source) and len(recipients) <= FEW_RECIPIENTS
        kept = await state.offload.run_small_here(
            small, _verify_and_keep, state, source, folder, recipients
        )
    except BaseException:
        if folder is not None:
            shutil.rmtree(folder, ignore_errors=True)
        raise
    message = kept.verified.message
    structlog.contextvars.bind_contextvars(document_id=message.about)
    stored = False  # is this copy the one an inbox row points to?
    for recipient in recipients:
        if not (await _store(state, kept, recipient)).first:
            # a redelivery: it was stored (and answered) the first time
            continue
        stored = True
        if isinstance(message, Document):  # its 01 is in the outbox (a status adds nothing)
            state.outbox_wakeup.set()
            state.document_stored(recipient)  # held inbox reads (an inbox lists documents)
        log.info("received", kind=type(message).__name__, recipient=recipient)
    if not stored and folder is not None:
        # a redelivery: the copy stored the first time is kept; this one's folder goes,
        # or lost acks would leave a folder behind for every redelivery
        shutil.rmtree(folder, ignore_errors=True)


async def _store(state: NodeState, kept: Kept, recipient: str) -> Received:
    """One recipient's copy into the inbox: a document with its status 01, or a status,
    which moves the recipient of our document it is about."""
    item = kept.inbox_item(recipient)
    message = kept.verified.message
    now = dt.datetime.now(dt.UTC)
    if isinstance(message, Document):
        return await state.store.add_received_document(
            item, kept.arrived[recipient], now, stats.received_tallies(item, now.date())
        )
    return await state.store.add_received_status(
        item, progress.status_event(message.code), now, progress.next_state
    )
