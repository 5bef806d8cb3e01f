"""`edoc stats` tables: every figure labelled, no Python `None` or dict reprs."""

from __future__ import annotations

import http.server
import io
import json
import socket
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from click.testing import CliRunner
from rich.console import Console

from edoc.cli import main
from edoc.cli.stats import print_hub_stats, print_node_stats

NODE_AT_START: dict[str, Any] = {  # a node that has sent nothing yet
    "sent": 0,
    "received": 2,
    "share_signed": None,
    "share_delivered": None,
    "on_time_share": None,
    "status_breakdown": {},
    "by_agency": {"000.00.07.H53": {"received": 2}},
    "by_partner_province": {"000.00.00.H34": {"received": 2}},
    "by_day": {},
}

HUB: dict[str, Any] = {
    "totals": {
        "sent": 3,
        "received": 2,
        "status_sent": 1,
        "status_received": 0,
        "rejected": 1,
    },
    "in_flight": 1,
    "in_flight_by_node": {"H34": 1},
    "stuck": 1,
    "stuck_by_node": {"H34": 1},
    "stuck_after": 10,
    "rejected_by_code": {"EDOC-HUB-003": 1},
    "by_province": {
        "000.00.00.H53": {
            "sent": 3,
            "received": 0,
            "status_sent": 0,
            "status_received": 1,
            "rejected": 1,
        },
        "000.00.00.H34": {
            "sent": 0,
            "received": 2,
            "status_sent": 1,
            "status_received": 0,
            "rejected": 0,
        },
    },
}


def _printed(show: Any, report: dict[str, Any]) -> str:
    out = io.StringIO()
    show(report, Console(file=out, width=200))
    return out.getvalue()


def _no_reprs(text: str) -> None:
    assert "None" not in text
    assert "{" not in text and "}" not in text, text


def test_node_stats_say_na_with_the_reason() -> None:
    text = _printed(print_node_stats, NODE_AT_START)
    _no_reprs(text)
    assert "signed by a person:  n/a (nothing sent)" in text
    assert "completed on time:   n/a (nothing with a due date completed yet)" in text


def test_node_stats_show_shares_and_named_states() -> None:
    report = NODE_AT_START | {
        "sent": 4,
        "share_signed": 0.75,
        "share_delivered": 1.0,
        "on_time_share": 0.5,
        "status_breakdown": {"03": 1, "06": 2, "delivered": 1},
    }
    text = _printed(print_node_stats, report)
    _no_reprs(text)
    assert "signed by a person:  75.0%" in text
    assert "03 accepted" in text and "06 completed" in text and "delivered" in text


def test_hub_stats_label_the_status_columns() -> None:
    text = _printed(print_hub_stats, HUB)
    _no_reprs(text)
    assert "1/0" not in text and "0/1" not in text  # the unexplained pair it printed
    for header in ("documents sent", "statuses sent", "statuses received", "refused"):
        assert header in text
    assert "in flight: 1" in text
    assert "EDOC-HUB-003" in text


def test_hub_stats_say_which_nodes_have_deliveries_stuck() -> None:
    text = _printed(print_hub_stats, HUB)
    _no_reprs(text)
    assert "stuck (collected 10 times or more, not acknowledged): 1 (H34: 1)" in text
    # a hub of an earlier release says nothing of them: nothing is made up
    earlier = {k: v for k, v in HUB.items() if not k.startswith("stuck")}
    assert "stuck" not in _printed(print_hub_stats, earlier)


@pytest.fixture
def answering() -> Iterator[dict[str, Any]]:
    """A service at ``answering["url"]`` that answers its GETs with ``answering["report"]``."""
    given: dict[str, Any] = {}

    class Stats(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = json.dumps(given["report"]).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Stats)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    given["url"] = f"http://127.0.0.1:{server.server_address[1]}"
    yield given
    server.shutdown()
    server.server_close()


