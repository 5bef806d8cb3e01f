"""An independent XMLDSig implementation (xmlsec1) accepts edoc's signatures."""

from __future__ import annotations

import datetime as dt
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from edoc import envelope, signing, xmlsafe
from edoc.model import Organization, ResponseFor, StatusCode, StatusUpdate, TraceHop
from tests.support.pki import SENDER, SIGNER, Ca, signed_root, wire

XMLSEC1 = shutil.which("xmlsec1")
pytestmark = pytest.mark.skipif(
    XMLSEC1 is None and not os.environ.get("CI"),
    reason="xmlsec1 not installed (apt-get install xmlsec1; CI installs it)",
)
ID_ELEMENTS = ("MessageHeader", "TraceHeader", "Bussiness", "edXMLManifest")


def xmlsec1_verify(ca: Ca, path: Path, signature_number: int) -> subprocess.CompletedProcess[str]:
    command = [
        XMLSEC1 or "xmlsec1",
        "--verify",
        "--trusted-pem",
        str(ca.keys.root_path),
        "--untrusted-pem",
        str(ca.keys.issuing_path),
        "--node-xpath",
        f"(//*[local-name()='Signature'])[{signature_number}]",
    ]
    for name in ID_ELEMENTS:
        command += ["--id-attr:Id", f"{envelope.NS}:{name}"]
    return subprocess.run([*command, str(path)], capture_output=True, text=True, check=False)


@pytest.fixture(scope="module")
def ca(tmp_path_factory: pytest.TempPathFactory) -> Ca:
    return Ca.create(tmp_path_factory.mktemp("ca") / "keys")


def test_xmlsec1_verifies_seal_and_personal_signature(ca: Ca, tmp_path: Path) -> None:
    attachment = tmp_path / "bao-cao.txt"
    attachment.write_bytes("Báo cáo tháng 11".encode())
    files = envelope.attachments_from_files([attachment])
    root = signed_root(ca, personal=ca.keys.identity(SENDER, SIGNER), files=files)
    package = tmp_path / "signed.edxml"
    package.write_bytes(wire(root, files))
    for number in (1, 2):
        result = xmlsec1_verify(ca, package, number)
        assert result.returncode == 0, result.stderr
        assert "OK" in result.stdout + result.stderr


def test_xmlsec1_refuses_a_tampered_message(ca: Ca, tmp_path: Path) -> None:
    package = tmp_path / "tampered.edxml"
    data = wire(signed_root(ca)).replace("chuyển đổi số".encode(), "chuyển đổi xanh".encode())
    package.write_bytes(data)
    result = xmlsec1_verify(ca, package, 1)
    assert result.returncode != 0


def test_xmlsec1_verifies_a_status_message_and_a_relayed_package(ca: Ca, tmp_path: Path) -> None:
    """The other packages edoc makes: a status message, and a document after a hub added
    its (unsigned) hop. The pinned signature shape is the one xmlsec1 verifies."""
    answer = ResponseFor("000.00.00.H23", "45/UBND-VP", dt.date(2026, 11, 20), "x,2026/11/20,45")
    status = StatusUpdate(
        sender=Organization(SENDER),
        response_for=answer,
        code=StatusCode.ACCEPTED,
        timestamp=ca.clock().replace(microsecond=0),
    )
    relayed = signed_root(ca, personal=ca.keys.identity(SENDER, SIGNER))
    envelope.add_trace_hop(relayed, TraceHop("000.00.00.G22", ca.clock()))
    packages = {
        "status": (
            signing.sign(
                envelope.build_envelope(envelope.stamp_origin(status, ca.clock())),
                ca.keys.identity(SENDER),
            ),
            1,
        ),
        "relayed": (relayed, 2),
    }
    for name, (root, signatures) in packages.items():
        package = tmp_path / f"{name}.edxml"
        package.write_bytes(wire(root))
        signing.verify(xmlsafe.parse(package.read_bytes()), ca.keys.trust(), ca.clock())
        for number in range(1, signatures + 1):
            result = xmlsec1_verify(ca, package, number)
            assert result.returncode == 0, (name, number, result.stderr)
