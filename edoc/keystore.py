"""keys/ on disk: the dev CA, every certificate issued, and who signs with what.

Layout (see keys/README.md): ``ca/`` holds the root and issuing CA and the CRL,
``certs/`` one ``<serial>.pem`` and ``<serial>.key`` per certificate, and
``index.json`` what each serial is. Private keys are written 0600 and never logged.

Every change is written file by file and committed by atomically replacing
``index.json`` last, so a reader sees the old state or the new one, never half.
Readers load once and cache; each access costs one ``stat`` of the index, and a
changed index (after ``edoc keys rotate`` or ``revoke``) is reloaded on the spot. That
is how running services pick up a rotated key without a restart: the next document is
signed with the new key, and the old certificate keeps verifying through its overlap.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import json
import os
import threading
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from edoc import atomic, certcheck, errors, pki
from edoc.orgid import OrgId

Clock = Callable[[], dt.datetime]
EXPIRY_WARNING = dt.timedelta(days=30)
TSA_NAME = "Time-Stamping Authority (simulated)"


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


@dataclass(frozen=True)
class CertRecord:
    serial: str  # lowercase hex
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


Holder = tuple[str, pki.CertKind, str]  # organization, kind, person ("" for its seal)


@dataclass(frozen=True)
class _Snapshot:
    stamp: int
    records: tuple[CertRecord, ...]
    trust: certcheck.Trust
    by_holder: Mapping[Holder, tuple[CertRecord, ...]]  # in the order of records


def _by_holder(records: tuple[CertRecord, ...]) -> dict[Holder, tuple[CertRecord, ...]]:
    held: dict[Holder, list[CertRecord]] = {}
    for record in records:
        held.setdefault((record.org_id, record.kind, record.full_name), []).append(record)
    return {holder: tuple(them) for holder, them in held.items()}


def _write_private(path: Path, data: bytes) -> None:
    """Create a file readable by its owner only (0600), refusing to overwrite."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as out:
        out.write(data)


