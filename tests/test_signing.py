"""Signing and verification: the happy path and every failure kind, each with its code."""

from __future__ import annotations

import datetime as dt
import io
from collections.abc import Callable, Iterator
from copy import deepcopy
from pathlib import Path
from typing import Any

import pytest
from lxml import etree

from edoc import envelope, errors, pki, signing
from edoc.keystore import KeyStore, SigningIdentity
from edoc.model import Organization, ResponseFor, Staff, StatusCode, StatusUpdate, TraceHop
from tests.pki_support import SENDER, SIGNER, Ca, signed_root, unsigned_root, verify, wire

ED = {"edXML": envelope.NS, "ds": signing.DS}


@pytest.fixture(scope="module")
def ca(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Ca]:
    yield Ca.create(tmp_path_factory.mktemp("ca") / "keys")


@pytest.fixture(scope="module")
def foreign_ca(tmp_path_factory: pytest.TempPathFactory) -> Ca:
    return Ca.create(tmp_path_factory.mktemp("foreign") / "keys")


def _find(root: etree._Element, path: str) -> etree._Element:
    found = root.find(path, ED)
    assert found is not None, path
    return found


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


def test_unsigned_message_is_refused(ca: Ca) -> None:
    with pytest.raises(errors.MissingSignature):
        verify(ca, unsigned_root())


@pytest.mark.parametrize(
    "path, value",
    [
        ("edXML:edXMLEnvelope/edXML:edXMLHeader/edXML:MessageHeader/edXML:Subject", "V/v khác"),
        (
            "edXML:edXMLEnvelope/edXML:edXMLHeader/edXML:MessageHeader/edXML:To/edXML:OrganId",
            "000.00.00.H41",
        ),
        (
            "edXML:edXMLEnvelope/edXML:edXMLHeader/edXML:TraceHeaderList/edXML:TraceHeader"
            "/edXML:Timestamp",
            "2020/01/01 08:00:00",
        ),
        (
            "edXML:edXMLEnvelope/edXML:edXMLHeader/edXML:TraceHeaderList/edXML:Bussiness"
            "/edXML:BussinessDocType",
            "1",
        ),
    ],
    ids=["subject", "recipient", "signing-time", "business-type"],
)
def test_tampered_signed_part_is_refused(ca: Ca, path: str, value: str) -> None:
    root = signed_root(ca)
    _find(root, path).text = value
    with pytest.raises(errors.TamperedSignature) as caught:
        verify(ca, root)
    assert caught.value.code == "EDOC-SIG-002"


def test_tampered_attachment_is_refused(ca: Ca, tmp_path: Path) -> None:
    original = tmp_path / "to-trinh.pdf"
    original.write_bytes(b"%PDF-1.4 original")
    files = envelope.attachments_from_files([original])
    root = signed_root(ca, files=files)
    original.write_bytes(b"%PDF-1.4 changed!")  # same size, other bytes
    with pytest.raises(errors.AttachmentMismatch):
        envelope.read_package(io.BytesIO(wire(root, files)))


def test_manifest_digest_changed_to_match_swapped_attachment_is_refused(
    ca: Ca, tmp_path: Path
) -> None:
    original = tmp_path / "a.txt"
    original.write_bytes(b"original")
    files = envelope.attachments_from_files([original])
    root = signed_root(ca, files=files)
    swapped = tmp_path / "b" / "a.txt"
    swapped.parent.mkdir()
    swapped.write_bytes(b"swapped!")
    new_entry, _ = envelope.attachments_from_files([swapped])[0]
    _find(
        root, "edXML:edXMLEnvelope/edXML:edXMLBody/edXML:edXMLManifest/edXML:Reference/edXML:Sha256"
    ).text = new_entry.sha256
    package = envelope.read_package(io.BytesIO(wire(root, [(new_entry, swapped)])))
    with pytest.raises(errors.TamperedSignature):
        signing.verify_package(package, ca.keys.trust(), ca.clock())


def test_certificate_of_a_foreign_ca_is_untrusted(ca: Ca, foreign_ca: Ca) -> None:
    root = signed_root(ca, seal=foreign_ca.keys.identity(SENDER))
    with pytest.raises(errors.UntrustedCertificate):
        verify(ca, root)


def test_certificate_of_another_organization_is_impersonation(ca: Ca) -> None:
    root = signed_root(ca, seal=ca.keys.identity("000.00.00.H23"))
    with pytest.raises(errors.WrongOrganization):
        verify(ca, root)


def test_personal_certificate_as_seal_is_wrong_usage(ca: Ca) -> None:
    root = signed_root(ca, seal=ca.keys.identity(SENDER, SIGNER))
    with pytest.raises(errors.WrongKeyUsage):
        verify(ca, root)


def test_personal_signature_must_match_signer_info(ca: Ca) -> None:
    ca.keys.issue(SENDER, full_name="Trần Thị B")
    root = signed_root(ca, personal=ca.keys.identity(SENDER, "Trần Thị B"))
    with pytest.raises(errors.WrongOrganization):
        verify(ca, root)


def _changes(values: dict[str, Any]) -> dict[str, Any]:
    return {**values, "to": [SENDER]}


