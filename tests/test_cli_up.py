"""`edoc up` on a data folder that holds a network already: what it is asked is honoured
(another --base-port moves the network there) or refused (other --provinces, or
--insecure-http for a network planned with TLS), never silently ignored; with neither,
as `make run` starts it again, it comes back as it was."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from edoc import folderlock, launcher, network
from edoc.cli import main
from edoc.store import shown, sqlite_url
from tests.store import postgres
from tests.support.stores import made


@pytest.fixture(autouse=True)
def started(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    """What launcher.run was given to start, each time; it starts nothing here."""
    runs: list[dict[str, Any]] = []

    def run(net: network.Network, announce: Callable[[], None], *_: Any) -> None:
        runs.append(json.loads(json.dumps(net.spec)))
        announce()

    monkeypatch.setattr(launcher, "run", run)
    return runs


def _up(data: Path, *args: str) -> Result:
    return CliRunner().invoke(main, ["up", "--data-dir", str(data), *args])


def _ports(spec: dict[str, Any]) -> list[int]:
    return [spec["hub"]["port"], *(node["port"] for node in spec["nodes"])]


def test_another_base_port_moves_a_planned_network_there(
    tmp_path: Path, started: list[dict[str, Any]]
) -> None:
    assert _up(tmp_path, "--provinces", "H53,H34", "--base-port", "8750").exit_code == 0
    moved = _up(tmp_path, "--base-port", "8730")
    assert moved.exit_code == 0, moved.output
    assert _ports(started[-1]) == [8730, 8731, 8732]
    assert "https://127.0.0.1:8730" in moved.stdout and "http://127.0.0.1:8732" in moved.stdout
    again = _up(tmp_path)  # as `make run` starts it again: where it was moved to
    assert again.exit_code == 0, again.output
    assert started[-1] == started[-2]
    assert started[0]["nodes"][0]["hub_token"] == started[-1]["nodes"][0]["hub_token"]


def test_other_provinces_for_a_planned_network_are_refused(
    tmp_path: Path, started: list[dict[str, Any]]
) -> None:
    assert _up(tmp_path, "--provinces", "H53,H34").exit_code == 0
    before = (tmp_path / "network.json").read_bytes()
    refused = _up(tmp_path, "--provinces", "H53,H01", "--base-port", "8730")
    assert refused.exit_code == 1
    assert refused.stderr.startswith("error EDOC-IN-000: ")
    assert "H53,H34, not H53,H01" in refused.stderr and "--data-dir" in refused.stderr
    assert len(started) == 1 and (tmp_path / "network.json").read_bytes() == before
    same = _up(tmp_path, "--provinces", "H34,H53")  # the same provinces, in any order
    assert same.exit_code == 0, same.output
    assert started[-1] == started[0]


def test_a_network_running_in_the_folder_is_left_as_it_is(
    tmp_path: Path, started: list[dict[str, Any]]
) -> None:
    """A second `edoc up --base-port` on a running network rewrote its network.json to
    ports nothing listened on, and started a second hub on the same store."""
    assert _up(tmp_path, "--provinces", "H53,H34").exit_code == 0
    before = (tmp_path / "network.json").read_bytes()
    with folderlock.held(tmp_path, "network (edoc up)"):  # as the first one holds it
        refused = _up(tmp_path, "--base-port", "8730")
    assert refused.exit_code == 4, refused.output
    assert refused.stderr.startswith(f"error EDOC-SYS-004: {tmp_path} is in use by another")
    assert len(started) == 1 and (tmp_path / "network.json").read_bytes() == before


def test_insecure_http_for_a_network_planned_with_tls_is_refused(
    tmp_path: Path, started: list[dict[str, Any]]
) -> None:
    """--insecure-http on a network planned with TLS was ignored: it came up with TLS, on
    https:// addresses, while the operator believed it plain HTTP."""
    assert _up(tmp_path, "--provinces", "H53,H34").exit_code == 0
    before = (tmp_path / "network.json").read_bytes()
    refused = _up(tmp_path, "--insecure-http", "--base-port", "8730")
    assert refused.exit_code == 1, refused.output
    assert refused.stderr.startswith("error EDOC-IN-000: ")
    assert "TLS" in refused.stderr and "--data-dir" in refused.stderr
    assert len(started) == 1 and (tmp_path / "network.json").read_bytes() == before


def test_a_network_planned_without_tls_comes_back_without_it(
    tmp_path: Path, started: list[dict[str, Any]]
) -> None:
    """Started again, with or without the flag, a plain-HTTP network stays plain HTTP."""
    assert _up(tmp_path, "--provinces", "H53", "--insecure-http").exit_code == 0
    for again in (_up(tmp_path), _up(tmp_path, "--insecure-http")):
        assert again.exit_code == 0, again.output
        assert started[-1] == started[0] and started[-1]["hub"]["tls"] is False
        assert "http://127.0.0.1:8700" in again.stdout and "https://" not in again.stdout


def test_a_damaged_network_json_is_refused_by_name(
    tmp_path: Path, started: list[dict[str, Any]]
) -> None:
    (tmp_path / "network.json").write_text('{"hub": {"url": "x"}, "nodes": [{"province"')
    refused = _up(tmp_path)
    assert refused.exit_code == 1
    assert refused.stderr.startswith(
        f"error EDOC-IN-000: {tmp_path / 'network.json'} is not a network.json (Expecting"
    )
    assert started == []


