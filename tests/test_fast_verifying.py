"""Fast paths of issue 21's second part in reading and verifying, each against the slow
path it replaced (tests/test_fast_paths.py and test_fast_reading.py hold the first
part's, tests/test_canonical_writer.py the sender's)."""

from __future__ import annotations

import datetime as dt
import io
from collections.abc import Iterator
from typing import Any
from unittest import mock

import pybase64
import pytest
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from lxml import etree

from edoc import certcheck, envelope, errors, pki, signature_shape, signing
from edoc.envelope import parse, read
from edoc.model import TraceHop
from tests.support.pki import SENDER, SIGNER, Ca, reparse, signed_root, wire


@pytest.fixture(scope="module")
def ca(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Ca]:
    yield Ca.create(tmp_path_factory.mktemp("ca") / "keys")


# --- an attachment's body decoded in one call where it is plain base64 --------------------
def _by_decoder(text: str, budget: int) -> object:
    """What the streaming decoder makes of a whole body."""
    buffer = io.BytesIO()
    try:
        decoder = envelope.attachments.Base64Decoder(buffer, budget)
        decoder.feed(text)
        size, sha256 = decoder.finish()
    except errors.EdocError as exc:
        return exc.code
    return buffer.getvalue(), size, sha256


def _by_reader(text: str, budget: int) -> object:
    body = etree.Element(envelope.q("ContentTransferEncoded"))
    body.text = text
    try:
        return read._decoded(body, budget)
    except errors.EdocError as exc:
        return exc.code


_BASE64 = st.binary(max_size=200).map(lambda data: pybase64.b64encode(data).decode())


@settings(max_examples=500)
@given(
    pieces=st.lists(
        st.one_of(_BASE64, st.sampled_from(["=", "==", "A", "\n", "\r\n", " ", "\t", "-", "é"]))
    ),
    budget=st.integers(0, 400),
)
def test_a_body_decodes_as_the_streaming_decoder_decodes_it(pieces: list[str], budget: int) -> None:
    """Bytes, size and digest, or the refusal, whatever the text and the budget."""
    text = "".join(pieces)
    assert _by_reader(text, budget) == _by_decoder(text, budget)


def test_plain_base64_takes_one_call() -> None:
    """The control: edoc's own bodies do not go through the decoder."""
    text = pybase64.b64encode(b"van ban" * 100).decode()
    with mock.patch.object(read, "Base64Decoder", side_effect=AssertionError("decoder")):
        assert _by_reader(text, 1000) == _by_decoder(text, 1000)


# --- a signature's shape: one C14N of it where it is what edoc writes ---------------------
def test_the_whole_signature_comparison_is_what_accepts_an_intact_one(ca: Ca) -> None:
    """The element-by-element walk is not taken for what edoc signs (the differential test
    tests/test_fast_paths.py::test_the_fast_verifier_agrees_with_the_slow_one turns both
    comparisons off at once and finds the same verdicts under any change)."""
    root = reparse(signed_root(ca, personal=ca.keys.identity(SENDER, SIGNER)))
    with mock.patch.object(signature_shape, "_check_shape", side_effect=AssertionError("walk")):
        verified = signing.verify(root, ca.keys.trust(), ca.clock())
    assert verified.personal is not None


@pytest.mark.parametrize(
    "change",
    [
        pytest.param(lambda s: s[2].append(etree.Comment("x")), id="comment"),
        pytest.param(lambda s: s[0][2].append(etree.Comment("x")), id="comment in SignedInfo"),
        pytest.param(lambda s: s[2][0].set("Id", "x"), id="attribute"),
        pytest.param(lambda s: s.set("Id", "x"), id="attribute on the signature"),
        pytest.param(lambda s: setattr(s[1], "tail", "x"), id="text after the value"),
        pytest.param(lambda s: setattr(s[2], "text", "x"), id="text in KeyInfo"),
        pytest.param(lambda s: setattr(s[0], "tail", "x"), id="text after SignedInfo"),
        pytest.param(lambda s: s[2][0][0].append(etree.Element("x")), id="element"),
        pytest.param(lambda s: s[2][0].append(etree.Element("x")), id="second in X509Data"),
        pytest.param(lambda s: s[0][0].set("Algorithm", "x"), id="signed info"),
    ],
)
def test_the_whole_signature_comparison_leaves_any_change_to_the_walk(
    ca: Ca, change: object
) -> None:
    root = reparse(signed_root(ca))
    signature = signature_shape.signatures(root)[0]
    parts = signing._signed_elements(root)
    expected = signature_shape.signed_info(signing._digests(parts))
    assert signature_shape._as_signed(signature, expected) is not None
    change(signature)  # type: ignore[operator]
    assert signature_shape._as_signed(signature, expected) is None


