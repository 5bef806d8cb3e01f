"""Evidence for the archive tests: a signed document, a signed status about it, and the
CA material, stamped by the test CA's time-stamping authority."""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import zipfile
from collections.abc import Callable
from pathlib import Path

from cryptography import x509

from edoc import envelope, signing
from edoc.archive import container, manifest, tsa
from edoc.archive.evidence import Direction, Evidence, KeptMessage
from edoc.archive.stored import PackageRef, kept_package
from edoc.keyindex import SigningIdentity
from edoc.model import (
    Document,
    MessageKind,
    Organization,
    ResponseFor,
    StatusCode,
    StatusUpdate,
)
from edoc.store import open_node_store, sqlite_url
from edoc.store.node import Event, NewInboxItem, NewOutgoing
from tests.support.pki import SENDER, Ca, signed_root, wire

RECIPIENT = "000.00.00.H23"


def document_package(ca: Ca, seal: SigningIdentity | None = None, number: int = 123) -> bytes:
    """A document of the sample's, its number ``number`` (so its DocumentId) told apart."""
    return wire(signed_root(ca, seal, code={"number": str(number), "notation": "STTTT-VP"}))


def status_package(
    ca: Ca, document: bytes, code: StatusCode = StatusCode.ARRIVED, responder: str = RECIPIENT
) -> bytes:
    read = envelope.read_package(document).message
    assert isinstance(read, Document)
    answered = ResponseFor(
        read.sender.org_id, str(read.code), read.promulgation.date, read.document_id
    )
    status = StatusUpdate(
        sender=Organization(responder),
        response_for=answered,
        code=code,
        timestamp=ca.clock().replace(microsecond=0),
    )
    root = envelope.build_envelope(envelope.stamp_origin(status, ca.clock()))
    return wire(signing.sign(root, ca.keys.identity(responder)))


def evidence(ca: Ca, document: bytes, *statuses: bytes) -> Evidence:
    now = ca.clock()
    messages = [
        KeptMessage(Direction.RECEIVED, MessageKind.DOCUMENT, "", now, document),
        *(
            KeptMessage(Direction.SENT, MessageKind.STATUS, "01", now, status)
            for status in statuses
        ),
    ]
    return Evidence(
        RECIPIENT,
        envelope.read_package(document).message.about,
        tuple(messages),
        ca.keys.trust().issuing,
        x509.load_pem_x509_crl(ca.keys.crl_path.read_bytes()),
    )


def package_bytes(ref: PackageRef) -> bytes:
    """A kept package's bytes: its row's, or its file's."""
    kept = kept_package(ref)
    return kept if isinstance(kept, bytes) else kept.read_bytes()


def stamper(ca: Ca) -> Callable[[bytes], bytes]:
    def stamp(digest: bytes) -> bytes:
        return tsa.stamp(ca.keys.tsa_identity(), digest, ca.clock(), ca.keys.trust().issuing)

    return stamp


def build(ca: Ca, document: bytes, *statuses: bytes) -> bytes:
    return container.build(evidence(ca, document, *statuses), stamper(ca), ca.clock())


def rewrite(data: bytes, change: Callable[[str, bytes], bytes | None]) -> bytes:
    """The container with each file passed through ``change`` (None drops it), re-zipped
    with fresh CRCs: what someone who edits a container makes."""
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(data)) as source, zipfile.ZipFile(out, "w") as target:
        for entry in source.infolist():
            changed = change(entry.filename, source.read(entry))
            if changed is not None:
                target.writestr(entry, changed)
    return out.getvalue()


def later(ca: Ca, **delta: float) -> dt.datetime:
    ca.clock.advance(**delta)
    return ca.clock()


def _outgoing(kind: str, sender: str, about: str, code: str, body: bytes, to: str) -> NewOutgoing:
    return NewOutgoing(kind, sender, about, code, None, 0, "", {}, (to,), (to,), body)


def _inbox(
    kind: str, recipient: str, sender: str, about: str, code: str, body: bytes
) -> NewInboxItem:
    return NewInboxItem(recipient, sender, kind, about, 0, code, "", {}, (), body)


async def keep(where: Path | str, document: bytes, status: bytes, at: dt.datetime) -> str:
    """What the sender's and the recipient's node keep of one document, in one store
    (a node serving both: its SQLite file, or a URL): sent and received document,
    answered and received status 01."""
    about = envelope.read_package(document).message.about
    store = await open_node_store(sqlite_url(where) if isinstance(where, Path) else where)
    try:
        doc, st = MessageKind.DOCUMENT, MessageKind.STATUS
        await store.add_outgoing(_outgoing(doc, SENDER, about, "", document, RECIPIENT), at, ())
        await store.add_received_document(
            _inbox(doc, RECIPIENT, SENDER, about, "", document),
            _outgoing(st, RECIPIENT, about, "01", status, SENDER),
            at,
            (),
        )
        await store.add_received_status(
            _inbox(st, SENDER, RECIPIENT, about, "01", status),
            Event("01", ""),
            at,
            lambda _state, event: event,
        )
    finally:
        await store.close()
    return about


def rewrite_all(ca: Ca, data: bytes, files: dict[str, bytes]) -> bytes:
    """A container of ``files`` (all but mimetype, manifest and token), with a manifest
    of them and a token the authority gives: what a forger with the authority's help
    makes, so that only what ``files`` got wrong can fail."""
    listed = manifest.build(files, container.TOKEN)
    token = stamper(ca)(hashlib.sha256(listed).digest())
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(data)) as source, zipfile.ZipFile(out, "w") as target:
        target.writestr(source.getinfo("mimetype"), source.read("mimetype"))
        for name, content in [*files.items(), (container.MANIFEST, listed)]:
            target.writestr(name, content)
        target.writestr(container.TOKEN, token)
    return out.getvalue()
