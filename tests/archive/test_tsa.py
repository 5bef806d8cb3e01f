"""The simulated time-stamping authority: its certificate, and tokens that openssl accepts."""

from __future__ import annotations

import datetime as dt
import hashlib
import subprocess
from pathlib import Path

import pytest
from click.testing import CliRunner
from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID

from edoc import certcheck, errors, network, pki
from edoc.archive import tsa
from edoc.cli import main
from edoc.keystore import KeyStore
from tests.archive.tools import needs_openssl
from tests.support.pki import SENDER, Ca

NOW = dt.datetime(2026, 12, 1, 3, 0, tzinfo=dt.UTC)


def _openssl(*arguments: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["openssl", "ts", *arguments], capture_output=True, text=True, check=False
    )


def _chain(ca: Ca, folder: Path) -> Path:
    chain = folder / "chain.pem"
    chain.write_bytes(ca.keys.root_path.read_bytes() + ca.keys.issuing_path.read_bytes())
    return chain


def _token(ca: Ca, data: bytes) -> bytes:
    return tsa.stamp(ca.keys.tsa_identity(), hashlib.sha256(data).digest(), ca.clock())


def test_the_tsa_certificate_has_the_one_critical_eku_time_stamping(ca: Ca) -> None:
    cert = ca.keys.tsa_identity().cert
    extended = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage)
    assert extended.critical
    assert list(extended.value) == [ExtendedKeyUsageOID.TIME_STAMPING]
    assert pki.kind_of(cert) is pki.CertKind.TSA
    with pytest.raises(errors.WrongKeyUsage):  # never a document signer
        certcheck.check_certificate(cert, ca.keys.trust(), ca.clock(), ca.clock())


