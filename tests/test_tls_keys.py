"""TLS certificates of hubs and nodes have EC P-256 keys; everything that signs documents,
time stamps or certificates stays RSA. A damaged or misplaced TLS key is refused with
EDOC-KEY-004; key stores made before, with RSA TLS keys, keep working."""

from __future__ import annotations

import asyncio
import base64
import os
import ssl
import stat
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, SignatureAlgorithmOID

from edoc import errors, network, pki, tls
from edoc.keystore import KeyStore
from tests.support import legacy
from tests.support.pki import SENDER, Ca

EDOC = str(Path(sys.executable).parent / "edoc")
HUB = "000.00.00.G22"
NODE = "000.00.00.H53"
HOSTS = ("localhost", "127.0.0.1")


def _cert(keys: KeyStore, serial: str) -> x509.Certificate:
    return x509.load_pem_x509_certificate(keys.cert_path(serial).read_bytes())


def _issuing(keys: KeyStore) -> x509.Certificate:
    return x509.load_pem_x509_certificate(keys.issuing_path.read_bytes())


def _tls_cert(keys: KeyStore, org_id: str) -> x509.Certificate:
    return _cert(keys, keys.current(org_id, kind=pki.CertKind.TLS).serial)


def _is_p256(public: object) -> bool:
    return isinstance(public, ec.EllipticCurvePublicKey) and public.curve.name == "secp256r1"


def _is_rsa(public: object, bits: int) -> bool:
    return isinstance(public, rsa.RSAPublicKey) and public.key_size == bits


def test_a_provisioned_network_has_ec_tls_keys_and_rsa_signers(tmp_path: Path) -> None:
    net = network.plan(tmp_path, ["H53", "H34"], 21000, tls=True, agencies=1)
    network.provision(net)
    keys = KeyStore(net.keys_dir)
    issuing = _issuing(keys)
    root = x509.load_pem_x509_certificate(keys.root_path.read_bytes())
    assert _is_rsa(root.public_key(), 3072) and _is_rsa(issuing.public_key(), 3072)
    kinds = set()
    for record in keys.records():
        cert = _cert(keys, record.serial)
        kinds.add(record.kind)
        # every certificate is signed by the RSA issuing CA with SHA-256
        assert cert.signature_algorithm_oid == SignatureAlgorithmOID.RSA_WITH_SHA256
        cert.verify_directly_issued_by(issuing)
        usage = cert.extensions.get_extension_for_class(x509.KeyUsage).value
        if record.kind is pki.CertKind.TLS:
            assert _is_p256(cert.public_key())
            assert usage.digital_signature and not usage.key_encipherment  # RFC 5480 §3
            assert not usage.content_commitment and not usage.key_agreement
            eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
            assert list(eku) == [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]
            key_path = keys.key_path(record.serial)
            assert stat.S_IMODE(key_path.stat().st_mode) == 0o600
            assert isinstance(
                pki.tls_private_key(key_path.read_bytes(), cert), ec.EllipticCurvePrivateKey
            )
        else:  # seals, personal certificates, the TSA: edXML signatures are RSA-SHA256
            assert _is_rsa(cert.public_key(), 2048)
            assert usage.digital_signature and usage.content_commitment
    assert kinds == set(pki.CertKind)
    # the network's hub and both nodes
    assert len([r for r in keys.records() if r.kind is pki.CertKind.TLS]) == 3


def test_a_seal_rotated_stays_rsa(tmp_path: Path) -> None:
    ca = Ca.create(tmp_path / "keys")
    record = ca.keys.rotate(SENDER)
    assert _is_rsa(_cert(ca.keys, record.serial).public_key(), 2048)
    assert ca.keys.identity(SENDER).record == record  # and signs, through the RSA checks


def test_keys_issue_on_the_command_line_makes_an_ec_tls_certificate(tmp_path: Path) -> None:
    path = tmp_path / "keys"
    subprocess.run([EDOC, "keys", "init", "--keys-dir", path], check=True, capture_output=True)
    issued = subprocess.run(
        [EDOC, "keys", "issue", NODE, "--tls-host", "localhost", "--keys-dir", path],
        check=True,
        capture_output=True,
        text=True,
    )
    assert "issued tls certificate" in issued.stdout
    assert _is_p256(_tls_cert(KeyStore(path), NODE).public_key())


