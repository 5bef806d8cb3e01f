"""The simulated Government CA (Ban Cơ yếu Chính phủ): certificates and CRLs.

Pure functions over ``cryptography`` objects; edoc.keystore keeps them on disk. The
hierarchy is root CA → issuing CA → leaf certificates of two kinds, told apart by
their certificate policy:

* organization seal (chứng thư số cho đơn vị): subject CN/O = the organization's name,
  UID = its identifier; signs every message the organization sends;
* personal (chứng thư số cho cá nhân): CN = the signer's full name, O and UID of the
  organization; signs the documents that person signs.

Both carry KeyUsage digitalSignature + contentCommitment (non-repudiation) and the
ExtendedKeyUsage documentSigning (RFC 9336), and nothing else, so neither can act as a
CA or a TLS endpoint. edoc.certcheck checks a signer's certificate against this profile.

Keys: RSA everywhere a signature is kept or checked by others (the CAs, seals, personal
certificates, the TSA: edXML's XMLDSig is RSA-SHA256, which xmlsec1 verifies), EC P-256
for the TLS certificates of hubs and nodes, which only a handshake uses: such a key is
made in well under a millisecond (an RSA-2048 key ~40 ms, 86 of them in a national
network) and signs a handshake for a fraction of RSA's CPU. Key stores made before
keep their RSA TLS keys, which still load; a new TLS certificate has an EC key.
"""

from __future__ import annotations

import concurrent.futures
import datetime as dt
import ipaddress
import os
from dataclasses import dataclass
from enum import StrEnum
from typing import TypeAlias

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from edoc import errors

# A private arc for the simulated CA's policies (the real CA's are not public here).
POLICY_ORGANIZATION = x509.ObjectIdentifier("1.3.6.1.4.1.61102.1.1")
POLICY_PERSONAL = x509.ObjectIdentifier("1.3.6.1.4.1.61102.1.2")
POLICY_TLS = x509.ObjectIdentifier("1.3.6.1.4.1.61102.1.3")
POLICY_TSA = x509.ObjectIdentifier("1.3.6.1.4.1.61102.1.4")
DOCUMENT_SIGNING = x509.ObjectIdentifier("1.3.6.1.5.5.7.3.36")
LEAF_KEY_BITS = 2048
CA_KEY_BITS = 3072
# How long a leaf is valid unless asked otherwise: a signer's certificate two years, a
# TLS one one year (a running hub or node takes a renewed one at its next connection).
SIGNER_DAYS = 730
TLS_DAYS = 365

# A leaf certificate's key: RSA for signers, EC P-256 for TLS (RSA in older key stores).
LeafKey: TypeAlias = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey
LeafPublicKey: TypeAlias = rsa.RSAPublicKey | ec.EllipticCurvePublicKey


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


def new_tls_key() -> ec.EllipticCurvePrivateKey:
    """A hub's or node's TLS key: EC P-256, for ECDSA with SHA-256."""
    return ec.generate_private_key(ec.SECP256R1())


def new_keys(count: int, bits: int = LEAF_KEY_BITS) -> list[rsa.RSAPrivateKey]:
    """``count`` new keys, made on every core at once: OpenSSL makes a key without
    holding the GIL, and making keys is most of issuing a network's certificates."""
    workers = min(count, os.cpu_count() or 1)
    if workers <= 1:
        return [new_key(bits) for _ in range(count)]
    with concurrent.futures.ThreadPoolExecutor(workers, thread_name_prefix="keys") as pool:
        return list(pool.map(new_key, [bits] * count))


_PROBE = b"edoc: a key signs what its certificate verifies"


def private_key(key_pem: bytes, cert: x509.Certificate) -> rsa.RSAPrivateKey:
    """The RSA private key of ``cert`` (a CA's or a signer's), read from our key store.

    cryptography's full check of an RSA key proves p and q prime: 29 ms a 2048-bit key,
    most of a node's start (a national network loads ~340 keys). Our keys are made by
    OpenSSL here and kept 0600; what can still go wrong is a damaged file or a key beside
    the wrong certificate, and cheaper checks find both: the key's public half is the
    certificate's, its CRT parameters agree with it (a damaged one does not sign wrongly,
    OpenSSL falls back to d, but each signature then costs several times as much), and it
    signs a probe the certificate verifies (a damaged d)."""
    key = _read_key(key_pem, cert)
    if not isinstance(key, rsa.RSAPrivateKey):
        raise errors.DamagedKey(f"the key of {_subject(cert)} is not an RSA key")
    _check_rsa(key, cert)
    return key


def tls_private_key(key_pem: bytes, cert: x509.Certificate) -> LeafKey:
    """The private key of a TLS certificate, read from our key store and checked as
    strictly as a signer's: EC P-256 (RSA in a key store made before EC)."""
    key = _read_key(key_pem, cert)
    if isinstance(key, ec.EllipticCurvePrivateKey):
        _check_ec(key, cert)
    elif isinstance(key, rsa.RSAPrivateKey):
        _check_rsa(key, cert)
    else:
        raise errors.DamagedKey(f"the key of {_subject(cert)} is neither an EC nor an RSA key")
    return key


def _read_key(key_pem: bytes, cert: x509.Certificate) -> PrivateKeyTypes:
    try:
        return serialization.load_pem_private_key(
            key_pem, password=None, unsafe_skip_rsa_key_validation=True
        )
    except ValueError as exc:  # an EC key whose scalar is not its point's is refused here
        raise errors.DamagedKey(
            f"the private key of {_subject(cert)} does not read: {exc}"
        ) from None


