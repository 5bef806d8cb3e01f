"""Forged, wrapped and tampered signatures: each case is refused with its own code.

Every case builds a package the way a receiver gets it (wire bytes), signed by the test
CA and then attacked in one way, and runs it through what a hub or node does with it:
``envelope.read_package`` then ``signing.verify_package``. A case accepted, or refused
under another code than its own, fails. Where the schema refuses a shape first, the
case also checks that the verifier alone (no schema) refuses it too.
"""

from __future__ import annotations

import base64
import datetime as dt
import io
import itertools
from collections.abc import Callable, Iterator
from copy import deepcopy
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any, cast

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from lxml import etree

from edoc import envelope, errors, pki, signing, xmlsafe
from edoc.keyindex import SigningIdentity
from edoc.model import Attachment, Organization, ResponseFor, StatusCode, StatusUpdate, TraceHop
from edoc.node import receiving
from edoc.node.state import NodeState
from tests.reliability import report
from tests.support import legacy
from tests.support.pki import SENDER, SIGNER, Ca, unsigned_root, wire

ED = {"edXML": envelope.NS, "ds": signing.DS}
HEADER = "edXML:edXMLEnvelope/edXML:edXMLHeader"
MESSAGE = f"{HEADER}/edXML:MessageHeader"
TRACE = f"{HEADER}/edXML:TraceHeaderList"
MANIFEST = "edXML:edXMLEnvelope/edXML:edXMLBody/edXML:edXMLManifest"
OTHER = "000.00.00.H23"  # another organization with a seal in the test CA
DSIG = "http://www.w3.org/2000/09/xmldsig#"
MORE = "http://www.w3.org/2001/04/xmldsig-more#"

Files = list[tuple[Attachment, Path]]


@dataclass(frozen=True)
class Attempt:
    """What reaches the receiver, and when it looks at it."""

    data: bytes
    now: dt.datetime


@dataclass
class Lab:
    """The test CA, a foreign CA with the same names, and fresh organizations per case."""

    ca: Ca
    foreign: Ca
    folder: Path
    _orgs: Iterator[int] = field(default_factory=lambda: itertools.count(30))
    _folders: Iterator[int] = field(default_factory=itertools.count)

    def now(self) -> dt.datetime:
        return self.ca.clock()

    def fresh_org(self, days: int = 730) -> str:
        """A new organization of H53 with its own seal, for cases that change its state."""
        org = f"000.00.{next(self._orgs):02d}.H53"
        self.ca.keys.issue(org, org_name=f"Cơ quan thử {org}", days=days)
        return org

    def seal(self, org: str = SENDER) -> SigningIdentity:
        return self.ca.keys.identity(org)

    def personal(self, org: str = SENDER, name: str = SIGNER) -> SigningIdentity:
        return self.ca.keys.identity(org, name)

    def files(self, contents: dict[str, bytes]) -> Files:
        folder = self.folder / str(next(self._folders))
        folder.mkdir()
        paths = []
        for name, content in contents.items():
            paths.append(folder / name)
            paths[-1].write_bytes(content)
        return envelope.attachments_from_files(paths)

    def signed(
        self,
        seal: SigningIdentity | None = None,
        personal: SigningIdentity | None = None,
        files: Files | None = None,
        signed_at: dt.datetime | None = None,
        sender: str | None = None,
        **changes: Any,
    ) -> etree._Element:
        if sender is not None:
            changes["from"] = sender
        root = unsigned_root(files, signed_at=signed_at or self.now(), **changes)
        return signing.sign(root, seal or self.seal(), personal)

    def attempt(self, root: etree._Element, files: Files | None = None) -> Attempt:
        return Attempt(wire(root, files), self.now())


Build = Callable[[Lab], Attempt]
Mutation = Callable[[etree._Element], None]


@dataclass(frozen=True)
class Case:
    id: str
    build: Build
    error: type[errors.EdocError]
    # for shapes the schema refuses first: what the verifier alone answers
    verifier_error: type[errors.EdocError] | None = None


def params(cases: list[Case]) -> list[Any]:
    return [pytest.param(case, id=case.id) for case in cases]


def find(root: etree._Element, path: str) -> etree._Element:
    found = root.find(path, ED)
    assert found is not None, path
    return found


def seal_signature(root: etree._Element) -> etree._Element:
    return find(root, f"{HEADER}/ds:Signature")


def signed_info(root: etree._Element) -> etree._Element:
    return find(seal_signature(root), "ds:SignedInfo")


def shape(mutate: Callable[[etree._Element], None], with_personal: bool = False) -> Build:
    """Sign the sample (seal, optionally personal), then change the signed tree."""

    def build(lab: Lab) -> Attempt:
        root = lab.signed(personal=lab.personal() if with_personal else None)
        mutate(root)
        return lab.attempt(root)

    return build


def text(path: str, value: str) -> Callable[[etree._Element], None]:
    def mutate(root: etree._Element) -> None:
        find(root, path).text = value

    return mutate


def algorithm(path: str, uri: str) -> Callable[[etree._Element], None]:
    def mutate(root: etree._Element) -> None:
        find(seal_signature(root), path).set("Algorithm", uri)

    return mutate


def add_transform(uri: str) -> Callable[[etree._Element], None]:
    def mutate(root: etree._Element) -> None:
        transforms = find(signed_info(root), "ds:Reference/ds:Transforms")
        etree.SubElement(transforms, f"{{{DSIG}}}Transform").set("Algorithm", uri)

    return mutate


# --- stripped and broken signatures ------------------------------------------------------------
def strip_all(root: etree._Element) -> None:
    for signature in root.findall(f"{HEADER}/ds:Signature", ED):
        signature.getparent().remove(signature)


def strip_seal(root: etree._Element) -> None:
    signature = seal_signature(root)
    signature.getparent().remove(signature)


def remove_child(name: str) -> Callable[[etree._Element], None]:
    def mutate(root: etree._Element) -> None:
        signature = seal_signature(root)
        signature.remove(find(signature, f"ds:{name}"))

    return mutate


def remove_reference_part(name: str) -> Callable[[etree._Element], None]:
    def mutate(root: etree._Element) -> None:
        reference = find(signed_info(root), "ds:Reference")
        reference.remove(find(reference, f"ds:{name}"))

    return mutate


