"""The sender's envelope written as bytes (edoc.envelope.canonical, signing.sign_message)
against the tree writer it replaced: build_envelope, sign, validate, write_package."""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import io
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from lxml import etree

from edoc import envelope, errors, metadata, signature_shape, signing
from edoc.keyindex import SigningIdentity
from edoc.model import (
    Attachment,
    Message,
    Organization,
    ResponseFor,
    Staff,
    StatusCode,
    StatusUpdate,
)
from tests.support.pki import SENDER, SIGNER, Ca, sample_metadata
from tests.test_envelope import _metadata, _text
from tests.test_xmlsec1 import XMLSEC1, xmlsec1_verify

SENT_AT = dt.datetime(2026, 12, 1, 3, 4, 5, tzinfo=dt.UTC)
# Text a sender might write that the writers escape, or that XML cannot carry at all.
_AWKWARD = st.lists(
    st.sampled_from(["&", "<", ">", "\r", "\n", "\t", '"', "'", "]]>", "ệ", "&amp;"])
).map("".join)
_ODD = st.sampled_from(["\x00", "\x01", "\x1f", "\ufffe", "\uffff", "\x7f", "\x85", "𝔼"])


@pytest.fixture(scope="module")
def ca(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Ca]:
    yield Ca.create(tmp_path_factory.mktemp("ca") / "keys")


def _by_tree(
    message: Message, identities: Sequence[SigningIdentity], files: Sequence[Any]
) -> bytes:
    """The writer this replaced, as edoc.node.compose called it."""
    root = signing.sign(envelope.build_envelope(message), *identities)
    envelope.validate(root)
    out = io.BytesIO()
    envelope.write_package(root, files, out)
    return out.getvalue()


def _outcome(write: Any) -> object:
    try:
        return write()
    except (ValueError, errors.EdocError) as exc:
        return type(exc).__name__


def _attachments(draw: st.DrawFn) -> list[tuple[Attachment, bytes]]:
    files = []
    for number, body in enumerate(draw(st.lists(st.binary(max_size=300), max_size=3)), 1):
        name = draw(st.one_of(_text(1, 20), _AWKWARD.filter(bool)))
        kind = draw(st.sampled_from(["application/pdf", "text/plain; charset=utf-8"]))
        description = draw(st.one_of(st.just(""), _text(0, 20), _AWKWARD))
        digest = hashlib.sha256(body).hexdigest()
        attachment = Attachment(f"cid:{number}", name, kind, len(body), digest, description)
        files.append((attachment, body))
    return files


@st.composite
def _documents(draw: st.DrawFn) -> tuple[Message, list[tuple[Attachment, bytes]]]:
    files = _attachments(draw)
    document = metadata.to_document(draw(_metadata()), tuple(item for item, _ in files))
    if draw(st.booleans()):  # text a person would not type, which the writers escape
        document = dataclasses.replace(document, subject=draw(_AWKWARD), content=draw(_AWKWARD))
    if draw(st.integers(0, 9)) == 0:  # text XML cannot carry: lxml refuses it either way
        document = dataclasses.replace(document, subject=document.subject + draw(_ODD))
    return envelope.stamp_origin(document, SENT_AT), files


@st.composite
def _statuses(draw: st.DrawFn) -> tuple[Message, list[tuple[Attachment, bytes]]]:
    text = st.one_of(_text(0, 20), _AWKWARD)
    status = StatusUpdate(
        sender=Organization(SENDER, name=draw(text)),
        response_for=ResponseFor("000.00.00.H23", draw(_text(1)), SENT_AT.date(), draw(text)),
        code=draw(st.sampled_from(StatusCode)),
        timestamp=SENT_AT,
        description=draw(text),
        staff=Staff(*(draw(text) for _ in range(4))),
    )
    return envelope.stamp_origin(status, SENT_AT), []


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(drawn=st.one_of(_documents(), _statuses()), personal=st.booleans())
def test_the_bytes_writer_writes_what_the_tree_writer_wrote(
    ca: Ca, drawn: tuple[Message, list[tuple[Attachment, bytes]]], personal: bool
) -> None:
    """Byte for byte, signatures included (RSA PKCS#1 v1.5 is deterministic); where the
    tree writer refused a message, the same refusal, but text lxml refused with a
    ValueError is an InvalidField (a 400 with its code, not an internal error)."""
    message, files = drawn
    identities = [ca.keys.identity(SENDER)]
    if personal:
        identities.append(ca.keys.identity(SENDER, SIGNER))
    new = _outcome(lambda: signing.sign_message(message, *identities).package(files))
    old = _outcome(lambda: _by_tree(message, identities, files))
    assert new == ("InvalidField" if old == "ValueError" else old)


def _sample_document(sent_at: dt.datetime = SENT_AT) -> Message:
    data = sample_metadata(**{"from": SENDER, "signer": {"full_name": SIGNER}})
    return envelope.stamp_origin(metadata.to_document(data, ()), sent_at.replace(microsecond=0))


@given(drawn=_documents())
@settings(max_examples=60, deadline=None)
@example(drawn=(_sample_document(), []))
def test_each_part_is_its_exclusive_c14n_where_it_stands(
    drawn: tuple[Message, list[tuple[Attachment, bytes]]],
) -> None:
    try:
        written = envelope.written(drawn[0])
    except errors.InvalidField:
        return  # text XML cannot carry: nothing written
    root = etree.fromstring(written.before + written.after + envelope.PACKAGE_CLOSE)
    parts = signing._signed_elements(root)
    assert written.parts == {uri: signature_shape.canonical(part) for uri, part in parts.items()}


def test_only_a_new_messages_trace_is_written() -> None:
    message = _sample_document()
    for trace in ((), (*message.trace, *message.trace)):
        with pytest.raises(ValueError, match="one hop"):
            envelope.written(dataclasses.replace(message, trace=trace))


def _sample(ca: Ca, tmp_path: Path) -> tuple[bytes, list[tuple[Attachment, Path]], Message]:
    attachment = tmp_path / "bao-cao & ke-hoach.txt"
    attachment.write_bytes("Báo cáo tháng 11\r\n".encode() * 5000)
    files = envelope.attachments_from_files([attachment])
    document = dataclasses.replace(_sample_document(ca.clock()), attachments=(files[0][0],))
    identities = (ca.keys.identity(SENDER), ca.keys.identity(SENDER, SIGNER))
    signed = signing.sign_message(document, *identities)
    streamed = io.BytesIO()
    signed.write(files, streamed)  # from the file, as a large package is written
    assert streamed.getvalue() == _by_tree(document, identities, files)
    return streamed.getvalue(), files, document


def test_our_verifier_reads_back_the_message_written(ca: Ca, tmp_path: Path) -> None:
    package, _, document = _sample(ca, tmp_path)
    read = envelope.read_package(package)
    verified = signing.verify_package(read, ca.keys.trust(), ca.clock())
    assert verified.message == read.message == document
    assert verified.personal is not None and verified.personal.name == SIGNER


@pytest.mark.skipif(XMLSEC1 is None, reason="xmlsec1 not installed")
def test_xmlsec1_verifies_both_signatures_written_as_bytes(ca: Ca, tmp_path: Path) -> None:
    package, _, _ = _sample(ca, tmp_path)
    path = tmp_path / "signed.edxml"
    path.write_bytes(package)
    for number in (1, 2):
        result = xmlsec1_verify(ca, path, number)
        assert result.returncode == 0, result.stderr
