"""One document's evidence as an ASiC-E container, checked offline with the root alone."""

from __future__ import annotations

import dataclasses
import datetime as dt
import io
import subprocess
import tracemalloc
import zipfile
from pathlib import Path

import pytest
from cryptography import x509

from edoc import errors
from edoc.archive import container, manifest, tsa
from edoc.archive.verify import verify_container
from edoc.keystore import KeyStore
from tests.archive import support
from tests.archive.tools import needs_openssl, needs_xmlsec1
from tests.support.pki import SENDER, Ca
from tests.test_xmlsec1 import xmlsec1_verify


@pytest.fixture(scope="module")
def document(ca: Ca) -> bytes:
    return support.document_package(ca)


@pytest.fixture(scope="module")
def made(ca: Ca, document: bytes) -> bytes:
    return support.build(ca, document, support.status_package(ca, document))


def root_of(ca: Ca) -> x509.Certificate:
    return ca.keys.trust().root


def test_layout_is_asic_e_with_mimetype_first_and_stored(made: bytes) -> None:
    with zipfile.ZipFile(io.BytesIO(made)) as archive:
        first = archive.infolist()[0]
        names = archive.namelist()
        assert first.filename == "mimetype"
        assert first.compress_type == zipfile.ZIP_STORED
        assert archive.read(first) == b"application/vnd.etsi.asic-e+zip"
        manifest = archive.read(container.MANIFEST).decode()
    assert made[30:38] == b"mimetype"  # its name at the very start: what `file` looks for
    for name in names:
        if name not in ("mimetype", container.MANIFEST, container.TOKEN):
            assert f'URI="{name}"' in manifest
    assert {"messages/01-received-document.edxml", "messages/02-sent-status-01.edxml"} <= set(names)
    assert container.CRL in names


def test_a_container_verifies_with_the_root_alone(ca: Ca, made: bytes) -> None:
    report = verify_container(made, root_of(ca))
    assert report.org_id == support.RECIPIENT
    assert [m.sender for m in report.messages] == [SENDER, support.RECIPIENT]
    assert report.stamped_at <= ca.clock()


