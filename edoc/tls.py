"""Mutual TLS between hub and nodes, with certificates of the simulated CA.

OpenSSL checks the peer's chain only: the CA's revocations (keys/ca/crl.pem) are asked
of the key index for each request (``revocation``), which reloads them the moment
`edoc keys revoke` commits. A CRL in the SSL context would be read once, at start, and
stop every handshake when its own next update passes.

What a service presents is its organization's newest valid TLS certificate, followed
(:class:`OwnCertificate`): a new connection takes the one `edoc keys issue --tls-host`
gave after the CA revoked the one before, with no restart.
"""

from __future__ import annotations

import functools
import os
import ssl
from pathlib import Path
from typing import NamedTuple

import structlog
from cryptography import x509

from edoc import errors, pki
from edoc.keyindex import RESTORE, CertRecord, KeyIndex, Stamp, read_key, read_pem, stamp_of
from edoc.keystore import KeyStore

log = structlog.get_logger()


def _context(purpose: ssl.Purpose, keys: KeyIndex, serial: str) -> ssl.SSLContext:
    """A context presenting certificate ``serial``; as a server's, a client certificate,
    when presented, must come from the same CA (see server_context)."""
    # first what reads every file OpenSSL is given, naming a damaged one (EDOC-KEY-000):
    # OpenSSL's own refusal ("[X509] PEM lib") names none, and read as the system's
    # (an SSLError is an OSError) it was EDOC-SYS-001; the index, CA and CRL were read
    # as ``serial`` was chosen (_newest)
    cert_path, key_path = keys.cert_path(serial), keys.key_path(serial)
    _check_key(cert_path, key_path)
    context = ssl.create_default_context(purpose, cafile=str(keys.root_path))
    context.load_verify_locations(cafile=str(keys.issuing_path))
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    if purpose is ssl.Purpose.CLIENT_AUTH:
        context.verify_mode = ssl.CERT_OPTIONAL
    try:
        context.load_cert_chain(str(cert_path), str(key_path))
    except ssl.SSLError as exc:  # the key read above: the chain after the certificate
        raise errors.KeyStoreError(
            f"{cert_path} is damaged (OpenSSL does not read its chain: {exc.reason}); {RESTORE}"
        ) from None
    return context


def _check_key(cert_path: Path, key_path: Path) -> None:
    """Refuse a damaged key or one beside another certificate (EDOC-KEY-004) before
    serving with it: OpenSSL compares the public halves only. The key is EC P-256, or RSA
    in a key store made before EC; a signer's identity (keys.identity) takes RSA only."""
    read_key(key_path, read_pem(cert_path, x509.load_pem_x509_certificate), pki.tls_private_key)


def _newest(keys: KeyIndex, org_id: str) -> CertRecord:
    return keys.current(org_id, kind=pki.CertKind.TLS)


# the files a context of a certificate is made of, as they are on disk (None: missing)
OnDisk = tuple[Stamp | None, ...]


def _files(keys: KeyIndex, serial: str) -> tuple[str, ...]:
    """The files a context presenting certificate ``serial`` is made of (_context)."""
    paths = (keys.cert_path(serial), keys.key_path(serial), keys.root_path, keys.issuing_path)
    return tuple(os.fspath(path) for path in paths)


def _on_disk(files: tuple[str, ...]) -> OnDisk:
    """What tells whether ``files`` changed: a stat each, where reading and checking them
    again cost 0.1 ms (a damaged key) to 2 ms (a damaged chain)."""
    return tuple(_stamp(name) for name in files)


def _stamp(name: str) -> Stamp | None:
    try:
        return stamp_of(os.stat(name))
    except OSError:
        return None