@pytest.mark.parametrize("store", ["foo://bar", "sqlite:///"])
def test_a_store_edoc_cannot_open_is_refused_before_anything_is_made(
    tmp_path: Path, started: list[dict[str, Any]], store: str
) -> None:
    """It was refused only when the hub's store was opened: the network was provisioned
    and saved with it by then (each later `edoc up` failing the same way)."""
    data = tmp_path / "net"
    refused = _up(data, "--store", store)
    assert refused.exit_code == 1
    assert refused.stderr.startswith("error EDOC-STORE-002: ")
    assert len(refused.stderr.splitlines()) == 1
    assert not data.exists() and started == []

    assert _up(data, "--provinces", "H53").exit_code == 0  # planned: its store is kept
    before = (data / "network.json").read_bytes()
    assert _up(data, "--store", store).exit_code == 1
    assert (data / "network.json").read_bytes() == before and len(started) == 1


def test_a_nodes_store_given_for_the_hubs_is_refused_before_anything_is_made(
    tmp_path: Path, started: list[dict[str, Any]]
) -> None:
    """Taken, the hub's tables were made beside the node's (SQLite) or the start failed
    on a table of both names (PostgreSQL, a fault), with the network saved on it."""
    store = sqlite_url(tmp_path / "node.sqlite")
    made("node", store)
    data = tmp_path / "net"
    refused = _up(data, "--store", store)
    assert refused.exit_code == 1, refused.output
    assert refused.stderr.startswith(
        f"error EDOC-STORE-002: no hub store at {shown(store)} (it holds a node store): "
    )
    assert not data.exists() and started == []


@pytest.mark.parametrize("store", ["foo://bar", "sqlite:///"])
def test_a_store_an_older_edoc_saved_is_said_to_come_from_network_json(
    tmp_path: Path, started: list[dict[str, Any]], store: str
) -> None:
    """An edoc before the check above saved any --store URL in network.json: each later
    `edoc up` failed with the store's error alone, the operator looking for a --store URL
    never given that time."""
    assert _up(tmp_path, "--provinces", "H53").exit_code == 0
    spec = json.loads((tmp_path / "network.json").read_text())
    spec["hub"]["store"] = store  # as the older edoc saved it
    (tmp_path / "network.json").write_text(json.dumps(spec))
    refused = _up(tmp_path)
    assert refused.exit_code == 1, refused.output
    (line,) = refused.stderr.splitlines()
    assert line.startswith(f"error EDOC-STORE-002: {tmp_path / 'network.json'} plans a hub")
    assert "`edoc up --store URL` replaces it" in line
    assert len(started) == 1

    fixed = _up(tmp_path, "--store", sqlite_url(tmp_path / "hub" / "hub.sqlite"))
    assert fixed.exit_code == 0, fixed.output
    assert started[-1]["hub"]["store"] == sqlite_url(tmp_path / "hub" / "hub.sqlite")
    assert _up(tmp_path).exit_code == 0  # as replaced


def test_hubs_alone_keeps_the_store_planned(tmp_path: Path, started: list[dict[str, Any]]) -> None:
    """--hubs and --store each replace their own part of the plan: `--hubs 1` alone put
    the hub on a new, empty SQLite store in its folder (the planned one, with every
    document, left aside)."""
    data, store = tmp_path / "net", sqlite_url(tmp_path / "elsewhere.sqlite")
    assert _up(data, "--provinces", "H53", "--store", store).exit_code == 0
    again = _up(data, "--hubs", "1")
    assert again.exit_code == 0, again.output
    assert (started[-1]["hub"]["store"], started[-1]["hub"]["instances"]) == (store, 1)


def test_hubs_alone_on_a_postgresql_network_keeps_its_store(
    tmp_path: Path, started: list[dict[str, Any]]
) -> None:
    """--hubs N alone on a PostgreSQL network was refused for want of a shared store, and
    --store alone put it back to one instance."""
    postgres.require_server()
    name = postgres.run_name("up_hubs")
    store = postgres.create(name)
    try:
        data = tmp_path / "net"
        assert _up(data, "--provinces", "H53", "--store", store, "--hubs", "2").exit_code == 0
        more = _up(data, "--hubs", "3")
        assert more.exit_code == 0, more.output
        assert (started[-1]["hub"]["store"], started[-1]["hub"]["instances"]) == (store, 3)
        elsewhere = _up(data, "--store", store)  # the same URL: instances as planned
        assert elsewhere.exit_code == 0, elsewhere.output
        assert started[-1]["hub"]["instances"] == 3
    finally:
        postgres.drop(name)


@pytest.mark.parametrize(
    ("part", "value", "where"),  # (a node's part: its first node's)
    [
        ("instances", "two", "$.hub.instances: 'two' is not of type 'integer'"),
        ("instances", 0, "$.hub.instances: 0 is less than the minimum of 1"),
        ("store", 5, "$.hub.store: 5 is not of type 'string', 'null'"),
        ("tls", "yes", "$.hub.tls: 'yes' is not of type 'boolean'"),
        ("port", "8700", "$.hub.port: '8700' is not of type 'integer'"),
        ("node port", None, "$.nodes[0].port: None is not of type 'integer'"),
    ],
)
def test_a_network_json_whose_hub_part_has_the_wrong_type_is_refused_by_name(
    tmp_path: Path, started: list[dict[str, Any]], part: str, value: Any, where: str
) -> None:
    """A hand-edited hub part of the wrong type was a ValueError's or AttributeError's
    traceback (instances "two", a store 5), or taken as something else (tls "yes")."""
    assert _up(tmp_path, "--provinces", "H53").exit_code == 0
    path = tmp_path / "network.json"
    spec = json.loads(path.read_text())
    if part.startswith("node "):
        spec["nodes"][0][part.removeprefix("node ")] = value
    else:
        spec["hub"][part] = value
    path.write_text(json.dumps(spec))
    refused = _up(tmp_path)
    assert refused.exit_code == 1, refused.output
    assert refused.stderr.startswith(f"error EDOC-IN-000: {path} is not a network.json (at {where}")
    assert len(started) == 1