@needs_openssl
def test_openssl_verifies_the_token_over_the_manifest(ca: Ca, made: bytes, tmp_path: Path) -> None:
    with zipfile.ZipFile(io.BytesIO(made)) as archive:
        archive.extractall(tmp_path)
    (tmp_path / "chain.pem").write_bytes(
        ca.keys.root_path.read_bytes() + ca.keys.issuing_path.read_bytes()
    )
    result = subprocess.run(
        ["openssl", "ts", "-verify", "-data", str(tmp_path / container.MANIFEST),
         "-in", str(tmp_path / container.TOKEN), "-token_in",
         "-CAfile", str(tmp_path / "chain.pem")],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr


@needs_xmlsec1
def test_xmlsec1_verifies_the_signatures_inside(ca: Ca, made: bytes, tmp_path: Path) -> None:
    with zipfile.ZipFile(io.BytesIO(made)) as archive:
        archive.extractall(tmp_path)
    messages = sorted((tmp_path / "messages").iterdir())
    assert len(messages) == 2
    for path in messages:
        result = xmlsec1_verify(ca, path, 1)
        assert result.returncode == 0, (path.name, result.stderr)


def test_a_tampered_package_fails_naming_the_file(ca: Ca, made: bytes) -> None:
    def change(name: str, data: bytes) -> bytes:
        return data.replace(b"</edXML", b" </edXML") if name.endswith("document.edxml") else data

    with pytest.raises(
        errors.EvidenceTampered, match=r"01-received-document\.edxml does not match"
    ):
        verify_container(support.rewrite(made, change), root_of(ca))


def test_a_tampered_manifest_fails_the_token(ca: Ca, made: bytes) -> None:
    """Someone who changes a file and its digest in the manifest breaks the token."""
    with zipfile.ZipFile(io.BytesIO(made)) as archive:
        files = {
            n: archive.read(n)
            for n in archive.namelist()
            if n not in ("mimetype", container.MANIFEST, container.TOKEN)
        }
    name = "messages/01-received-document.edxml"
    files[name] = files[name].replace(b"</edXML", b" </edXML")
    listed = manifest.build(files, container.TOKEN)

    def change(entry: str, data: bytes) -> bytes:
        return listed if entry == container.MANIFEST else files.get(entry, data)

    with pytest.raises(errors.BadTimestamp, match="other data"):
        verify_container(support.rewrite(made, change), root_of(ca))


def test_a_swapped_token_fails(ca: Ca, made: bytes, document: bytes) -> None:
    with zipfile.ZipFile(io.BytesIO(support.build(ca, document))) as archive:
        foreign = archive.read(container.TOKEN)

    def change(name: str, data: bytes) -> bytes:
        return foreign if name == container.TOKEN else data

    with pytest.raises(errors.BadTimestamp, match="stamps other data"):
        verify_container(support.rewrite(made, change), root_of(ca))


def test_a_removed_or_added_file_fails(ca: Ca, made: bytes) -> None:
    def drop(name: str, data: bytes) -> bytes | None:
        return None if name == container.CRL else data

    with pytest.raises(errors.EvidenceTampered, match="in the manifest but not in the container"):
        verify_container(support.rewrite(made, drop), root_of(ca))
    out = io.BytesIO(made)
    with zipfile.ZipFile(out, "a") as archive:
        archive.writestr("messages/03-extra.edxml", b"<x/>")
    with pytest.raises(errors.EvidenceTampered, match="not in the manifest"):
        verify_container(out.getvalue(), root_of(ca))


@pytest.mark.parametrize(
    "damage",
    ["not a zip", "mimetype compressed", "mimetype not first", "other mimetype"],
)
def test_a_container_of_another_layout_is_refused(ca: Ca, made: bytes, damage: str) -> None:
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(made)) as source, zipfile.ZipFile(out, "w") as target:
        entries = source.infolist()
        if damage == "mimetype not first":
            entries = [*entries[1:], entries[0]]
        for entry in entries:
            data = source.read(entry)
            if entry.filename == "mimetype":
                if damage == "mimetype compressed":
                    entry.compress_type = zipfile.ZIP_DEFLATED
                if damage == "other mimetype":
                    data = b"application/zip"
            target.writestr(entry, data)
    data = b"PK\x03\x04 nothing" if damage == "not a zip" else out.getvalue()
    with pytest.raises(errors.BadContainer):
        verify_container(data, root_of(ca))


def test_a_container_under_another_root_is_untrusted(made: bytes, tmp_path: Path) -> None:
    other = KeyStore(tmp_path / "other")
    other.init()
    with pytest.raises(errors.UntrustedTimestamp):
        verify_container(made, other.trust().root)


# --- revocation: before or after the time stamp ----------------------------------------------
@pytest.fixture
def own_ca(tmp_path: Path) -> Ca:
    """A CA of the test's own, whose revocations no other test sees."""
    made = Ca.create(tmp_path / "keys")
    made.keys.issue_tsa()
    return made


def _stamped_at(ca: Ca, at: dt.datetime) -> container.Stamper:
    def stamp(digest: bytes) -> bytes:
        return tsa.stamp(ca.keys.tsa_identity(), digest, at, ca.keys.trust().issuing)

    return stamp


def test_revoked_after_the_time_stamp_still_verifies(own_ca: Ca) -> None:
    """Stamped at T; the seal is revoked (even as compromised) after T; the container,
    exported later with the CRL that lists the revocation, still verifies."""
    document = support.document_package(own_ca)
    stamped = support.later(own_ca, seconds=5).replace(microsecond=0)
    support.later(own_ca, minutes=10)
    own_ca.keys.revoke(SENDER, "keyCompromise")
    evidence = support.evidence(own_ca, document)
    assert len(list(evidence.crl)) == 2  # the CRL lists the seal and the personal certificate
    made = container.build(evidence, _stamped_at(own_ca, stamped), own_ca.clock())
    report = verify_container(made, root_of(own_ca))
    assert report.stamped_at == stamped