@pytest.mark.parametrize(
    ("option", "report", "other"),
    [("--hub", NODE_AT_START, "a hub"), ("--node", HUB, "a node")],
    ids=["a node asked as a hub", "a hub asked as a node"],
)
def test_stats_of_the_other_kind_of_service_are_refused_not_printed(
    answering: dict[str, Any], option: str, report: dict[str, Any], other: str
) -> None:
    answering["report"] = report
    result = CliRunner().invoke(main, ["stats", option, answering["url"]])
    assert result.exit_code == 3 and result.stdout == ""  # no table of zeros
    assert result.stderr.startswith("error EDOC-NET-002: ")
    assert f"not {other}'s statistics" in result.stderr and answering["url"] in result.stderr


@pytest.mark.parametrize(("option", "report"), [("--hub", HUB), ("--node", NODE_AT_START)])
def test_stats_of_the_kind_asked_are_printed(
    answering: dict[str, Any], option: str, report: dict[str, Any]
) -> None:
    answering["report"] = report
    result = CliRunner().invoke(main, ["stats", option, answering["url"], "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == report


def test_a_service_urls_password_is_not_in_the_errors_about_it(answering: dict[str, Any]) -> None:
    """Refused statistics and a service not reached named the URL as given, its password
    with it."""
    answering["report"] = HUB  # a hub's figures, asked as a node's
    with_password = answering["url"].replace("http://", "http://admin:s3cret@")
    refused = CliRunner().invoke(main, ["stats", "--node", with_password])
    assert refused.stderr.startswith("error EDOC-NET-002: "), refused.output
    assert "s3cret" not in refused.stderr and "admin:***@127.0.0.1" in refused.stderr

    with socket.socket() as closed:  # a port nothing listens on
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    unreached = CliRunner().invoke(
        main, ["stats", "--node", f"http://admin:s3cret@127.0.0.1:{port}"]
    )
    assert unreached.stderr.startswith("error EDOC-NET-001: "), unreached.output
    assert "s3cret" not in unreached.stderr and f"127.0.0.1:{port}" in unreached.stderr


@pytest.mark.parametrize("option", ["--hub", "--node"])
def test_a_service_not_reached_is_the_same_error_whichever_it_is(option: str) -> None:
    """A hub not reached was EDOC-NODE-001 (the node's own word: its outbox retries), a
    node EDOC-NET-001: the CLI reaches neither, the same way."""
    with socket.socket() as closed:  # a port nothing listens on
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    result = CliRunner().invoke(main, ["stats", option, f"http://127.0.0.1:{port}"])
    assert result.exit_code == 3, result.output
    assert result.stderr.startswith(f"error EDOC-NET-001: cannot reach http://127.0.0.1:{port}: ")


@pytest.mark.parametrize("option", ["--hub", "--node"])
def test_a_services_refusal_is_said_under_its_own_code_whichever_it_is(option: str) -> None:
    """A hub's 503 came out as EDOC-NODE-001 wrapping the hub's code, a node's as its
    code."""

    class Failing(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = json.dumps({"error": {"code": "EDOC-STORE-001", "message": "disk full"}})
            self.send_response(503)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body.encode())

        def log_message(self, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Failing)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}"
        result = CliRunner().invoke(main, ["stats", option, url])
    finally:
        server.shutdown()
        server.server_close()
    assert result.exit_code == 3, result.output
    assert result.stderr == "error EDOC-STORE-001: disk full\n"


@pytest.mark.parametrize(
    "options",
    [[], ["--hub", "http://127.0.0.1:9", "--node", "http://127.0.0.1:9"]],
    ids=["neither", "both"],
)
def test_one_service_is_asked_exactly(options: list[str]) -> None:
    """Both given said "give one of --hub URL or --node URL", which one had."""
    result = CliRunner().invoke(main, ["stats", *options])
    assert result.exit_code == 2
    assert "give exactly one of --hub URL or --node URL" in result.stderr
