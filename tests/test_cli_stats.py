"""`edoc stats` tables: every figure labelled, no Python `None` or dict reprs."""

from __future__ import annotations

import io
from typing import Any

from rich.console import Console

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
    assert "completed on time:   n/a (nothing with a due date)" in text


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
