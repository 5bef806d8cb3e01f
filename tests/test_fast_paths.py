"""Each fast path of issue 21 against the slow path it replaced: the same bytes out, the
same verdict on everything in (the hostile corpus in tests/attacks covers the refusals
by code, tests/test_xmlsec1.py that an independent verifier accepts what edoc signs)."""

from __future__ import annotations

import base64
import datetime as dt
import pathlib
from collections.abc import Iterator
from copy import deepcopy
from typing import Any
from unittest import mock

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from lxml import etree

from edoc import envelope, errors, pki, signature_shape, signing
from edoc.keyindex import SigningIdentity
from edoc.model import TraceHop
from tests.support.pki import (
    SENDER,
    SIGNER,
    Ca,
    reparse,
    signed_root,
    unsigned_root,
    wire,
)

DS = signing.DS


@pytest.fixture(scope="module")
def ca(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Ca]:
    yield Ca.create(tmp_path_factory.mktemp("ca") / "keys")


# --- the signer: SignedInfo filled in as bytes, not built as a tree -----------------------
def _ds(tag: str, *children: etree._Element, **attributes: str) -> etree._Element:
    element = etree.Element(f"{{{DS}}}{tag}", attributes, nsmap={"ds": DS})
    element.extend(children)
    return element


def _text(tag: str, value: bytes) -> etree._Element:
    element = _ds(tag)
    element.text = base64.b64encode(value).decode("ascii")
    return element


def _tree_built_signature(
    root: etree._Element, digests: dict[str, bytes], identity: SigningIdentity
) -> None:
    """The signer this replaced, element by element, then canonicalised in place."""
    info = _ds(
        "SignedInfo",
        _ds("CanonicalizationMethod", Algorithm=signing.EXC_C14N),
        _ds("SignatureMethod", Algorithm=signing.RSA_SHA256),
        *(
            _ds(
                "Reference",
                _ds("Transforms", _ds("Transform", Algorithm=signing.EXC_C14N)),
                _ds("DigestMethod", Algorithm=signing.SHA256),
                _text("DigestValue", digests[uri]),
                URI=uri,
            )
            for uri in signing.REFERENCES
        ),
    )
    signature = _ds("Signature", info)
    signature_shape.header(root).append(signature)
    canonical = etree.tostring(info, method="c14n", exclusive=True, with_comments=False)
    value = identity.key.sign(canonical, padding.PKCS1v15(), hashes.SHA256())
    signature.append(_text("SignatureValue", value))
    certificate = identity.cert.public_bytes(serialization.Encoding.DER)
    signature.append(_ds("KeyInfo", _ds("X509Data", _text("X509Certificate", certificate))))


@pytest.mark.parametrize("personal", [False, True])
def test_the_template_signer_writes_what_the_tree_built_one_wrote(ca: Ca, personal: bool) -> None:
    """RSA PKCS#1 v1.5 is deterministic, so the same parts and keys give the same bytes."""
    identities = [ca.keys.identity(SENDER)]
    if personal:
        identities.append(ca.keys.identity(SENDER, SIGNER))
    unsigned = unsigned_root(signed_at=ca.clock())
    by_template = signing.sign(unsigned, *identities)
    by_tree = deepcopy(unsigned)
    digests = signing._digests(signing._signed_elements(by_tree))
    for identity in identities:
        _tree_built_signature(by_tree, digests, identity)
    assert wire(by_template) == wire(by_tree)
    assert etree.tostring(by_template) == etree.tostring(by_tree)


def test_the_template_is_signed_info_canonicalised_where_it_stands(ca: Ca) -> None:
    """What the signer signs is what any verifier canonicalises, in the signer's tree, off
    the wire, and after relays added their hops."""
    root = signed_root(ca, personal=ca.keys.identity(SENDER, SIGNER))
    expected = signature_shape.signed_info(signing._digests(signing._signed_elements(root)))
    for hub in ("", "000.00.00.G22", "000.00.00.G23"):
        if hub:
            envelope.add_trace_hop(root, TraceHop(hub, ca.clock()))
        for tree in (root, reparse(root)):
            found = signature_shape.signatures(tree)
            assert [signature_shape.canonical(s[0]) for s in found] == [expected, expected]


# --- the verifier: one comparison where SignedInfo is exactly what edoc writes -------------
def _outcome(root: etree._Element, ca: Ca) -> tuple[str, Any]:
    try:
        return "verified", signing.verify(root, ca.keys.trust(), ca.clock())
    except errors.EdocError as exc:
        return exc.code, str(exc)


def _slow_outcome(root: etree._Element, ca: Ca) -> tuple[str, Any]:
    """The verdict of the element-by-element checks alone: no SignedInfo matches b''."""
    with mock.patch.object(signature_shape, "signed_info", return_value=b""):
        return _outcome(root, ca)