def _pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def _key_pem(key: rsa.RSAPrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


class KeyStore:
    def __init__(self, path: Path, clock: Clock = utcnow) -> None:
        self.path = path
        self.clock = clock
        self._snapshot: _Snapshot | None = None
        self._identities: dict[str, SigningIdentity] = {}
        self._lock = threading.Lock()
        # the issuing CA as last parsed, and the stamp of the key file it was parsed from
        self._issuing: tuple[rsa.RSAPrivateKey, x509.Certificate] | None = None
        self._issuing_stamp: tuple[int, int, int] | None = None

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

    # --- changes (the CA's side) ------------------------------------------------------------
    @contextlib.contextmanager
    def _exclusive(self) -> Iterator[None]:
        """One writer at a time, across processes."""
        self.path.mkdir(parents=True, exist_ok=True)
        with (self.path / ".lock").open("a") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def init(self) -> None:
        """Create the root and issuing CA, an empty CRL and the index."""
        with self._exclusive():
            if self.exists():
                raise errors.KeyStoreExists(f"a CA already exists in {self.path}")
            now = self.clock()
            for folder in ("ca", "certs"):
                (self.path / folder).mkdir(mode=0o700, parents=True, exist_ok=True)
            root_key, issuing_key = pki.new_key(pki.CA_KEY_BITS), pki.new_key(pki.CA_KEY_BITS)
            root = pki.make_root(root_key, now)
            issuing = pki.make_issuing(issuing_key, root_key, root, now)
            for path in (self.path / "ca" / "root.key", self.path / "ca" / "issuing.key"):
                path.unlink(missing_ok=True)  # leftovers of an init that died before its index
            _write_private(self.path / "ca" / "root.key", _key_pem(root_key))
            _write_private(self.path / "ca" / "issuing.key", _key_pem(issuing_key))
            atomic.write_bytes(self.root_path, _pem(root))
            atomic.write_bytes(self.issuing_path, _pem(issuing))
            self._publish(issuing_key, issuing, [])
            self._save([])

    def issue(
        self,
        org_id: str,
        *,
        org_name: str = "",
        full_name: str = "",
        days: int = 730,
        tls_hosts: tuple[str, ...] = (),
    ) -> CertRecord:
        """A new organization seal; a personal certificate when ``full_name`` is given;
        a TLS certificate for a hub or node when ``tls_hosts`` are."""
        OrgId.parse(org_id)
        kind = pki.CertKind.PERSONAL if full_name else pki.CertKind.ORGANIZATION
        if tls_hosts:
            kind = pki.CertKind.TLS
        with self._exclusive():
            records = list(self._load().records)
            record = self._issue(org_id, org_name, full_name, kind, days, tls_hosts)
            self._save([*records, record])
        return record

    def _issue(
        self,
        org_id: str,
        org_name: str,
        full_name: str,
        kind: pki.CertKind,
        days: int,
        tls_hosts: tuple[str, ...] = (),
    ) -> CertRecord:
        issuing_key, issuing = self._issuing_ca()
        key = pki.new_key()
        now = self.clock() - dt.timedelta(minutes=1)
        if kind is pki.CertKind.TSA:
            cert = pki.make_tsa(key.public_key(), issuing_key, issuing, now=now, days=days)
        elif kind is pki.CertKind.TLS:
            cert = pki.make_tls(
                key.public_key(), issuing_key, issuing, org_id=org_id, hosts=tls_hosts, now=now
            )
        else:
            cert = pki.make_leaf(
                key.public_key(),
                issuing_key,
                issuing,
                kind=kind,
                org_id=org_id,
                org_name=org_name,
                full_name=full_name,
                now=now,
                days=days,
            )
        serial = f"{cert.serial_number:x}"
        _write_private(self.key_path(serial), _key_pem(key))
        # leaf + issuing CA: what a TLS endpoint presents; for signers, the same is harmless
        atomic.write_bytes(self.cert_path(serial), _pem(cert) + _pem(issuing))
        return CertRecord(
            serial=serial,
            kind=kind,
            org_id=org_id,
            org_name=org_name,
            full_name=full_name,
            not_before=cert.not_valid_before_utc,
            not_after=cert.not_valid_after_utc,
        )

    def issue_tsa(self, *, days: int = 3650) -> CertRecord:
        """A certificate for the time-stamping authority (edoc.archive.tsa); it belongs to
        the CA, so to no organization (``org_id`` "")."""
        with self._exclusive():
            records = list(self._load().records)
            record = self._issue("", TSA_NAME, "", pki.CertKind.TSA, days)
            self._save([*records, record])
        return record

    def tsa_identity(self) -> SigningIdentity:
        """The newest valid time-stamping authority's key and certificate."""
        try:
            return self.identity("", kind=pki.CertKind.TSA)
        except errors.UnknownCertificate:
            raise errors.UnknownCertificate(
                f"no valid time-stamping certificate in {self.path}: run `edoc keys tsa`"
            ) from None

    def rotate(self, org_id: str, *, overlap_days: float = 7, days: int = 730) -> CertRecord:
        """A new seal for ``org_id``; the current ones keep verifying through the overlap."""
        with self._exclusive():
            records = list(self._load().records)
            now = self.clock()
            current = [
                r
                for r in records
                if r.org_id == org_id
                and r.kind is pki.CertKind.ORGANIZATION
                and r.state(now) == "active"
            ]
            if not current:
                raise errors.UnknownCertificate(f"no active organization certificate for {org_id}")
            newest = max(current, key=lambda r: r.not_before)
            record = self._issue(org_id, newest.org_name, "", pki.CertKind.ORGANIZATION, days)
            retire_at = now + dt.timedelta(days=overlap_days)
            records = [replace(r, retire_at=retire_at) if r in current else r for r in records]
            self._save([*records, record])
        return record

    def revoke(self, target: str, reason: str = "unspecified") -> list[CertRecord]:
        """Revoke a serial, or every valid certificate of an organization; publish the CRL."""
        flag = pki.REASONS.get(reason)
        if flag is None:
            raise errors.InvalidField(
                f"unknown revocation reason {reason!r}; one of {', '.join(sorted(pki.REASONS))}"
            )
        with self._exclusive():
            records = list(self._load().records)
            now = self.clock()
            chosen = [
                r
                for r in records
                if r.revoked_at is None and (r.serial == target.lower() or r.org_id == target)
            ]
            if not chosen:
                raise errors.UnknownCertificate(f"no unrevoked certificate matches {target!r}")
            records = [
                replace(r, revoked_at=now, revoked_reason=flag.value) if r in chosen else r
                for r in records
            ]
            issuing_key, issuing = self._issuing_ca()
            self._publish(issuing_key, issuing, records)
            self._save(records)
        return [r for r in records if r.serial in {c.serial for c in chosen}]

    def _publish(
        self, issuing_key: rsa.RSAPrivateKey, issuing: x509.Certificate, records: list[CertRecord]
    ) -> None:
        revoked = [
            pki.Revocation(int(r.serial, 16), r.revoked_at, pki.REASONS[r.revoked_reason])
            for r in records
            if r.revoked_at is not None
        ]
        crl = pki.make_crl(issuing_key, issuing, revoked, self.clock())
        atomic.write_bytes(self.crl_path, crl.public_bytes(serialization.Encoding.PEM))

    def _issuing_ca(self) -> tuple[rsa.RSAPrivateKey, x509.Certificate]:
        """The issuing CA's key and certificate, parsed again only when its key file
        changed: parsing checks the 3072-bit key, which took most of issuing a certificate
        (a network's provisioning issues dozens)."""
        key_path = self.path / "ca" / "issuing.key"
        found = key_path.stat()
        stamp = (found.st_ino, found.st_mtime_ns, found.st_size)
        if self._issuing is None or self._issuing_stamp != stamp:
            key = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
            assert isinstance(key, rsa.RSAPrivateKey)
            certificate = x509.load_pem_x509_certificate(self.issuing_path.read_bytes())
            self._issuing, self._issuing_stamp = (key, certificate), stamp
        return self._issuing

    def _save(self, records: list[CertRecord]) -> None:
        data = {"version": 1, "certificates": [r.to_json() for r in records]}
        atomic.write_bytes(self.index_path, json.dumps(data, indent=2).encode())

    # --- reading (everyone's side) ---------------------------------------------------------
    def _load(self) -> _Snapshot:
        """The current state, reloaded only when index.json changed."""
        try:
            stamp = self.index_path.stat().st_mtime_ns
        except FileNotFoundError:
            raise errors.KeyStoreMissing(
                f"no CA in {self.path}: run `edoc keys init --keys-dir {self.path}`"
            ) from None
        with self._lock:
            if self._snapshot is None or self._snapshot.stamp != stamp:
                self._snapshot = self._read(stamp)
                self._identities = {}
            return self._snapshot

    def _read(self, stamp: int) -> _Snapshot:
        data = json.loads(self.index_path.read_text())
        records = tuple(CertRecord.from_json(item) for item in data["certificates"])
        root = x509.load_pem_x509_certificate(self.root_path.read_bytes())
        issuing = x509.load_pem_x509_certificate(self.issuing_path.read_bytes())
        crl = x509.load_pem_x509_crl(self.crl_path.read_bytes())
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

    def identity(
        self, org_id: str, full_name: str = "", kind: pki.CertKind | None = None
    ) -> SigningIdentity:
        """The newest valid seal of ``org_id`` (or personal certificate of ``full_name``,
        or, with ``kind=TLS``, its TLS certificate)."""
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
        record = max(usable, key=lambda r: (r.retire_at is None, r.not_before))
        with self._lock:
            cached = self._identities.get(record.serial)
            if cached is None:
                cached = self._load_identity(record)
                self._identities[record.serial] = cached
        return cached

    def _load_identity(self, record: CertRecord) -> SigningIdentity:
        key = serialization.load_pem_private_key(
            self.key_path(record.serial).read_bytes(), password=None
        )
        assert isinstance(key, rsa.RSAPrivateKey)
        cert = x509.load_pem_x509_certificate(self.cert_path(record.serial).read_bytes())
        return SigningIdentity(key, cert, record)

    def expiring(self, now: dt.datetime) -> list[CertRecord]:
        return [
            r
            for r in self.records()
            if r.state(now) in ("active", "in overlap") and r.expires() - now < EXPIRY_WARNING
        ]
