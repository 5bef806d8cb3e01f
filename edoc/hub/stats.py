"""The hub's statistics: counters by day and organization, shaped for people and scripts."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from edoc.orgid import OrgId
from edoc.store.base import HubStore

METRICS = ("sent", "received", "status_sent", "status_received", "rejected")


def _province(org_id: str) -> str:
    return str(OrgId.parse(org_id).root) if org_id else "unknown"


async def report(store: HubStore) -> dict[str, Any]:
    raw = await store.stats()
    totals: dict[str, int] = dict.fromkeys(METRICS, 0)
    by_org: defaultdict[str, dict[str, int]] = defaultdict(lambda: dict.fromkeys(METRICS, 0))
    by_province: defaultdict[str, dict[str, int]] = defaultdict(lambda: dict.fromkeys(METRICS, 0))
    by_day: defaultdict[str, dict[str, int]] = defaultdict(lambda: dict.fromkeys(METRICS, 0))
    rejected: defaultdict[str, int] = defaultdict(int)
    for row in raw["counters"]:
        metric, count = row["metric"], row["count"]
        totals[metric] += count
        by_org[row["org_id"] or "unknown"][metric] += count
        by_province[_province(row["org_id"])][metric] += count
        by_day[row["day"]][metric] += count
        if metric == "rejected":
            rejected[row["reason"]] += count
    return {
        "totals": totals,
        "in_flight": sum(raw["in_flight"].values()),
        "in_flight_by_node": raw["in_flight"],
        "rejected_by_code": dict(rejected),
        "by_province": dict(by_province),
        "by_organization": dict(by_org),
        "by_day": dict(by_day),
    }
