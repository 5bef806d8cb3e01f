"""What a simulation found: expected against observed, per province or ministry."""

from __future__ import annotations

import statistics
from collections import Counter
from typing import Any

from rich.console import Console
from rich.table import Table

from edoc.sim.profile import Profile
from edoc.sim.runner import Observed
from edoc.sim.traffic import Planned


def percentile(values: list[float], share: float) -> float | None:
    if not values:
        return None
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=100, method="inclusive")[round(share * 100) - 1]


def build(
    profile: Profile,
    planned: list[Planned],
    observed: Observed,
    node_stats: dict[str, dict[str, Any]],
    settings: dict[str, Any],
) -> dict[str, Any]:
    rows = []
    for root in profile.roots:
        sent = [p for p in planned if p.sender.root == root]
        received = [p for p in planned if p.recipient.root == root]
        latencies = [
            (observed.arrived[p.index] - observed.posted[p.index]) * 1000
            for p in received
            if p.index in observed.arrived and p.index in observed.posted
        ]
        planned_due = [p.on_time for p in sent if p.on_time is not None]
        stats = node_stats.get(root, {})
        rows.append(
            {
                "root": root,
                "expected_sent": len(sent),
                "sent": sum(1 for p in sent if p.index in observed.posted),
                "node_sent": stats.get("sent"),
                "expected_received": len(received),
                "received": sum(1 for p in received if p.index in observed.arrived),
                "node_received": stats.get("received"),
                "delivered": sum(1 for p in sent if p.index in observed.arrived),
                "statuses": stats.get("status_breakdown", {}),
                "planned_on_time_share": round(sum(planned_due) / len(planned_due), 4)
                if planned_due
                else None,
                "node_on_time_share": stats.get("on_time_share"),
                "latency_ms_p50": percentile(latencies, 0.5),
                "latency_ms_p99": percentile(latencies, 0.99),
            }
        )
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
        "documents": len(planned),
        "sent": len(observed.posted),
        "arrived": len(observed.arrived),
        "refused": dict(observed.refused),
        "answers_sent": dict(observed.answered),
        "answers_refused": dict(observed.answer_refused),
        "statuses": dict(sorted(statuses.items())),
        "duration_s": round(duration, 2),
        "documents_per_s": round(len(observed.posted) / duration, 2),
        "latency_ms_p50": percentile(all_latencies, 0.5),
        "latency_ms_p99": percentile(all_latencies, 0.99),
        "rows": rows,
    }


def _n(value: Any) -> str:
    return "–" if value is None else f"{value:,}" if isinstance(value, int) else f"{value:.0f}"


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
        "on time (plan/node)",
        "p50 ms",
        "p99 ms",
        title=f"{report['title']} — {report['profile']}, seed {report['seed']}",
    )
    for row in report["rows"]:
        on_time = "/".join(
            "–" if v is None else f"{v:.0%}"
            for v in (row["planned_on_time_share"], row["node_on_time_share"])
        )
        table.add_row(
            row["root"],
            _n(row["expected_sent"]),
            _n(row["sent"]),
            _n(row["node_sent"]),
            _n(row["expected_received"]),
            _n(row["received"]),
            _n(row["node_received"]),
            _n(row["delivered"]),
            " ".join(f"{k}:{v}" for k, v in sorted(row["statuses"].items())),
            on_time,
            _n(row["latency_ms_p50"]),
            _n(row["latency_ms_p99"]),
        )
    console.print(table)
    console.print(
        f"{report['sent']:,} of {report['documents']:,} documents sent, "
        f"{report['arrived']:,} arrived, in {report['duration_s']} s "
        f"({report['documents_per_s']} documents/s); latency p50 {_n(report['latency_ms_p50'])} ms,"
        f" p99 {_n(report['latency_ms_p99'])} ms; refused: {report['refused'] or 'none'}"
    )
