"""The address book a node holds, judged again without its signature verified again
(edoc.node.addressbook): a unit test, the verifier counted; tests/test_node.py has the
book at the node's door."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any, cast

import pytest
from structlog.testing import capture_logs

from edoc import errors, signing
from edoc.hub import directory
from edoc.hub.state import HUB_ORG_ID
from edoc.node.addressbook import AddressBook
from edoc.node.state import NodeState
from edoc.offload import Offload
from tests.support.pki import Ca


@pytest.fixture
def ca(tmp_path: Path) -> Ca:
    ca = Ca.create(tmp_path / "keys")
    ca.keys.issue(HUB_ORG_ID, org_name="Văn phòng Chính phủ")
    return ca


@pytest.fixture
def state(ca: Ca) -> Iterator[NodeState]:
    """What the address book reads of a node: its key store and its offload threads."""
    offload = Offload(1)
    yield cast(NodeState, SimpleNamespace(keys=ca.keys, offload=offload))
    offload.close()


@pytest.fixture
def verifications(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The XML signatures verified, each by the organization it was to be signed by."""
    verified: list[str] = []
    real = signing.verify_enveloped

    def counted(*args: Any) -> Any:
        verified.append(args[3])
        return real(*args)

    monkeypatch.setattr(signing, "verify_enveloped", counted)
    return verified


def _book(ca: Ca, version: int = 1) -> bytes:
    seal = ca.keys.identity(HUB_ORG_ID)
    return directory.signed_xml(version, directory.seed_entries(), ca.clock(), seal)


async def test_the_book_held_is_judged_again_without_verifying_its_signature_again(
    tmp_path: Path, ca: Ca, state: NodeState, verifications: list[str]
) -> None:
    kept = tmp_path / "addressbook.xml"
    kept.write_bytes(_book(ca))
    book = AddressBook(kept)
    await book.load_kept(state)
    copy = book.current()
    assert copy is not None and len(verifications) == 1

    await book.load_kept(state)  # the same bytes again: judged, not verified again
    assert book.current() == copy and len(verifications) == 1
    for _ in range(3):  # each use judges it again: the seal's certificate only
        assert book.trusted(state) == copy

    kept.write_bytes(_book(ca, version=2))  # other bytes are verified
    await book.load_kept(state)
    assert (book.current() or copy).version == 2 and len(verifications) == 2

    ca.keys.revoke(HUB_ORG_ID, "keyCompromise")
    assert book.trusted(state) is None  # no longer trusted, at its next use
    assert book.current() is None  # (dropped)
    assert len(verifications) == 2


async def test_a_key_store_that_cannot_be_read_leaves_the_book_held(
    tmp_path: Path, ca: Ca, state: NodeState, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A damaged or half-copied key store (EDOC-KEY-000) says nothing about the book: it
    stays held, not dropped as a book that no longer verifies."""
    kept = tmp_path / "addressbook.xml"
    kept.write_bytes(_book(ca))
    book = AddressBook(kept)
    await book.load_kept(state)
    copy = book.current()

    def damaged() -> None:
        raise errors.KeyStoreError("keys/ca/crl.pem is damaged")

    monkeypatch.setattr(ca.keys, "trust", damaged)
    with capture_logs() as logs:
        assert copy is not None and book.trusted(state) == copy
    assert book.current() == copy
    assert [line["event"] for line in logs] == ["the address book held cannot be judged again"]
