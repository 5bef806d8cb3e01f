"""The CA on disk: files, states, rotation with overlap, hot reload."""

from __future__ import annotations

import os
import shutil
import stat
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from edoc import certcheck, errors, pki
from edoc.keystore import KeyStore
from tests.support.pki import SENDER, Ca, signed_root, verify


def test_private_keys_are_owner_only(tmp_path: Path) -> None:
    ca = Ca.create(tmp_path / "keys")
    keys = sorted((tmp_path / "keys").rglob("*.key"))
    assert len(keys) == 2 + 3  # root, issuing, and the three certificates Ca.create issues
    for key in keys:
        assert stat.S_IMODE(key.stat().st_mode) == 0o600, key
    assert len(ca.keys.records()) == 3


def test_identity_repr_never_shows_the_key(tmp_path: Path) -> None:
    ca = Ca.create(tmp_path / "keys")
    text = repr(ca.keys.identity(SENDER)) + str(ca.keys.identity(SENDER))
    assert "PRIVATE" not in text and "RSAPrivateKey" not in text


def test_init_twice_is_refused(tmp_path: Path) -> None:
    ca = Ca.create(tmp_path / "keys")
    with pytest.raises(errors.KeyStoreExists):
        ca.keys.init()


def test_missing_store_has_its_own_code(tmp_path: Path) -> None:
    with pytest.raises(errors.KeyStoreMissing):
        KeyStore(tmp_path / "nothing").trust()


def test_certificates_carry_org_id_kind_and_usage(tmp_path: Path) -> None:
    ca = Ca.create(tmp_path / "keys")
    seal = ca.keys.identity(SENDER).cert
    assert pki.org_id_of(seal) == SENDER
    assert pki.kind_of(seal) is pki.CertKind.ORGANIZATION
    person = ca.keys.identity(SENDER, "Nguyễn Văn A").cert
    assert pki.common_name_of(person) == "Nguyễn Văn A"
    assert pki.kind_of(person) is pki.CertKind.PERSONAL
    now = ca.clock()
    assert certcheck.check_certificate(seal, ca.keys.trust(), now, now) is pki.CertKind.ORGANIZATION


def test_rotation_keeps_every_exchange_verifying_through_the_overlap(tmp_path: Path) -> None:
    ca = Ca.create(tmp_path / "keys")
    old = ca.keys.identity(SENDER)
    in_flight = signed_root(ca)  # signed just before the rotation, delivered after it
    rotated = ca.keys.rotate(SENDER, overlap_days=2)

    new = ca.keys.identity(SENDER)  # the same KeyStore object picks the new key up
    assert new.record.serial == rotated.serial != old.record.serial
    states = {r.serial: r.state(ca.clock()) for r in ca.keys.records()}
    assert states[old.record.serial] == "in overlap"
    assert states[rotated.serial] == "active"

    for _ in range(3):  # through the overlap, the old and the new seal both verify
        assert verify(ca, in_flight).seal.serial == old.record.serial
        assert verify(ca, signed_root(ca)).seal.serial == rotated.serial
        ca.clock.advance(hours=15)

    ca.clock.advance(hours=4)  # 49 h: the 2-day overlap is over
    with pytest.raises(errors.ExpiredCertificate, match="rotated out"):
        verify(ca, in_flight)
    assert verify(ca, signed_root(ca)).seal.serial == rotated.serial
    assert {r.serial: r.state(ca.clock()) for r in ca.keys.records()}[
        old.record.serial
    ] == "expired"


def test_another_process_view_reloads_after_rotation(tmp_path: Path) -> None:
    """A service's KeyStore sees `edoc keys rotate` done by another KeyStore (the CLI)."""
    ca = Ca.create(tmp_path / "keys")
    service = KeyStore(tmp_path / "keys", clock=ca.clock)
    before = service.identity(SENDER).record.serial
    admin = KeyStore(tmp_path / "keys", clock=ca.clock)
    after = admin.rotate(SENDER).serial
    assert service.identity(SENDER).record.serial == after != before


def test_a_revocation_in_the_same_tick_as_the_change_before_is_seen(tmp_path: Path) -> None:
    """A file system whose times are coarse (a second, or a network mount's) stamps two
    changes of the index alike: a service must still see the second, a revocation."""
    ca = Ca.create(tmp_path / "keys")
    service = KeyStore(tmp_path / "keys", clock=ca.clock)
    serial = service.identity(SENDER).record.serial
    index = tmp_path / "keys" / "index.json"
    tick = index.stat().st_mtime_ns
    KeyStore(tmp_path / "keys", clock=ca.clock).revoke(serial, "keyCompromise")
    os.utime(index, ns=(tick, tick))  # the same time as the index the service read
    assert int(serial, 16) in service.trust().revoked


