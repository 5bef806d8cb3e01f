"""`edoc simulate`'s report and outcome, without a network: this run's figures only, n/a
where a share means nothing, no Python reprs, and a failure when nothing got through."""

from __future__ import annotations

import datetime as dt
import io
import json
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from click.testing import CliRunner, Result
from rich.console import Console

from edoc import errors, launcher, network
from edoc.cli import main
from edoc.sim import command, profile, report, runner, traffic

TAY_NINH = profile.load("tay-ninh-2021")
SIGNER = {"full_name": "Nguyễn Văn An", "position": "Giám đốc"}
GIVEN = report.Origin.GIVEN


def _plan(tmp_path: Path) -> tuple[Path, list[traffic.Planned]]:
    """A network.json for the profile's provinces (nothing started) and one day's plan."""
    net = network.plan(tmp_path / "net", list(TAY_NINH.roots), 9000, tls=False, agencies=4)
    agencies = command._agencies(net.spec, TAY_NINH.roots)
    return net.path, traffic.plan(TAY_NINH, agencies, days=1, seed=5)


def _node(sent: int, received: int, states: dict[str, int], on_time: float) -> dict[str, Any]:
    return {
        "sent": sent,
        "received": received,
        "status_breakdown": states,
        "on_time_share": on_time,
    }


def _all_arrived(planned: list[traffic.Planned]) -> runner.Observed:
    now = time.time()
    observed = runner.Observed(started=now - 10, finished=now)
    for p in planned:
        observed.posted[p.index] = now - 5
        observed.arrived[p.index] = now - 4
    return observed


def test_node_figures_are_this_runs_difference(tmp_path: Path) -> None:
    _, planned = _plan(tmp_path)
    sent_h53 = sum(1 for p in planned if p.sender.root == "H53")
    got_h53 = sum(1 for p in planned if p.recipient.root == "H53")
    before = _node(1000, 500, {"06": 900, "02": 100}, 0.0)  # an earlier run's lifetime
    after = _node(1000 + sent_h53, 500 + got_h53, {"06": 900 + sent_h53, "02": 100}, 0.1)
    nodes = {"H53": report.NodeReports(before, after)}
    built = report.build(TAY_NINH, planned, _all_arrived(planned), nodes, {"seed": 5}, GIVEN)
    (row,) = (r for r in built["rows"] if r["root"] == "H53")
    assert row["node_sent"] == row["sent"] == sent_h53
    assert row["node_received"] == row["received"] == got_h53
    assert row["statuses"] == {"06": sent_h53}
    assert built["statuses"] == {"06": sent_h53}


def test_a_past_years_due_dates_give_no_on_time_share_at_the_node(tmp_path: Path) -> None:
    _, planned = _plan(tmp_path)
    assert any(p.metadata.get("due_date") for p in planned)
    nodes = {"H53": report.NodeReports({}, _node(5, 5, {}, 0.0))}
    for origin in report.Origin:
        built = report.build(TAY_NINH, planned, _all_arrived(planned), nodes, {"seed": 5}, origin)
        assert all(row["node_on_time_share"] is None for row in built["rows"])
        assert any(row["planned_on_time_share"] is not None for row in built["rows"])


def test_the_table_has_no_python_reprs(tmp_path: Path) -> None:
    _, planned = _plan(tmp_path)
    observed = runner.Observed(started=time.time() - 3, finished=time.time())
    observed.refused = Counter({"EDOC-HUB-003": len(planned)})
    built = report.build(TAY_NINH, planned, observed, {}, {"seed": 5}, GIVEN)
    out = io.StringIO()
    report.show(built, Console(file=out, width=250))
    text = out.getvalue()
    assert "None" not in text and "{'" not in text, text
    assert f"documents refused: EDOC-HUB-003 ×{len(planned):,}" in text
    assert "n/a" in text


