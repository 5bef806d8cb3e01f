"""Batched time stamps: one token over a Merkle tree of the packages a node kept, and
each package's signatures checked as of its batch's time."""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import io
import json
import zipfile
from pathlib import Path

import pytest
from click.testing import CliRunner

from edoc import errors
from edoc.archive import batches, container, export, merkle
from edoc.archive.batches import (
    PRUNE_EVERY,
    Batch,
    BatchLog,
    Retention,
    Stamped,
    evidence_folder,
    stamp_new,
)
from edoc.archive.evidence import BatchProof
from edoc.archive.stored import Mark, open_stored
from edoc.archive.verify import verify_container
from edoc.cli import main
from edoc.store import sqlite_url
from tests.archive import support
from tests.support.pki import SENDER, Ca


@pytest.mark.parametrize("count", [1, 2, 3, 5, 8, 13])
def test_every_record_proves_its_place_under_the_root(count: int) -> None:
    digests = [hashlib.sha256(bytes([n])).digest() for n in range(count)]
    root = merkle.root(digests)
    other = hashlib.sha256(b"other").digest()
    for digest, path in zip(digests, merkle.proofs(digests), strict=True):
        assert merkle.root_from(digest, path) == root
        assert merkle.root_from(other, path) != root
    assert root != digests[0]  # a leaf is hashed, even alone


def test_an_empty_batch_is_refused() -> None:
    with pytest.raises(errors.BadTimestamp):
        merkle.root([])


@pytest.fixture
def own_ca(tmp_path: Path) -> Ca:
    made = Ca.create(tmp_path / "keys")
    made.keys.issue_tsa()
    return made


async def _stamp_and_export(ca: Ca, node: Path, revoke_between: bool) -> tuple[bytes, bytes]:
    """Keep a document, stamp the batch at T0, (revoke the seal at T1,) export at T2:
    the container with the batch proofs, and one without."""
    document = support.document_package(ca)
    status = support.status_package(ca, document)
    about = await support.keep(node / "node.sqlite", document, status, ca.clock())
    stamped = support.later(ca, seconds=2)
    stored = await open_stored(sqlite_url(node / "node.sqlite"))
    try:
        log = BatchLog(evidence_folder(node))
        first = await stamp_new(stored, log, export.stamper(ca.keys, stamped), stamped)
        assert (first.packages, len(first.files)) == (4, 1)
        again = await stamp_new(stored, log, export.stamper(ca.keys, stamped), stamped)
        assert again == Stamped()
        support.later(ca, minutes=5)
        if revoke_between:
            ca.keys.revoke(SENDER, "keyCompromise")
        now = support.later(ca, minutes=5)
        proven, bare = node / "proven.asice", node / "bare.asice"
        await export.export_document(
            stored, ca.keys, support.RECIPIENT, about, proven, now, log.proofs_of
        )
        await export.export_document(stored, ca.keys, support.RECIPIENT, about, bare, now)
    finally:
        await stored.close()
    return proven.read_bytes(), bare.read_bytes()


def test_a_seal_revoked_after_the_batch_still_verifies(own_ca: Ca, tmp_path: Path) -> None:
    """The batch dates the package before the revocation; the container's own token
    (taken at export, after it) alone would not."""
    proven, bare = asyncio.run(_stamp_and_export(own_ca, tmp_path / "node", True))
    root = own_ca.keys.trust().root
    report = verify_container(proven, root)
    assert report.messages[0].verified_as_of < report.stamped_at
    with zipfile.ZipFile(io.BytesIO(proven)) as archive:
        assert {"META-INF/proofs/01.json", "META-INF/proofs/02.json"} <= set(archive.namelist())
    with pytest.raises(errors.EvidenceSignature, match="EDOC-SIG-005"):
        verify_container(bare, root)


def test_a_changed_batch_proof_fails(own_ca: Ca, tmp_path: Path) -> None:
    proven, _ = asyncio.run(_stamp_and_export(own_ca, tmp_path / "node", False))
    with zipfile.ZipFile(io.BytesIO(proven)) as archive:
        files = {
            n: archive.read(n)
            for n in archive.namelist()
            if n not in ("mimetype", container.MANIFEST, container.TOKEN)
        }
    record = json.loads(files["META-INF/proofs/01.json"])
    record["path"][0][1] = "00" * 32
    files["META-INF/proofs/01.json"] = json.dumps(record).encode()
    # a forger who also rewrites the manifest needs the container's token again: use a
    # fresh one from the authority itself, so only the batch proof is wrong
    rebuilt = support.rewrite_all(own_ca, proven, files)
    with pytest.raises(errors.BadTimestamp, match=r"batch proof of messages/01"):
        verify_container(rebuilt, own_ca.keys.trust().root)