def test_expired_and_not_yet_valid_certificates(tmp_path: Path) -> None:
    ca = Ca.create(tmp_path / "keys")
    short = ca.keys.issue("000.00.07.H53", org_name="Sở Nội vụ", days=1)
    root = signed_root(
        ca, seal=ca.keys.identity("000.00.07.H53"), **_changes({"from": "000.00.07.H53"})
    )
    assert verify(ca, root).seal.serial == short.serial
    later = ca.clock() + dt.timedelta(days=2)
    with pytest.raises(errors.ExpiredCertificate, match="not valid at now"):
        signing.verify(root, ca.keys.trust(), later)
    backdated = unsigned_root(signed_at=ca.clock() - dt.timedelta(days=3))
    backdated = signing.sign(backdated, ca.keys.identity(SENDER))
    with pytest.raises(errors.ExpiredCertificate, match="not valid at signing time"):
        verify(ca, backdated)


def test_revocation_refuses_what_is_signed_after_it(tmp_path: Path) -> None:
    ca = Ca.create(tmp_path / "keys")
    before = signed_root(ca)
    ca.clock.advance(minutes=10)
    ca.keys.revoke(SENDER, "cessationOfOperation")
    ca.clock.advance(minutes=10)
    after = signed_root(ca, seal=_revoked_identity(ca.keys))
    assert verify(ca, before).seal.org_id == SENDER  # signed before a non-compromise revocation
    with pytest.raises(errors.RevokedCertificate):
        verify(ca, after)


def _revoked_identity(keys: KeyStore) -> SigningIdentity:
    """The revoked seal itself, as a thief or a stale signer would still hold it."""
    record = next(r for r in keys.records() if r.org_id == SENDER and r.revoked_at)
    return keys._load_identity(record)


def test_key_compromise_refuses_everything_signed_with_the_key(tmp_path: Path) -> None:
    ca = Ca.create(tmp_path / "keys")
    before = signed_root(ca)
    ca.clock.advance(minutes=10)
    ca.keys.revoke(SENDER, "keyCompromise")
    with pytest.raises(errors.RevokedCertificate):
        verify(ca, before)


# --- signature wrapping and other shapes we never sign ----------------------------------
def _signature(root: etree._Element) -> etree._Element:
    return _find(root, "edXML:edXMLEnvelope/edXML:edXMLHeader/ds:Signature")


def _move_signature_into_body(root: etree._Element) -> None:
    signature = _signature(root)
    signature.getparent().remove(signature)
    _find(root, "edXML:edXMLEnvelope/edXML:edXMLBody").append(signature)


def _extra_reference(root: etree._Element) -> None:
    info = _find(_signature(root), "ds:SignedInfo")
    info.append(deepcopy(info.findall("ds:Reference", ED)[0]))


def _drop_reference(root: etree._Element) -> None:
    info = _find(_signature(root), "ds:SignedInfo")
    info.remove(info.findall("ds:Reference", ED)[-1])


def _external_reference(root: etree._Element) -> None:
    _find(_signature(root), "ds:SignedInfo/ds:Reference").set("URI", "http://example.org/x")


def _whole_document_reference(root: etree._Element) -> None:
    _find(_signature(root), "ds:SignedInfo/ds:Reference").set("URI", "")


def _object_with_original_header(root: etree._Element) -> None:
    signature = _signature(root)
    holder = etree.SubElement(signature, f"{{{signing.DS}}}Object")
    header = _find(root, "edXML:edXMLEnvelope/edXML:edXMLHeader/edXML:MessageHeader")
    holder.append(deepcopy(header))
    header.set("Id", "moved")


def _sha1_digest(root: etree._Element) -> None:
    _find(_signature(root), "ds:SignedInfo/ds:Reference/ds:DigestMethod").set(
        "Algorithm", "http://www.w3.org/2000/09/xmldsig#sha1"
    )


def _rsa_sha1(root: etree._Element) -> None:
    _find(_signature(root), "ds:SignedInfo/ds:SignatureMethod").set(
        "Algorithm", "http://www.w3.org/2000/09/xmldsig#rsa-sha1"
    )


def _xpath_transform(root: etree._Element) -> None:
    transforms = _find(_signature(root), "ds:SignedInfo/ds:Reference/ds:Transforms")
    etree.SubElement(transforms, f"{{{signing.DS}}}Transform").set(
        "Algorithm", "http://www.w3.org/TR/1999/REC-xpath-19991116"
    )


def _three_signatures(root: etree._Element) -> None:
    header = _find(root, "edXML:edXMLEnvelope/edXML:edXMLHeader")
    header.append(deepcopy(_signature(root)))
    header.append(deepcopy(_signature(root)))


def _two_certificates(root: etree._Element) -> None:
    data = _find(_signature(root), "ds:KeyInfo/ds:X509Data")
    data.append(deepcopy(data[0]))


@pytest.mark.parametrize(
    "attack, expected",
    [
        (_move_signature_into_body, errors.SchemaViolation),
        (_extra_reference, errors.WrappedSignature),
        (_drop_reference, errors.WrappedSignature),
        (_external_reference, errors.WrappedSignature),
        (_whole_document_reference, errors.WrappedSignature),
        (_object_with_original_header, errors.WrappedSignature),
        (_sha1_digest, errors.UnsupportedAlgorithm),
        (_rsa_sha1, errors.UnsupportedAlgorithm),
        (_xpath_transform, errors.UnsupportedAlgorithm),
        (_three_signatures, errors.SchemaViolation),
        (_two_certificates, errors.UntrustedCertificate),
    ],
    ids=lambda value: getattr(value, "__name__", "").strip("_"),
)
def test_signature_shapes_we_never_make_are_refused(
    ca: Ca, attack: Callable[[etree._Element], None], expected: type[errors.EdocError]
) -> None:
    root = signed_root(ca)
    attack(root)
    with pytest.raises(expected):
        verify(ca, root)