def _check_rsa(key: rsa.RSAPrivateKey, cert: x509.Certificate) -> None:
    public = cert.public_key()
    if not isinstance(public, rsa.RSAPublicKey) or not _consistent(
        key.private_numbers(), public.public_numbers()
    ):
        raise errors.DamagedKey(f"the private key of {_subject(cert)} is not its certificate's")
    try:
        public.verify(
            key.sign(_PROBE, padding.PKCS1v15(), hashes.SHA256()),
            _PROBE,
            padding.PKCS1v15(),
            hashes.SHA256(),
        )
    except InvalidSignature:
        raise errors.DamagedKey(
            f"the private key of {_subject(cert)} does not sign what its certificate verifies"
        ) from None


def _check_ec(key: ec.EllipticCurvePrivateKey, cert: x509.Certificate) -> None:
    """The key's point (and curve) is the certificate's, and it signs a probe the
    certificate verifies (~0.1 ms)."""
    public = cert.public_key()
    if (
        not isinstance(public, ec.EllipticCurvePublicKey)
        or key.public_key().public_numbers() != public.public_numbers()
    ):
        raise errors.DamagedKey(f"the private key of {_subject(cert)} is not its certificate's")
    ecdsa = ec.ECDSA(hashes.SHA256())
    try:
        public.verify(key.sign(_PROBE, ecdsa), _PROBE, ecdsa)
    except InvalidSignature:
        raise errors.DamagedKey(
            f"the private key of {_subject(cert)} does not sign what its certificate verifies"
        ) from None


def _consistent(key: rsa.RSAPrivateNumbers, public: rsa.RSAPublicNumbers) -> bool:
    """Whether a private key's numbers are those of ``public``'s key (~12 µs, no
    primality proof)."""
    p, q, d = key.p, key.q, key.d
    return (
        key.public_numbers == public
        and p * q == public.n
        and key.dmp1 == d % (p - 1)
        and key.dmq1 == d % (q - 1)
        and key.iqmp * q % p == 1
    )


def serial_hex(number: int) -> str:
    """A certificate's serial number as edoc says it everywhere: lowercase hex in whole
    bytes (an even number of digits, a leading 0 kept), the bytes X.509 encodes, as
    ``openssl x509 -noout -serial`` prints them (in capitals there)."""
    digits = f"{number:x}"
    return digits.zfill(len(digits) + len(digits) % 2)


def serial_of(text: str) -> int | None:
    """The serial number ``text`` writes in any of its usual forms (edoc's, openssl's
    capitals, a leading 0 or not, bytes separated by colons); None if it is none."""
    digits = text.strip().replace(":", "")
    if not digits or digits.strip("0123456789abcdefABCDEF"):
        return None
    return int(digits, 16)


def _subject(cert: x509.Certificate) -> str:
    return cert.subject.rfc4514_string()


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
    public_key: LeafPublicKey,
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
    days: int = SIGNER_DAYS,
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
    public_key: LeafPublicKey,
    ca_key: rsa.RSAPrivateKey,
    ca: x509.Certificate,
    *,
    org_id: str,
    hosts: tuple[str, ...],
    now: dt.datetime,
    days: int = TLS_DAYS,
) -> x509.Certificate:
    """A TLS certificate for a hub or node: server and client auth, its hosts as SANs,
    signed by the (RSA) CA with SHA-256 whatever its own key."""
    names = [_host_name(host) for host in hosts]
    usage = x509.KeyUsage(
        digital_signature=True,
        content_commitment=False,
        # an RSA key may carry the TLS key exchange (RFC 5246 §7.4.7.1); an ECDSA key
        # only signs it, and keyEncipherment on one is wrong (RFC 5480 §3)
        key_encipherment=isinstance(public_key, rsa.RSAPublicKey),
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


def _host_name(host: str) -> x509.GeneralName:
    """How a TLS certificate names ``host``: an IP address SAN for an address, a DNS name
    SAN for anything else."""
    try:
        return x509.IPAddress(ipaddress.ip_address(host))
    except ValueError:
        return x509.DNSName(host)


def _as_matched(name: x509.GeneralName) -> object:
    """What a host name SAN is matched as by host-name verification: a DNS name without
    regard to case, an IP address as the address (``::1`` and ``0::1`` are one)."""
    return name.value.lower() if isinstance(name, x509.DNSName) else name.value


def tls_hosts_of(cert: x509.Certificate) -> list[x509.GeneralName]:
    """The host names a TLS certificate is valid for: its DNS name and IP address SANs."""
    try:
        names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return []
    return [name for name in names if isinstance(name, x509.DNSName | x509.IPAddress)]


def dropped_hosts(cert: x509.Certificate, hosts: tuple[str, ...]) -> list[str]:
    """The host names ``cert`` is valid for that a TLS certificate made for ``hosts``
    (make_tls) would not be, as ``cert`` writes them."""
    kept = {_as_matched(_host_name(host)) for host in hosts}
    return [str(name.value) for name in tls_hosts_of(cert) if not _covered(name, kept)]


def _covered(name: x509.GeneralName, kept: set[object]) -> bool:
    """Whether a certificate for the names ``kept`` (as _as_matched makes them) is valid
    for the host name ``name``: it names it, or a wildcard of its parent does (``*`` a
    whole left-most label of a name of two labels or more, as host-name verification
    takes it: *.example.gov covers a.example.gov, not a.b.example.gov nor example.gov)."""
    matched = _as_matched(name)
    if matched in kept:
        return True
    if not isinstance(matched, str):  # an IP address: no wildcard covers one
        return False
    _, dot, parent = matched.partition(".")
    return bool(dot) and "." in parent and f"*.{parent}" in kept


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