def test_edoc_archive_stamp_once(own_ca: Ca, tmp_path: Path) -> None:
    node = tmp_path / "node"
    document = support.document_package(own_ca)
    asyncio.run(
        support.keep(
            node / "node.sqlite", document, support.status_package(own_ca, document), own_ca.clock()
        )
    )
    arguments = ["archive", "stamp", "--once", "--data-dir", str(node)]
    arguments += ["--keys-dir", str(own_ca.keys.path)]
    first = CliRunner().invoke(main, arguments)
    assert first.exit_code == 0, first.output
    (written,) = (evidence_folder(node) / "batches").iterdir()
    assert first.output.startswith("stamped 4 packages in 1 batch at ")
    assert first.output.endswith(f"Z: {written}\n")  # where the evidence went
    again = CliRunner().invoke(main, arguments)
    assert again.exit_code == 0, again.output
    assert again.output == (
        f"nothing new to stamp: every package kept is in a batch of {evidence_folder(node)}\n"
    )
    assert len(BatchLog(evidence_folder(node)).batches()) == 1


def test_edoc_archive_stamp_names_the_folder_of_the_batches_a_backlog_made(
    own_ca: Ca, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A backlog larger than a batch takes it is stamped in several: the line names the
    folder they are in, not one of them."""
    monkeypatch.setattr(batches, "BATCH_LIMIT", 1)  # of each kind kept: two a batch
    node = tmp_path / "node"
    document = support.document_package(own_ca)
    status = support.status_package(own_ca, document)
    asyncio.run(support.keep(node / "node.sqlite", document, status, own_ca.clock()))
    arguments = ["archive", "stamp", "--once", "--data-dir", str(node)]
    stamped = CliRunner().invoke(main, [*arguments, "--keys-dir", str(own_ca.keys.path)])
    assert stamped.exit_code == 0, stamped.output
    assert len(BatchLog(evidence_folder(node)).batches()) == 2
    assert stamped.output.startswith("stamped 4 packages in 2 batches at ")
    assert stamped.output.endswith(f"Z: {evidence_folder(node) / 'batches'}\n")


def test_retention_removes_batches_older_than_the_policy(own_ca: Ca, tmp_path: Path) -> None:
    node = tmp_path / "node"
    log = BatchLog(evidence_folder(node))
    now = dt.datetime.now(dt.UTC)
    digest = hashlib.sha256(b"a package").digest()
    token = support.stamper(own_ca)(merkle.root([digest]))
    log.add(Batch((digest,), token), Mark(0, 0), now - dt.timedelta(days=40))
    log.add(Batch((digest,), token), Mark(0, 0), now - dt.timedelta(days=2))
    for other in ("notes.json", "0-sorts-first.json"):  # not batches: kept
        (node / "evidence" / "batches" / other).write_text("{}")
    assert log.prune(now - dt.timedelta(days=60)) == 0
    asyncio.run(support.keep(node / "node.sqlite", *_one_document(own_ca), now))
    arguments = ["archive", "stamp", "--once", "--data-dir", str(node), "--evidence-days", "30"]
    result = CliRunner().invoke(main, [*arguments, "--keys-dir", str(own_ca.keys.path)])
    assert result.exit_code == 0, result.output
    assert "removed 1 batch older than 30 days" in result.output
    names = sorted(p.name for p in (node / "evidence" / "batches").iterdir())
    assert len(names) == 4 and {"notes.json", "0-sorts-first.json"} <= set(names)
    assert "stamped 4 packages" in result.output
    assert log.mark() == Mark(2, 2)


def test_a_running_service_prunes_at_most_hourly() -> None:
    """A pass every 5 s would list the whole folder of a month's batches each time."""
    retention = Retention(30)
    now = dt.datetime(2026, 12, 3, tzinfo=dt.UTC)
    assert retention.due(now) == now - dt.timedelta(days=30)
    assert retention.due(now + PRUNE_EVERY - dt.timedelta(seconds=1)) is None
    later = now + PRUNE_EVERY
    assert retention.due(later) == later - dt.timedelta(days=30)
    assert Retention(None).due(now) is None


def _one_document(ca: Ca) -> tuple[bytes, bytes]:
    document = support.document_package(ca)
    return document, support.status_package(ca, document)


def _batch_of(ca: Ca, *contents: bytes) -> Batch:
    digests = tuple(hashlib.sha256(c).digest() for c in contents)
    return Batch(digests, support.stamper(ca)(merkle.root(digests)))


def _proves(proof: BatchProof, batch: Batch, digest: bytes) -> bool:
    return proof.token == batch.token and merkle.root_from(digest, proof.path) == merkle.root(
        batch.digests
    )


def test_a_proof_reads_only_the_batch_that_holds_the_package(own_ca: Ca, tmp_path: Path) -> None:
    """A year of batches is not read for one document's evidence: a damaged batch of
    other packages does not even stop it."""
    log = BatchLog(tmp_path / "evidence")
    now = own_ca.clock()
    mine = _batch_of(own_ca, b"one", b"two", b"three")
    log.add(mine, Mark(3, 0), now)
    other = log.add(_batch_of(own_ca, b"four"), Mark(4, 0), now + dt.timedelta(seconds=5))
    other.write_text("not a batch")
    two, four = hashlib.sha256(b"two").digest(), hashlib.sha256(b"four").digest()
    found = log.proofs_of([two, two, hashlib.sha256(b"never stamped").digest()])
    assert set(found) == {two}
    assert _proves(found[two], mine, two)
    assert log.proofs_of([four]) == {}  # (logged)


def test_the_index_is_made_from_the_batches_kept_before_it(own_ca: Ca, tmp_path: Path) -> None:
    """A folder from before the index gains it at its first use; a package stamped twice
    (a crash before the mark moved) is proven by its first batch, then by the next once
    the retention removed the first."""
    log = BatchLog(tmp_path / "evidence")
    now = own_ca.clock()
    first, again = _batch_of(own_ca, b"one", b"two"), _batch_of(own_ca, b"two", b"three")
    log.add(first, Mark(2, 0), now - dt.timedelta(days=40))
    log.add(again, Mark(3, 0), now)
    damaged = log.add(_batch_of(own_ca, b"four"), Mark(4, 0), now + dt.timedelta(seconds=5))
    damaged.write_text("{")
    (tmp_path / "evidence" / "index.sqlite").unlink()
    two = hashlib.sha256(b"two").digest()
    assert _proves(log.proofs_of([two])[two], first, two)
    assert log.prune(now - dt.timedelta(days=30)) == 1
    assert _proves(log.proofs_of([two])[two], again, two)
    assert log.proofs_of([hashlib.sha256(b"one").digest()]) == {}


def test_a_package_whose_first_batch_is_damaged_is_proven_by_the_next(
    own_ca: Ca, tmp_path: Path
) -> None:
    log = BatchLog(tmp_path / "evidence")
    now = own_ca.clock()
    first = log.add(_batch_of(own_ca, b"one", b"two"), Mark(2, 0), now)
    again = _batch_of(own_ca, b"two")
    log.add(again, Mark(2, 0), now + dt.timedelta(seconds=5))
    first.write_text("{")
    two = hashlib.sha256(b"two").digest()
    assert _proves(BatchLog(log.folder).proofs_of([two])[two], again, two)


async def test_a_damaged_index_is_named_and_stamps_nothing(own_ca: Ca, tmp_path: Path) -> None:
    """Not a batch kept and not indexed, again at every pass, until the operator removes it."""
    node = tmp_path / "node"
    await support.keep(node / "node.sqlite", *_one_document(own_ca), own_ca.clock())
    log = BatchLog(evidence_folder(node))
    log.add(_batch_of(own_ca, b"one"), Mark(0, 0), own_ca.clock())
    index = evidence_folder(node) / "index.sqlite"
    index.write_bytes(b"not a database" * 100)
    with pytest.raises(errors.StorageError, match=r"index\.sqlite is damaged.*remove it"):
        log.proofs_of([hashlib.sha256(b"one").digest()])
    stored = await open_stored(sqlite_url(node / "node.sqlite"))
    try:
        stamper = support.stamper(own_ca)
        with pytest.raises(errors.StorageError, match="EDOC-STORE-001"):
            await stamp_new(stored, log, stamper, own_ca.clock())
        assert (len(log.batches()), log.mark()) == (1, Mark(0, 0))
        index.unlink()  # the operator's remedy: made again from the batches
        assert (await stamp_new(stored, log, stamper, own_ca.clock())).packages == 4
    finally:
        await stored.close()
    assert set(log.proofs_of([hashlib.sha256(b"one").digest()])) == {
        hashlib.sha256(b"one").digest()
    }