def flip_signature_value(root: etree._Element) -> None:
    value = find(seal_signature(root), "ds:SignatureValue")
    raw = bytearray(base64.b64decode("".join((value.text or "").split())))
    raw[len(raw) // 2] ^= 0x01
    value.text = base64.b64encode(bytes(raw)).decode()


def change_digest_value(root: etree._Element) -> None:
    digest = find(signed_info(root), "ds:Reference/ds:DigestValue")
    digest.text = base64.b64encode(b"\x00" * 32).decode()


def swap_signature_values(root: etree._Element) -> None:
    seal, personal = root.findall(f"{HEADER}/ds:Signature", ED)
    a, b = (find(s, "ds:SignatureValue") for s in (seal, personal))
    a.text, b.text = b.text, a.text


# --- wrapping ----------------------------------------------------------------------------------
def move_signature(target: str) -> Callable[[etree._Element], None]:
    def mutate(root: etree._Element) -> None:
        signature = seal_signature(root)
        signature.getparent().remove(signature)
        find(root, target).append(signature)

    return mutate


def three_signatures(root: etree._Element) -> None:
    header = find(root, HEADER)
    header.append(deepcopy(seal_signature(root)))
    header.append(deepcopy(seal_signature(root)))


def ds_object(signature: etree._Element) -> etree._Element:
    return etree.SubElement(signature, f"{{{DSIG}}}Object")


def empty_object(root: etree._Element) -> None:
    ds_object(seal_signature(root))


def original_header_in_object(root: etree._Element) -> None:
    """Classic XSW: the signed original hides in ds:Object; the visible header is forged."""
    header = find(root, MESSAGE)
    ds_object(seal_signature(root)).append(deepcopy(header))
    del header.attrib["Id"]
    find(header, "edXML:Subject").text = "V/v chuyển toàn bộ kinh phí"


def duplicate_id_in_key_info(root: etree._Element) -> None:
    """The forged header keeps its Id; a signed copy with the same Id sits in KeyInfo."""
    header = find(root, MESSAGE)
    find(seal_signature(root), "ds:KeyInfo").append(deepcopy(header))
    find(header, "edXML:Subject").text = "V/v chuyển toàn bộ kinh phí"


def id_moved_to_copy_in_key_info(root: etree._Element) -> None:
    header = find(root, MESSAGE)
    find(seal_signature(root), "ds:KeyInfo").append(deepcopy(header))
    del header.attrib["Id"]
    find(header, "edXML:Subject").text = "V/v chuyển toàn bộ kinh phí"


def original_header_in_unsigned_hop(root: etree._Element) -> None:
    header = find(root, MESSAGE)
    envelope.add_trace_hop(root, TraceHop("000.00.00.G22", dt.datetime.now(dt.UTC)))
    find(root, f"{TRACE}/edXML:TraceHeader[2]").append(deepcopy(header))
    del header.attrib["Id"]
    find(header, "edXML:Subject").text = "V/v chuyển toàn bộ kinh phí"


def swap_ids(root: etree._Element) -> None:
    header, manifest = find(root, MESSAGE), find(root, MANIFEST)
    header.set("Id", envelope.MANIFEST_ID)
    manifest.set("Id", envelope.HEADER_ID)


def extra_reference(root: etree._Element) -> None:
    info = signed_info(root)
    info.append(deepcopy(info.findall("ds:Reference", ED)[0]))


def drop_reference(root: etree._Element) -> None:
    info = signed_info(root)
    info.remove(info.findall("ds:Reference", ED)[-1])


def reorder_references(root: etree._Element) -> None:
    info = signed_info(root)
    first, second = info.findall("ds:Reference", ED)[:2]
    second.addnext(first)


def reference_uri(uri: str) -> Callable[[etree._Element], None]:
    def mutate(root: etree._Element) -> None:
        find(signed_info(root), "ds:Reference").set("URI", uri)

    return mutate


def reference_to_unsigned_hop(root: etree._Element) -> None:
    envelope.add_trace_hop(root, TraceHop("000.00.00.G22", dt.datetime.now(dt.UTC)))
    find(root, f"{TRACE}/edXML:TraceHeader[2]").set("Id", "hop")
    signed_info(root).findall("ds:Reference", ED)[1].set("URI", "#hop")


def grafted_signature(lab: Lab) -> Attempt:
    """A valid signature of another document of the same sender, on this one."""
    donor = lab.signed(subject="V/v họp giao ban tuần")
    root = unsigned_root(signed_at=lab.now())
    find(root, HEADER).append(deepcopy(seal_signature(donor)))
    return lab.attempt(root)


def status_signature_on_document(lab: Lab) -> Attempt:
    """A valid signature over a status message of the same sender, put on a document."""
    answer = ResponseFor(OTHER, "45/UBND-VP", dt.date(2026, 11, 20), "x,2026/11/20,45")
    status = StatusUpdate(
        sender=Organization(SENDER),
        response_for=answer,
        code=StatusCode.ACCEPTED,
        timestamp=lab.now().replace(microsecond=0),
    )
    donor = signing.sign(
        envelope.build_envelope(envelope.stamp_origin(status, lab.now())), lab.seal()
    )
    root = unsigned_root(signed_at=lab.now())
    find(root, HEADER).append(deepcopy(seal_signature(donor)))
    return lab.attempt(root)


# --- certificates in KeyInfo -------------------------------------------------------------------
def certificate_element(root: etree._Element) -> etree._Element:
    return find(seal_signature(root), "ds:KeyInfo/ds:X509Data/ds:X509Certificate")


def two_certificates(root: etree._Element) -> None:
    data = find(seal_signature(root), "ds:KeyInfo/ds:X509Data")
    data.append(deepcopy(data[0]))


def no_certificate(root: etree._Element) -> None:
    info = find(seal_signature(root), "ds:KeyInfo")
    info.remove(find(info, "ds:X509Data"))


def key_value_instead_of_certificate(root: etree._Element) -> None:
    info = find(seal_signature(root), "ds:KeyInfo")
    info.remove(find(info, "ds:X509Data"))
    value = etree.SubElement(
        etree.SubElement(info, f"{{{DSIG}}}KeyValue"), f"{{{DSIG}}}RSAKeyValue"
    )
    etree.SubElement(value, f"{{{DSIG}}}Modulus").text = base64.b64encode(b"\x01" * 256).decode()
    etree.SubElement(value, f"{{{DSIG}}}Exponent").text = "AQAB"


def certificate_of(identity: SigningIdentity) -> str:
    return base64.b64encode(identity.cert.public_bytes(serialization.Encoding.DER)).decode()


def substituted_certificate(lab: Lab) -> Attempt:
    """Signed with the sender's key, but another organization's certificate in KeyInfo."""
    root = lab.signed()
    certificate_element(root).text = certificate_of(lab.seal(OTHER))
    return lab.attempt(root)


def forged_identity(lab: Lab, issuer_key: rsa.RSAPrivateKey | None, issuer_name: str) -> Attempt:
    """A seal for the sender made outside the CA: self-signed (no issuer key) or signed by
    an attacker's key under the name of a real CA certificate."""
    real = lab.seal()
    key = pki.new_key()
    named = {"issuing": lab.ca.keys.trust().issuing[0], "root": lab.ca.keys.trust().root}
    issuer_cert = real.cert if issuer_key is None else named[issuer_name]
    cert = pki.make_leaf(
        key.public_key(),
        issuer_key or key,
        issuer_cert,
        kind=pki.CertKind.ORGANIZATION,
        org_id=SENDER,
        org_name=real.record.org_name,
        now=lab.now() - dt.timedelta(minutes=1),
    )
    return lab.attempt(lab.signed(seal=SigningIdentity(key, cert, real.record)))


def ca_as_signer(lab: Lab, which: str) -> Attempt:
    """The CA's own key and certificate used as a seal."""
    folder = lab.ca.keys.path / "ca"
    key = serialization.load_pem_private_key((folder / f"{which}.key").read_bytes(), None)
    assert isinstance(key, rsa.RSAPrivateKey)
    trust = lab.ca.keys.trust()
    cert = trust.root if which == "root" else trust.issuing[0]
    return lab.attempt(lab.signed(seal=SigningIdentity(key, cert, lab.seal().record)))


# --- validity, revocation, rotation ------------------------------------------------------------
def expired(lab: Lab) -> Attempt:
    org = lab.fresh_org(days=1)
    root = lab.signed(seal=lab.seal(org), sender=org)
    return Attempt(wire(root), lab.now() + dt.timedelta(days=2))


def not_yet_valid(lab: Lab) -> Attempt:
    lab.ca.clock.advance(days=1)
    try:
        org = lab.fresh_org()
        seal = lab.seal(org)
    finally:
        lab.ca.clock.advance(days=-1)
    return lab.attempt(lab.signed(seal=seal, sender=org))


def backdated(lab: Lab) -> Attempt:
    """Signing time before the certificate existed."""
    return lab.attempt(lab.signed(signed_at=lab.now() - dt.timedelta(days=3)))


def signed_in_the_future(lab: Lab) -> Attempt:
    return lab.attempt(lab.signed(signed_at=lab.now() + dt.timedelta(hours=1)))


def _held(lab: Lab, org: str, full_name: str = "") -> SigningIdentity:
    """The newest certificate of ``org`` as its holder keeps it, whatever its state."""
    records = [r for r in lab.ca.keys.records() if r.org_id == org and r.full_name == full_name]
    return lab.ca.keys._load_identity(max(records, key=lambda r: r.not_before))


def rotated_out(lab: Lab) -> Attempt:
    org = lab.fresh_org()
    old = lab.seal(org)
    lab.ca.keys.rotate(org, overlap_days=0)
    root = lab.signed(seal=old, sender=org)
    return Attempt(wire(root), lab.now() + dt.timedelta(minutes=1))


def revoked_then_signed(lab: Lab) -> Attempt:
    org = lab.fresh_org()
    seal = lab.seal(org)
    lab.ca.keys.revoke(org, "cessationOfOperation")
    lab.ca.clock.advance(minutes=1)
    return lab.attempt(lab.signed(seal=seal, sender=org))


def signed_then_key_compromised(lab: Lab) -> Attempt:
    org = lab.fresh_org()
    root = lab.signed(seal=lab.seal(org), sender=org)
    lab.ca.keys.revoke(org, "keyCompromise")
    return lab.attempt(root)


def personal_revoked(lab: Lab) -> Attempt:
    org = lab.fresh_org()
    lab.ca.keys.issue(org, full_name=SIGNER)
    personal = lab.personal(org)
    lab.ca.keys.revoke(personal.record.serial, "keyCompromise")
    root = lab.signed(seal=lab.seal(org), personal=personal, sender=org)
    return lab.attempt(root)


# --- whose certificate ---------------------------------------------------------------------------
def seal_of_another_organization(lab: Lab) -> Attempt:
    return lab.attempt(lab.signed(seal=lab.seal(OTHER)))


def personal_of_another_organization(lab: Lab) -> Attempt:
    return lab.attempt(lab.signed(personal=lab.personal(OTHER)))


def personal_not_the_signer(lab: Lab) -> Attempt:
    return lab.attempt(lab.signed(personal=lab.personal(SENDER, "Trần Thị B")))


def personal_without_signer_info(lab: Lab) -> Attempt:
    root = unsigned_root(signed_at=lab.now())
    signer = find(root, f"{MESSAGE}/edXML:SignerInfo")
    signer.getparent().remove(signer)
    return lab.attempt(signing.sign(root, lab.seal(), lab.personal()))


def origin_of_another_organization(lab: Lab) -> Attempt:
    root = unsigned_root(signed_at=lab.now())
    find(root, f"{TRACE}/edXML:TraceHeader/edXML:OrganId").text = OTHER
    return lab.attempt(signing.sign(root, lab.seal()))


def personal_as_seal(lab: Lab) -> Attempt:
    return lab.attempt(lab.signed(seal=lab.personal()))


def seal_as_personal(lab: Lab) -> Attempt:
    return lab.attempt(lab.signed(personal=lab.seal()))


def tls_certificate_as_seal(lab: Lab) -> Attempt:
    return lab.attempt(lab.signed(seal=lab.ca.keys.identity(SENDER, kind=pki.CertKind.TLS)))


def foreign_seal(lab: Lab) -> Attempt:
    return lab.attempt(lab.signed(seal=lab.foreign.keys.identity(SENDER)))


def foreign_personal(lab: Lab) -> Attempt:
    return lab.attempt(lab.signed(personal=lab.foreign.keys.identity(SENDER, SIGNER)))


# --- tampered content and attachments -------------------------------------------------------
PDF = b"%PDF-1.4 to trinh " + bytes(range(64))
TXT = "Phụ lục: danh sách đơn vị.\n".encode()


def with_attachments(attack: Callable[[Lab, etree._Element, Files], Files]) -> Build:
    def build(lab: Lab) -> Attempt:
        files = lab.files({"to-trinh.pdf": PDF, "phu-luc.txt": TXT})
        root = lab.signed(files=files)
        sent = attack(lab, root, files)
        return lab.attempt(root, sent)

    return build


def reference(root: etree._Element, n: int) -> etree._Element:
    return find(root, f"{MANIFEST}/edXML:Reference[{n}]")


def other_bytes(lab: Lab, files: Files, n: int, content: bytes) -> Files:
    """The same manifest entry sent with other bytes."""
    entry, path = files[n]
    replaced = lab.files({path.name: content})[0][1]
    return [(entry, replaced) if i == n else item for i, item in enumerate(files)]


def attachment_same_size(lab: Lab, _root: etree._Element, files: Files) -> Files:
    return other_bytes(lab, files, 0, PDF[:-1] + b"!")


def attachment_one_byte_longer(lab: Lab, _root: etree._Element, files: Files) -> Files:
    return other_bytes(lab, files, 0, PDF + b"\n")


def attachment_swapped_manifest_updated(lab: Lab, root: etree._Element, files: Files) -> Files:
    """Another file, with the manifest's size and digest changed to match it."""
    swapped = b"%PDF-1.4 quyet dinh khac"
    entry = lab.files({"to-trinh.pdf": swapped})[0][0]
    find(reference(root, 1), "edXML:Size").text = str(entry.size)
    find(reference(root, 1), "edXML:Sha256").text = entry.sha256
    return other_bytes(lab, files, 0, swapped)


def attachment_digest_only_updated(lab: Lab, root: etree._Element, files: Files) -> Files:
    swapped = PDF[:-1] + b"!"
    find(reference(root, 1), "edXML:Sha256").text = lab.files({"x": swapped})[0][0].sha256
    return other_bytes(lab, files, 0, swapped)


def attachments_exchanged(_lab: Lab, _root: etree._Element, files: Files) -> Files:
    (a, path_a), (b, path_b) = files
    return [(a, path_b), (b, path_a)]


def attachment_renamed_everywhere(_lab: Lab, root: etree._Element, files: Files) -> Files:
    find(reference(root, 1), "edXML:AttachmentName").text = "quyet-dinh.pdf"
    (a, path), rest = files[0], files[1:]
    renamed = Attachment(a.content_id, "quyet-dinh.pdf", a.content_type, a.size, a.sha256)
    return [(renamed, path), *rest]


def attachment_removed_with_its_entry(_lab: Lab, root: etree._Element, files: Files) -> Files:
    find(root, MANIFEST).remove(reference(root, 2))
    return files[:1]


def attachment_added_with_an_entry(lab: Lab, root: etree._Element, files: Files) -> Files:
    extra_path = lab.files({"them.txt": b"them"})[0][1]
    extra = envelope.attachments_from_files([*(p for _, p in files), extra_path])[-1]
    manifest = find(root, MANIFEST)
    entry = deepcopy(reference(root, 2))
    for name, value in (
        ("ContentId", extra[0].content_id),
        ("AttachmentName", extra[0].name),
        ("ContentType", extra[0].content_type),
        ("Size", str(extra[0].size)),
        ("Sha256", extra[0].sha256),
    ):
        find(entry, f"edXML:{name}").text = value
    manifest.append(entry)
    return [*files, extra]


def attachment_added_not_in_manifest(lab: Lab, _root: etree._Element, files: Files) -> Files:
    extra_path = lab.files({"them.txt": b"them"})[0][1]
    return [*files, envelope.attachments_from_files([*(p for _, p in files), extra_path])[-1]]


def attachment_dropped_kept_in_manifest(_lab: Lab, _root: etree._Element, files: Files) -> Files:
    return files[:1]


# --- unsigned content in and beside the signatures ---------------------------------------------
XI = "http://www.w3.org/2001/XInclude"


def forged_header(root: etree._Element) -> etree._Element:
    """A copy of the signed MessageHeader, without its Id, to another recipient and subject:
    what recipient software reading the package as received might take for the message."""
    copy = deepcopy(find(root, MESSAGE))
    del copy.attrib["Id"]
    find(copy, "edXML:To/edXML:OrganId").text = "000.00.00.H41"
    find(copy, "edXML:Subject").text = "V/v chuyển toàn bộ kinh phí"
    return copy


def xinclude() -> etree._Element:
    element = etree.Element(f"{{{XI}}}include", nsmap={"xi": XI})
    element.set("href", "file:///etc/passwd")
    return element


def beside_signature(content: Callable[[etree._Element], etree._Element]) -> Mutation:
    """A ds:Object after the signatures in edXMLHeader, holding ``content``."""

    def mutate(root: etree._Element) -> None:
        find(root, HEADER).append(ds_element("Object", content(root)))

    return mutate


def before_signature(root: etree._Element) -> None:
    seal_signature(root).addprevious(ds_element("Object", forged_header(root)))


def ds_element(name: str, *children: etree._Element) -> etree._Element:
    element = etree.Element(f"{{{DSIG}}}{name}", nsmap={"ds": DSIG})
    element.extend(children)
    return element


def inside(path: str, content: Callable[[etree._Element], etree._Element]) -> Mutation:
    """``content`` appended to the element at ``path`` in the seal's signature."""

    def mutate(root: etree._Element) -> None:
        find(seal_signature(root), path).append(content(root))

    return mutate


def element_after_value_text(root: etree._Element) -> None:
    value = find(seal_signature(root), "ds:SignatureValue")
    etree.SubElement(value, f"{{{envelope.NS}}}Subject").text = "V/v chuyển toàn bộ kinh phí"


def value_text_after_element(root: etree._Element) -> None:
    """The signature value moved into the tail of a child element: findtext sees none."""
    value = find(seal_signature(root), "ds:SignatureValue")
    child = etree.SubElement(value, f"{{{envelope.NS}}}Subject")
    child.text, child.tail, value.text = "V/v chuyển toàn bộ kinh phí", value.text, None


def attribute(path: str, name: str = "Id", value: str = "forged") -> Mutation:
    def mutate(root: etree._Element) -> None:
        find(root, path).set(name, value)

    return mutate


def text_in(path: str, text: str = "V/v chuyển toàn bộ kinh phí", tail: bool = False) -> Mutation:
    def mutate(root: etree._Element) -> None:
        setattr(find(root, path), "tail" if tail else "text", text)

    return mutate


def relay_hop(root: etree._Element) -> etree._Element:
    """The hop a hub adds after signing (unsigned), as the second TraceHeader."""
    envelope.add_trace_hop(root, TraceHop("000.00.00.G22", dt.datetime.now(dt.UTC)))
    return find(root, f"{TRACE}/edXML:TraceHeader[2]")


def in_relay_hop(content: Callable[[etree._Element], etree._Element]) -> Mutation:
    def mutate(root: etree._Element) -> None:
        relay_hop(root).append(content(root))

    return mutate


def relay_hop_with_id(root: etree._Element) -> None:
    relay_hop(root).set("Id", "hop")


def relay_hop_with_text(root: etree._Element) -> None:
    relay_hop(root).text = "V/v chuyển toàn bộ kinh phí"


def relay_hop_second_organ_id(root: etree._Element) -> None:
    hop = relay_hop(root)
    hop.append(deepcopy(find(hop, "edXML:OrganId")))


SIGNATURE_PATH = f"{HEADER}/ds:Signature"
KEY_INFO = f"{SIGNATURE_PATH}/ds:KeyInfo"


SIG001, SIG002, SIG003 = (
    errors.MissingSignature,
    errors.TamperedSignature,
    errors.UntrustedCertificate,
)
SIG004, SIG005, SIG006 = (
    errors.ExpiredCertificate,
    errors.RevokedCertificate,
    errors.WrongOrganization,
)
SIG007, SIG008, SIG009 = errors.WrappedSignature, errors.WrongKeyUsage, errors.UnsupportedAlgorithm
SIG010 = errors.UnsignedContent
ATT002, XML007 = errors.AttachmentMismatch, errors.SchemaViolation

CASES = [
    # --- stripped and broken signatures ----------------------------------------------------------
    Case("stripped-every-signature", shape(strip_all), SIG001),
    Case("stripped-seal-personal-left-first", shape(strip_seal, with_personal=True), SIG008),
    Case("signature-without-signed-info", shape(remove_child("SignedInfo")), SIG007),
    Case("signature-without-signature-value", shape(remove_child("SignatureValue")), SIG007),
    Case("signature-without-key-info", shape(remove_child("KeyInfo")), SIG007),
    Case(
        "signature-value-empty",
        shape(text(f"{HEADER}/ds:Signature/ds:SignatureValue", "")),
        SIG002,
    ),
    Case(
        "signature-value-not-base64",
        shape(text(f"{HEADER}/ds:Signature/ds:SignatureValue", "not*base64!")),
        SIG002,
    ),
    Case(
        "signature-value-non-ascii",
        shape(text(f"{HEADER}/ds:Signature/ds:SignatureValue", "\u202eAAAA")),
        SIG002,
    ),
    Case("signature-value-bit-flipped", shape(flip_signature_value), SIG002),
    Case("digest-value-changed", shape(change_digest_value), SIG002),
    Case(
        "digest-value-not-base64",
        shape(text(f"{HEADER}/ds:Signature/ds:SignedInfo/ds:Reference/ds:DigestValue", "*")),
        SIG002,
    ),
    Case(
        "reference-without-digest-value",
        shape(remove_reference_part("DigestValue")),
        SIG007,
    ),
    Case(
        "signed-info-with-text",
        shape(text(f"{HEADER}/ds:Signature/ds:SignedInfo", "x")),
        SIG007,
    ),
    Case(
        "seal-and-personal-values-swapped", shape(swap_signature_values, with_personal=True), SIG002
    ),
    # --- wrapping: the signature or the signed parts moved --------------------------------------
    Case(
        "signature-moved-into-body",
        shape(move_signature("edXML:edXMLEnvelope/edXML:edXMLBody")),
        XML007,
        SIG007,
    ),
    Case("signature-moved-into-manifest", shape(move_signature(MANIFEST)), XML007, SIG007),
    Case("signature-moved-into-message-header", shape(move_signature(MESSAGE)), XML007, SIG007),
    Case("three-signatures", shape(three_signatures), XML007, SIG007),
    Case("empty-ds-object", shape(empty_object), SIG007),
    Case("xsw-original-header-in-ds-object", shape(original_header_in_object), SIG007),
    Case("xsw-duplicate-id-in-key-info", shape(duplicate_id_in_key_info), SIG007),
    Case("xsw-id-moved-to-copy-in-key-info", shape(id_moved_to_copy_in_key_info), SIG007),
    Case(
        "xsw-original-header-in-unsigned-hop",
        shape(original_header_in_unsigned_hop),
        XML007,
        SIG007,
    ),
    Case("ids-swapped-header-and-manifest", shape(swap_ids), SIG007),
    # --- references ------------------------------------------------------------------------------
    Case("extra-reference", shape(extra_reference), SIG007),
    Case("dropped-reference", shape(drop_reference), SIG007),
    Case("references-reordered", shape(reorder_references), SIG007),
    Case("external-reference", shape(reference_uri("http://127.0.0.1:9/header.xml")), SIG007),
    Case("file-reference", shape(reference_uri("file:///etc/passwd")), SIG007),
    Case("whole-document-reference", shape(reference_uri("")), SIG007),
    Case(
        "reference-without-uri",
        shape(lambda root: find(signed_info(root), "ds:Reference").attrib.pop("URI")),
        SIG007,
    ),
    Case("xpointer-reference", shape(reference_uri("#xpointer(/)")), SIG007),
    Case("reference-to-unsigned-hop", shape(reference_to_unsigned_hop), SIG007),
    # --- signature over another element ----------------------------------------------------------
    Case("signature-of-another-document", grafted_signature, SIG002),
    Case("signature-of-a-status-message", status_signature_on_document, SIG002),
    # --- algorithms ------------------------------------------------------------------------------
    Case(
        "digest-sha1",
        shape(algorithm("ds:SignedInfo/ds:Reference/ds:DigestMethod", f"{DSIG}sha1")),
        SIG009,
    ),
    Case(
        "digest-md5",
        shape(algorithm("ds:SignedInfo/ds:Reference/ds:DigestMethod", f"{MORE}md5")),
        SIG009,
    ),
    Case(
        "digest-sha512",
        shape(
            algorithm(
                "ds:SignedInfo/ds:Reference/ds:DigestMethod",
                "http://www.w3.org/2001/04/xmlenc#sha512",
            )
        ),
        SIG009,
    ),
    Case(
        "signature-rsa-sha1",
        shape(algorithm("ds:SignedInfo/ds:SignatureMethod", f"{DSIG}rsa-sha1")),
        SIG009,
    ),
    Case(
        "signature-dsa-sha1",
        shape(algorithm("ds:SignedInfo/ds:SignatureMethod", f"{DSIG}dsa-sha1")),
        SIG009,
    ),
    Case(
        "signature-hmac-sha256",
        shape(algorithm("ds:SignedInfo/ds:SignatureMethod", f"{MORE}hmac-sha256")),
        SIG009,
    ),
    Case(
        "canonicalization-inclusive",
        shape(
            algorithm(
                "ds:SignedInfo/ds:CanonicalizationMethod",
                "http://www.w3.org/TR/2001/REC-xml-c14n-20010315",
            )
        ),
        SIG009,
    ),
    Case(
        "canonicalization-with-comments",
        shape(
            algorithm("ds:SignedInfo/ds:CanonicalizationMethod", f"{signing.EXC_C14N}WithComments")
        ),
        SIG009,
    ),
    Case(
        "transform-xpath",
        shape(add_transform("http://www.w3.org/TR/1999/REC-xpath-19991116")),
        SIG009,
    ),
    Case(
        "transform-xslt",
        shape(add_transform("http://www.w3.org/TR/1999/REC-xslt-19991116")),
        SIG009,
    ),
    Case("transform-enveloped", shape(add_transform(signing.ENVELOPED)), SIG009),
    Case("transform-base64", shape(add_transform(f"{DSIG}base64")), SIG009),
    # --- the certificate in KeyInfo --------------------------------------------------------------
    Case("two-certificates", shape(two_certificates), SIG003),
    Case("no-certificate", shape(no_certificate), SIG003),
    Case("key-value-instead-of-certificate", shape(key_value_instead_of_certificate), SIG003),
    Case(
        "certificate-garbage",
        shape(lambda root: setattr(certificate_element(root), "text", "AAAA")),
        SIG003,
    ),
    Case(
        "certificate-not-base64",
        shape(lambda root: setattr(certificate_element(root), "text", "not*base64!")),
        SIG003,
    ),
    Case("certificate-of-another-key", substituted_certificate, SIG002),
    # --- who issued it ---------------------------------------------------------------------------
    Case("self-signed-seal", lambda lab: forged_identity(lab, None, ""), SIG003),
    Case(
        "seal-forged-under-issuing-ca-name",
        lambda lab: forged_identity(lab, pki.new_key(), "issuing"),
        SIG003,
    ),
    Case(
        "seal-forged-under-root-ca-name",
        lambda lab: forged_identity(lab, pki.new_key(), "root"),
        SIG003,
    ),
    Case("issuing-ca-key-as-seal", lambda lab: ca_as_signer(lab, "issuing"), SIG003),
    Case("root-ca-key-as-seal", lambda lab: ca_as_signer(lab, "root"), SIG003),
    Case("foreign-ca-seal", foreign_seal, SIG003),
    Case("foreign-ca-personal", foreign_personal, SIG003),
    # --- when ------------------------------------------------------------------------------------
    Case("expired-seal", expired, SIG004),
    Case("not-yet-valid-seal", not_yet_valid, SIG004),
    Case("signing-time-before-certificate", backdated, SIG004),
    Case("signing-time-in-the-future", signed_in_the_future, SIG004),
    Case("seal-rotated-out-past-overlap", rotated_out, SIG004),
    Case("seal-revoked-then-used", revoked_then_signed, SIG005),
    Case("seal-key-compromised-after-signing", signed_then_key_compromised, SIG005),
    Case("personal-revoked", personal_revoked, SIG005),
    # --- whose and what kind -------------------------------------------------------------------
    Case("impersonation-seal-of-another-organization", seal_of_another_organization, SIG006),
    Case("personal-of-another-organization", personal_of_another_organization, SIG006),
    Case("personal-not-the-named-signer", personal_not_the_signer, SIG006),
    Case("personal-without-signer-info", personal_without_signer_info, SIG006),
    Case("signed-origin-of-another-organization", origin_of_another_organization, SIG006),
    Case("personal-certificate-as-seal", personal_as_seal, SIG008),
    Case("seal-as-personal-signature", seal_as_personal, SIG008),
    Case("tls-certificate-as-seal", tls_certificate_as_seal, SIG008),
    # --- tampered signed content ---------------------------------------------------------------
    Case("tampered-subject", shape(text(f"{MESSAGE}/edXML:Subject", "V/v khác")), SIG002),
    Case(
        "tampered-recipient",
        shape(text(f"{MESSAGE}/edXML:To/edXML:OrganId", "000.00.00.H41")),
        SIG002,
    ),
    Case(
        "added-recipient",
        shape(
            lambda root: find(root, f"{MESSAGE}/edXML:To").addnext(
                deepcopy(find(root, f"{MESSAGE}/edXML:To"))
            )
        ),
        SIG002,
    ),
    Case(
        "tampered-sender",
        shape(text(f"{MESSAGE}/edXML:From/edXML:OrganId", "000.00.07.H53")),
        SIG002,
    ),
    Case(
        "tampered-document-id",
        shape(text(f"{MESSAGE}/edXML:DocumentId", "forged,2026/11/23,1")),
        SIG002,
    ),
    Case(
        "tampered-priority", shape(text(f"{MESSAGE}/edXML:OtherInfo/edXML:Priority", "3")), SIG002
    ),
    Case("tampered-due-date", shape(text(f"{MESSAGE}/edXML:DueDate", "2030/12/31")), SIG002),
    Case(
        "tampered-signing-time",
        shape(text(f"{TRACE}/edXML:TraceHeader/edXML:Timestamp", "2020/01/01 08:00:00")),
        SIG002,
    ),
    Case(
        "tampered-business-type",
        shape(text(f"{TRACE}/edXML:Bussiness/edXML:BussinessDocType", "1")),
        SIG002,
    ),
    # --- attachments -----------------------------------------------------------------------------
    Case("tampered-attachment-same-size", with_attachments(attachment_same_size), ATT002),
    Case(
        "tampered-attachment-one-byte-longer", with_attachments(attachment_one_byte_longer), ATT002
    ),
    Case(
        "swapped-attachment-manifest-updated",
        with_attachments(attachment_swapped_manifest_updated),
        SIG002,
    ),
    Case(
        "swapped-attachment-digest-updated",
        with_attachments(attachment_digest_only_updated),
        SIG002,
    ),
    Case("attachments-exchanged", with_attachments(attachments_exchanged), ATT002),
    Case("attachment-renamed-everywhere", with_attachments(attachment_renamed_everywhere), SIG002),
    Case(
        "attachment-removed-with-its-entry",
        with_attachments(attachment_removed_with_its_entry),
        SIG002,
    ),
    Case(
        "attachment-added-with-an-entry", with_attachments(attachment_added_with_an_entry), SIG002
    ),
    Case(
        "attachment-added-not-in-manifest",
        with_attachments(attachment_added_not_in_manifest),
        ATT002,
    ),
    Case(
        "attachment-dropped-kept-in-manifest",
        with_attachments(attachment_dropped_kept_in_manifest),
        ATT002,
    ),
]


# Elements, attributes and text no signature covers, in or beside the signatures and in the
# hops a hub adds: a package holds exactly what edoc signs and writes, nothing more.
UNSIGNED_CASES = [
    # beside the signatures, in edXMLHeader
    Case(
        "ds-object-beside-signature-forged-header",
        shape(beside_signature(forged_header)),
        XML007,
        SIG010,
    ),
    Case(
        "ds-object-beside-signature-xinclude",
        shape(beside_signature(lambda _: xinclude())),
        XML007,
        SIG010,
    ),
    Case("ds-object-before-signature-forged-header", shape(before_signature), XML007, SIG010),
    Case(
        "ds-key-info-beside-signature",
        shape(beside_signature(lambda root: deepcopy(find(root, KEY_INFO)))),
        XML007,
        SIG010,
    ),
    Case(
        "ds-object-beside-both-signatures",
        shape(beside_signature(forged_header), with_personal=True),
        XML007,
        SIG010,
    ),
    Case("attribute-on-signature", shape(attribute(SIGNATURE_PATH)), XML007, SIG010),
    # in ds:KeyInfo
    Case("forged-header-in-key-info", shape(inside("ds:KeyInfo", forged_header)), SIG010),
    Case(
        "forged-header-in-x509-data", shape(inside("ds:KeyInfo/ds:X509Data", forged_header)), SIG010
    ),
    Case(
        "forged-header-in-certificate",
        shape(inside("ds:KeyInfo/ds:X509Data/ds:X509Certificate", forged_header)),
        SIG010,
    ),
    Case("xinclude-in-key-info", shape(inside("ds:KeyInfo", lambda _: xinclude())), SIG010),
    Case(
        "ds-object-in-key-info",
        shape(inside("ds:KeyInfo", lambda root: ds_element("Object", forged_header(root)))),
        SIG010,
    ),
    Case(
        "key-name-beside-certificate",
        shape(inside("ds:KeyInfo", lambda _: ds_element("KeyName"))),
        SIG010,
    ),
    Case(
        "forged-header-in-personal-key-info",
        shape(
            lambda root: root.findall(f"{KEY_INFO}", ED)[1].append(forged_header(root)),
            with_personal=True,
        ),
        SIG010,
    ),
    Case("text-in-key-info", shape(text_in(KEY_INFO)), SIG010),
    Case(
        "text-after-certificate",
        shape(text_in(f"{KEY_INFO}/ds:X509Data/ds:X509Certificate", tail=True)),
        SIG010,
    ),
    Case("attribute-on-key-info", shape(attribute(KEY_INFO)), SIG010),
    Case(
        "attribute-on-certificate",
        shape(attribute(f"{KEY_INFO}/ds:X509Data/ds:X509Certificate", "Note", "forged")),
        SIG010,
    ),
    # in ds:SignatureValue
    Case("element-after-signature-value-text", shape(element_after_value_text), SIG010),
    Case("signature-value-text-after-element", shape(value_text_after_element), SIG010),
    Case(
        "xinclude-in-signature-value",
        shape(inside("ds:SignatureValue", lambda _: xinclude())),
        SIG010,
    ),
    Case(
        "attribute-on-signature-value",
        shape(attribute(f"{SIGNATURE_PATH}/ds:SignatureValue")),
        SIG010,
    ),
    Case(
        "text-after-signature-value",
        shape(text_in(f"{SIGNATURE_PATH}/ds:SignatureValue", tail=True)),
        XML007,
        SIG010,
    ),
    Case("text-in-signature", shape(text_in(SIGNATURE_PATH)), XML007, SIG010),
    # in ds:SignedInfo (signed, but not the shape edoc signs)
    Case("attribute-on-signed-info", shape(attribute(f"{SIGNATURE_PATH}/ds:SignedInfo")), SIG007),
    Case(
        "xinclude-in-ds-object-in-signature",
        shape(inside(".", lambda _: ds_element("Object", xinclude()))),
        SIG007,
    ),
    # in the hops a hub adds (not signed)
    Case("forged-header-in-relay-hop", shape(in_relay_hop(forged_header)), XML007, SIG010),
    Case(
        "ds-object-in-relay-hop",
        shape(in_relay_hop(lambda root: ds_element("Object", forged_header(root)))),
        XML007,
        SIG010,
    ),
    Case("second-organ-id-in-relay-hop", shape(relay_hop_second_organ_id), XML007, SIG010),
    Case("text-in-relay-hop", shape(relay_hop_with_text), XML007, SIG010),
    Case("id-on-relay-hop", shape(relay_hop_with_id), SIG010),
]


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Lab:
    ca = Ca.create(tmp_path_factory.mktemp("ca") / "keys")
    # RSA, as stores made before EC TLS keys hold: a key that can make an edXML signature
    legacy.issue_rsa_tls(ca.keys, SENDER, ("localhost",))
    ca.keys.issue(SENDER, full_name="Trần Thị B")
    ca.keys.issue(OTHER, full_name=SIGNER)
    foreign = Ca.create(tmp_path_factory.mktemp("foreign") / "keys")
    return Lab(ca, foreign, tmp_path_factory.mktemp("files"))


def receive(lab: Lab, attempt: Attempt) -> signing.Verified:
    """What a hub or node does with a package: read it, then verify it."""
    package = envelope.read_package(io.BytesIO(attempt.data))
    return signing.verify_package(package, lab.ca.keys.trust(), attempt.now)


ALL_CASES = [*CASES, *UNSIGNED_CASES]


def test_corpus_is_large_and_ids_unique() -> None:
    ids = [case.id for case in ALL_CASES]
    assert len(ids) == len(set(ids))
    assert len(ids) >= 50


def test_controls_verify(lab: Lab) -> None:
    """The untouched forms the cases start from verify, so only an attack can fail them."""
    files = lab.files({"to-trinh.pdf": PDF, "phu-luc.txt": TXT})
    both = receive(lab, lab.attempt(lab.signed(personal=lab.personal(), files=files), files))
    assert (both.seal.org_id, both.personal and both.personal.name) == (SENDER, SIGNER)
    assert [a.name for a in both.message.attachments] == ["to-trinh.pdf", "phu-luc.txt"]
    org = lab.fresh_org()
    before = lab.signed(seal=lab.seal(org), sender=org)
    lab.ca.clock.advance(minutes=10)  # timestamps have whole seconds
    lab.ca.keys.revoke(org, "cessationOfOperation")
    # signed before a revocation that is not a key compromise: still good
    assert receive(lab, lab.attempt(before)).seal.org_id == org
    hop = lab.signed()
    envelope.add_trace_hop(hop, TraceHop("000.00.00.G22", lab.now()))
    assert [h.org_id for h in receive(lab, lab.attempt(hop)).relay_hops] == ["000.00.00.G22"]


@pytest.mark.parametrize("case", params(ALL_CASES))
def test_forged_signature_is_refused(lab: Lab, case: Case) -> None:
    attempt = case.build(lab)
    with pytest.raises(errors.EdocError) as caught:
        receive(lab, attempt)
    assert type(caught.value) is case.error, str(caught.value)
    assert caught.value.code == case.error.code
    if case.verifier_error is not None:
        # defence in depth: the verifier refuses the shape on its own, without the schema
        with pytest.raises(errors.EdocError) as alone:
            signing.verify(xmlsafe.parse(attempt.data), lab.ca.keys.trust(), attempt.now)
        assert type(alone.value) is case.verifier_error, str(alone.value)
    report.rejected(f"signature/{case.id}", caught.value.code)


@pytest.mark.parametrize("case", params(UNSIGNED_CASES))
@pytest.mark.parametrize("in_memory", [True, False], ids=["in-memory", "file"])
def test_node_receive_refuses_unsigned_content(
    lab: Lab, case: Case, in_memory: bool, tmp_path: Path
) -> None:
    """A node reads what the hub delivers through the same reader and verifier: its
    receive path (a small package in memory, a large one from a file) refuses the same."""
    attempt = case.build(lab)
    source: bytes | Path = attempt.data
    if not in_memory:
        source = tmp_path / "incoming.edxml"
        source.write_bytes(attempt.data)
    state = cast(NodeState, SimpleNamespace(keys=lab.ca.keys))
    with pytest.raises(errors.EdocError) as caught:
        receiving._verify_and_keep(state, source, tmp_path / "inbox", [])
    assert type(caught.value) is case.error, str(caught.value)
    assert not (tmp_path / "inbox").exists()


@pytest.mark.parametrize(
    "node",
    [
        pytest.param(lambda: etree.Comment(" V/v chuyển toàn bộ kinh phí "), id="comment"),
        pytest.param(lambda: etree.PI("xml-stylesheet", 'href="x.xsl"'), id="pi"),
    ],
)
@pytest.mark.parametrize("path", [".", "ds:SignedInfo", "ds:SignatureValue", "ds:KeyInfo"])
def test_verify_refuses_comments_and_pis_in_a_signature(
    lab: Lab, node: Callable[[], etree._Element], path: str
) -> None:
    """The parser drops comments and refuses PIs before verify sees a tree; verify, given a
    tree that holds either anywhere in a signature, refuses it on its own."""
    root = lab.signed()
    find(seal_signature(root), path).append(node())
    with pytest.raises(errors.EdocError) as caught:
        signing.verify(root, lab.ca.keys.trust(), lab.now())
    # among the signature's own children or in SignedInfo: not the shape edoc signs (as a
    # ds:Object there); in the value or KeyInfo: content riding along unsigned
    expected = SIG007 if path in {".", "ds:SignedInfo"} else SIG010
    assert type(caught.value) is expected, str(caught.value)


def test_a_comment_in_a_signature_is_dropped_when_read(lab: Lab) -> None:
    """What a receiver keeps is the tree the parser made: a comment is not in it."""
    root = lab.signed()
    find(seal_signature(root), "ds:KeyInfo").append(etree.Comment(" forged "))
    package = envelope.read_package(lab.attempt(root).data)
    signing.verify_package(package, lab.ca.keys.trust(), lab.now())
    assert b"forged" not in envelope.to_bytes(package.root)