@pytest.mark.parametrize(
    "change",
    [
        pytest.param(lambda s: setattr(s[1], "tail", "\n"), id="whitespace after the value"),
        pytest.param(lambda s: setattr(s[2], "text", "\n  "), id="whitespace in KeyInfo"),
        pytest.param(lambda s: setattr(s[1], "text", (s[1].text or "") + "&"), id="escaped"),
        pytest.param(lambda s: setattr(s[2][0][0], "text", "\n"), id="empty certificate"),
    ],
)
def test_what_the_walk_lets_by_is_judged_as_the_walk_judges_it(ca: Ca, change: object) -> None:
    """Whitespace between the unsigned parts and any text of the value and certificate pass
    the shape walk; the comparison lets them by too, and the verdict is the walk's."""
    root = reparse(signed_root(ca))
    signature = signature_shape.signatures(root)[0]
    change(signature)  # type: ignore[operator]
    parts = signing._signed_elements(root)
    expected = signature_shape.signed_info(signing._digests(parts))
    assert signature_shape._as_signed(signature, expected) is not None
    fast = _verdict_of(lambda: signing.verify(root, ca.keys.trust(), ca.clock()))
    with mock.patch.object(signature_shape, "signed_info", return_value=b""):
        slow = _verdict_of(lambda: signing.verify(root, ca.keys.trust(), ca.clock()))
    assert fast == slow


# --- certificates: what is worked out once, found by the object, not its DER -------------
def _checked_in_full(
    cert: x509.Certificate, trust: certcheck.Trust, signed_at: dt.datetime, now: dt.datetime
) -> pki.CertKind:
    """check_certificate as it was before anything about a certificate was remembered."""
    if signed_at > now + certcheck.CLOCK_SKEW:
        raise errors.ExpiredCertificate("future")
    issuer = next((ca for ca in trust.issuing if cert.issuer == ca.subject), None)
    try:
        if issuer is None:
            raise InvalidSignature
        cert.verify_directly_issued_by(issuer)
        issuer.verify_directly_issued_by(trust.root)
    except (InvalidSignature, ValueError, TypeError):
        raise errors.UntrustedCertificate("chain") from None
    for moment in (signed_at, now):
        if not cert.not_valid_before_utc <= moment <= cert.not_valid_after_utc:
            raise errors.ExpiredCertificate("validity")
    retired_at = trust.retired.get(cert.serial_number)
    if retired_at is not None and max(signed_at, now) > retired_at:
        raise errors.ExpiredCertificate("retired")
    revocation = trust.revoked.get(cert.serial_number)
    if revocation is not None and (
        revocation.reason is x509.ReasonFlags.key_compromise or signed_at > revocation.at
    ):
        raise errors.RevokedCertificate("revoked")
    return certcheck._check_usage(cert)


def _verdict(check: Any, cert: x509.Certificate, *args: Any) -> object:
    try:
        return check(cert, *args)
    except errors.EdocError as exc:
        return exc.code


@pytest.fixture(scope="module")
def certificates(tmp_path_factory: pytest.TempPathFactory) -> tuple[Ca, list[x509.Certificate]]:
    """Seals, a personal and a TLS certificate, one rotated out, one revoked, and one of
    another CA: each read twice, as two objects of one certificate."""
    ca = Ca.create(tmp_path_factory.mktemp("certs") / "keys")
    ca.keys.issue("000.00.00.H34", tls_hosts=("127.0.0.1",))
    ca.keys.rotate("000.00.00.H23", overlap_days=1)
    ca.keys.revoke(ca.keys.identity(SENDER, SIGNER).record.serial, "keyCompromise")
    other = Ca.create(tmp_path_factory.mktemp("other") / "keys")
    paths = [ca.keys.cert_path(r.serial) for r in ca.keys.records()]
    paths += [other.keys.cert_path(r.serial) for r in other.keys.records()]
    certs = [x509.load_pem_x509_certificate(path.read_bytes()) for path in paths]
    return ca, certs + [x509.load_pem_x509_certificate(path.read_bytes()) for path in paths]