def test_the_fast_path_is_taken_for_what_edoc_signs(ca: Ca) -> None:
    """The control for the differential test below: both ways accept an intact package,
    and the comparison with the template is what accepts it when it is on."""
    root = reparse(signed_root(ca, personal=ca.keys.identity(SENDER, SIGNER)))
    with mock.patch.object(
        signature_shape, "_check_signed_info", side_effect=AssertionError("slow path")
    ):
        fast = _outcome(root, ca)
    assert fast[0] == "verified"
    assert _slow_outcome(root, ca) == fast


_ALGORITHMS = [
    signing.EXC_C14N,
    signing.RSA_SHA256,
    signing.SHA256,
    "http://www.w3.org/2001/10/xml-exc-c14n#WithComments",
    "http://www.w3.org/2000/09/xmldsig#rsa-sha1",
    "http://www.w3.org/2000/09/xmldsig#sha1",
    "http://www.w3.org/TR/2001/REC-xml-c14n-20010315",
]
_URIS = [*signing.REFERENCES, "", "#edoc-Other", "#xpointer(/)"]


def _mutate(root: etree._Element, data: st.DataObject) -> None:
    """One change to a signature, or to a signed part, such as an attacker might make."""
    draw = data.draw
    signature = draw(st.sampled_from(list(root.iter(f"{{{DS}}}Signature"))))
    elements = list(signature.iter(etree.Element))  # not a comment an earlier change added
    target = draw(st.sampled_from(elements)) if draw(st.booleans()) else signature[0]
    kind = draw(
        st.sampled_from(
            [
                "text",
                "whitespace",
                "attribute",
                "algorithm",
                "uri",
                "drop",
                "duplicate",
                "comment",
                "signed part",
                "prefix",
            ]
        )
    )
    if kind == "text":
        text = target.text or ""
        at = draw(st.integers(0, len(text)))
        target.text = text[:at] + draw(st.sampled_from(["A", "=", "x", "\n", "é"])) + text[at:]
    elif kind == "whitespace":
        target.tail = draw(st.sampled_from(["\n", "  ", "\t"]))
    elif kind == "attribute":
        target.set(draw(st.sampled_from(["Id", "URI", "Type", "Algorithm"])), "x")
    elif kind == "algorithm":
        for element in signature.iter():
            if element.get("Algorithm") is not None and draw(st.booleans()):
                element.set("Algorithm", draw(st.sampled_from(_ALGORITHMS)))
    elif kind == "uri":
        references = signature.findall("ds:SignedInfo/ds:Reference", signing.DSNS)
        if references:
            draw(st.sampled_from(references)).set("URI", draw(st.sampled_from(_URIS)))
    elif kind == "drop" and target is not signature:
        parent = target.getparent()
        assert parent is not None
        parent.remove(target)
    elif kind == "duplicate" and target is not signature:
        target.addnext(deepcopy(target))
    elif kind == "comment":
        target.append(etree.Comment("x"))
    elif kind == "signed part":
        subject = root.find(".//edXML:Subject", envelope.NSMAP)
        assert subject is not None
        subject.text = (subject.text or "") + draw(st.sampled_from([".", " ", "\n"]))
    elif kind == "prefix" and len(signature):  # c14n keeps prefixes: another one differs
        info = signature[0]
        renamed = etree.fromstring(
            etree.tostring(info).replace(b"ds:", b"dsig:").replace(b"xmlns:ds=", b"xmlns:dsig=")
        )
        signature.replace(info, renamed)


@settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(data=st.data())
def test_the_fast_verifier_agrees_with_the_slow_one(ca: Ca, data: st.DataObject) -> None:
    """Whatever is changed, the verdict (accepted, or refused under which code and why) is
    the one the element-by-element checks alone reach: the comparison with the template
    only ever accepts what they accept."""
    personal = data.draw(st.booleans())
    root = reparse(signed_root(ca, personal=ca.keys.identity(SENDER, SIGNER) if personal else None))
    for _ in range(data.draw(st.integers(1, 3))):
        _mutate(root, data)
    assert _outcome(root, ca) == _slow_outcome(root, ca)


def test_an_unreadable_certificate_is_refused_every_time(ca: Ca) -> None:
    """Certificates are remembered by their text; a refusal is not."""
    root = reparse(signed_root(ca))
    certificate = root.find(".//ds:X509Certificate", signing.DSNS)
    assert certificate is not None
    certificate.text = "AAAA"
    for _ in range(2):
        with pytest.raises(errors.UntrustedCertificate):
            signing.verify(root, ca.keys.trust(), ca.clock())