def test_exits_non_zero_when_nothing_got_through(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    network_file, planned = _plan(tmp_path)

    async def everything_refused(
        planned: list[traffic.Planned], *_: Any
    ) -> tuple[runner.Observed, dict[str, report.NodeReports]]:
        observed = runner.Observed(finished=time.time())
        observed.refused = Counter({"EDOC-HUB-003": len(planned)})
        return observed, {}

    monkeypatch.setattr(command, "_drive", everything_refused)
    result = CliRunner().invoke(
        main,
        [
            *("simulate", "tay-ninh-2021", "--days", "1", "--seed", "5"),
            *("--network", str(network_file), "--json"),
        ],
    )
    assert result.exit_code == 3, result.output
    (line,) = result.stderr.splitlines()
    assert line.startswith(f"error EDOC-SIM-002: none of {len(planned):,} documents arrived")
    assert f"EDOC-HUB-003 ×{len(planned):,}" in line and "another --seed" in line


def _simulated(
    network_file: Path,
    monkeypatch: pytest.MonkeyPatch,
    observe: Callable[[list[traffic.Planned]], runner.Observed],
) -> Result:
    """`edoc simulate` on a run whose drive observed what ``observe`` makes of the plan."""

    async def drive(
        planned: list[traffic.Planned], *_: Any
    ) -> tuple[runner.Observed, dict[str, report.NodeReports]]:
        return observe(planned), {}

    monkeypatch.setattr(command, "_drive", drive)
    return CliRunner().invoke(
        main, ["simulate", "tay-ninh-2021", "--days", "1", "--network", str(network_file)]
    )


def test_a_run_where_documents_arrive_succeeds(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    network_file, _ = _plan(tmp_path)
    result = _simulated(network_file, monkeypatch, _all_arrived)
    assert result.exit_code == 0, result.output
    assert "None" not in result.stdout


def _one_document_lost(observed: runner.Observed, planned: list[traffic.Planned]) -> None:
    del observed.arrived[planned[0].index]


def _final_statuses_unseen(observed: runner.Observed, _: list[traffic.Planned]) -> None:
    observed.answered = Counter({"06": 2, "05": 3})  # no node reports any status


@pytest.mark.parametrize(
    ("lose", "lost", "finals"),
    [(_one_document_lost, 1, "0 of 0"), (_final_statuses_unseen, 0, "0 of 2")],
)
def test_a_run_in_which_the_network_lost_what_it_accepted_fails(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    lose: Callable[[runner.Observed, list[traffic.Planned]], None],
    lost: int,
    finals: str,
) -> None:
    network_file, planned = _plan(tmp_path)

    def observe(planned: list[traffic.Planned]) -> runner.Observed:
        observed = _all_arrived(planned)
        lose(observed, planned)
        return observed

    result = _simulated(network_file, monkeypatch, observe)
    assert result.exit_code == 3, result.output
    n = len(planned)  # the report is shown before the verdict
    assert f"{n:,} of {n:,} documents sent, {n - lost:,} arrived" in result.stdout
    (line,) = result.stderr.splitlines()
    assert line == (
        f"error EDOC-SIM-003: {lost} of {n:,} documents accepted did not arrive;"
        f" final statuses (02, 06) at the senders' nodes: {finals}"
    )


def test_a_lost_document_is_not_hidden_by_one_that_arrived_unrecorded(tmp_path: Path) -> None:
    _, planned = _plan(tmp_path)
    observed = _all_arrived(planned)
    del observed.arrived[planned[0].index]  # accepted, never arrived
    del observed.posted[planned[1].index]  # its post failed on the way back, yet it arrived
    built = report.build(TAY_NINH, planned, observed, {}, {"seed": 5}, GIVEN)
    assert built["sent"] == built["arrived"] and built["lost"] == 1
    failure = command.something_lost(built)
    assert failure is not None and failure.message.startswith(f"1 of {len(planned) - 1:,} ")


async def test_an_earlier_runs_copies_in_the_inbox_do_not_count_as_arrived() -> None:
    """Driving a network again with the same seed: the hub refuses every document as a
    duplicate, while the inboxes still hold the first run's copies of the same DocumentIds."""
    planned: list[traffic.Planned] = []

    async def refuse(_: web.Request) -> web.Response:
        error = {"code": "EDOC-HUB-003", "message": "already accepted with other content"}
        return web.json_response({"error": error}, status=409)

    async def inbox(request: web.Request) -> web.Response:
        earlier = [
            {
                "id": p.index + 1,
                "document_id": p.document_id,
                "received_at": "2026-01-05T08:00:00+00:00",
            }
            for p in planned
            if p.recipient.org_id == request.headers["Authorization"].removeprefix("Bearer ")
        ]
        return web.json_response({"documents": [] if "since" in request.query else earlier})

    app = web.Application()
    app.router.add_post("/api/v1/documents", refuse)
    app.router.add_get("/api/v1/inbox", inbox)
    async with TestServer(app) as server:
        url = str(server.make_url("")).rstrip("/")
        observed = await _drive_again(planned, url)
    assert observed.refused == Counter({"EDOC-HUB-003": len(planned)})
    assert observed.arrived == {}
    assert observed.answered == Counter()


async def _drive_again(planned: list[traffic.Planned], url: str) -> runner.Observed:
    agencies = {
        root: [
            traffic.Agency(f"000.00.{g}.{root}", root, root, url, f"000.00.{g}.{root}", SIGNER)
            for g in ("00", "07", "12", "15")
        ]
        for root in TAY_NINH.roots
    }
    planned.extend(traffic.plan(TAY_NINH, agencies, days=1, seed=5))
    return await runner.Simulation(planned, "again", None, 4, lambda _: None).run()


def test_final_statuses_that_had_not_come_are_reported(tmp_path: Path) -> None:
    _, planned = _plan(tmp_path)
    observed = _all_arrived(planned)
    observed.answered = Counter({"03": 3, "06": 3, "02": 1})  # 4 final ones accepted
    nodes = {"H53": report.NodeReports(_node(0, 0, {}, 0.0), _node(0, 0, {"06": 2}, 0.0))}
    built = report.build(TAY_NINH, planned, observed, nodes, {"seed": 5}, GIVEN)
    assert (built["final_statuses_seen"], built["final_statuses_expected"]) == (2, 4)
    out = io.StringIO()
    report.show(built, Console(file=out, width=250))
    assert "final statuses (02, 06) at the senders' nodes: 2 of 4 — 2 had not arrived" in (
        out.getvalue()
    )


@pytest.fixture
def starting(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    """What `edoc simulate` starts for its network, each time; nothing is started."""
    runs: list[dict[str, Any]] = []

    def start(net: network.Network) -> list[Any]:
        runs.append(json.loads(json.dumps(net.spec)))
        return []

    monkeypatch.setattr(network, "provision", lambda net: None)
    monkeypatch.setattr(network, "register_tokens", lambda net: None)
    monkeypatch.setattr(launcher, "start_preloaded", start)
    monkeypatch.setattr(launcher, "stop", lambda processes: None)
    return runs


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("{bad", "(Expecting property name"),
        ('{"hub": {"url": "x"}}', "(at $: 'nodes' is a required property)"),
        ('{"hub": {"url": "x"}, "nodes": [{}]}', "(at $.nodes[0]: 'province' is a required"),
    ],
)
def test_a_network_file_that_is_no_network_json_is_refused_by_name(
    tmp_path: Path, text: str, why: str
) -> None:
    """Another JSON file given for --network was a KeyError's traceback, exit 1."""
    given = tmp_path / "cong-van.json"
    given.write_text(text)
    result = CliRunner().invoke(main, ["simulate", "tay-ninh-2021", "--network", str(given)])
    assert result.exit_code == 1
    assert result.stderr.startswith(f"error EDOC-IN-000: {given} is not a network.json {why}")


def test_a_network_the_data_dir_holds_starts_on_the_ports_chosen_for_the_run(
    tmp_path: Path, starting: list[dict[str, Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Run again on its --data-dir, a network came back on the ports of its first run,
    not the free ones this run probed: a port taken since stopped it (EDOC-SYS-003,
    saying to choose a --base-port `edoc simulate` has not)."""
    for base_port in (21000, 22000):
        monkeypatch.setattr(network, "random_base_port", lambda step=10, port=base_port: port)
        with command._started(tmp_path, TAY_NINH.roots, 4) as (spec, _):
            assert spec["hub"]["port"] == base_port
    assert [node["port"] for node in starting[-1]["nodes"]] == [22001, 22002, 22003, 22004]
    saved = network.planned(tmp_path)
    assert saved is not None and saved.spec["hub"]["url"] == "https://127.0.0.1:22000"
    assert starting[0]["nodes"][0]["hub_token"] == starting[1]["nodes"][0]["hub_token"]


def test_a_network_running_in_the_data_dir_is_left_as_it_is(
    tmp_path: Path, starting: list[dict[str, Any]]
) -> None:
    with command._started(tmp_path, TAY_NINH.roots, 4):
        before = (tmp_path / "network.json").read_bytes()
        with pytest.raises(errors.FolderInUse), command._started(tmp_path, TAY_NINH.roots, 4):
            pass
    assert len(starting) == 1 and (tmp_path / "network.json").read_bytes() == before


def test_a_network_of_other_provinces_in_the_data_dir_is_refused_before_it_starts(
    tmp_path: Path, starting: list[dict[str, Any]]
) -> None:
    with command._started(tmp_path, ("H53", "H34"), 4):
        pass
    before = (tmp_path / "network.json").read_bytes()
    for roots, agencies in ((TAY_NINH.roots, 4), (("H53", "H34"), 5)):
        refused = pytest.raises(errors.InputError, match="another --data-dir")
        with refused, command._started(tmp_path, roots, agencies):
            pass
    assert len(starting) == 1 and (tmp_path / "network.json").read_bytes() == before


def test_a_network_the_data_dir_holds_is_reported_as_reused(
    tmp_path: Path, starting: list[dict[str, Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Run again on its --data-dir, an earlier run's network was reported as if made for
    the run: its nodes' lifetime on-time share passed for this run's."""

    async def drive(
        planned: list[traffic.Planned], *_: Any
    ) -> tuple[runner.Observed, dict[str, report.NodeReports]]:
        return _all_arrived(planned), {}

    monkeypatch.setattr(command, "_drive", drive)
    args = ["simulate", "tay-ninh-2021", "--days", "1", "--data-dir", str(tmp_path / "net")]
    first, again = (CliRunner().invoke(main, [*args, "--json"]) for _ in range(2))
    said = CliRunner().invoke(main, args)
    assert [r.exit_code for r in (first, again, said)] == [0, 0, 0], said.output
    assert json.loads(first.stdout)["network"] == "started"
    assert json.loads(again.stdout)["network"] == "reused"
    assert "network: an earlier run's, reused" in said.stdout
    assert len(starting) == 3


def test_only_a_network_made_for_the_run_gives_the_nodes_on_time_share(tmp_path: Path) -> None:
    _, planned = _plan(tmp_path)
    ahead = (dt.date.today() + dt.timedelta(days=30)).isoformat()
    for p in planned:
        p.metadata["due_date"] = ahead
    nodes = {"H53": report.NodeReports({}, _node(5, 5, {}, 0.5))}
    shares = {
        origin: report.build(TAY_NINH, planned, _all_arrived(planned), nodes, {}, origin)
        for origin in report.Origin
    }
    assert {o: built["network"] for o, built in shares.items()} == {o: o.value for o in shares}
    at_node = {
        o: r["node_on_time_share"]
        for o, b in shares.items()
        for r in b["rows"]
        if r["root"] == "H53"
    }
    assert at_node == {report.Origin.STARTED: 0.5, report.Origin.REUSED: None, GIVEN: None}