@settings(max_examples=200, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_certificates_are_judged_as_in_full(
    certificates: tuple[Ca, list[x509.Certificate]], data: st.DataObject
) -> None:
    """Chain, validity, rotation, revocation and usage: the same verdict whatever the
    certificate, the object it is read into, the signing time and now."""
    ca, certs = certificates
    trust = ca.keys.trust()
    cert = data.draw(st.sampled_from(certs))
    days = st.floats(-800, 800).map(lambda d: ca.clock() + dt.timedelta(days=d))
    signed_at, now = data.draw(days), data.draw(days)
    verdict = _verdict(certcheck.check_certificate, cert, trust, signed_at, now)
    assert verdict == _verdict(_checked_in_full, cert, trust, signed_at, now)


# --- the model: places by compiled XPath ---------------------------------------------
_LEVELS = [
    ["edXMLEnvelope"],
    ["edXMLHeader", "edXMLBody"],
    ["MessageHeader", "TraceHeaderList", "edXMLManifest"],
    ["TraceHeader", "Bussiness"],
    ["MessageHeader"],
]


@st.composite
def _roots(draw: st.DrawFn, level: int = 0) -> etree._Element:
    """Trees of the names on the way to the parts, mostly where they belong, some
    repeated or misplaced, with comments."""
    names = _LEVELS[level] if draw(st.integers(0, 4)) else [n for ns in _LEVELS for n in ns]
    element = etree.Element(envelope.q(draw(st.sampled_from(names))))
    for _ in range(draw(st.integers(0, 3 if level < len(_LEVELS) - 1 else 0))):
        if draw(st.integers(0, 6)) == 0:
            element.append(etree.Comment("c"))
        else:
            element.append(draw(_roots(level + 1)))
    return element


def _found(find: Any, root: etree._Element) -> object:
    try:
        return find(root)
    except errors.MissingField as exc:
        return exc.message


_PATHS = {
    parse.message_header: "edXMLEnvelope/edXMLHeader/MessageHeader",
    parse.business_element: "edXMLEnvelope/edXMLHeader/TraceHeaderList/Bussiness",
    parse.manifest_element: "edXMLEnvelope/edXMLBody/edXMLManifest",
}


@settings(max_examples=300)
@given(body=_roots())
def test_places_are_what_find_finds(body: etree._Element) -> None:
    root = etree.Element(envelope.q("edXML"))
    root.append(body)
    for find, path in _PATHS.items():
        found = root.find("/".join(envelope.q(name) for name in path.split("/")))
        assert _found(find, root) == (f"{path} is missing" if found is None else found)
    header = root.find(f"{envelope.q('edXMLEnvelope')}/{envelope.q('edXMLHeader')}")
    expected_header = "edXMLHeader is missing" if header is None else header
    assert _found(signature_shape.header, root) == expected_header
    hops = ["edXMLEnvelope", "edXMLHeader", "TraceHeaderList", "TraceHeader"]
    expected = list(root.iterfind("/".join(envelope.q(name) for name in hops)))
    assert parse._HOPS.every(root) == expected


# --- verifying a package read: its hops are the ones read, not read again ----------------
_HOPS = st.lists(
    st.tuples(st.sampled_from(["000.00.00.G22", "000.00.00.H23"]), st.integers(-120, 120)),
    max_size=3,
)


def _verdict_of(verify: Any) -> object:
    try:
        return verify()
    except errors.EdocError as exc:
        return exc.code, exc.message


@settings(
    max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(hops=_HOPS, personal=st.booleans(), sender=st.sampled_from([SENDER, "000.00.00.H23"]))
def test_a_package_read_verifies_as_its_tree_alone(
    ca: Ca, hops: list[tuple[str, int]], personal: bool, sender: str
) -> None:
    """The same Verified (message, signing time, signatories, relay hops), or the same
    refusal (a seal of another organization than the sender's), with the model and hops
    read_package made as without them."""
    root = signed_root(
        ca,
        seal=ca.keys.identity(sender),
        personal=ca.keys.identity(SENDER, SIGNER) if personal else None,
    )
    for org_id, minutes in hops:
        hop = TraceHop(org_id, ca.clock().replace(microsecond=0) + dt.timedelta(minutes=minutes))
        envelope.add_trace_hop(root, hop)
    package = envelope.read_package(wire(root))
    trust, now = ca.keys.trust(), ca.clock()
    with_read = _verdict_of(lambda: signing.verify_package(package, trust, now))
    assert with_read == _verdict_of(lambda: signing.verify(package.root, trust, now))
    if not isinstance(with_read, tuple):
        assert len(with_read.relay_hops) == len(hops)  # type: ignore[attr-defined]


# --- reading: a small package's envelope within the limit by its size alone --------------
_URIS = st.sampled_from(
    [
        "urn:x",
        "http://example.com/" + "n" * 200,
        envelope.NS,
        "http://www.w3.org/XML/1998/namespace",
    ]
)


@st.composite
def _namespaced(draw: st.DrawFn) -> bytes:
    """Small documents where many elements and attributes bear long namespaces (the worst
    case for the bound), declared once, with xml:lang's never declared at all."""
    uri = draw(_URIS)
    declaration = "" if uri.endswith("/XML/1998/namespace") else f' xmlns:p="{uri}"'
    prefix = "xml" if not declaration else "p"
    children = []
    for _ in range(draw(st.integers(0, 60))):
        name = draw(st.sampled_from(["a", f"{prefix}:b"] if declaration else ["a"]))
        attribute = draw(st.sampled_from(["", f' {prefix}:lang=""', ' c=""', f' {prefix}:d="x"']))
        if prefix == "xml" and "xml:d" in attribute:
            attribute = ' xml:space="preserve"'
        children.append(
            f"<{name}{attribute}/>" if draw(st.booleans()) else f"<{name}>&#65;</{name}>"
        )
    return f"<root{declaration}>{''.join(children)}</root>".encode()


@settings(max_examples=300)
@given(data=_namespaced(), limit=st.integers(0, 200_000))
def test_a_package_within_the_limit_by_size_is_within_it_by_count(data: bytes, limit: int) -> None:
    """The bound from the size alone is never below the exact count, so it never says
    "within" of an envelope over the limit."""
    root = etree.fromstring(data)
    exact = read._envelope_chars(root)
    assert not read._within_by_size(len(data), exact - 1)
    assert read._envelope_within(root, len(data), limit) == (exact <= limit)
