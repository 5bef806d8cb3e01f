"""The hub's statistics: counters by day and organization, shaped for people and scripts."""

from __future__ import annotations

import datetime as dt
import functools
import math
from collections import defaultdict
from typing import Any

from edoc import errors
from edoc.model import MessageKind
from edoc.orgid import OrgId
from edoc.recent import Recent
from edoc.store.hub import CounterSums, HubStore, Tally

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


# A count goes on the UTC day it is made, and a hub instance whose clock is a little
# behind may still add to yesterday: the days before are settled, summed once and kept.
UNSETTLED = dt.timedelta(days=1)


class Counted:
    """The hub's counters summed (edoc.store.hub.CounterSums): the settled days once (again
    when the next day settles), the last two at every look. A look at the statistics or
    the dashboard costs two days' counters, not every day's since the hub began (a year
    of a national network: 2.6 s of the store's reading thread at each)."""

    def __init__(self) -> None:
        self._settled: tuple[dt.date, Recent[CounterSums]] | None = None

    async def sums(self, store: HubStore, today: dt.date) -> CounterSums:
        boundary = today - UNSETTLED
        if self._settled is None or self._settled[0] != boundary:
            self._settled = (boundary, Recent())
        settle = functools.partial(store.counter_sums, dt.date.min, boundary)
        settled = await self._settled[1].value(math.inf, settle)
        return settled + await store.counter_sums(boundary, dt.date.max)


async def report(store: HubStore, counted: Counted, today: dt.date) -> dict[str, Any]:
    """From the counters summed by organization, and by day and province."""
    sums = await counted.sums(store, today)
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
