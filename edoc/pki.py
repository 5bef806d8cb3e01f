"""The simulated Government CA (Ban Cơ yếu Chính phủ): certificates, CRLs, checks.

Pure functions over ``cryptography`` objects; edoc.keystore keeps them on disk. The
hierarchy is root CA → issuing CA → leaf certificates of two kinds, told apart by
their certificate policy:

* organization seal (chứng thư số cho đơn vị): subject CN/O = the organization's name,
  UID = its identifier; signs every message the organization sends;
* personal (chứng thư số cho cá nhân): CN = the signer's full name, O and UID of the
  organization; signs the documents that person signs.

Both carry KeyUsage digitalSignature + contentCommitment (non-repudiation) and the
ExtendedKeyUsage documentSigning (RFC 9336), and nothing else, so neither can act as a
CA or a TLS endpoint.
"""

from __future__ import annotations

import datetime as dt
import functools
import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from edoc import errors

# A private arc for the simulated CA's policies (the real CA's are not public here).
POLICY_ORGANIZATION = x509.ObjectIdentifier("1.3.6.1.4.1.61102.1.1")
POLICY_PERSONAL = x509.ObjectIdentifier("1.3.6.1.4.1.61102.1.2")
POLICY_TLS = x509.ObjectIdentifier("1.3.6.1.4.1.61102.1.3")
POLICY_TSA = x509.ObjectIdentifier("1.3.6.1.4.1.61102.1.4")
DOCUMENT_SIGNING = x509.ObjectIdentifier("1.3.6.1.5.5.7.3.36")
CLOCK_SKEW = dt.timedelta(minutes=5)
LEAF_KEY_BITS = 2048
CA_KEY_BITS = 3072


class CertKind(StrEnum):
    ORGANIZATION = "organization"
    PERSONAL = "personal"
    TLS = "tls"  # a hub's or node's HTTPS server and client certificate, never a signer
    TSA = "tsa"  # the time-stamping authority's (edoc.archive.tsa), never a document signer


POLICY_BY_KIND = {
    CertKind.ORGANIZATION: POLICY_ORGANIZATION,
    CertKind.PERSONAL: POLICY_PERSONAL,
    CertKind.TLS: POLICY_TLS,
    CertKind.TSA: POLICY_TSA,
}


def new_key(bits: int = LEAF_KEY_BITS) -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=bits)


def _name(common_name: str, organization: str = "", uid: str = "") -> x509.Name:
    attributes = [x509.NameAttribute(NameOID.COUNTRY_NAME, "VN")]
    if organization:
        attributes.append(x509.NameAttribute(NameOID.ORGANIZATION_NAME, organization))
    if uid:
        attributes.append(x509.NameAttribute(NameOID.USER_ID, uid))
    attributes.append(x509.NameAttribute(NameOID.COMMON_NAME, common_name))
    return x509.Name(attributes)


def _builder(
    subject: x509.Name,
    issuer: x509.Name,
    public_key: rsa.RSAPublicKey,
    issuer_key: rsa.RSAPublicKey,
    not_before: dt.datetime,
    days: int,
) -> x509.CertificateBuilder:
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_before + dt.timedelta(days=days))
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_key), critical=False
        )
    )


def _ca_usage() -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=False,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=True,
        crl_sign=True,
        encipher_only=False,
        decipher_only=False,
    )


# What a document seal, a personal certificate and the TSA's certificate may do: sign,
# with non-repudiation (content commitment), and nothing else.
_SIGNING_USAGE = x509.KeyUsage(
    digital_signature=True,
    content_commitment=True,
    key_encipherment=False,
    data_encipherment=False,
    key_agreement=False,
    key_cert_sign=False,
    crl_sign=False,
    encipher_only=False,
    decipher_only=False,
)


def make_root(key: rsa.RSAPrivateKey, now: dt.datetime, days: int = 7300) -> x509.Certificate:
    name = _name("Root CA (simulated Ban Cơ yếu Chính phủ)", "Ban Cơ yếu Chính phủ")
    return (
        _builder(name, name, key.public_key(), key.public_key(), now, days)
        .add_extension(x509.BasicConstraints(ca=True, path_length=1), critical=True)
        .add_extension(_ca_usage(), critical=True)
        .sign(key, hashes.SHA256())
    )


def make_issuing(
    key: rsa.RSAPrivateKey,
    root_key: rsa.RSAPrivateKey,
    root: x509.Certificate,
    now: dt.datetime,
    days: int = 3650,
) -> x509.Certificate:
    name = _name("Issuing CA (simulated Government CA)", "Ban Cơ yếu Chính phủ")
    return (
        _builder(name, root.subject, key.public_key(), root_key.public_key(), now, days)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(_ca_usage(), critical=True)
        .sign(root_key, hashes.SHA256())
    )


def make_leaf(
    public_key: rsa.RSAPublicKey,
    ca_key: rsa.RSAPrivateKey,
    ca: x509.Certificate,
    *,
    kind: CertKind,
    org_id: str,
    org_name: str,
    full_name: str = "",
    now: dt.datetime,
    days: int = 730,
) -> x509.Certificate:
    """An organization seal or a personal certificate, issued by ``ca``."""
    common_name = full_name if kind is CertKind.PERSONAL else (org_name or org_id)
    subject = _name(common_name, org_name or org_id, org_id)
    usage = _SIGNING_USAGE
    policy = x509.PolicyInformation(POLICY_BY_KIND[kind], None)
    return (
        _builder(subject, ca.subject, public_key, ca_key.public_key(), now, days)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(usage, critical=True)
        .add_extension(x509.ExtendedKeyUsage([DOCUMENT_SIGNING]), critical=False)
        .add_extension(x509.CertificatePolicies([policy]), critical=False)
        .sign(ca_key, hashes.SHA256())
    )


