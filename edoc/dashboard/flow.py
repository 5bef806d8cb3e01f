"""How documents flow through the hub, for its dashboard: the status funnel 01→06 (how
many documents reached each stage, and the median time from the stage before) and the
relay latency (accepted by the hub → acknowledged by the recipient's node)."""

from __future__ import annotations

import datetime as dt
import math
import statistics
from typing import Any

from edoc.model import StatusCode
from edoc.store.hub import Stage

SENT = "sent"  # the hub accepted the document: the funnel's first stage
# 02 (refused by the recipient) ends a document's way; it stays in the funnel's order
FUNNEL = (SENT, *(code.value for code in StatusCode if code.value <= StatusCode.COMPLETED))
NAMES = {SENT: "sent", **{code.value: code.name.lower() for code in StatusCode}}
FUNNEL_WINDOW = dt.timedelta(days=7)  # documents accepted in it are counted
RELAY_WINDOW = dt.timedelta(days=1)  # deliveries acknowledged in it are measured
Way = dict[str, dt.datetime]  # stage → when a document toward one recipient first reached it


def _ways(stages: list[Stage]) -> list[Way]:
    """One way per document and recipient, with the first time of each stage."""
    ways: dict[tuple[str, str], Way] = {}
    for stage in stages:
        name = stage.status_code or SENT
        way = ways.setdefault((stage.about, stage.party), {})
        if name not in way or stage.at < way[name]:
            way[name] = stage.at
    return [way for way in ways.values() if SENT in way]  # a status from a non-recipient: none


def funnel(stages: list[Stage]) -> list[dict[str, Any]]:
    """Per stage, the documents (counted once per recipient) that reached it and the median
    seconds since the stage before it they reached (a recipient may skip a stage)."""
    reached = dict.fromkeys(FUNNEL, 0)
    waits: dict[str, list[float]] = {name: [] for name in FUNNEL}
    for way in _ways(stages):
        before: dt.datetime | None = None
        for name in FUNNEL:
            if name in way:
                reached[name] += 1
                if before is not None:
                    waits[name].append((way[name] - before).total_seconds())
                before = way[name]
    return [
        {
            "stage": name,
            "name": NAMES[name],
            "label": NAMES[name] if name == SENT else f"{name} {NAMES[name]}",
            "reached": reached[name],
            "median_seconds": round(statistics.median(waits[name]), 1) if waits[name] else None,
        }
        for name in FUNNEL
    ]


def percentile(sorted_values: list[float], share: float) -> float | None:
    """The nearest-rank percentile: the smallest value at least ``share`` of them reach."""
    if not sorted_values:
        return None
    return sorted_values[max(0, math.ceil(share * len(sorted_values)) - 1)]


def relay(times: list[dt.timedelta]) -> dict[str, Any]:
    seconds = sorted(time.total_seconds() for time in times)
    p50, p99 = percentile(seconds, 0.5), percentile(seconds, 0.99)
    return {
        "deliveries": len(seconds),
        "p50_seconds": None if p50 is None else round(p50, 1),
        "p99_seconds": None if p99 is None else round(p99, 1),
        "window_hours": round(RELAY_WINDOW.total_seconds() / 3600),
    }