class OwnCertificate:
    """The TLS certificate a service presents: its organization's newest valid one (not
    revoked, not expired, not retired), followed in the key index. ``context()`` is what a
    new connection takes: the same context while the index names the same certificate (one
    stat of it), one built anew when it names another. A new context rather than
    ``load_cert_chain`` on the one in use: a server's connection took its context's
    certificate when it was made, before the handshake that notices the change, and is
    handed the new context (server_context); a client pools kept-alive connections by
    context, so none presenting the old one is used again; and a chain loaded half (the
    key refused after the certificate) would leave the context in use with no key.

    A newest certificate whose files do not make a context (damaged) is tried again only
    once they change: not at each connection, which is each request of a node."""

    def __init__(self, keys: KeyIndex, org_id: str, purpose: ssl.Purpose) -> None:
        self._keys, self._org_id, self._purpose = keys, org_id, purpose
        self.record = _newest(keys, org_id)
        self._context = _context(purpose, keys, self.record.serial)
        self._trouble = ""  # the last reason it kept the certificate, said once
        # a certificate whose files were refused, those files, and how they were then
        self._refused: tuple[str, tuple[str, ...], OnDisk] | None = None

    def context(self) -> ssl.SSLContext:
        try:
            newest = _newest(self._keys, self._org_id)
            if newest.serial == self.record.serial:
                self._trouble = ""
            elif not self._refused_as_they_are(newest.serial):
                self._switch(newest)
                self._trouble = ""
        except (errors.KeyStoreError, OSError) as exc:  # (ssl.SSLError is an OSError)
            self._keep(exc)
        return self._context

    def _refused_as_they_are(self, serial: str) -> bool:
        """Whether the files of certificate ``serial`` were refused, and are unchanged."""
        if self._refused is None:
            return False
        refused, files, as_they_were = self._refused
        return serial == refused and _on_disk(files) == as_they_were

    def _switch(self, newest: CertRecord) -> None:
        files = _files(self._keys, newest.serial)
        as_they_are = _on_disk(files)  # before they are read: a change meanwhile counts
        try:
            self._context = _context(self._purpose, self._keys, newest.serial)
        except (errors.KeyStoreError, OSError):
            self._refused = (newest.serial, files, as_they_are)
            raise
        log.info(
            "TLS certificate switched",
            org_id=self._org_id,
            serial=newest.shown_serial,
            replaced=self.record.shown_serial,
        )
        self.record = newest

    def _keep(self, exc: errors.KeyStoreError | OSError) -> None:
        """Serve on with the certificate in use (its peers refuse it if the CA revoked it,
        with their own errors): said once, not at each connection."""
        reason = exc.message if isinstance(exc, errors.EdocError) else str(exc)
        if reason != self._trouble:
            log.error(
                "TLS certificate kept: no valid one to take its place",
                org_id=self._org_id,
                serial=self.record.shown_serial,
                reason=reason,
            )
        self._trouble = reason


def server_context(keys: KeyIndex, org_id: str) -> ssl.SSLContext:
    """Serve HTTPS, each new connection with the organization's newest valid TLS
    certificate (OwnCertificate); a client certificate, when presented, must come from
    the same CA.

    Node endpoints then insist on one (see ``peer``); open endpoints (stats,
    health, metrics) stay reachable for an admin with the CA certificate only.

    The server keeps the context it was started with: its server-name callback, which
    OpenSSL calls at every handshake (with None when the client sent no name), hands the
    connection over to the newest context before the certificate is sent.
    """
    own = OwnCertificate(keys, org_id, ssl.Purpose.CLIENT_AUTH)
    listening = own.context()

    def newest(connection: ssl.SSLObject, _name: str | None, _context: ssl.SSLContext) -> None:
        context = own.context()
        if connection.context is not context:
            connection.context = context

    listening.sni_callback = newest
    return listening


def admin_context(keys: KeyStore) -> ssl.SSLContext:
    """Call a hub or node over HTTPS without a client certificate (open endpoints)."""
    keys.trust()  # the CA's files read first, a damaged one named (see _context)
    context = ssl.create_default_context(cafile=str(keys.root_path))
    context.load_verify_locations(cafile=str(keys.issuing_path))
    return context


def client_context(keys: KeyIndex, org_id: str) -> ssl.SSLContext:
    """Call a hub over HTTPS, presenting this node's certificate as it is now (a running
    node follows it: OwnCertificate)."""
    return _context(ssl.Purpose.SERVER_AUTH, keys, _newest(keys, org_id).serial)


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
