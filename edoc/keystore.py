"""keys/ on disk, changed: the dev CA, every certificate issued, rotation, revocation.

A :class:`KeyStore` is a :class:`edoc.keyindex.KeyIndex` (the reading, and the layout)
with the CA's changes. Private keys are written 0600 and never logged. Every change is
written file by file and committed by atomically replacing ``index.json`` last, so a
reader sees the old state or the new one, never half; one writer at a time, across
processes.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from edoc import atomic, errors, pki
from edoc.keyindex import CertRecord, KeyIndex, read_key, read_pem
from edoc.orgid import OrgId

TSA_NAME = "Time-Stamping Authority (simulated)"


def _write_private(path: Path, data: bytes) -> None:
    """Create a file readable by its owner only (0600), refusing to overwrite."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as out:
        out.write(data)


def _pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def _key_pem(key: pki.LeafKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


@dataclass(frozen=True)
class Wanted:
    """A certificate to issue: whose, of which kind, for how long."""

    org_id: str  # "" for the time-stamping authority's, which belongs to the CA
    kind: pki.CertKind
    org_name: str = ""
    full_name: str = ""
    days: int = pki.SIGNER_DAYS
    tls_hosts: tuple[str, ...] = ()

    @classmethod
    def of(
        cls,
        org_id: str,
        *,
        org_name: str = "",
        full_name: str = "",
        days: int | None = None,
        tls_hosts: tuple[str, ...] = (),
    ) -> Wanted:
        """An organization seal; a personal certificate when ``full_name`` is given; a
        TLS certificate for a hub or node when ``tls_hosts`` are. Valid ``days``, or by
        default pki.TLS_DAYS for a TLS certificate and pki.SIGNER_DAYS for the others."""
        OrgId.parse(org_id)
        if full_name and tls_hosts:
            # a hub or node presents its organization's TLS certificate, never a person's
            raise ValueError("a TLS certificate is an organization's, not a person's")
        kind = pki.CertKind.PERSONAL if full_name else pki.CertKind.ORGANIZATION
        if tls_hosts:
            kind = pki.CertKind.TLS
        if days is None:
            days = pki.TLS_DAYS if kind is pki.CertKind.TLS else pki.SIGNER_DAYS
        return cls(org_id, kind, org_name, full_name, days, tls_hosts)

    @classmethod
    def tsa(cls, days: int = 3650) -> Wanted:
        """The time-stamping authority's certificate (edoc.archive.tsa)."""
        return cls("", pki.CertKind.TSA, TSA_NAME, "", days)


def _new_keys(wanted: Sequence[Wanted]) -> list[pki.LeafKey]:
    """A key for each of ``wanted``, in its order: EC P-256 for a TLS certificate (well
    under a millisecond each), RSA for the others, made on every core at once."""
    signers = iter(pki.new_keys(sum(1 for one in wanted if one.kind is not pki.CertKind.TLS)))
    return [pki.new_tls_key() if one.kind is pki.CertKind.TLS else next(signers) for one in wanted]


def _certificate(
    wanted: Wanted,
    key: pki.LeafKey,
    issuing_key: rsa.RSAPrivateKey,
    issuing: x509.Certificate,
    now: dt.datetime,
) -> x509.Certificate:
    now -= dt.timedelta(minutes=1)  # valid already for a peer whose clock is a little behind
    if wanted.kind is pki.CertKind.TLS:
        return pki.make_tls(
            key.public_key(),
            issuing_key,
            issuing,
            org_id=wanted.org_id,
            hosts=wanted.tls_hosts,
            now=now,
            days=wanted.days,
        )
    if not isinstance(key, rsa.RSAPrivateKey):  # what signs documents or time stamps is RSA
        raise TypeError(f"a {wanted.kind.value} certificate takes an RSA key")
    if wanted.kind is pki.CertKind.TSA:
        return pki.make_tsa(key.public_key(), issuing_key, issuing, now=now, days=wanted.days)
    return pki.make_leaf(
        key.public_key(),
        issuing_key,
        issuing,
        kind=wanted.kind,
        org_id=wanted.org_id,
        org_name=wanted.org_name,
        full_name=wanted.full_name,
        now=now,
        days=wanted.days,
    )


def _active_of(records: Sequence[CertRecord], holder: Wanted, now: dt.datetime) -> list[CertRecord]:
    """The active certificates of ``holder``'s kind held by the same organization (and,
    for a personal one, the same person): what a new one of ``holder`` would stand beside."""
    return [
        r
        for r in records
        if r.org_id == holder.org_id
        and r.kind is holder.kind
        and r.full_name == holder.full_name
        and r.state(now) == "active"
    ]


def _refuse_second(records: Sequence[CertRecord], wanted: Wanted, now: dt.datetime) -> None:
    """A second active seal, or personal certificate of one person, would never retire:
    signatures by either verify until both expire, and a key the administrator meant to
    replace stays good for years."""
    if wanted.kind not in (pki.CertKind.ORGANIZATION, pki.CertKind.PERSONAL):
        return  # a TLS certificate is renewed by issuing another
    active = _active_of(records, wanted, now)
    if not active:
        return
    if wanted.full_name:
        held = f"{wanted.full_name!r} of {wanted.org_id} already has an active personal"
        held += " certificate"
        rotate = f"{wanted.org_id} --personal {wanted.full_name!r}"
    else:
        held, rotate = f"{wanted.org_id} already has an active seal", wanted.org_id
    raise errors.KeyStoreExists(
        f"{held} ({active[0].shown_serial}); `edoc keys rotate {rotate}` replaces it with an"
        " overlap, --exist-ok keeps it"
    )


def _named(wanted: Wanted, records: Sequence[CertRecord]) -> Wanted:
    """``wanted`` with the organization's name from its latest certificate that has one,
    when asked without a name (a reissue after a revocation would otherwise drop it)."""
    if wanted.org_name:
        return wanted
    named = [r for r in records if r.org_id == wanted.org_id and r.org_name]
    if not named:
        return wanted
    return replace(wanted, org_name=max(named, key=lambda r: r.not_before).org_name)


class KeyStore(KeyIndex):
    # --- changes (the CA's side) ------------------------------------------------------------
    @contextlib.contextmanager
    def _exclusive(self) -> Iterator[None]:
        """One writer at a time, across processes."""
        self.path.mkdir(parents=True, exist_ok=True)
        with atomic.one_writer(self.path / ".lock"):
            yield

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
        days: int | None = None,
        tls_hosts: tuple[str, ...] = (),
    ) -> CertRecord:
        """A new organization seal; a personal certificate when ``full_name`` is given;
        a TLS certificate for a hub or node when ``tls_hosts`` are (Wanted.of)."""
        wanted = Wanted.of(
            org_id, org_name=org_name, full_name=full_name, days=days, tls_hosts=tls_hosts
        )
        return self.issue_many([wanted])[0]

    def issue_tsa(self, *, days: int = 3650) -> CertRecord:
        """A certificate for the time-stamping authority (edoc.archive.tsa); it belongs to
        the CA, so to no organization (``org_id`` "")."""
        return self.issue_many([Wanted.tsa(days)])[0]

    def issue_many(self, wanted: Sequence[Wanted]) -> list[CertRecord]:
        """Every certificate in ``wanted``, as one change: their keys made first (the RSA
        ones at once on every core; outside the lock: they depend on nothing stored), then
        signed and written, and the index written once (a national network's hundreds,
        issued one by one, made their keys on one core and rewrote the growing index each
        time)."""
        if not wanted:
            return []  # the index is left as it is: services reload it when it changes
        keys = _new_keys(wanted)
        with self._exclusive():
            records = list(self._load().records)
            issuing = self._issuing_ca()  # read and checked once for all of them
            made = [self._issue(one, key, *issuing) for one, key in zip(wanted, keys, strict=True)]
            self._save([*records, *made])
        return made

    def issue_asked(self, wanted: Wanted, *, drop_hosts: bool = False) -> CertRecord:
        """``wanted`` as an administrator asks for it (`edoc keys issue`): a seal is refused
        (KeyStoreExists) while the organization has an active one, and so is a personal
        certificate while the same person of the organization has one; a TLS certificate
        without every host name of the organization's current one is refused
        (TlsHostsDropped) unless ``drop_hosts``; a certificate asked without a name takes
        the name of the organization's latest certificate that has one. All judged under
        the lock, on the index as it is when it is written."""
        (key,) = _new_keys([wanted])
        with self._exclusive():
            records = list(self._load().records)
            _refuse_second(records, wanted, self.clock())
            if not drop_hosts:
                self._refuse_dropped_hosts(wanted)
            record = self._issue(_named(wanted, records), key, *self._issuing_ca())
            self._save([*records, record])
        return record

    def _refuse_dropped_hosts(self, wanted: Wanted) -> None:
        """A TLS certificate is renewed by issuing another, and running services present
        the newest at their next connection (edoc.tls): one without a host name of the
        current one would cut off every peer that reaches the hub or node by that name,
        the moment it is issued."""
        if wanted.kind is not pki.CertKind.TLS:
            return
        try:  # the one services present now (tls.OwnCertificate takes the same)
            current = self.current(wanted.org_id, wanted.full_name, pki.CertKind.TLS)
        except errors.UnknownCertificate:
            return  # a first one, or one after a revocation: no peer reaches it now
        cert = read_pem(self.cert_path(current.serial), x509.load_pem_x509_certificate)
        dropped = pki.dropped_hosts(cert, wanted.tls_hosts)
        if dropped:
            raise errors.TlsHostsDropped(
                f"the new TLS certificate of {wanted.org_id} would leave out"
                f" {', '.join(dropped)}, which its current one ({current.shown_serial}) is"
                " valid for: a running hub or node presents the new one at its next"
                " connection, and a peer that reaches it by such a name is refused; give"
                " every host name with --tls-host, or --drop-hosts if they are meant to go"
            )

    def _issue(
        self,
        wanted: Wanted,
        key: pki.LeafKey,
        issuing_key: rsa.RSAPrivateKey,
        issuing: x509.Certificate,
    ) -> CertRecord:
        cert = _certificate(wanted, key, issuing_key, issuing, self.clock())
        serial = pki.serial_hex(cert.serial_number)
        _write_private(self.key_path(serial), _key_pem(key))
        # leaf + issuing CA: what a TLS endpoint presents; for signers, the same is harmless
        atomic.write_bytes(self.cert_path(serial), _pem(cert) + _pem(issuing))
        return CertRecord(
            serial=serial,
            kind=wanted.kind,
            org_id=wanted.org_id,
            org_name=wanted.org_name,
            full_name=wanted.full_name,
            not_before=cert.not_valid_before_utc,
            not_after=cert.not_valid_after_utc,
        )

    def rotate(
        self,
        org_id: str,
        *,
        full_name: str = "",
        overlap_days: float = 7,
        days: int = pki.SIGNER_DAYS,
    ) -> CertRecord:
        """A new seal for ``org_id`` (a personal certificate for ``full_name`` of it, when
        given); the current ones keep verifying through the overlap."""
        holder = Wanted.of(org_id, full_name=full_name)
        with self._exclusive():
            records = list(self._load().records)
            now = self.clock()
            current = _active_of(records, holder, now)
            if not current:
                raise errors.UnknownCertificate(
                    f"no active {holder.kind.value} certificate for"
                    f" {f'{full_name!r} of ' if full_name else ''}{org_id}"
                )
            newest = max(current, key=lambda r: r.not_before)
            wanted = replace(holder, org_name=newest.org_name, days=days)
            record = self._issue(wanted, pki.new_key(), *self._issuing_ca())
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
                if r.revoked_at is None and (r.has_serial(target) or r.org_id == target)
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
        """The issuing CA's key and certificate."""
        certificate = read_pem(self.issuing_path, x509.load_pem_x509_certificate)
        key = read_key(self.path / "ca" / "issuing.key", certificate, pki.private_key)
        return key, certificate

    def _save(self, records: list[CertRecord]) -> None:
        data = {"version": 1, "certificates": [r.to_json() for r in records]}
        atomic.write_bytes(self.index_path, json.dumps(data, indent=2).encode())
