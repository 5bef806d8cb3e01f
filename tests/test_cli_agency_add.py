"""`edoc agency add`: an agency the node lets in already keeps its token unless told to
replace it, and its name unless given another. It replaced the token (the one in the
agency's software, network.json's, then refused: 401 EDOC-AUTH-001) and blanked the name,
as `edoc hub add-node` did before it refused (EDOC-HUB-008)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from edoc.cli import main
from edoc.cli.failures import EXIT_REFUSED
from edoc.keystore import KeyStore
from edoc.store import open_node_store, shown, sqlite_url
from edoc.store.node import Agency
from edoc.web import token_digest
from tests.store import postgres
from tests.support.stores import made, tables

AGENCY = "000.00.07.H53"
OTHER = "000.00.12.H53"


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("agency") / "keys"
    KeyStore(path).init()
    return path


@pytest.fixture(params=["sqlite", "postgresql"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """The node's store, on each backend (the SQLite file is the one --data-dir holds)."""
    if request.param == "sqlite":
        yield sqlite_url(tmp_path / "node" / "node.sqlite")
    else:
        yield from postgres.fresh_database("agency")


Add = Callable[..., Result]  # (*options, org_id=AGENCY): `edoc agency add` at the node


@pytest.fixture
def add(keys: Path, store: str, tmp_path: Path) -> Add:
    def agency_add(*options: str, org_id: str = AGENCY) -> Result:
        node = ["--data-dir", str(tmp_path / "node"), "--store", store]
        return CliRunner().invoke(
            main, ["agency", "add", org_id, *node, "--keys-dir", str(keys), *options]
        )

    return agency_add


def _book(store: str) -> tuple[list[Agency], dict[str, str | None]]:
    """The node's agencies, and whom each token given in the test belongs to."""

    async def read() -> tuple[list[Agency], dict[str, str | None]]:
        opened = await open_node_store(store)
        try:
            tokens = {t: await opened.agency_for_token(token_digest(t)) for t in ("a", "b", "c")}
            return await opened.agencies(), tokens
        finally:
            await opened.close()

    return asyncio.run(read())


def test_an_agency_keeps_its_token_and_name_unless_replaced(add: Add, store: str) -> None:
    assert add("--token", "a", "--name", "Sở Nội vụ").exit_code == 0

    again = add()
    assert again.exit_code == EXIT_REFUSED, again.output
    assert again.stdout == ""  # no token printed that the node does not hold
    assert again.stderr == (
        f"error EDOC-NODE-005: agency {AGENCY} already has another token, which its software"
        " uses; give --replace to give it a new one (then give that one to its software)\n"
    )
    same = add("--token", "a")  # its own token again: no change
    assert (same.exit_code, same.stdout) == (0, "a\n")
    assert _book(store) == ([Agency(AGENCY, "Sở Nội vụ")], {"a": AGENCY, "b": None, "c": None})

    replaced = add("--token", "b", "--replace")  # without --name: its name kept
    assert (replaced.exit_code, replaced.stdout) == (0, "b\n"), replaced.output
    assert _book(store) == ([Agency(AGENCY, "Sở Nội vụ")], {"a": None, "b": AGENCY, "c": None})


def test_another_agencys_token_is_refused_by_name(add: Add, store: str) -> None:
    assert add("--token", "a").exit_code == 0
    for replace in ((), ("--replace",)):
        refused = add("--token", "a", *replace, org_id=OTHER)
        assert refused.exit_code == EXIT_REFUSED, refused.output
        assert refused.stderr == (
            f"error EDOC-NODE-005: that token is agency {AGENCY}'s; give {OTHER} another"
            " (or none: one is made)\n"
        )
    assert _book(store) == ([Agency(AGENCY, "")], {"a": AGENCY, "b": None, "c": None})


def test_a_refused_agency_is_issued_no_seal(store: str, tmp_path: Path) -> None:
    """The agency's missing seal was issued first, then the token refused: a certificate
    for an agency the node did not let in, or given no new token."""
    keys = tmp_path / "keys"
    KeyStore(keys).init()

    def add(*options: str, org_id: str = AGENCY) -> Result:
        node = ["--data-dir", str(tmp_path / "node"), "--store", store, "--keys-dir", str(keys)]
        return CliRunner().invoke(main, ["agency", "add", org_id, *node, *options])

    assert add("--token", "a").exit_code == 0
    revoked = CliRunner().invoke(
        main, ["keys", "revoke", AGENCY, "--reason", "keyCompromise", "--keys-dir", str(keys)]
    )
    assert revoked.exit_code == 0, revoked.output  # its seal compromised: it has none now
    issued = KeyStore(keys).records()

    refusals = [
        ("EDOC-NODE-005", add()),  # another token for it, without --replace
        ("EDOC-NODE-005", add("--token", "a", org_id=OTHER)),  # another agency's token
        ("EDOC-ENV-002", add(org_id="000.00.07.H34")),  # of another province than the node's
    ]
    for code, refused in refusals:
        assert refused.exit_code == EXIT_REFUSED, refused.output
        assert refused.stderr.startswith(f"error {code}: "), refused.stderr
    assert KeyStore(keys).records() == issued
    assert _book(store) == ([Agency(AGENCY, "")], {"a": AGENCY, "b": None, "c": None})

    replaced = add("--token", "b", "--replace")  # now it is let in: its seal is issued
    assert replaced.exit_code == 0, replaced.output
    assert KeyStore(keys).current(AGENCY).serial not in {record.serial for record in issued}


def test_a_hubs_store_is_refused_with_nothing_made(store: str, tmp_path: Path) -> None:
    """A hub's store given for the node's: the node's tables were made beside the hub's
    (SQLite), or the command failed on a table of both names (PostgreSQL, EDOC-STORE-001,
    exit 3, as the store failing). No store there yet is a new node's: it is made (above)."""
    made("hub", store)
    before = tables(store)
    keys = tmp_path / "keys"
    KeyStore(keys).init()
    issued = KeyStore(keys).records()
    node = ["--data-dir", str(tmp_path / "node"), "--store", store, "--keys-dir", str(keys)]
    refused = CliRunner().invoke(main, ["agency", "add", AGENCY, *node])
    assert refused.exit_code == EXIT_REFUSED, refused.output
    assert refused.stdout == ""
    assert refused.stderr == (
        f"error EDOC-STORE-002: no node store at {shown(store)} (it holds a hub store):"
        " `edoc agency add` makes one where no store is (check --store and --data-dir)\n"
    )
    assert tables(store) == before
    assert KeyStore(keys).records() == issued  # no seal issued for it
