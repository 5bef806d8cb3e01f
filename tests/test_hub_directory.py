"""The hub's address book is signed once per change, not once per GET: the same book and
signer give the same signed body; a registration, another signer or time gives a new one;
a node that holds the book signed last (its ETag) is answered 304."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from aiohttp.test_utils import TestClient, TestServer
from lxml import etree
from structlog.testing import capture_logs

from edoc import signing
from edoc.hub import app as hub_app
from edoc.hub import directory
from edoc.hub.state import HubConfig
from edoc.keyindex import SigningIdentity
from edoc.store.hub import Directory, DirectoryEntry
from tests.support.hub import HUB_ORG, hub_ca
from tests.support.pki import SENDER, Ca

NOW = dt.datetime(2026, 12, 1, 5, 0, tzinfo=dt.UTC)
NEWCOMER = "000.00.07.H53"
UNCARRIED = "Evil\u0001name"  # a control character: XML cannot carry it


@pytest.fixture(scope="module")
def ca(tmp_path_factory: pytest.TempPathFactory) -> Ca:
    return hub_ca(tmp_path_factory.mktemp("hubca") / "keys")


@pytest.fixture
def signatures(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """The address books signed from here on, by the signer's organization."""
    signed: list[str] = []
    real: Callable[[etree._Element, SigningIdentity], etree._Element] = signing.sign_enveloped

    def counted(root: etree._Element, seal: SigningIdentity) -> etree._Element:
        signed.append(seal.record.org_id)
        return real(root, seal)

    monkeypatch.setattr(signing, "sign_enveloped", counted)
    yield signed


def _book(version: int, *agencies: str) -> Directory:
    entries = directory.seed_entries()
    for org in agencies:
        entries += directory.registration(org[-3:], [{"org_id": org, "name": org}])
    return Directory(version, tuple(entries))


def _read(body: bytes, ca: Ca, org: str = HUB_ORG) -> tuple[int, set[str]]:
    book = directory.read_signed(body, ca.keys.trust(), ca.clock(), org)
    return book.version, {entry.org_id for entry in book.entries}


def test_the_same_version_is_signed_once(ca: Ca, signatures: list[str]) -> None:
    books, seal = directory.SignedBooks(), ca.keys.identity(HUB_ORG)
    first = books.sign(_book(101), NOW, seal)
    later = NOW + dt.timedelta(minutes=5)
    assert books.fresh(101, seal.cert, later) == first
    assert books.sign(_book(101), later, seal) == first
    assert signatures == [HUB_ORG]


def test_a_new_version_is_signed_anew(ca: Ca, signatures: list[str]) -> None:
    books, seal = directory.SignedBooks(), ca.keys.identity(HUB_ORG)
    before = books.sign(_book(102), ca.clock(), seal)
    assert books.fresh(103, seal.cert, ca.clock()) is None
    after = books.sign(_book(103, NEWCOMER), ca.clock(), seal)
    assert signatures == [HUB_ORG, HUB_ORG]
    assert NEWCOMER not in _read(before.body, ca)[1]
    assert _read(after.body, ca) == (103, _read(before.body, ca)[1] | {NEWCOMER})
    assert after.etag != before.etag


def test_each_hub_keeps_its_own(ca: Ca, signatures: list[str]) -> None:
    """Two hubs in one process have two stores: the same version says nothing."""
    seal = ca.keys.identity(HUB_ORG)
    directory.SignedBooks().sign(_book(104), ca.clock(), seal)
    other = directory.SignedBooks()
    assert other.fresh(104, seal.cert, ca.clock()) is None
    assert NEWCOMER in _read(other.sign(_book(104, NEWCOMER), ca.clock(), seal).body, ca)[1]
    assert len(signatures) == 2


def test_another_signer_signs_anew(ca: Ca, signatures: list[str]) -> None:
    books = directory.SignedBooks()
    books.sign(_book(105), ca.clock(), ca.keys.identity(HUB_ORG))
    other = books.sign(_book(105), ca.clock(), ca.keys.identity(SENDER))
    assert signatures == [HUB_ORG, SENDER]
    assert _read(other.body, ca, SENDER)[0] == 105


def test_a_book_is_signed_again_before_it_grows_old(ca: Ca, signatures: list[str]) -> None:
    books, seal = directory.SignedBooks(), ca.keys.identity(HUB_ORG)
    first = books.sign(_book(106), NOW, seal)
    almost = NOW + directory.RESIGN - dt.timedelta(seconds=1)
    assert books.sign(_book(106), almost, seal) == first
    later = NOW + directory.RESIGN
    assert books.fresh(106, seal.cert, later) is None
    resigned = books.sign(_book(106), later, seal)
    expires = dt.datetime.fromisoformat(etree.fromstring(resigned.body).get("expires", ""))
    assert expires == later + directory.VALIDITY
    assert signatures == [HUB_ORG, HUB_ORG] and resigned.etag != first.etag
    # a clock set back: never a book issued after the time asked for
    assert books.sign(_book(106), NOW, seal) != resigned
    assert len(signatures) == 3


