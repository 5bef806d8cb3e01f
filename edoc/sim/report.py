"""What a simulation found: expected against observed, per province or ministry.

Every figure is this run's: what the simulator saw, and the nodes' counters as the
difference between their reports after the run and before it (a network driven again
keeps its earlier counts). A share that means nothing is None ("n/a" in the table).
"""

from __future__ import annotations

import datetime as dt
import enum
import statistics
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from rich.console import Console
from rich.table import Table

from edoc.sim.profile import Profile
from edoc.sim.runner import FINAL, PATIENCE, Observed, final_answers
from edoc.sim.traffic import Planned


class Origin(enum.StrEnum):
    """Where the network driven came from: the report's ``network``."""

    STARTED = "started"  # made for this run
    REUSED = "reused"  # an earlier run's, in --data-dir: started again with what it holds
    GIVEN = "given"  # --network's, running already


_ORIGINS = {
    Origin.STARTED: "made for this run",
    Origin.REUSED: "an earlier run's, reused (moved to free ports): it holds what those runs sent",
    Origin.GIVEN: "the running one --network names",
}


@dataclass(frozen=True)
class NodeReports:
    """One node's ``/api/v1/stats`` as the run began and after it settled."""

    before: Mapping[str, Any]
    after: Mapping[str, Any]

    def grown(self, key: str) -> int:
        return int(self.after.get(key) or 0) - int(self.before.get(key) or 0)

    def statuses(self) -> dict[str, int]:
        """How many more recipients stand in each state than before the run."""
        before = Counter(self.before.get("status_breakdown", {}))
        after = Counter(self.after.get("status_breakdown", {}))
        return {s: after[s] - before[s] for s in sorted(after | before) if after[s] != before[s]}


def percentile(values: list[float], share: float) -> float | None:
    if not values:
        return None
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=100, method="inclusive")[round(share * 100) - 1]


def node_share_means_something(planned: list[Planned], fresh: bool, started: float) -> bool:
    """A node's on-time share counts its whole life and compares due dates with the wall
    clock: it is this run's only on a network started for the run, and means something only
    when no planned due date had already passed when the run began (profiles replay past
    years, whose due dates all lie before today)."""
    today = dt.datetime.fromtimestamp(started, dt.UTC).date().isoformat()
    due = [p.metadata["due_date"] for p in planned if p.metadata.get("due_date")]
    return fresh and bool(due) and min(due) >= today


def _row(
    root: str,
    planned: list[Planned],
    observed: Observed,
    node: NodeReports,
    share_at_node: bool,
) -> dict[str, Any]:
    sent = [p for p in planned if p.sender.root == root]
    received = [p for p in planned if p.recipient.root == root]
    latencies = [
        (observed.arrived[p.index] - observed.posted[p.index]) * 1000
        for p in received
        if p.index in observed.arrived and p.index in observed.posted
    ]
    planned_due = [p.on_time for p in sent if p.on_time is not None]
    return {
        "root": root,
        "expected_sent": len(sent),
        "sent": sum(1 for p in sent if p.index in observed.posted),
        "node_sent": node.grown("sent"),
        "expected_received": len(received),
        "received": sum(1 for p in received if p.index in observed.arrived),
        "node_received": node.grown("received"),
        "delivered": sum(1 for p in sent if p.index in observed.arrived),
        "statuses": node.statuses(),
        "planned_on_time_share": round(sum(planned_due) / len(planned_due), 4)
        if planned_due
        else None,
        "node_on_time_share": node.after.get("on_time_share") if share_at_node else None,
        "latency_ms_p50": percentile(latencies, 0.5),
        "latency_ms_p99": percentile(latencies, 0.99),
    }