def test_the_newest_of_two_certificates_issued_in_the_same_second_is_current(
    tmp_path: Path,
) -> None:
    """A certificate's validity starts on a whole second: of two TLS certificates (which
    stand side by side, never retired) issued within one, the older was current, and
    services presented it for as long as both were valid."""
    ca = Ca.create(tmp_path / "keys")  # its clock stands still: the same second
    first = ca.keys.issue(SENDER, tls_hosts=("localhost",))
    second = ca.keys.issue(SENDER, tls_hosts=("localhost", "127.0.0.1"))
    assert first.not_before == second.not_before
    assert ca.keys.current(SENDER, kind=pki.CertKind.TLS).serial == second.serial
    third = ca.keys.issue(SENDER, tls_hosts=("localhost",))
    assert KeyStore(ca.keys.path).current(SENDER, kind=pki.CertKind.TLS).serial == third.serial


def test_revoke_by_serial_publishes_crl(tmp_path: Path) -> None:
    ca = Ca.create(tmp_path / "keys")
    serial = ca.keys.identity(SENDER).record.serial
    (revoked,) = ca.keys.revoke(serial, "keyCompromise")
    assert revoked.state(ca.clock()) == "revoked"
    assert int(serial, 16) in ca.keys.trust().revoked
    with pytest.raises(errors.UnknownCertificate):
        ca.keys.identity(SENDER)
    with pytest.raises(errors.InvalidField):
        ca.keys.revoke(SENDER, "because")


def test_expiring_soon_is_reported(tmp_path: Path) -> None:
    ca = Ca.create(tmp_path / "keys")
    short = ca.keys.issue("000.00.07.H53", days=20)
    assert [r.serial for r in ca.keys.expiring(ca.clock())] == [short.serial]


def test_a_ca_made_anew_in_its_place_issues_under_the_new_ca(tmp_path: Path) -> None:
    # the issuing CA is parsed once and remembered: never past a change of its key file
    keys = KeyStore(tmp_path / "keys")
    keys.init()
    keys.issue(SENDER, org_name="UBND tỉnh Tây Ninh")
    shutil.rmtree(tmp_path / "keys")
    keys.init()
    keys.issue(SENDER, org_name="UBND tỉnh Tây Ninh")
    now = keys.clock()
    seal = keys.identity(SENDER).cert
    assert certcheck.check_certificate(seal, keys.trust(), now, now) is pki.CertKind.ORGANIZATION


def _write_key(path: Path, key: rsa.RSAPrivateKey) -> None:
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    path.write_bytes(pem)


def _with(key: rsa.RSAPrivateKey, **changed: int) -> rsa.RSAPrivateKey:
    """``key`` with some of its private numbers changed (the key is not checked)."""
    n = key.private_numbers()
    numbers = {"p": n.p, "q": n.q, "d": n.d, "dmp1": n.dmp1, "dmq1": n.dmq1, "iqmp": n.iqmp}
    numbers |= changed
    return rsa.RSAPrivateNumbers(**numbers, public_numbers=n.public_numbers).private_key(
        unsafe_skip_rsa_key_validation=True
    )


@pytest.mark.parametrize("number", ["dmp1", "dmq1", "iqmp"])
def test_a_damaged_crt_parameter_is_refused(tmp_path: Path, number: str) -> None:
    """It would still sign rightly (OpenSSL falls back to d), at several times the cost."""
    ca = Ca.create(tmp_path / "keys")
    key = ca.keys.identity(SENDER).key
    damaged = _with(key, **{number: getattr(key.private_numbers(), number) ^ 2})
    _write_key(ca.keys.key_path(ca.keys.current(SENDER).serial), damaged)
    with pytest.raises(errors.DamagedKey, match="is not its certificate's"):
        KeyStore(tmp_path / "keys").identity(SENDER)


def test_a_damaged_private_exponent_is_refused_before_it_signs(tmp_path: Path) -> None:
    """A wrong d with CRT exponents made from it: every number agrees, but it signs
    wrongly, which the probe finds."""
    ca = Ca.create(tmp_path / "keys")
    key = ca.keys.identity(SENDER).key
    n = key.private_numbers()
    d = n.d ^ 2
    damaged = _with(key, d=d, dmp1=d % (n.p - 1), dmq1=d % (n.q - 1))
    _write_key(ca.keys.key_path(ca.keys.current(SENDER).serial), damaged)
    with pytest.raises(errors.DamagedKey, match="does not sign what its certificate verifies"):
        KeyStore(tmp_path / "keys").identity(SENDER)


def test_a_key_beside_another_certificate_is_refused(tmp_path: Path) -> None:
    ca = Ca.create(tmp_path / "keys")
    person = ca.keys.identity(SENDER, "Nguyễn Văn A")
    _write_key(ca.keys.key_path(ca.keys.current(SENDER).serial), person.key)
    with pytest.raises(errors.DamagedKey) as refused:
        KeyStore(tmp_path / "keys").identity(SENDER)
    assert refused.value.code == "EDOC-KEY-004"


def test_an_unreadable_key_file_is_refused_with_the_same_code(tmp_path: Path) -> None:
    ca = Ca.create(tmp_path / "keys")
    ca.keys.key_path(ca.keys.current(SENDER).serial).write_bytes(b"-----BEGIN PRIVATE KEY-----\n")
    with pytest.raises(errors.DamagedKey, match="does not read"):
        KeyStore(tmp_path / "keys").identity(SENDER)
