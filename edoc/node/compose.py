"""Packing what agencies send into signed edXML packages (run off the event loop)."""

from __future__ import annotations

import datetime as dt
import io
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from edoc import atomic, envelope, errors, metadata, signing
from edoc.keystore import KeyStore, SigningIdentity
from edoc.model import Attachment, Document, Message

# A package whose attachments come to at most this is packed in memory, to be kept in the
# store with its row: a file of its own cost a create, fsync and rename per message.
IN_STORE = 512 * 1024


def _in_memory(root: Any, files: Sequence[tuple[Attachment, Path]]) -> bytes:
    envelope.validate(root)
    out = io.BytesIO()
    envelope.write_package(root, files, out)
    return out.getvalue()


def _to_file(root: Any, files: Sequence[tuple[Attachment, Path]], target: Path) -> None:
    envelope.validate(root)
    atomic.write_file(target, lambda out: envelope.write_package(root, files, out))


def _personal(keys: KeyStore, document: Document) -> SigningIdentity | None:
    """The signer's own certificate, where the organization holds one for that name."""
    if document.signer is None:
        return None
    try:
        return keys.identity(document.sender.org_id, document.signer.full_name)
    except errors.UnknownCertificate:
        return None


def document_package(
    keys: KeyStore, data: dict[str, Any], paths: Sequence[Path], target: Path, now: dt.datetime
) -> tuple[Document, bool, bytes | None]:
    """Pack and sign a document; returns it, whether a person signed it too, and the
    package's bytes if it was kept in memory rather than written to ``target``."""
    files = envelope.attachments_from_files(paths)
    document = envelope.stamp_origin(
        metadata.to_document(data, tuple(item for item, _ in files)), now
    )
    personal = _personal(keys, document)
    root = signing.sign(
        envelope.build_envelope(document), keys.identity(document.sender.org_id), personal
    )
    if sum(item.size for item, _ in files) <= IN_STORE:
        return document, personal is not None, _in_memory(root, files)
    _to_file(root, files, target)
    return document, personal is not None, None


def message_package(keys: KeyStore, message: Message, now: dt.datetime) -> bytes:
    """Pack and seal a message without attachments (a status): always small."""
    message = envelope.stamp_origin(message, now)
    root = signing.sign(envelope.build_envelope(message), keys.identity(message.sender.org_id))
    return _in_memory(root, [])
