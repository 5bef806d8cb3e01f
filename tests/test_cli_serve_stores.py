"""`edoc serve hub|node` on the other service's store: refused before anything is made.
The hub served on a node's SQLite store with its tables made beside the node's (and a
node on a hub's), and on PostgreSQL both failed on a table of both names (EDOC-STORE-001,
exit 3, as a fault). Where no store is yet, each still makes its own as before."""

from __future__ import annotations

import contextlib
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from edoc import services
from edoc.cli.failures import EXIT_REFUSED
from edoc.store import shown, sqlite_url
from tests.store import postgres
from tests.support.hub import EDOC, free_port, hub_ca
from tests.support.stores import made, tables

OTHER = {"hub": "node", "node": "hub"}
MAKES = {  # what each refusal says makes the service's store
    "hub": "`edoc serve hub` makes one where no store is",
    "node": "`edoc agency add ORGID --data-dir …` makes one",
}
# a table each service's store has and the other's has not (tests/support/stores.tables)
OWN_TABLE = {"hub": "deliveries", "node": "agencies"}


@pytest.fixture(params=["sqlite", "postgresql"])
def empty_store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """Where a store can be made, on each backend: a file not there, an empty database."""
    if request.param == "sqlite":
        yield sqlite_url(tmp_path / "store" / "service.sqlite")
    else:
        yield from postgres.fresh_database("serve_store")


@pytest.fixture
def database() -> Iterator[str]:
    """An empty PostgreSQL database of the test's own (its URL)."""
    yield from postgres.fresh_database("serve_store")


@pytest.fixture
def keys(tmp_path: Path) -> Path:
    return hub_ca(tmp_path / "keys").keys.path


def _command(service: str, data_dir: Path, store: str, keys: Path, port: int) -> list[str]:
    where = ["--data-dir", str(data_dir), "--store", store, "--keys-dir", str(keys)]
    if service == "hub":
        options = ["--insecure-http"]
    else:  # its hub is not there: the node starts all the same, and keeps trying it
        hub = f"http://127.0.0.1:{free_port()}"
        options = ["--province", "H53", "--hub", hub, "--hub-token", "t", "--hub-insecure-http"]
    return [EDOC, "serve", service, *where, "--port", str(port), *options]


@contextlib.contextmanager
def _serving(service: str, data_dir: Path, store: str, keys: Path) -> Iterator[None]:
    """The service started on ``store`` and answering /healthz, stopped after."""
    port = free_port()
    data_dir.mkdir(parents=True, exist_ok=True)
    log_path = data_dir.parent / f"{service}.log"
    with log_path.open("ab") as log:
        process = subprocess.Popen(
            _command(service, data_dir, store, keys, port), stdout=log, stderr=log
        )
    try:
        running = services.Service(service, f"http://127.0.0.1:{port}", process, log_path)
        services.wait_healthy([running], None)
        yield
    finally:
        process.terminate()
        process.wait(timeout=30)


@pytest.mark.parametrize("service", ["hub", "node"])
def test_the_other_services_store_is_refused_with_nothing_made(
    empty_store: str, keys: Path, tmp_path: Path, service: str
) -> None:
    """(Before: on SQLite the service ran, its tables made beside the other's; this run
    waited for it until the timeout.)"""
    other = OTHER[service]
    made(other, empty_store)
    before = tables(empty_store)
    folder = tmp_path / service
    done = subprocess.run(
        _command(service, folder, empty_store, keys, free_port()),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == EXIT_REFUSED, done.stderr
    assert done.stdout == ""
    assert done.stderr == (
        f"error EDOC-STORE-002: no {service} store at {shown(empty_store)} (it holds a {other}"
        f" store): {MAKES[service]} (check --store and --data-dir)\n"
    )
    assert tables(empty_store) == before
    assert not folder.exists()


@pytest.mark.parametrize("service", ["hub", "node"])
def test_a_store_holding_both_services_is_served_as_before(
    keys: Path, tmp_path: Path, service: str
) -> None:
    """An SQLite store an older edoc made the other service's tables in (the refusal
    above guards against making more such stores, not against serving those there)."""
    store = sqlite_url(tmp_path / "store" / "both.sqlite")
    made("hub", store)
    made("node", store)
    both = tables(store)
    with _serving(service, tmp_path / service, store, keys):
        pass
    assert tables(store) == both


@pytest.mark.parametrize("service", ["hub", "node"])
def test_an_empty_database_is_made_the_services_store(
    database: str, keys: Path, tmp_path: Path, service: str
) -> None:
    """As before: README says a node's store is made in an empty database; the hub makes
    its own wherever none is (a new SQLite file too)."""
    with _serving(service, tmp_path / service, database, keys):
        pass
    made = tables(database)
    assert OWN_TABLE[service] in made
    assert OWN_TABLE[OTHER[service]] not in made