@needs_openssl
def test_openssl_accepts_a_token(ca: Ca, tmp_path: Path) -> None:
    data = "Công văn số 45".encode()
    (tmp_path / "data.bin").write_bytes(data)
    (tmp_path / "token.tst").write_bytes(_token(ca, data))
    chain = _chain(ca, tmp_path)
    result = _openssl(
        "-verify", "-data", str(tmp_path / "data.bin"), "-in", str(tmp_path / "token.tst"),
        "-token_in", "-CAfile", str(chain),
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "Verification: OK" in result.stdout
    (tmp_path / "data.bin").write_bytes(data + b".")
    refused = _openssl(
        "-verify", "-data", str(tmp_path / "data.bin"), "-in", str(tmp_path / "token.tst"),
        "-token_in", "-CAfile", str(chain),
    )  # fmt: skip
    assert refused.returncode != 0


@needs_openssl
def test_respond_answers_an_openssl_request(ca: Ca, tmp_path: Path) -> None:
    """The protocol itself: openssl's TimeStampReq (with a nonce) in, a TimeStampResp
    that openssl verifies against the request out."""
    (tmp_path / "data.bin").write_bytes(b"evidence")
    query = _openssl(
        "-query", "-data", str(tmp_path / "data.bin"), "-sha256", "-cert",
        "-out", str(tmp_path / "request.tsq"),
    )  # fmt: skip
    assert query.returncode == 0, query.stderr
    answer = tsa.respond(ca.keys.tsa_identity(), (tmp_path / "request.tsq").read_bytes(), NOW)
    (tmp_path / "reply.tsr").write_bytes(answer)
    result = _openssl(
        "-verify", "-queryfile", str(tmp_path / "request.tsq"), "-in", str(tmp_path / "reply.tsr"),
        "-CAfile", str(_chain(ca, tmp_path)),
    )  # fmt: skip
    assert result.returncode == 0, result.stderr


@needs_openssl
def test_respond_refuses_another_hash(ca: Ca, tmp_path: Path) -> None:
    (tmp_path / "data.bin").write_bytes(b"evidence")
    request = tmp_path / "request.tsq"
    _openssl("-query", "-data", str(tmp_path / "data.bin"), "-sha1", "-out", str(request))
    (tmp_path / "reply.tsr").write_bytes(
        tsa.respond(ca.keys.tsa_identity(), request.read_bytes(), NOW)
    )
    text = _openssl("-reply", "-in", str(tmp_path / "reply.tsr"), "-text").stdout
    assert "Rejected" in text


def test_check_token_proves_the_time_of_the_digest(ca: Ca) -> None:
    digest = hashlib.sha256(b"evidence").digest()
    now = ca.clock().replace(microsecond=0)
    token = tsa.stamp(ca.keys.tsa_identity(), digest, now, chain=ca.keys.trust().issuing)
    proven = tsa.check_token(token, digest, ca.keys.trust().root)
    assert proven.time == now
    assert proven.authority == ca.keys.tsa_identity().cert


def test_a_token_over_other_data_is_refused(ca: Ca) -> None:
    token = _token(ca, b"one")
    with pytest.raises(errors.BadTimestamp, match="other data"):
        tsa.check_token(token, hashlib.sha256(b"two").digest(), ca.keys.trust().root)


def test_a_token_with_a_changed_byte_is_refused(ca: Ca) -> None:
    token = bytearray(_token(ca, b"one"))
    token[-5] ^= 0x01  # inside the signature value, the token's last field
    with pytest.raises(errors.BadTimestamp, match="signature"):
        tsa.check_token(bytes(token), hashlib.sha256(b"one").digest(), ca.keys.trust().root)


def test_garbage_is_refused_as_a_token(ca: Ca) -> None:
    with pytest.raises(errors.BadTimestamp, match="unreadable"):
        tsa.check_token(b"\x30\x03\x02\x01", b"\x00" * 32, ca.keys.trust().root)


def test_a_token_signed_by_an_organization_seal_is_untrusted(ca: Ca) -> None:
    digest = hashlib.sha256(b"one").digest()
    token = tsa.stamp(ca.keys.identity(SENDER), digest, ca.clock())
    with pytest.raises(errors.UntrustedTimestamp, match="timeStamping"):
        tsa.check_token(token, digest, ca.keys.trust().root, ca.keys.trust().issuing)


def test_a_token_under_another_root_is_untrusted(ca: Ca, tmp_path: Path) -> None:
    other = KeyStore(tmp_path / "other")
    other.init()
    other.issue_tsa()
    digest = hashlib.sha256(b"one").digest()
    token = tsa.stamp(other.tsa_identity(), digest, other.clock(), chain=other.trust().issuing)
    with pytest.raises(errors.UntrustedTimestamp, match="root"):
        tsa.check_token(token, digest, ca.keys.trust().root)


def test_keys_tsa_issues_once_with_exist_ok(tmp_path: Path) -> None:
    runner = CliRunner()
    keys = tmp_path / "keys"
    assert runner.invoke(main, ["keys", "init", "--keys-dir", str(keys)]).exit_code == 0
    first = runner.invoke(main, ["keys", "tsa", "--keys-dir", str(keys)])
    assert first.exit_code == 0, first.output
    assert "issued tsa certificate" in first.output
    again = runner.invoke(main, ["keys", "tsa", "--exist-ok", "--keys-dir", str(keys)])
    assert "already valid" in again.output
    assert [r.kind for r in KeyStore(keys).records()] == [pki.CertKind.TSA]


def test_a_network_is_provisioned_with_its_time_stamping_authority(tmp_path: Path) -> None:
    """`edoc up` provisions the TSA, so the agency API's evidence works out of the box;
    provisioning again issues no second one."""
    net = network.plan(tmp_path / "net", ["H53"], network.random_base_port(), tls=False, agencies=1)
    network.provision(net)
    network.provision(net)
    kinds = [r.kind for r in KeyStore(net.keys_dir).records()]
    assert kinds.count(pki.CertKind.TSA) == 1
