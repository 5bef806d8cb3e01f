"""Mutual TLS between hub and nodes, with certificates of the simulated CA.

OpenSSL checks the peer's chain only: the CA's revocations (keys/ca/crl.pem) are asked
of the key index for each request (``revocation``), which reloads them the moment
`edoc keys revoke` commits. A CRL in the SSL context would be read once, at start, and
stop every handshake when its own next update passes.
"""

from __future__ import annotations

import functools
import ssl
from typing import NamedTuple

from cryptography import x509

from edoc import pki
from edoc.keyindex import KeyIndex
from edoc.keystore import KeyStore


def _context(purpose: ssl.Purpose, keys: KeyStore, org_id: str) -> ssl.SSLContext:
    context = ssl.create_default_context(purpose, cafile=str(keys.root_path))
    context.load_verify_locations(cafile=str(keys.issuing_path))
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    serial = keys.current(org_id, kind=pki.CertKind.TLS).serial
    cert_path, key_path = keys.cert_path(serial), keys.key_path(serial)
    _check_key(cert_path.read_bytes(), key_path.read_bytes())
    context.load_cert_chain(str(cert_path), str(key_path))
    return context


def _check_key(chain_pem: bytes, key_pem: bytes) -> None:
    """Refuse a damaged key or one beside another certificate (EDOC-KEY-004) before
    serving with it: OpenSSL compares the public halves only. The key is EC P-256, or RSA
    in a key store made before EC; a signer's identity (keys.identity) takes RSA only."""
    pki.tls_private_key(key_pem, x509.load_pem_x509_certificate(chain_pem))


def server_context(keys: KeyStore, org_id: str) -> ssl.SSLContext:
    """Serve HTTPS; a client certificate, when presented, must come from the same CA.

    Node endpoints then insist on one (see ``peer``); open endpoints (stats,
    health, metrics) stay reachable for an admin with the CA certificate only.
    """
    context = _context(ssl.Purpose.CLIENT_AUTH, keys, org_id)
    context.verify_mode = ssl.CERT_OPTIONAL
    return context


def admin_context(keys: KeyStore) -> ssl.SSLContext:
    """Call a hub or node over HTTPS without a client certificate (open endpoints)."""
    context = ssl.create_default_context(cafile=str(keys.root_path))
    context.load_verify_locations(cafile=str(keys.issuing_path))
    return context


def client_context(keys: KeyStore, org_id: str) -> ssl.SSLContext:
    """Call a hub over HTTPS, presenting this node's certificate."""
    return _context(ssl.Purpose.SERVER_AUTH, keys, org_id)


class Peer(NamedTuple):
    """The verified peer certificate, as much of it as the checks read."""

    org_id: str  # its subject UID
    serial: int


def peer(transport_ssl: ssl.SSLObject | None) -> Peer | None:
    """The verified peer certificate of a connection, None when it presented none."""
    der = transport_ssl.getpeercert(binary_form=True) if transport_ssl is not None else None
    return _peer_in(der) if der else None


@functools.lru_cache(maxsize=1024)
def _peer_in(der: bytes) -> Peer:
    # every request of a kept-alive node presents the same certificate: parse it once
    cert = x509.load_der_x509_certificate(der)
    return Peer(pki.org_id_of(cert), cert.serial_number)


def revocation(found: Peer, keys: KeyIndex) -> str | None:
    """Why the CA withdrew the peer's certificate, None while it stands. Any revocation
    counts, whatever its reason or time: a TLS session is now, not a past signature."""
    revoked = keys.trust().revoked.get(found.serial)  # one stat of the index when unchanged
    if revoked is None:
        return None
    return (
        f"certificate {pki.serial_hex(found.serial)} of {found.org_id or 'no organization'}"
        f" is revoked ({revoked.reason.value}, {revoked.at:%Y-%m-%d %H:%M} UTC)"
    )