# --- a real mutual TLS handshake --------------------------------------------------------
async def _handshake(
    server: ssl.SSLContext, client: ssl.SSLContext
) -> tuple[str | None, x509.Certificate, x509.Certificate, str]:
    """Connect ``client`` to a server on ``server``: the client's organization as the
    server verified it, the certificates each side was shown, the cipher agreed."""
    seen: asyncio.Future[tuple[str | None, bytes]] = asyncio.get_running_loop().create_future()

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        ssl_object = writer.get_extra_info("ssl_object")
        peer = tls.peer(ssl_object)
        seen.set_result((peer and peer.org_id, ssl_object.getpeercert(binary_form=True)))
        writer.write(b"ok")
        await writer.drain()
        writer.close()

    listening = await asyncio.start_server(serve, "127.0.0.1", 0, ssl=server)
    port = listening.sockets[0].getsockname()[1]
    try:
        reader, writer = await asyncio.open_connection(
            "127.0.0.1", port, ssl=client, server_hostname="localhost"
        )
        assert await reader.read() == b"ok"
        ssl_object = writer.get_extra_info("ssl_object")
        server_der = ssl_object.getpeercert(binary_form=True)
        cipher = ssl_object.cipher()[0]
        writer.close()
        org_id, client_der = await asyncio.wait_for(seen, 10)
    finally:
        listening.close()
        await listening.wait_closed()
    return (
        org_id,
        x509.load_der_x509_certificate(server_der),
        x509.load_der_x509_certificate(client_der),
        cipher,
    )


@pytest.fixture
def tls_keys(tmp_path: Path) -> Ca:
    ca = Ca.create(tmp_path / "keys")
    ca.keys.issue(HUB, tls_hosts=HOSTS)
    ca.keys.issue(NODE, tls_hosts=("localhost",))
    return ca


@pytest.mark.parametrize("version", [ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_3])
async def test_a_hub_and_a_node_shake_hands_with_ec_keys(
    tls_keys: Ca, version: ssl.TLSVersion
) -> None:
    keys = tls_keys.keys
    client = tls.client_context(keys, NODE)
    client.maximum_version = version
    org_id, server_cert, client_cert, cipher = await _handshake(
        tls.server_context(keys, HUB), client
    )
    assert org_id == NODE  # the hub verified the node's client certificate
    assert server_cert == _tls_cert(keys, HUB) and client_cert == _tls_cert(keys, NODE)
    assert _is_p256(server_cert.public_key()) and _is_p256(client_cert.public_key())
    if version is ssl.TLSVersion.TLSv1_2:  # TLS 1.3 names no authentication in its suites
        assert "ECDSA" in cipher, cipher


async def test_a_key_store_with_rsa_tls_keys_still_serves_and_renews_to_ec(
    tmp_path: Path,
) -> None:
    ca = Ca.create(tmp_path / "keys")
    ca.clock.advance(hours=-1)  # made before: the renewals below are newer
    legacy.issue_rsa_tls(ca.keys, HUB, HOSTS)
    legacy.issue_rsa_tls(ca.keys, NODE, ("localhost",))
    keys = KeyStore(ca.keys.path)  # read back as a service does
    assert _is_rsa(_tls_cert(keys, HUB).public_key(), 2048)
    org_id, server_cert, _, _ = await _handshake(
        tls.server_context(keys, HUB), tls.client_context(keys, NODE)
    )
    assert org_id == NODE and _is_rsa(server_cert.public_key(), 2048)

    # the node renews its certificate (`edoc keys issue --tls-host`): EC from now on
    subprocess.run(
        [EDOC, "keys", "issue", NODE, "--tls-host", "localhost", "--keys-dir", keys.path],
        check=True,
        capture_output=True,
    )
    org_id, server_cert, client_cert, _ = await _handshake(
        tls.server_context(keys, HUB), tls.client_context(keys, NODE)
    )
    assert org_id == NODE
    assert _is_rsa(server_cert.public_key(), 2048) and _is_p256(client_cert.public_key())