def make_tls(
    public_key: rsa.RSAPublicKey,
    ca_key: rsa.RSAPrivateKey,
    ca: x509.Certificate,
    *,
    org_id: str,
    hosts: tuple[str, ...],
    now: dt.datetime,
    days: int = 365,
) -> x509.Certificate:
    """A TLS certificate for a hub or node: server and client auth, its hosts as SANs."""
    names: list[x509.GeneralName] = []
    for host in hosts:
        try:
            names.append(x509.IPAddress(ipaddress.ip_address(host)))
        except ValueError:
            names.append(x509.DNSName(host))
    usage = x509.KeyUsage(
        digital_signature=True,
        content_commitment=False,
        key_encipherment=True,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=False,
        crl_sign=False,
        encipher_only=False,
        decipher_only=False,
    )
    eku = [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]
    return (
        _builder(
            _name(hosts[0], org_id, org_id), ca.subject, public_key, ca_key.public_key(), now, days
        )
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(usage, critical=True)
        .add_extension(x509.ExtendedKeyUsage(eku), critical=False)
        .add_extension(x509.SubjectAlternativeName(names), critical=False)
        .add_extension(
            x509.CertificatePolicies([x509.PolicyInformation(POLICY_TLS, None)]), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )


def make_tsa(
    public_key: rsa.RSAPublicKey,
    ca_key: rsa.RSAPrivateKey,
    ca: x509.Certificate,
    *,
    now: dt.datetime,
    days: int = 3650,
) -> x509.Certificate:
    """The time-stamping authority's certificate: RFC 3161 §2.3 wants the one extended
    key usage timeStamping, marked critical, so the key can sign nothing else."""
    usage = _SIGNING_USAGE
    subject = _name("Time-Stamping Authority (simulated)", "Ban Cơ yếu Chính phủ")
    return (
        _builder(subject, ca.subject, public_key, ca_key.public_key(), now, days)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(usage, critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.TIME_STAMPING]), critical=True)
        .add_extension(
            x509.CertificatePolicies([x509.PolicyInformation(POLICY_TSA, None)]), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )


# --- revocation -----------------------------------------------------------------------
REASONS = {flag.value: flag for flag in x509.ReasonFlags}


@dataclass(frozen=True)
class Revocation:
    serial: int
    at: dt.datetime
    reason: x509.ReasonFlags


def make_crl(
    ca_key: rsa.RSAPrivateKey,
    ca: x509.Certificate,
    revoked: list[Revocation],
    now: dt.datetime,
    days: int = 7,
) -> x509.CertificateRevocationList:
    builder = (
        x509.CertificateRevocationListBuilder()
        .issuer_name(ca.subject)
        .last_update(now)
        .next_update(now + dt.timedelta(days=days))
    )
    for entry in revoked:
        builder = builder.add_revoked_certificate(
            x509.RevokedCertificateBuilder()
            .serial_number(entry.serial)
            .revocation_date(entry.at)
            .add_extension(x509.CRLReason(entry.reason), critical=False)
            .build()
        )
    return builder.sign(ca_key, hashes.SHA256())


def revocations_in(crl: x509.CertificateRevocationList) -> dict[int, Revocation]:
    found = {}
    for entry in crl:
        try:
            reason = entry.extensions.get_extension_for_class(x509.CRLReason).value.reason
        except x509.ExtensionNotFound:
            reason = x509.ReasonFlags.unspecified
        found[entry.serial_number] = Revocation(
            entry.serial_number, entry.revocation_date_utc, reason
        )
    return found


# --- reading certificates -------------------------------------------------------------
def org_id_of(cert: x509.Certificate) -> str:
    values = cert.subject.get_attributes_for_oid(NameOID.USER_ID)
    return str(values[0].value) if values else ""


def common_name_of(cert: x509.Certificate) -> str:
    values = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    return str(values[0].value) if values else ""


def kind_of(cert: x509.Certificate) -> CertKind | None:
    try:
        policies = cert.extensions.get_extension_for_class(x509.CertificatePolicies).value
    except x509.ExtensionNotFound:
        return None
    oids = {policy.policy_identifier for policy in policies}
    kinds = [kind for kind, oid in POLICY_BY_KIND.items() if oid in oids]
    return kinds[0] if len(kinds) == 1 else None


# --- checking a signer's certificate ----------------------------------------------------
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
                f"certificate {facts.serial:x} is not valid at {label}"
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
            f"certificate {serial:x} does not chain to the pinned Government CA root"
        )
    _check_validity(facts, signed_at, now)
    retired_at = trust.retired.get(serial)
    if retired_at is not None and max(signed_at, now) > retired_at:
        raise errors.ExpiredCertificate(
            f"certificate {serial:x} was rotated out; its overlap ended {retired_at:%Y-%m-%d %H:%M}"
        )
    revocation = trust.revoked.get(serial)
    # Signing times have whole seconds, so "after" the revocation is a later second. With
    # ">=" a document signed in the revocation's own second, just before it, was accepted
    # by the hub and then refused by the recipient's node, which drops what it refuses: lost.
    if revocation is not None and (
        revocation.reason is x509.ReasonFlags.key_compromise or signed_at > revocation.at
    ):
        raise errors.RevokedCertificate(
            f"certificate {serial:x} revoked {revocation.at:%Y-%m-%d %H:%M}"
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
            f"certificate {cert.serial_number:x} is not a document-signing certificate"
        )
    return kind