def test_revoked_before_the_time_stamp_fails(own_ca: Ca) -> None:
    document = support.document_package(own_ca)
    support.later(own_ca, minutes=1)
    own_ca.keys.revoke(SENDER, "keyCompromise")
    stamped = support.later(own_ca, minutes=1).replace(microsecond=0)
    made = container.build(
        support.evidence(own_ca, document), _stamped_at(own_ca, stamped), own_ca.clock()
    )
    with pytest.raises(
        errors.EvidenceSignature, match=r"01-received-document\.edxml.*EDOC-SIG-005"
    ):
        verify_container(made, root_of(own_ca))


def test_signed_after_the_time_stamp_fails(own_ca: Ca) -> None:
    """A token older than the signature cannot vouch for it."""
    stamped = own_ca.clock().replace(microsecond=0)
    support.later(own_ca, hours=1)
    document = support.document_package(own_ca)
    made = container.build(
        support.evidence(own_ca, document), _stamped_at(own_ca, stamped), own_ca.clock()
    )
    with pytest.raises(errors.EvidenceSignature, match="in the future"):
        verify_container(made, root_of(own_ca))


@pytest.mark.parametrize(
    ("reason", "revoked_first"),
    [("keyCompromise", False), ("superseded", True)],
)
def test_a_revoked_time_stamping_authority_is_untrusted(
    own_ca: Ca, reason: str, revoked_first: bool
) -> None:
    """A compromised authority's key could stamp any time: untrusted even for tokens
    dated before the revocation; otherwise only tokens dated after it are refused."""
    authority = own_ca.keys.tsa_identity()
    document = support.document_package(own_ca)
    stamped = support.later(own_ca, seconds=5).replace(microsecond=0)
    if revoked_first:
        own_ca.keys.revoke(authority.record.serial, reason)
        stamped = support.later(own_ca, minutes=1).replace(microsecond=0)
    else:
        support.later(own_ca, minutes=1)
        own_ca.keys.revoke(authority.record.serial, reason)

    def stamp(digest: bytes) -> bytes:
        return tsa.stamp(authority, digest, stamped, own_ca.keys.trust().issuing)

    made = container.build(support.evidence(own_ca, document), stamp, own_ca.clock())
    with pytest.raises(errors.UntrustedTimestamp, match=f"revoked .* \\({reason}\\)"):
        verify_container(made, root_of(own_ca))


def test_a_superseded_authority_still_vouches_for_its_earlier_tokens(own_ca: Ca) -> None:
    authority = own_ca.keys.tsa_identity()
    document = support.document_package(own_ca)
    stamped = support.later(own_ca, seconds=5).replace(microsecond=0)
    support.later(own_ca, minutes=1)
    own_ca.keys.revoke(authority.record.serial, "superseded")

    def stamp(digest: bytes) -> bytes:
        return tsa.stamp(authority, digest, stamped, own_ca.keys.trust().issuing)

    made = container.build(support.evidence(own_ca, document), stamp, own_ca.clock())
    assert verify_container(made, root_of(own_ca)).stamped_at == stamped


def test_a_package_in_a_file_is_written_in_chunks(ca: Ca, document: bytes, tmp_path: Path) -> None:
    """The container of a package kept in a file is the container of its bytes, written
    through a few chunks of memory whatever the package's size (the node's evidence route
    held six 40 MB documents' containers whole: 87 → 563 MB)."""
    large = tmp_path / "large.edxml"
    size = 24 * 1024 * 1024
    with large.open("wb") as out:
        for _ in range(size // (1024 * 1024)):
            out.write(bytes(range(256)) * 4096)
    kept = support.evidence(ca, document)
    in_file = dataclasses.replace(
        kept, messages=(dataclasses.replace(kept.messages[0], package=large),)
    )
    now = ca.clock()

    def stamp(digest: bytes) -> bytes:  # the same token each time: the same bytes
        return b"a token over " + digest

    tracemalloc.start()
    try:
        with (tmp_path / "evidence.asice").open("wb") as out:
            container.write(in_file, stamp, now, out)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < size / 12
    in_memory = dataclasses.replace(
        kept, messages=(dataclasses.replace(kept.messages[0], package=large.read_bytes()),)
    )
    assert (tmp_path / "evidence.asice").read_bytes() == container.build(in_memory, stamp, now)