async def test_two_gets_sign_once_and_a_registration_signs_anew(
    ca: Ca, tmp_path: Path, signatures: list[str]
) -> None:
    config = HubConfig(data_dir=tmp_path, keys_dir=ca.keys.path, org_id=HUB_ORG, tls=False)
    await hub_app.add_node(config, "H53", "secret-token")
    headers = {"Authorization": "Bearer secret-token"}
    async with TestClient(TestServer(hub_app.create_app(config))) as client:

        async def book(held: str = "") -> tuple[int, bytes, str]:
            asked = headers | ({"If-None-Match": held} if held else {})
            async with client.get("/api/v1/directory", headers=asked) as response:
                return response.status, await response.read(), response.headers["ETag"]

        status, first, etag = await book()
        assert status == 200
        assert await book() == (200, first, etag)
        assert await book(etag) == (304, b"", etag)  # the node holds it: not sent again
        assert await book(f'"other", W/{etag}') == (304, b"", etag)
        assert await book("*") == (304, b"", etag)
        assert signatures == [HUB_ORG]
        organizations = {"organizations": [{"org_id": NEWCOMER, "name": "Sở Nội vụ"}]}
        async with client.post("/api/v1/directory", json=organizations, headers=headers) as answer:
            assert answer.status == 200
        status, registered, newer = await book(etag)
    assert (status, signatures) == (200, [HUB_ORG, HUB_ORG]) and newer != etag
    version, known = _read(first, ca)
    assert _read(registered, ca) == (version + 1, known | {NEWCOMER})


def test_a_request_that_read_an_older_version_gets_the_newer_book(
    ca: Ca, signatures: list[str]
) -> None:
    """It read the store before another request, which signed first: not signed again,
    neither the older version nor the same one a moment earlier."""
    books, seal = directory.SignedBooks(), ca.keys.identity(HUB_ORG)
    newer = books.sign(_book(108, NEWCOMER), NOW, seal)
    moment = NOW - dt.timedelta(seconds=1)
    assert books.sign(_book(107), moment, seal) == newer
    assert books.sign(_book(108, NEWCOMER), moment, seal) == newer
    assert books.fresh(108, seal.cert, NOW) == newer and signatures == [HUB_ORG]


def test_a_stored_name_xml_cannot_carry_does_not_fail_the_book(ca: Ca) -> None:
    """A row stored before registrations were held to XML's characters (or by hand): its
    name goes out with U+FFFD for each such character, and is logged; it failed the book
    for every node, at each request and after a restart."""
    entries = (*_book(109).entries, DirectoryEntry(NEWCOMER, UNCARRIED, "agency", "H53"))
    with capture_logs() as logs:
        signed = directory.SignedBooks().sign(
            Directory(109, entries), ca.clock(), ca.keys.identity(HUB_ORG)
        )
    read = directory.read_signed(signed.body, ca.keys.trust(), ca.clock(), HUB_ORG).entries
    assert {e.org_id: e.name for e in read}[NEWCOMER] == "Evil\ufffdname"
    assert {e.org_id for e in read} == {e.org_id for e in entries}
    assert [line.get("org_id") for line in logs if line["log_level"] == "warning"] == [NEWCOMER]


async def test_a_registered_name_xml_cannot_carry_is_refused(ca: Ca, tmp_path: Path) -> None:
    """One node registering an agency whose name holds a control character had the hub
    accept it, and then fail (500) every node's request for the book."""
    config = HubConfig(data_dir=tmp_path, keys_dir=ca.keys.path, org_id=HUB_ORG, tls=False)
    await hub_app.add_node(config, "H53", "secret-token")
    headers = {"Authorization": "Bearer secret-token"}
    organizations = [
        {"org_id": "000.00.00.H53", "name": "x"},
        {"org_id": NEWCOMER, "name": UNCARRIED},
    ]
    async with TestClient(TestServer(hub_app.create_app(config))) as client:
        async with client.post(
            "/api/v1/directory", json={"organizations": organizations}, headers=headers
        ) as answer:
            assert answer.status == 400
            error = (await answer.json())["error"]
        async with client.get("/api/v1/directory", headers=headers) as response:
            assert response.status == 200
            book = await response.read()
    assert error["code"] == "EDOC-ENV-002" and NEWCOMER in error["message"]
    assert "U+0001" in error["message"]
    assert NEWCOMER not in _read(book, ca)[1]