def build(
    profile: Profile,
    planned: list[Planned],
    observed: Observed,
    nodes: Mapping[str, NodeReports],
    settings: dict[str, Any],
    origin: Origin,
) -> dict[str, Any]:
    """The report on a run of ``origin``'s network."""
    fresh = origin is Origin.STARTED
    share_at_node = node_share_means_something(planned, fresh, observed.started)
    empty = NodeReports({}, {})
    rows = [
        _row(root, planned, observed, nodes.get(root, empty), share_at_node)
        for root in profile.roots
    ]
    duration = max(observed.finished - observed.started, 1e-9)
    all_latencies = [
        (observed.arrived[i] - observed.posted[i]) * 1000
        for i in observed.arrived
        if i in observed.posted
    ]
    statuses: Counter[str] = Counter()
    for row in rows:
        statuses.update(row["statuses"])
    return {
        "profile": profile.name,
        "title": profile.title,
        **settings,
        "network": origin.value,
        "documents": len(planned),
        "sent": len(observed.posted),
        "arrived": len(observed.arrived),
        # accepted and never seen in an inbox (one whose post failed may still arrive)
        "lost": len(observed.posted.keys() - observed.arrived.keys()),
        "refused": dict(observed.refused),
        "answers_sent": dict(observed.answered),
        "answers_refused": dict(observed.answer_refused),
        "statuses": {code: n for code, n in sorted(statuses.items()) if n},
        # every final status a recipient's node accepted, and those its sender's node shows
        "final_statuses_expected": final_answers(observed),
        "final_statuses_seen": sum(statuses[code] for code in FINAL),
        "duration_s": round(duration, 2),
        "documents_per_s": round(len(observed.posted) / duration, 2),
        "latency_ms_p50": percentile(all_latencies, 0.5),
        "latency_ms_p99": percentile(all_latencies, 0.99),
        "rows": rows,
    }


def number(value: Any) -> str:
    if value is None:
        return "n/a"
    return f"{value:,}" if isinstance(value, int) else f"{value:,.0f}"


def share(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.0%}"


def _final_line(report: dict[str, Any]) -> str:
    seen, expected = report["final_statuses_seen"], report["final_statuses_expected"]
    line = f"final statuses (02, 06) at the senders' nodes: {seen:,} of {expected:,}"
    if seen < expected:
        line += (
            f" — [bold red]{expected - seen:,} had not arrived[/] when the simulator stopped"
            f" waiting ({PATIENCE:.0f} s with none coming)"
        )
    return line


def counts(by_code: Mapping[str, int]) -> str:
    """`EDOC-HUB-003 ×155, EDOC-AUTH-001 ×2`, or `none`."""
    return ", ".join(f"{code} ×{n:,}" for code, n in sorted(by_code.items())) or "none"


def show(report: dict[str, Any], console: Console) -> None:
    table = Table(
        "root",
        "sent exp.",
        "sent",
        "node sent",
        "recv exp.",
        "recv",
        "node recv",
        "delivered",
        "statuses",
        "on time planned",
        "on time at node",
        "p50 ms",
        "p99 ms",
        title=f"{report['title']} — {report['profile']}, seed {report['seed']}",
        caption="this run's figures; node columns: the node's counters after minus before;"
        " n/a: nothing to measure, or a share the run cannot give",
    )
    for row in report["rows"]:
        table.add_row(
            row["root"],
            number(row["expected_sent"]),
            number(row["sent"]),
            number(row["node_sent"]),
            number(row["expected_received"]),
            number(row["received"]),
            number(row["node_received"]),
            number(row["delivered"]),
            " ".join(f"{k}:{v:,}" for k, v in sorted(row["statuses"].items())) or "–",
            share(row["planned_on_time_share"]),
            share(row["node_on_time_share"]),
            number(row["latency_ms_p50"]),
            number(row["latency_ms_p99"]),
        )
    console.print(table)
    console.print(f"network: {_ORIGINS[Origin(report['network'])]}")
    latency = (
        "latency n/a (nothing arrived)"
        if report["latency_ms_p50"] is None
        else f"latency p50 {number(report['latency_ms_p50'])} ms,"
        f" p99 {number(report['latency_ms_p99'])} ms"
    )
    console.print(
        f"{report['sent']:,} of {report['documents']:,} documents sent, "
        f"{report['arrived']:,} arrived, in {report['duration_s']} s "
        f"({report['documents_per_s']} documents/s); {latency}"
    )
    console.print(f"documents refused: {counts(report['refused'])}")
    console.print(f"statuses refused: {counts(report['answers_refused'])}")
    console.print(_final_line(report))
    if not any(row["node_on_time_share"] is not None for row in report["rows"]):
        console.print(
            "on time at node: n/a — the nodes compare due dates with today's clock over"
            " their whole life; it is this run's share only on a network started for the"
            " run whose planned due dates lie ahead"
        )
