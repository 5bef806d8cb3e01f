"""keys/ as every service reads it: the index of certificates, the trust it gives, who
signs with what.

Layout (see keys/README.md): ``ca/`` holds the root and issuing CA and the CRL,
``certs/`` one ``<serial>.pem`` and ``<serial>.key`` per certificate, and
``index.json`` what each serial is. edoc.keystore adds the CA's changes to the same
folder, committed by atomically replacing ``index.json`` last, so a reader sees the old
state or the new one, never half.

Readers load once and cache; each access costs one ``stat`` of the index, and a
changed index (after ``edoc keys rotate`` or ``revoke``) is reloaded on the spot. That
is how running services pick up a rotated key without a restart: the next document is
signed with the new key, and the old certificate keeps verifying through its overlap.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import rsa

from edoc import certcheck, errors, pki

Clock = Callable[[], dt.datetime]
EXPIRY_WARNING = dt.timedelta(days=30)
RESTORE = "restore the keys folder from a copy"
Read = TypeVar("Read")


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


@dataclass(frozen=True)
class CertRecord:
    # as stored, the name of the certificate's files: pki.serial_hex, but in a store made
    # before edoc said serials in whole bytes, perhaps without its leading 0; said as
    # shown_serial, found by has_serial
    serial: str
    kind: pki.CertKind
    org_id: str
    org_name: str
    full_name: str
    not_before: dt.datetime
    not_after: dt.datetime
    retire_at: dt.datetime | None = None
    revoked_at: dt.datetime | None = None
    revoked_reason: str = ""

    def state(self, now: dt.datetime) -> str:
        if self.revoked_at is not None:
            return "revoked"
        if now > self.not_after or (self.retire_at is not None and now > self.retire_at):
            return "expired"
        if now < self.not_before:
            return "not yet valid"
        return "in overlap" if self.retire_at is not None else "active"

    def expires(self) -> dt.datetime:
        return min(self.not_after, self.retire_at or self.not_after)

    @property
    def shown_serial(self) -> str:
        return pki.serial_hex(int(self.serial, 16))

    def has_serial(self, text: str) -> bool:
        """Whether ``text`` is this certificate's serial, in any form (pki.serial_of)."""
        return pki.serial_of(text) == int(self.serial, 16)

    def to_json(self) -> dict[str, Any]:
        return {
            "serial": self.serial,
            "kind": self.kind.value,
            "org_id": self.org_id,
            "org_name": self.org_name,
            "full_name": self.full_name,
            "not_before": self.not_before.isoformat(),
            "not_after": self.not_after.isoformat(),
            "retire_at": self.retire_at.isoformat() if self.retire_at else None,
            "revoked_at": self.revoked_at.isoformat() if self.revoked_at else None,
            "revoked_reason": self.revoked_reason,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> CertRecord:
        def when(key: str) -> dt.datetime | None:
            return dt.datetime.fromisoformat(data[key]) if data.get(key) else None

        return cls(
            serial=data["serial"],
            kind=pki.CertKind(data["kind"]),
            org_id=data["org_id"],
            org_name=data["org_name"],
            full_name=data["full_name"],
            not_before=dt.datetime.fromisoformat(data["not_before"]),
            not_after=dt.datetime.fromisoformat(data["not_after"]),
            retire_at=when("retire_at"),
            revoked_at=when("revoked_at"),
            revoked_reason=data.get("revoked_reason", ""),
        )


@dataclass(frozen=True)
class SigningIdentity:
    """A private key with its certificate: what edoc.signing signs with."""

    key: rsa.RSAPrivateKey
    cert: x509.Certificate
    record: CertRecord

    def __repr__(self) -> str:  # never show the key
        return (
            f"SigningIdentity({self.record.kind.value} {self.record.org_id} {self.record.serial})"
        )


def read_records(path: Path) -> tuple[CertRecord, ...]:
    """The records of the index at ``path``. A damaged one (not JSON, or not the index's
    fields) is a KeyStoreError naming it: what to restore, not a parser's traceback."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        return tuple(CertRecord.from_json(item) for item in data["certificates"])
    except (ValueError, KeyError, TypeError) as exc:  # JSON's and UTF-8's are ValueErrors
        why = f"no field {exc}" if isinstance(exc, KeyError) else str(exc)
        raise errors.KeyStoreError(
            f"{path} is damaged (not the key index edoc writes: {why}); {RESTORE}"
        ) from exc


def read_pem(path: Path, load: Callable[[bytes], Read]) -> Read:
    """A certificate or CRL of the key store, read by ``load``; a damaged one is a
    KeyStoreError naming it (cryptography's ValueError says neither file nor remedy)."""
    try:
        return load(path.read_bytes())
    except ValueError:
        raise errors.KeyStoreError(
            f"{path} is damaged (it does not read as PEM); {RESTORE}"
        ) from None


def read_key(
    path: Path, cert: x509.Certificate, load: Callable[[bytes, x509.Certificate], Read]
) -> Read:
    """A private key of the key store, read and checked against ``cert`` by ``load``
    (pki.private_key, pki.tls_private_key); a damaged one is a DamagedKey naming its file
    (pki knows the certificate's subject only, not which file to restore)."""
    try:
        return load(path.read_bytes(), cert)
    except errors.DamagedKey as exc:
        raise errors.DamagedKey(f"{path}: {exc.message}; {RESTORE}") from None


Holder = tuple[str, pki.CertKind, str]  # organization, kind, person ("" for its seal)


# What tells that index.json changed: its time alone is the same for two changes within
# a coarse file system's tick (a second, or a network mount's), and a revocation made in
# the same tick as the change before it went unseen. Each change replaces the file
# (edoc.atomic), so its inode is new: made while the one it replaces still held its own.
Stamp = tuple[int, int, int]  # (mtime in ns, inode, size)


def stamp_of(status: os.stat_result) -> Stamp:
    """What tells a file changed at one stat: a time alone misses two changes within one
    coarse tick."""
    return (status.st_mtime_ns, status.st_ino, status.st_size)


@dataclass(frozen=True)
class _Snapshot:
    stamp: Stamp
    records: tuple[CertRecord, ...]
    trust: certcheck.Trust
    by_holder: Mapping[Holder, tuple[CertRecord, ...]]  # in the order of records


def _by_holder(records: tuple[CertRecord, ...]) -> dict[Holder, tuple[CertRecord, ...]]:
    held: dict[Holder, list[CertRecord]] = {}
    for record in records:
        held.setdefault((record.org_id, record.kind, record.full_name), []).append(record)
    return {holder: tuple(them) for holder, them in held.items()}


class KeyIndex:
    """keys/ read: its certificates' records, the trust they give, the signing identities."""

    def __init__(self, path: Path, clock: Clock = utcnow) -> None:
        self.path = path
        self.clock = clock
        # stat-ed at every access: a Path made and turned into a string each time was
        # most of what an access cost (4 µs, several per message)
        self._index_file = os.fspath(self.index_path)
        self._snapshot: _Snapshot | None = None
        self._identities: dict[str, SigningIdentity] = {}
        self._lock = threading.Lock()

    # --- paths -----------------------------------------------------------------------
    @property
    def index_path(self) -> Path:
        return self.path / "index.json"

    @property
    def root_path(self) -> Path:
        return self.path / "ca" / "root.pem"

    @property
    def issuing_path(self) -> Path:
        return self.path / "ca" / "issuing.pem"

    @property
    def crl_path(self) -> Path:
        return self.path / "ca" / "crl.pem"

    def cert_path(self, serial: str) -> Path:
        return self.path / "certs" / f"{serial}.pem"

    def key_path(self, serial: str) -> Path:
        return self.path / "certs" / f"{serial}.key"

    def exists(self) -> bool:
        return self.index_path.exists()

    # --- reading ---------------------------------------------------------------------------
    def _load(self) -> _Snapshot:
        """The current state, reloaded only when index.json changed."""
        try:
            stamp = stamp_of(os.stat(self._index_file))
        except FileNotFoundError:
            raise errors.KeyStoreMissing(
                f"no CA in {self.path}: run `edoc keys init --keys-dir {self.path}`"
            ) from None
        with self._lock:
            if self._snapshot is None or self._snapshot.stamp != stamp:
                self._snapshot = self._read(stamp)
                self._identities = {}
            return self._snapshot

    def _read(self, stamp: Stamp) -> _Snapshot:
        records = read_records(self.index_path)
        root = read_pem(self.root_path, x509.load_pem_x509_certificate)
        issuing = read_pem(self.issuing_path, x509.load_pem_x509_certificate)
        crl = read_pem(self.crl_path, x509.load_pem_x509_crl)
        if not crl.is_signature_valid(issuing.public_key()):  # type: ignore[arg-type]
            raise errors.KeyStoreError(f"{self.crl_path} is not signed by the issuing CA")
        trust = certcheck.Trust(
            root=root,
            issuing=(issuing,),
            revoked=pki.revocations_in(crl),
            retired={int(r.serial, 16): r.retire_at for r in records if r.retire_at},
        )
        return _Snapshot(stamp, records, trust, _by_holder(records))

    def records(self) -> tuple[CertRecord, ...]:
        return self._load().records

    def trust(self) -> certcheck.Trust:
        return self._load().trust

    def crl(self) -> x509.CertificateRevocationList:
        """The CA's CRL as published (what evidence carries for its verifier)."""
        return read_pem(self.crl_path, x509.load_pem_x509_crl)

    def current(
        self, org_id: str, full_name: str = "", kind: pki.CertKind | None = None
    ) -> CertRecord:
        """The record of the newest valid seal of ``org_id`` (or personal certificate of
        ``full_name``, or, with ``kind=TLS``, its TLS certificate), its key left on disk:
        what asks only whether one exists (provisioning a network asks it hundreds of
        times) need not read and check a private key each time."""
        snapshot = self._load()
        now = self.clock()
        kind = kind or (pki.CertKind.PERSONAL if full_name else pki.CertKind.ORGANIZATION)
        usable = [  # a national network holds hundreds: looked up, not scanned
            r
            for r in snapshot.by_holder.get((org_id, kind, full_name), ())
            if r.state(now) in ("active", "in overlap")
        ]
        if not usable:
            who = f"{full_name!r} of {org_id}" if full_name else org_id
            raise errors.UnknownCertificate(f"no valid {kind.value} certificate for {who}")
        # the last written of those issued in the same second (a certificate's validity
        # starts on a whole second): two TLS certificates renewed within one took the
        # first, and a service presented the older one for as long as both were valid
        return max(reversed(usable), key=lambda r: (r.retire_at is None, r.not_before))

    def identity(
        self, org_id: str, full_name: str = "", kind: pki.CertKind | None = None
    ) -> SigningIdentity:
        """The newest valid seal of ``org_id`` (or personal certificate of ``full_name``,
        or certificate of ``kind``) with its private key, an RSA key: what signs. A TLS
        certificate's key is read by edoc.tls (pki.tls_private_key): it is EC, which this
        refuses (EDOC-KEY-004), unless a key store made before EC holds an RSA one."""
        record = self.current(org_id, full_name, kind)
        with self._lock:
            cached = self._identities.get(record.serial)
            if cached is None:
                cached = self._load_identity(record)
                self._identities[record.serial] = cached
        return cached

    def _load_identity(self, record: CertRecord) -> SigningIdentity:
        cert = read_pem(self.cert_path(record.serial), x509.load_pem_x509_certificate)
        key = read_key(self.key_path(record.serial), cert, pki.private_key)
        return SigningIdentity(key, cert, record)

    def expiring(self, now: dt.datetime) -> list[CertRecord]:
        return [
            r
            for r in self.records()
            if r.state(now) in ("active", "in overlap") and r.expires() - now < EXPIRY_WARNING
        ]

    def tsa_identity(self) -> SigningIdentity:
        """The newest valid time-stamping authority's key and certificate."""
        try:
            return self.identity("", kind=pki.CertKind.TSA)
        except errors.UnknownCertificate:
            raise errors.UnknownCertificate(
                f"no valid time-stamping certificate in {self.path}: run `edoc keys tsa`"
            ) from None
