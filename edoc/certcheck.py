"""Checking a signer's certificate against what a verifier trusts (edoc.pki issues them).

Chain to the pinned root through an issuing CA, validity at the signing time and now,
the overlap of a rotated-out certificate, revocation, and usage: a document seal or a
personal certificate (edoc.pki's profile), nothing else. What is a fact of the
certificate alone is worked out once per certificate object (``ByIdentity``); what
depends on the moment or the trust's lists is judged every time.
"""

from __future__ import annotations

import datetime as dt
import functools
from collections.abc import Mapping
from dataclasses import dataclass

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.x509.oid import ExtendedKeyUsageOID

from edoc import errors
from edoc.pki import DOCUMENT_SIGNING, CertKind, Revocation, kind_of, serial_hex

CLOCK_SKEW = dt.timedelta(minutes=5)


@dataclass(frozen=True)
class Trust:
    """What a verifier trusts: the pinned root, the CAs under it, and what is withdrawn."""

    root: x509.Certificate
    issuing: tuple[x509.Certificate, ...]
    revoked: Mapping[int, Revocation]
    retired: Mapping[int, dt.datetime]  # rotated-out certificates: serial → end of overlap


@functools.lru_cache(maxsize=4096)
def issued_by(cert: x509.Certificate, issuer: x509.Certificate) -> bool:
    """Whether ``issuer`` signed ``cert``: pure arithmetic on the two certificates, so
    remembered (every message would otherwise redo two RSA verifications per signature)."""
    if cert.issuer != issuer.subject:
        return False
    try:
        cert.verify_directly_issued_by(issuer)
    except (InvalidSignature, ValueError, TypeError):
        return False
    return True


class ByIdentity:
    """A certificate as a cache key, compared by identity: hashing a Certificate hashes
    its DER (~2.6 µs, several times a signature). A verifier gets the same object for the
    same certificate (signature_shape remembers them by text, the key store per
    snapshot); another object of the same certificate is only a miss. A cache holding
    the key holds the object, so its id is not reused while it is there."""

    __slots__ = ("cert",)

    def __init__(self, cert: x509.Certificate) -> None:
        self.cert = cert

    def __hash__(self) -> int:
        return id(self.cert)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, ByIdentity) and other.cert is self.cert


@dataclass(frozen=True)
class _Facts:
    """What the checks read of a certificate at every message, worked out once for it
    and a trust's CAs (the judging, against the signing time, now and the trust's lists
    of retired and revoked serials, is done every time)."""

    serial: int
    start: dt.datetime
    end: dt.datetime
    chained: bool  # issued by one of the trust's issuing CAs, itself issued by its root
    usage: CertKind | str  # its kind, or why it is not a document-signing certificate


@functools.lru_cache(maxsize=4096)
def _facts(cert: ByIdentity, root: ByIdentity, issuing: tuple[ByIdentity, ...]) -> _Facts:
    subject = cert.cert
    issuer = next((ca.cert for ca in issuing if issued_by(subject, ca.cert)), None)
    chained = issuer is not None and issued_by(issuer, root.cert)
    usage: CertKind | str = ""  # an unchained certificate is refused before its usage
    if chained:
        try:
            usage = _check_usage(subject)
        except errors.WrongKeyUsage as exc:
            usage = exc.message
    start, end = subject.not_valid_before_utc, subject.not_valid_after_utc
    return _Facts(subject.serial_number, start, end, chained, usage)


def _check_validity(facts: _Facts, signed_at: dt.datetime, now: dt.datetime) -> None:
    start, end = facts.start, facts.end
    for label, moment in (("signing time", signed_at), ("now", now)):
        if not start <= moment <= end:
            raise errors.ExpiredCertificate(
                f"certificate {serial_hex(facts.serial)} is not valid at {label}"
                f" {moment:%Y-%m-%d %H:%M} (valid {start:%Y-%m-%d} to {end:%Y-%m-%d})"
            )


def check_certificate(
    cert: x509.Certificate, trust: Trust, signed_at: dt.datetime, now: dt.datetime
) -> CertKind:
    """Chain, validity at signing time and now, rotation overlap, revocation, usage.

    Returns the certificate's kind; raises the specific edoc error otherwise.
    """
    if signed_at > now + CLOCK_SKEW:
        raise errors.ExpiredCertificate(f"signing time {signed_at:%Y-%m-%d %H:%M} is in the future")
    issuing = tuple(ByIdentity(ca) for ca in trust.issuing)
    facts = _facts(ByIdentity(cert), ByIdentity(trust.root), issuing)
    serial = facts.serial
    if not facts.chained:
        raise errors.UntrustedCertificate(
            f"certificate {serial_hex(serial)} does not chain to the pinned Government CA root"
        )
    _check_validity(facts, signed_at, now)
    retired_at = trust.retired.get(serial)
    if retired_at is not None and max(signed_at, now) > retired_at:
        raise errors.ExpiredCertificate(
            f"certificate {serial_hex(serial)} was rotated out;"
            f" its overlap ended {retired_at:%Y-%m-%d %H:%M}"
        )
    revocation = trust.revoked.get(serial)
    # Signing times have whole seconds, so "after" the revocation is a later second. With
    # ">=" a document signed in the revocation's own second, just before it, was accepted
    # by the hub and then refused by the recipient's node, which drops what it refuses: lost.
    if revocation is not None and (
        revocation.reason is x509.ReasonFlags.key_compromise or signed_at > revocation.at
    ):
        raise errors.RevokedCertificate(
            f"certificate {serial_hex(serial)} revoked {revocation.at:%Y-%m-%d %H:%M}"
            f" ({revocation.reason.value})"
        )
    if not isinstance(facts.usage, CertKind):  # (a StrEnum: a str too)
        raise errors.WrongKeyUsage(facts.usage)
    return facts.usage


def _check_usage(cert: x509.Certificate) -> CertKind:
    """A fact of the certificate alone, so remembered in _facts (reading the extensions
    was a tenth of a status's verification)."""
    try:
        usage = cert.extensions.get_extension_for_class(x509.KeyUsage).value
        extended = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
        constraints = cert.extensions.get_extension_for_class(x509.BasicConstraints).value
    except x509.ExtensionNotFound as exc:
        raise errors.WrongKeyUsage(f"certificate lacks {exc.oid.dotted_string}") from None
    kind = kind_of(cert)
    fit = (
        usage.digital_signature
        and usage.content_commitment
        and DOCUMENT_SIGNING in extended
        and ExtendedKeyUsageOID.ANY_EXTENDED_KEY_USAGE not in extended
        and not constraints.ca
        and kind in (CertKind.ORGANIZATION, CertKind.PERSONAL)
    )
    if not fit or kind is None:
        raise errors.WrongKeyUsage(
            f"certificate {serial_hex(cert.serial_number)} is not a document-signing certificate"
        )
    return kind
