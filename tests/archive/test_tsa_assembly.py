"""tsa.stamp assembles its tokens from DER pieces encoded once per authority: the result
must be, byte for byte, what asn1crypto makes of the whole SignedData (the slow reference
below, which was tsa.stamp before), and openssl must still accept it."""

from __future__ import annotations

import datetime as dt
import hashlib
import subprocess
from collections.abc import Sequence
from pathlib import Path

from asn1crypto import cms, tsp
from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from edoc.archive import tsa
from edoc.keyindex import SigningIdentity
from edoc.keystore import KeyStore
from tests.archive.tools import needs_openssl
from tests.support.pki import SENDER, Ca


def _asn1_cert(cert: x509.Certificate) -> asn1_x509.Certificate:
    return asn1_x509.Certificate.load(cert.public_bytes(serialization.Encoding.DER))


def _reference(
    authority: SigningIdentity, info: tsp.TSTInfo, chain: Sequence[x509.Certificate]
) -> bytes:
    """The token over ``info`` built as one asn1crypto SignedData."""
    certificate = _asn1_cert(authority.cert)
    certificate_id = {"cert_hash": hashlib.sha256(certificate.dump()).digest()}
    signer = cms.SignerInfo(
        {
            "version": "v1",
            "sid": cms.SignerIdentifier(
                {
                    "issuer_and_serial_number": {
                        "issuer": certificate.issuer,
                        "serial_number": certificate.serial_number,
                    }
                }
            ),
            "digest_algorithm": {"algorithm": "sha256"},
            "signed_attrs": [
                {"type": "content_type", "values": ["tst_info"]},
                {"type": "message_digest", "values": [hashlib.sha256(info.dump()).digest()]},
                {"type": "signing_certificate_v2", "values": [{"certs": [certificate_id]}]},
            ],
            "signature_algorithm": {"algorithm": "sha256_rsa"},
            "signature": b"",
        }
    )
    signed_attributes = b"\x31" + signer["signed_attrs"].dump()[1:]
    signer["signature"] = authority.key.sign(signed_attributes, padding.PKCS1v15(), hashes.SHA256())
    signed_data = cms.SignedData(
        {
            "version": "v3",
            "digest_algorithms": [{"algorithm": "sha256"}],
            "encap_content_info": {"content_type": "tst_info", "content": info},
            "certificates": [certificate, *(_asn1_cert(c) for c in chain)],
            "signer_infos": [signer],
        }
    )
    token: bytes = cms.ContentInfo({"content_type": "signed_data", "content": signed_data}).dump()
    return token


def _tst_info(token: bytes) -> tsp.TSTInfo:
    parsed: tsp.TSTInfo = cms.ContentInfo.load(token)["content"]["encap_content_info"][
        "content"
    ].parsed
    return tsp.TSTInfo.load(parsed.dump())


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    digest=st.binary(min_size=32, max_size=32),
    seconds=st.integers(min_value=0, max_value=10 * 365 * 86400),
    nonce=st.none() | st.integers(min_value=0, max_value=2**160),
    with_chain=st.booleans(),
)
def test_a_token_is_what_asn1crypto_makes_of_the_whole_signed_data(
    ca: Ca, digest: bytes, seconds: int, nonce: int | None, with_chain: bool
) -> None:
    authority = ca.keys.tsa_identity()
    chain = ca.keys.trust().issuing if with_chain else ()
    now = dt.datetime(2026, 1, 1, tzinfo=dt.UTC) + dt.timedelta(seconds=seconds)
    token = tsa.stamp(authority, digest, now, chain, nonce)
    # the TSTInfo (with its random serial) taken from the token; the rest rebuilt around it
    assert token == _reference(authority, _tst_info(token), chain)


def test_each_authority_has_its_own_pieces(ca: Ca, tmp_path: Path) -> None:
    """The pieces are cached by certificate: a token names the authority that signed it."""
    other = KeyStore(tmp_path / "other")
    other.init()
    other.issue_tsa()
    digest = hashlib.sha256(b"one").digest()
    for authority, keys in ((ca.keys.tsa_identity(), ca.keys), (other.tsa_identity(), other)):
        token = tsa.stamp(authority, digest, keys.clock(), keys.trust().issuing)
        assert tsa.check_token(token, digest, keys.trust().root).authority == authority.cert
    seal = ca.keys.identity(SENDER)  # the same chain, another signer
    token = tsa.stamp(seal, digest, ca.clock(), ca.keys.trust().issuing)
    assert token == _reference(seal, _tst_info(token), ca.keys.trust().issuing)


@needs_openssl
def test_openssl_accepts_a_token_with_its_chain_and_a_nonce(ca: Ca, tmp_path: Path) -> None:
    data = b"evidence"
    (tmp_path / "data.bin").write_bytes(data)
    token = tsa.stamp(
        ca.keys.tsa_identity(),
        hashlib.sha256(data).digest(),
        ca.clock(),
        ca.keys.trust().issuing,
        nonce=2**70 + 1,
    )
    (tmp_path / "token.tst").write_bytes(token)
    (tmp_path / "root.pem").write_bytes(ca.keys.root_path.read_bytes())
    result = subprocess.run(
        ["openssl", "ts", "-verify", "-data", str(tmp_path / "data.bin"),
         "-in", str(tmp_path / "token.tst"), "-token_in", "-CAfile", str(tmp_path / "root.pem")],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "Verification: OK" in result.stdout