def test_signing_time_is_checked_per_message_with_cached_certificates(ca: Ca) -> None:
    """What is remembered of a certificate is the certificate; its validity is judged at
    each message's own time."""
    root = reparse(signed_root(ca))
    signing.verify(root, ca.keys.trust(), ca.clock())
    with pytest.raises(errors.ExpiredCertificate):
        signing.verify(root, ca.keys.trust(), ca.clock() + dt.timedelta(days=3660))


# --- finding the signed parts: the Ids counted in C --------------------------------------
def _signed_elements_by_walk(root: etree._Element) -> dict[str, etree._Element]:
    """The finder this replaced: every element with an Id, grouped by it."""
    holders: dict[str, list[etree._Element]] = {}
    for element in root.iter():
        if element.get("Id") is not None:
            holders.setdefault(str(element.get("Id")), []).append(element)
    found = {}
    for uri, path in signing.SIGNED_PARTS.items():
        named, expected = holders.get(uri[1:], []), root.xpath(path, namespaces=envelope.NSMAP)
        assert isinstance(expected, list)
        if len(named) != 1 or len(expected) != 1 or named[0] is not expected[0]:
            raise errors.WrappedSignature(f"{uri} does not name the expected element")
        found[uri] = expected[0]
    return found


def _found_or_refused(find: Any, root: etree._Element) -> object:
    try:
        return find(root)
    except errors.WrappedSignature as exc:
        return str(exc)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_signed_parts_are_found_as_the_walk_found_them(data: st.DataObject) -> None:
    """Ids moved, copied, dropped or doubled, parts copied beside themselves: the same
    parts found, or the same refusal."""
    root = unsigned_root(signed_at=dt.datetime(2026, 12, 1, tzinfo=dt.UTC))
    elements = list(root.iter())
    ids = [uri[1:] for uri in signing.REFERENCES]
    for _ in range(data.draw(st.integers(0, 3))):
        target = data.draw(st.sampled_from(elements))
        change = data.draw(st.sampled_from(["set", "drop", "copy"]))
        if change == "set":
            target.set("Id", data.draw(st.sampled_from([*ids, "other"])))
        elif change == "drop":
            target.attrib.pop("Id", None)
        elif target.getparent() is not None:
            target.addnext(deepcopy(target))
    assert _found_or_refused(signing._signed_elements, root) == _found_or_refused(
        _signed_elements_by_walk, root
    )


# --- what is remembered stays small, whatever a sender writes ----------------------------
def test_a_padded_certificate_verifies_and_is_not_remembered(ca: Ca) -> None:
    root = reparse(signed_root(ca))
    certificate = root.find(".//ds:X509Certificate", signing.DSNS)
    assert certificate is not None and certificate.text
    certificate.text = certificate.text[:40] + "\n" * 10_000 + certificate.text[40:]
    held = signature_shape._remembered.cache_info().currsize
    signing.verify(root, ca.keys.trust(), ca.clock())
    signing.verify(root, ca.keys.trust(), ca.clock())
    assert signature_shape._remembered.cache_info().currsize == held


# --- the key store: identities looked up by holder, not scanned for -----------------------
def test_identities_are_the_ones_a_scan_of_every_record_finds(tmp_path: pathlib.Path) -> None:
    """Seals rotated (both in overlap), persons and TLS certificates beside them, one
    organization revoked, and the clock moved past the overlap: each holder gets the
    certificate a scan of every record picks (the newest valid, the non-retiring first)."""
    ca = Ca.create(tmp_path / "keys")
    keys = ca.keys
    others = ["000.00.13.H53", "000.00.14.H53"]
    for org in others:
        keys.issue(org)
        keys.issue(org, full_name="Trần Thị B")
    keys.rotate(SENDER)
    keys.rotate(others[0], overlap_days=1)
    keys.revoke(others[1])
    holders = [
        (org, kind, name)
        for org in [SENDER, "000.00.00.H23", *others]
        for kind in pki.CertKind
        for name in ("", SIGNER, "Trần Thị B")
    ]

    def scanned(org: str, kind: pki.CertKind, name: str) -> str | None:
        now = keys.clock()
        usable = [
            r
            for r in keys.records()
            if (r.org_id, r.kind, r.full_name) == (org, kind, name)
            and r.state(now) in ("active", "in overlap")
        ]
        return (
            max(usable, key=lambda r: (r.retire_at is None, r.not_before)).serial
            if usable
            else None
        )

    def looked_up(org: str, kind: pki.CertKind, name: str) -> str | None:
        try:
            return keys.identity(org, name, kind).record.serial
        except errors.UnknownCertificate:
            return None

    for _ in range(2):
        found = {holder: looked_up(*holder) for holder in holders}
        assert found == {holder: scanned(*holder) for holder in holders}
        assert any(found.values())
        ca.clock.advance(days=2)
