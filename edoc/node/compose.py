"""Packing what agencies send into signed edXML package files (run off the event loop)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from edoc import atomic, envelope, errors, metadata, signing
from edoc.keystore import KeyStore, SigningIdentity
from edoc.model import Attachment, Document, Message


def _write(root: Any, files: Sequence[tuple[Attachment, Path]], target: Path) -> None:
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
) -> tuple[Document, bool]:
    """Pack and sign a document; returns it and whether a person signed it too."""
    files = envelope.attachments_from_files(paths)
    document = envelope.stamp_origin(
        metadata.to_document(data, tuple(item for item, _ in files)), now
    )
    personal = _personal(keys, document)
    root = signing.sign(
        envelope.build_envelope(document), keys.identity(document.sender.org_id), personal
    )
    _write(root, files, target)
    return document, personal is not None


def message_package(keys: KeyStore, message: Message, target: Path, now: dt.datetime) -> None:
    """Pack and seal a message without attachments (a status)."""
    message = envelope.stamp_origin(message, now)
    root = signing.sign(envelope.build_envelope(message), keys.identity(message.sender.org_id))
    _write(root, [], target)
