"""The hub's address book is signed once per change, not once per GET: the same book and
signer give the same signed body; a registration, another signer or time gives a new one."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from aiohttp.test_utils import TestClient, TestServer
from lxml import etree

from edoc import signing
from edoc.hub import app as hub_app
from edoc.hub import directory
from edoc.hub.state import HubConfig
from edoc.keyindex import SigningIdentity
from edoc.store.hub import DirectoryEntry
from tests.support.hub import HUB_ORG, hub_ca
from tests.support.pki import SENDER, Ca

NOW = dt.datetime(2026, 12, 1, 5, 0, tzinfo=dt.UTC)
NEWCOMER = "000.00.07.H53"


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
    # nothing signed before (by other tests in this process) is served from the cache
    monkeypatch.setattr(directory, "_LAST_SIGNED", directory._LastSigned())
    yield signed


def _book(*agencies: str) -> list[DirectoryEntry]:
    entries = directory.seed_entries()
    for org in agencies:
        entries += directory.registration(org[-3:], [{"org_id": org, "name": org}])
    return entries


def _read(body: bytes, ca: Ca, org: str = HUB_ORG) -> tuple[int, set[str]]:
    version, _, entries = directory.read_signed(body, ca.keys.trust(), ca.clock(), org)
    return version, {entry.org_id for entry in entries}


def test_the_same_book_is_signed_once(ca: Ca, signatures: list[str]) -> None:
    seal = ca.keys.identity(HUB_ORG)
    first = directory.signed_xml(101, _book(), NOW, seal)
    again = directory.signed_xml(101, tuple(_book()), NOW + dt.timedelta(minutes=5), seal)
    assert again == first
    assert signatures == [HUB_ORG]


def test_a_registration_gives_a_new_signed_book(ca: Ca, signatures: list[str]) -> None:
    seal = ca.keys.identity(HUB_ORG)
    before = directory.signed_xml(102, _book(), ca.clock(), seal)
    after = directory.signed_xml(103, _book(NEWCOMER), ca.clock(), seal)
    assert signatures == [HUB_ORG, HUB_ORG]
    assert NEWCOMER not in _read(before, ca)[1]
    assert _read(after, ca) == (103, _read(before, ca)[1] | {NEWCOMER})


def test_other_entries_at_the_same_version_are_signed_anew(ca: Ca, signatures: list[str]) -> None:
    """The version alone does not decide: the content is compared too."""
    seal = ca.keys.identity(HUB_ORG)
    directory.signed_xml(104, _book(), ca.clock(), seal)
    changed = directory.signed_xml(104, _book(NEWCOMER), ca.clock(), seal)
    assert NEWCOMER in _read(changed, ca)[1]
    assert len(signatures) == 2


def test_another_signer_signs_anew(ca: Ca, signatures: list[str]) -> None:
    directory.signed_xml(105, _book(), ca.clock(), ca.keys.identity(HUB_ORG))
    other = directory.signed_xml(105, _book(), ca.clock(), ca.keys.identity(SENDER))
    assert signatures == [HUB_ORG, SENDER]
    assert _read(other, ca, SENDER)[0] == 105


def test_a_book_is_signed_again_before_it_grows_old(ca: Ca, signatures: list[str]) -> None:
    seal = ca.keys.identity(HUB_ORG)
    first = directory.signed_xml(106, _book(), NOW, seal)
    almost = NOW + directory.RESIGN - dt.timedelta(seconds=1)
    assert directory.signed_xml(106, _book(), almost, seal) == first
    later = NOW + directory.RESIGN
    resigned = directory.signed_xml(106, _book(), later, seal)
    expires = dt.datetime.fromisoformat(etree.fromstring(resigned).get("expires", ""))
    assert expires == later + directory.VALIDITY
    assert signatures == [HUB_ORG, HUB_ORG]
    # a clock set back: never a book issued after the time asked for
    assert directory.signed_xml(106, _book(), NOW, seal) != resigned
    assert len(signatures) == 3


async def test_two_gets_sign_once_and_a_registration_signs_anew(
    ca: Ca, tmp_path: Path, signatures: list[str]
) -> None:
    config = HubConfig(data_dir=tmp_path, keys_dir=ca.keys.path, org_id=HUB_ORG, tls=False)
    await hub_app.add_node(config, "H53", "secret-token")
    headers = {"Authorization": "Bearer secret-token"}
    async with TestClient(TestServer(hub_app.create_app(config))) as client:

        async def book() -> bytes:
            async with client.get("/api/v1/directory", headers=headers) as response:
                assert response.status == 200
                return await response.read()

        first = await book()
        assert await book() == first
        assert signatures == [HUB_ORG]
        organizations = {"organizations": [{"org_id": NEWCOMER, "name": "Sở Nội vụ"}]}
        async with client.post("/api/v1/directory", json=organizations, headers=headers) as answer:
            assert answer.status == 200
        registered = await book()
    assert signatures == [HUB_ORG, HUB_ORG]
    version, known = _read(first, ca)
    assert _read(registered, ca) == (version + 1, known | {NEWCOMER})
