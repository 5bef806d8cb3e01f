"""Signing and verification: the happy path. Every way of being refused, with its code, is
in the hostile corpus: tests/attacks/test_signature_attacks.py."""

from __future__ import annotations

import base64
import datetime as dt
import io
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography import x509
from lxml import etree

from edoc import envelope, errors, pki, signature_shape, signing
from edoc.model import Organization, ResponseFor, Staff, StatusCode, StatusUpdate, TraceHop
from tests.support.pki import SENDER, SIGNER, Ca, reparse, signed_root, verify, wire

ED = {"edXML": envelope.NS, "ds": signing.DS}


@pytest.fixture(scope="module")
def ca(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Ca]:
    yield Ca.create(tmp_path_factory.mktemp("ca") / "keys")


def test_seal_and_personal_signature_verify(ca: Ca) -> None:
    root = signed_root(ca, personal=ca.keys.identity(SENDER, SIGNER))
    verified = verify(ca, root)
    assert verified.seal.kind is pki.CertKind.ORGANIZATION
    assert verified.seal.org_id == SENDER
    assert verified.personal is not None and verified.personal.name == SIGNER
    assert verified.message.sender.org_id == SENDER
    assert envelope.as_document(verified.message).subject == "V/v triển khai chuyển đổi số năm 2027"
    assert abs(verified.signed_at - ca.clock()) < dt.timedelta(seconds=2)


def test_status_message_signs_and_verifies(ca: Ca) -> None:
    answer = ResponseFor("000.00.00.H23", "45/UBND-VP", dt.date(2026, 11, 20), "x,2026/11/20,45")
    status = StatusUpdate(
        sender=Organization(SENDER),
        response_for=answer,
        code=StatusCode.ACCEPTED,
        timestamp=ca.clock().replace(microsecond=0),
        description="Đã tiếp nhận",
        staff=Staff(department="Văn phòng", name="Lê Văn C"),
    )
    root = envelope.build_envelope(envelope.stamp_origin(status, ca.clock()))
    verified = verify(ca, signing.sign(root, ca.keys.identity(SENDER)))
    assert isinstance(verified.message, StatusUpdate)
    assert verified.message.code is StatusCode.ACCEPTED
    assert verified.message.about == "x,2026/11/20,45"
    assert verified.message.staff.name == "Lê Văn C"
    assert verified.message.timestamp == status.timestamp


def test_verified_document_comes_from_signed_parts_only(ca: Ca) -> None:
    """A hop the hub appends is reported apart and never mixed into the signed model."""
    root = signed_root(ca)
    hop = TraceHop("000.00.00.G22", ca.clock())
    envelope.add_trace_hop(root, hop)
    verified = verify(ca, root)
    assert [h.org_id for h in verified.relay_hops] == ["000.00.00.G22"]
    assert [h.org_id for h in verified.message.trace] == [SENDER]


@pytest.mark.parametrize("personal", [False, True])
def test_a_read_package_is_verified_into_the_same_model(ca: Ca, personal: bool) -> None:
    """verify_package reuses the model read_package made of the same signed parts; it must
    be the one verify builds from those parts itself, hub hop and all."""
    root = signed_root(ca, personal=ca.keys.identity(SENDER, SIGNER) if personal else None)
    envelope.add_trace_hop(root, TraceHop("000.00.00.G22", ca.clock()))
    package = envelope.read_package(envelope.to_bytes(root))
    from_package = signing.verify_package(package, ca.keys.trust(), ca.clock())
    from_parts = signing.verify(package.root, ca.keys.trust(), ca.clock())
    assert from_package == from_parts
    assert from_package.message.trace == from_parts.message.trace != package.message.trace


def test_every_signature_has_exactly_the_pinned_shape(ca: Ca) -> None:
    """The control for the shape verify pins: what sign writes is element for element
    signature_shape.SIGNATURE, with attributes only where edoc puts them and text only in the
    digests, the value and the certificate, also after two relays added their hops."""
    root = signed_root(ca, personal=ca.keys.identity(SENDER, SIGNER))
    for hub in ("000.00.00.G22", "000.00.00.G23"):
        envelope.add_trace_hop(root, TraceHop(hub, ca.clock()))
    signatures = envelope.read_package(envelope.to_bytes(root)).root.findall(
        "edXML:edXMLEnvelope/edXML:edXMLHeader/ds:Signature", ED
    )
    assert len(signatures) == 2
    holders = {"DigestValue", "SignatureValue", "X509Certificate"}
    for signature in signatures:
        elements = list(signature.iter())
        assert [e.tag for e in elements] == [
            f"{{{signing.DS}}}{n}" for n in signature_shape.SIGNATURE
        ]
        for element in elements:
            local = etree.QName(element).localname
            assert set(element.keys()) <= {"Algorithm", "URI"}
            assert bool((element.text or "").strip()) == (local in holders)
    assert len(verify(ca, root).relay_hops) == 2


def test_a_certificate_with_a_malformed_issuer_is_refused_not_a_crash(ca: Ca) -> None:
    """cryptography parses a certificate's fields when first read: an issuer name whose
    string tag is broken once escaped the checks as a ValueError from the chain check
    (found by tests/attacks/test_fuzz.py). It is an unreadable certificate."""
    root = reparse(signed_root(ca))
    holder = root.find(".//ds:X509Certificate", ED)
    assert holder is not None and holder.text
    der = base64.b64decode(holder.text)
    issuer = x509.load_der_x509_certificate(der).issuer.public_bytes()
    at = der.index(issuer) + issuer.rindex(b"\x0c")  # the common name's UTF8String tag
    broken = der[:at] + b"\x10" + der[at + 1 :]  # a primitive SEQUENCE: not a string
    holder.text = base64.b64encode(broken).decode()
    with pytest.raises(errors.UntrustedCertificate):
        signing.verify(root, ca.keys.trust(), ca.clock())


def test_a_revocation_is_judged_per_message_whatever_was_remembered(tmp_path: Path) -> None:
    """What is remembered about a certificate (its chain, usage, dates: certcheck.ByIdentity)
    does not carry its verdict: the same package, its certificate already checked, is
    refused once the key is revoked as compromised."""
    own = Ca.create(tmp_path)
    package = wire(signed_root(own))
    first = envelope.read_package(io.BytesIO(package)).root
    assert signing.verify(first, own.keys.trust(), own.clock()).seal.org_id == SENDER
    own.keys.revoke(SENDER, reason="keyCompromise")  # refuses what it signed before too
    own.clock.advance(seconds=1)
    again = envelope.read_package(io.BytesIO(package)).root
    with pytest.raises(errors.RevokedCertificate):
        signing.verify(again, own.keys.trust(), own.clock())
