"""Issuing many certificates at once (a network's provisioning): the same certificates as
one by one, in one change of the index, and nothing issued twice."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from edoc import errors, network, pki
from edoc.keystore import KeyStore, Wanted


def _fresh(path: Path) -> KeyStore:
    keys = KeyStore(path)
    keys.init()
    return keys


def test_many_at_once_are_what_one_by_one_gives(tmp_path: Path) -> None:
    wanted = [
        Wanted.of("000.00.07.H53", org_name="Sở Nội vụ tỉnh Tây Ninh"),
        Wanted.of("000.00.07.H53", full_name="Nguyễn Văn An"),
        Wanted.of("000.00.00.H53", tls_hosts=("localhost", "127.0.0.1")),
        Wanted.tsa(),
    ]
    batch = _fresh(tmp_path / "batch").issue_many(wanted)
    alone = _fresh(tmp_path / "alone")
    single = [
        alone.issue("000.00.07.H53", org_name="Sở Nội vụ tỉnh Tây Ninh"),
        alone.issue("000.00.07.H53", full_name="Nguyễn Văn An"),
        alone.issue("000.00.00.H53", tls_hosts=("localhost", "127.0.0.1")),
        alone.issue_tsa(),
    ]
    keys = KeyStore(tmp_path / "batch")
    assert keys.records() == tuple(batch)
    for made, one in zip(batch, single, strict=True):
        assert (made.kind, made.org_id, made.org_name, made.full_name) == (
            one.kind,
            one.org_id,
            one.org_name,
            one.full_name,
        )
        assert made.not_after - made.not_before == one.not_after - one.not_before
        key = keys.key_path(made.serial)
        assert stat.S_IMODE(key.stat().st_mode) == 0o600
    certs = [x509.load_pem_x509_certificate(keys.cert_path(r.serial).read_bytes()) for r in batch]
    assert [pki.kind_of(cert) for cert in certs] == [w.kind for w in wanted]
    found: list[pki.LeafKey] = []
    for made, cert in zip(batch, certs, strict=True):
        if made.kind is pki.CertKind.TLS:  # a handshake's key: EC P-256
            private = pki.tls_private_key(keys.key_path(made.serial).read_bytes(), cert)
            assert (
                isinstance(private, ec.EllipticCurvePrivateKey)
                and private.curve.name == "secp256r1"
            )
        else:  # what signs documents and time stamps stays RSA-2048
            private = keys.identity(made.org_id, made.full_name, made.kind).key
            assert private.key_size == 2048
        assert _spki(cert.public_key()) == _spki(private.public_key())
        found.append(private)
    assert len({_spki(one.public_key()) for one in found}) == len(found)  # each its own key


def _spki(public: object) -> bytes:
    assert isinstance(public, rsa.RSAPublicKey | ec.EllipticCurvePublicKey)
    return public.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def test_a_bad_identifier_is_refused_as_the_batch_is_asked_for() -> None:
    """Wanted.of parses the id, so a batch holding a bad one is never made (no key)."""
    with pytest.raises(errors.InvalidOrgId):
        Wanted.of("not an id")


def test_a_tls_certificate_in_a_persons_name_is_never_asked_for() -> None:
    """A hub or node presents its organization's TLS certificate: a person's is never used."""
    with pytest.raises(ValueError, match="an organization's, not a person's"):
        Wanted.of("000.00.07.H53", full_name="Nguyễn Văn An", tls_hosts=("localhost",))


def test_provisioning_gives_each_kind_its_default_validity(tmp_path: Path) -> None:
    """`edoc up` asks for no validity: its TLS certificates stay a year, as before the
    days asked were passed on to TLS ones, while a seal or personal certificate is two."""
    net = network.plan(tmp_path, ["H53"], 21000, tls=True, agencies=1)
    network.provision(net)
    days = {r.kind: (r.not_after - r.not_before).days for r in KeyStore(net.keys_dir).records()}
    assert days == {
        pki.CertKind.ORGANIZATION: pki.SIGNER_DAYS,
        pki.CertKind.PERSONAL: pki.SIGNER_DAYS,
        pki.CertKind.TLS: pki.TLS_DAYS,
        pki.CertKind.TSA: 3650,
    }
    assert (pki.SIGNER_DAYS, pki.TLS_DAYS) == (730, 365)


def test_provisioning_again_issues_nothing_and_leaves_the_index_alone(tmp_path: Path) -> None:
    net = network.plan(tmp_path, ["H53", "H34"], 21000, tls=True, agencies=2)
    network.provision(net)
    keys = KeyStore(net.keys_dir)
    records = keys.records()
    # hub seal and TLS, each node's TLS, each agency's seal and signer, the TSA
    assert len(records) == 2 + 2 * (1 + 2 * 2) + 1
    stamp = keys.index_path.stat().st_mtime_ns
    network.provision(net)
    assert keys.index_path.stat().st_mtime_ns == stamp
    assert KeyStore(net.keys_dir).records() == records
    for node in net.spec["nodes"]:
        for agency in node["agencies"]:
            seal = keys.identity(agency["org_id"])
            assert pki.org_id_of(seal.cert) == agency["org_id"]
