"""Verifying a container offline, with the root certificate alone.

In order, each failure with its own code (edoc.errors, EDOC-ARC-…):

1. the layout: a ZIP, ``mimetype`` first and stored, a manifest and a token (BadContainer);
2. every file's SHA-256 is the manifest's, and the manifest covers every file
   (EvidenceTampered);
3. the token stamps the manifest's SHA-256 (BadTimestamp) and is signed by a
   time-stamping authority under the root (UntrustedTimestamp): the time it proves, T;
4. every package's signatures, as edoc.signing verifies them, with the certificates and
   CRL inside the container, *as of T*, or of the earlier time its batch proof gives
   when the node stamped it in a batch (edoc.archive.batches): a certificate revoked
   after that time was good when the evidence was stamped, so it still verifies; one
   revoked before does not (EvidenceSignature, naming the file and the signature's
   own error).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from cryptography import x509

from edoc import certcheck, envelope, errors, pki, signing
from edoc.archive import container, manifest, merkle, tsa
from edoc.archive.evidence import BatchProof
from edoc.envelope.read import WHOLE_FROM_FILE


@dataclass(frozen=True)
class CheckedMessage:
    file: str
    sender: str
    seal: str  # the seal's serial
    signed_at: dt.datetime
    verified_as_of: dt.datetime  # the time stamp it was checked at: its batch's or the container's


@dataclass(frozen=True)
class ContainerReport:
    org_id: str
    document_id: str
    stamped_at: dt.datetime
    authority: str  # the time-stamping certificate's serial
    messages: tuple[CheckedMessage, ...]


def _check_digests(parts: container.Container) -> None:
    listed = manifest.read(parts.manifest, container.TOKEN)
    for name in sorted(set(listed) - set(parts.digests)):
        raise errors.EvidenceTampered(f"{name} is in the manifest but not in the container")
    for name in sorted(set(parts.digests) - set(listed)):
        raise errors.EvidenceTampered(f"{name} is in the container but not in the manifest")
    for name, digest in parts.digests.items():
        if not hmac.compare_digest(digest, listed[name]):
            raise errors.EvidenceTampered(f"{name} does not match its SHA-256 in the manifest")


def _issuing(parts: container.Container, root: x509.Certificate) -> tuple[x509.Certificate, ...]:
    """The issuing CAs in the container that the root signed (others are ignored: a
    certificate they issued then fails its chain, which says so)."""
    found = []
    for name, data in parts.files.items():
        if name.startswith(container.CERTIFICATES):
            try:
                found.append(x509.load_pem_x509_certificate(data))
            except ValueError:
                raise errors.BadContainer(f"{name} is not a PEM certificate") from None
    return tuple(ca for ca in found if certcheck.issued_by(ca, root))


Revocations = Mapping[int, pki.Revocation]


def _revocations(parts: container.Container, issuing: tuple[x509.Certificate, ...]) -> Revocations:
    """The container's CRL, once checked to be an issuing CA's under the root."""
    try:
        crl = x509.load_der_x509_crl(parts.files[container.CRL])
    except (KeyError, ValueError):
        raise errors.BadContainer(f"{container.CRL} is missing or not a DER CRL") from None
    if not any(
        crl.issuer == ca.subject and crl.is_signature_valid(ca.public_key())  # type: ignore[arg-type]
        for ca in issuing
    ):
        raise errors.EvidenceSignature("the container's CRL is not signed by a CA under the root")
    return pki.revocations_in(crl)


def _trust_at(
    root: x509.Certificate,
    issuing: tuple[x509.Certificate, ...],
    revocations: Revocations,
    at: dt.datetime,
) -> certcheck.Trust:
    """What a verifier trusted at ``at``: the revocations the CRL dates before it."""
    revoked = {s: r for s, r in revocations.items() if r.at <= at}
    return certcheck.Trust(root=root, issuing=issuing, revoked=revoked, retired={})


def _check_authority(stamp: tsa.Stamp, revocations: Revocations) -> None:
    """The authority's certificate was not revoked when it stamped, nor ever for a
    compromised key (whoever holds that key can stamp any time)."""
    revocation = revocations.get(stamp.authority.serial_number)
    if revocation is not None and (
        revocation.reason is x509.ReasonFlags.key_compromise or revocation.at <= stamp.time
    ):
        raise errors.UntrustedTimestamp(
            f"the time-stamping certificate {pki.serial_hex(stamp.authority.serial_number)}"
            f" was revoked {revocation.at:%Y-%m-%d %H:%M} ({revocation.reason.value})"
        )


def _read_package(parts: container.Container, name: str) -> envelope.Package:
    """A package of the container, read as edoc.envelope reads a file: whole if small,
    else streamed (its attachments hashed as they pass, never whole in memory)."""
    size = parts.package_size(name)
    try:
        with parts.package(name) as file:
            # as much as it says it holds (container.read_whole says why)
            return envelope.read_package(file.read(size) if size <= WHOLE_FROM_FILE else file)
    except container.ZIP_FAULTS as exc:  # changed since it was hashed
        raise errors.EvidenceTampered(f"{name} is damaged: {exc}") from None


def _check_message(
    name: str,
    parts: container.Container,
    trust: certcheck.Trust,
    at: dt.datetime,
    document_id: str,
) -> CheckedMessage:
    try:
        verified = signing.verify_package(_read_package(parts, name), trust, at)
    except errors.EvidenceTampered:  # its file damaged (_read_package): no signature at fault
        raise
    except errors.EdocError as exc:
        raise errors.EvidenceSignature(
            f"{name} does not verify as of the time stamp {at:%Y-%m-%d %H:%M:%S}Z:"
            f" {exc.code}: {exc.message}"
        ) from None
    if verified.message.about != document_id:
        raise errors.EvidenceTampered(
            f"{name} is about {verified.message.about}, not {document_id}"
        )
    return CheckedMessage(name, verified.seal.org_id, verified.seal.serial, verified.signed_at, at)


def _message_time(
    name: str,
    digest: bytes,
    proofs: dict[str, BatchProof],
    root: x509.Certificate,
    issuing: tuple[x509.Certificate, ...],
    revocations: Revocations,
    container_time: dt.datetime,
) -> dt.datetime:
    """When the message is proven to have existed: its batch's time stamp, when the node
    stamped it in a batch, else the container's."""
    proof = proofs.get(name)
    if proof is None:
        return container_time
    batch_root = merkle.root_from(digest, proof.path)
    try:
        stamp = tsa.check_token(proof.token, batch_root, root, issuing)
        _check_authority(stamp, revocations)
    except errors.ArchiveError as exc:
        raise type(exc)(f"the batch proof of {name}: {exc.message}") from None
    return min(stamp.time, container_time)


