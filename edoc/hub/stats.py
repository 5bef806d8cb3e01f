"""The hub's statistics: counters by day and organization, shaped for people and scripts."""

from __future__ import annotations

import datetime as dt
import functools
from collections import defaultdict
from typing import Any

from edoc import errors
from edoc.model import MessageKind
from edoc.orgid import OrgId
from edoc.settled import Settled
from edoc.store.hub import HubStore, Sums, Tally

METRICS = ("sent", "received", "status_sent", "status_received", "rejected")


def sent(kind: str, sender: str, day: dt.date) -> Tally:
    """A message the hub accepted, counted for its sender."""
    return Tally(day, sender, "sent" if kind == MessageKind.DOCUMENT else "status_sent", "")


def received(kind: str, recipient: str, day: dt.date) -> Tally:
    """A message delivered (acknowledged for the first time), counted for its recipient."""
    metric = "received" if kind == MessageKind.DOCUMENT else "status_received"
    return Tally(day, recipient, metric, "")


def rejected(sender: str, code: str, day: dt.date) -> Tally:
    """A message refused with error ``code``, counted for the sender it claims ("" if none)."""
    return Tally(day, sender, "rejected", code)


@functools.lru_cache(maxsize=65536)
def _province(org_id: str) -> str:
    """The province or ministry of an organization; "unknown" for a refused message's
    claimed sender that is no valid identifier (the schema's pattern is looser)."""
    try:
        return str(OrgId.parse(org_id).root)
    except errors.InvalidOrgId:
        return "unknown"


async def report(store: HubStore, counted: Settled[Sums], today: dt.date) -> dict[str, Any]:
    """From the counters summed by organization, and by day and province."""
    sums = await counted.sums(store.counter_sums, today)
    totals: dict[str, int] = dict.fromkeys(METRICS, 0)
    by_org: defaultdict[str, dict[str, int]] = defaultdict(lambda: dict.fromkeys(METRICS, 0))
    by_province: defaultdict[str, dict[str, int]] = defaultdict(lambda: dict.fromkeys(METRICS, 0))
    by_day: defaultdict[str, dict[str, int]] = defaultdict(lambda: dict.fromkeys(METRICS, 0))
    refused: defaultdict[str, int] = defaultdict(int)
    for org_id, metric, reason, count in sums.by_org:
        totals[metric] += count
        by_org[org_id or "unknown"][metric] += count
        by_province[_province(org_id)][metric] += count
        if metric == "rejected":
            refused[reason] += count
    for counter in sums.by_day:  # (the settled days', then the last two's: in order)
        by_day[counter.day.isoformat()][counter.metric] += counter.count
    in_flight = {backlog.node: backlog.waiting for backlog in await store.backlogs()}
    return {
        "totals": totals,
        "in_flight": sum(in_flight.values()),
        "in_flight_by_node": in_flight,
        "rejected_by_code": dict(sorted(refused.items())),
        "by_province": dict(sorted(by_province.items())),
        "by_organization": dict(sorted(by_org.items())),
        "by_day": dict(by_day),
    }
