"""Packing what agencies send into signed edXML packages (in a thread when large)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from edoc import atomic, envelope, errors, metadata, signing
from edoc.envelope.attachments import MeasuredFile, attachments_from_measured
from edoc.keyindex import SigningIdentity
from edoc.keystore import KeyStore
from edoc.model import Attachment, Document, Message

# A package whose attachments come to at most this is packed in memory, to be kept in the
# store with its row: a file of its own cost a create, fsync and rename per message.
IN_STORE = 512 * 1024


def _personal(keys: KeyStore, document: Document) -> SigningIdentity | None:
    """The signer's own certificate, where the organization holds one for that name."""
    if document.signer is None:
        return None
    try:
        return keys.identity(document.sender.org_id, document.signer.full_name)
    except errors.UnknownCertificate:
        return None


def _attachments(
    files: Sequence[Path] | Sequence[MeasuredFile],
) -> Sequence[tuple[Attachment, Path | bytes]]:
    """Files measured as they were received are not read again; paths are hashed here."""
    paths = [item for item in files if isinstance(item, Path)]
    if len(paths) == len(files):
        return envelope.attachments_from_files(paths)
    measured = [item for item in files if isinstance(item, MeasuredFile)]
    if len(measured) != len(files):
        raise TypeError("paths and measured files mixed")
    return attachments_from_measured(measured)


def in_memory(files: Sequence[MeasuredFile]) -> bool:
    """Whether the package of ``files`` is made in memory, its attachments all there."""
    return (
        all(isinstance(item.body, bytes) for item in files)
        and sum(item.size for item in files) <= IN_STORE
    )


def document_package(
    keys: KeyStore,
    data: dict[str, Any],
    paths: Sequence[Path] | Sequence[MeasuredFile],
    target: Path,
    now: dt.datetime,
) -> tuple[Document, bool, bytes | None]:
    """Pack and sign a document; returns it, whether a person signed it too, and the
    package's bytes if it was kept in memory rather than written to ``target``."""
    files = _attachments(paths)
    document = envelope.stamp_origin(
        metadata.to_document(data, tuple(item for item, _ in files)), now
    )
    personal = _personal(keys, document)
    signed = signing.sign_message(document, keys.identity(document.sender.org_id), personal)
    if sum(item.size for item, _ in files) <= IN_STORE:
        return document, personal is not None, signed.package(files)
    atomic.write_file(target, lambda out: signed.write(files, out))
    return document, personal is not None, None


def message_package(keys: KeyStore, message: Message, now: dt.datetime) -> bytes:
    """Pack and seal a message without attachments (a status): always small."""
    message = envelope.stamp_origin(message, now)
    return signing.sign_message(message, keys.identity(message.sender.org_id)).package([])