def verify_container(source: bytes | IO[bytes] | Path, root: x509.Certificate) -> ContainerReport:
    """Check a container (see the module's list), its packages read in chunks; return
    what it proves."""
    with container.opened(source) as parts:
        return _verify_parts(parts, root)


def _verify_parts(parts: container.Container, root: x509.Certificate) -> ContainerReport:
    _check_digests(parts)
    issuing = _issuing(parts, root)
    stamp = tsa.check_token(parts.token, hashlib.sha256(parts.manifest).digest(), root, issuing)
    revocations = _revocations(parts, issuing)
    _check_authority(stamp, revocations)
    described = parts.description()
    document_id = str(described.get("document_id", ""))
    messages = parts.message_files()
    held = sorted(n for n in parts.digests if n.startswith(container.MESSAGES))
    if sorted(messages) != held or not messages:
        raise errors.BadContainer(f"{container.DESCRIPTION} does not list the message files")
    proofs = container.read_proofs(parts.files)
    if set(proofs) - set(messages):
        raise errors.BadContainer("a batch proof names no message of the container")
    checked = []
    for name in messages:
        digest = parts.digests[name]
        at = _message_time(name, digest, proofs, root, issuing, revocations, stamp.time)
        trust = _trust_at(root, issuing, revocations, at)
        checked.append(_check_message(name, parts, trust, at, document_id))
    return ContainerReport(
        org_id=str(described.get("org_id", "")),
        document_id=document_id,
        stamped_at=stamp.time,
        authority=pki.serial_hex(stamp.authority.serial_number),
        messages=tuple(checked),
    )