# --- damaged keys -----------------------------------------------------------------------
def _pem(key: pki.LeafKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def _node_key_path(keys: KeyStore) -> Path:
    return keys.key_path(keys.current(NODE, kind=pki.CertKind.TLS).serial)


def _refused(keys: KeyStore, match: str) -> None:
    for context in (tls.client_context, tls.server_context):
        with pytest.raises(errors.DamagedKey, match=match) as refused:
            context(KeyStore(keys.path), NODE)
        assert refused.value.code == "EDOC-KEY-004"


def test_the_ec_key_of_another_certificate_is_refused(tls_keys: Ca) -> None:
    keys = tls_keys.keys
    _node_key_path(keys).write_bytes(_pem(pki.new_tls_key()))
    _refused(keys, "is not its certificate's")


def test_the_tls_key_of_another_organization_is_refused(tls_keys: Ca) -> None:
    keys = tls_keys.keys
    hub_key = keys.key_path(keys.current(HUB, kind=pki.CertKind.TLS).serial)
    _node_key_path(keys).write_bytes(hub_key.read_bytes())
    _refused(keys, "is not its certificate's")


def test_an_rsa_key_beside_an_ec_certificate_is_refused(tls_keys: Ca) -> None:
    keys = tls_keys.keys
    _node_key_path(keys).write_bytes(keys.key_path(keys.current(SENDER).serial).read_bytes())
    _refused(keys, "is not its certificate's")


def test_an_ec_key_with_a_damaged_scalar_is_refused(tls_keys: Ca) -> None:
    keys = tls_keys.keys
    path = _node_key_path(keys)
    key = serialization.load_pem_private_key(path.read_bytes(), None)
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    der = bytearray(
        key.private_bytes(
            serialization.Encoding.DER,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    at = bytes(der).index(key.private_numbers().private_value.to_bytes(32, "big"))
    der[at + 7] ^= 0x10
    pem = base64.encodebytes(bytes(der))
    path.write_bytes(b"-----BEGIN PRIVATE KEY-----\n" + pem + b"-----END PRIVATE KEY-----\n")
    _refused(keys, "does not read")


def test_an_unreadable_tls_key_is_refused(tls_keys: Ca) -> None:
    keys = tls_keys.keys
    _node_key_path(keys).write_bytes(b"-----BEGIN PRIVATE KEY-----\n")
    _refused(keys, "does not read")


def test_a_tls_key_does_not_pass_as_a_signer(tls_keys: Ca) -> None:
    """A signer's identity takes RSA only: an EC key beside a seal is refused."""
    keys = tls_keys.keys
    tls_key = _node_key_path(keys).read_bytes()
    keys.key_path(keys.current(SENDER).serial).write_bytes(tls_key)
    with pytest.raises(errors.DamagedKey, match="is not an RSA key") as refused:
        KeyStore(keys.path).identity(SENDER)
    assert refused.value.code == "EDOC-KEY-004"


# --- a damaged certificate to switch to ---------------------------------------------------
_opened: dict[str, int] = {}  # the files counted (_opens), each with its opens so far


def _count_opens(event: str, args: tuple[object, ...]) -> None:
    if event == "open" and _opened and isinstance(args[0], (str, os.PathLike)):
        name = os.fspath(args[0])
        if isinstance(name, str) and name in _opened:
            _opened[name] += 1


@contextmanager
def _opens(path: Path) -> Iterator[dict[str, int]]:
    """How many times Python opens ``path`` meanwhile (an audit hook: nothing of edoc's
    replaced). Hooks stay for the process's life: one, counting while a test asks."""
    if not _opened.get("hooked"):
        sys.addaudithook(_count_opens)
    _opened.update({"hooked": 1, str(path): 0})
    try:
        yield _opened
    finally:
        del _opened[str(path)]


def test_a_damaged_new_certificate_is_read_again_only_once_its_files_change(
    tls_keys: Ca,
) -> None:
    """The key index names a new TLS certificate whose key file is damaged: the service
    keeps its certificate, as before, but without reading and checking the damaged one
    again at every connection (a server's every handshake, a node's every request to its
    hub: 0.1 ms a damaged key, 2 ms a damaged chain, on the loop). Restored, it is taken
    at the next connection."""
    own = tls.OwnCertificate(tls_keys.keys, HUB, ssl.Purpose.CLIENT_AUTH)
    serving = own.context()
    tls_keys.clock.advance(minutes=1)
    tls_keys.keys.issue(HUB, tls_hosts=HOSTS)
    renewed = tls_keys.keys.current(HUB, kind=pki.CertKind.TLS).serial
    key = tls_keys.keys.key_path(renewed)
    good = key.read_bytes()
    key.write_bytes(b"-----BEGIN PRIVATE KEY-----\n")
    with _opens(key) as opened:
        assert all(own.context() is serving for _ in range(50))
        assert opened[str(key)] == 1
    key.write_bytes(good)  # restored from a copy
    switched = own.context()
    assert switched is not serving and own.record.serial == renewed
    assert own.context() is switched
