"""The hub's statistics: counters by day and organization, shaped for people and scripts."""

from __future__ import annotations

import datetime as dt
import functools
from dataclasses import dataclass
from typing import Any

from edoc import errors
from edoc.model import MessageKind
from edoc.offload import Offload
from edoc.orgid import OrgId
from edoc.settled import Figures, Settled, merged
from edoc.store.hub import STUCK_AFTER, HubStore, Sums, Tally

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


@dataclass(frozen=True)
class Tallied:
    """The report's figures from some days' counter sums; two of other days add up by
    ``+`` (into new dicts: the settled days' are kept and added to at each report)."""

    totals: dict[str, int]
    by_org: Figures
    by_province: Figures
    by_day: Figures
    refused: dict[str, int]

    @classmethod
    def of(cls, sums: Sums) -> Tallied:
        tallied = cls(dict.fromkeys(METRICS, 0), {}, {}, {}, {})
        for org_id, metric, reason, count in sums.by_org:
            tallied.totals[metric] += count
            _add(tallied.by_org, org_id or "unknown", metric, count)
            _add(tallied.by_province, _province(org_id), metric, count)
            if metric == "rejected":
                tallied.refused[reason] = tallied.refused.get(reason, 0) + count
        for counter in sums.by_day:
            _add(tallied.by_day, counter.day.isoformat(), counter.metric, counter.count)
        return tallied

    def __add__(self, other: Tallied) -> Tallied:
        return Tallied(
            {metric: n + other.totals[metric] for metric, n in self.totals.items()},
            merged(self.by_org, other.by_org),
            merged(self.by_province, other.by_province),
            merged(self.by_day, other.by_day),
            {
                code: self.refused.get(code, 0) + other.refused.get(code, 0)
                for code in self.refused | other.refused
            },
        )


def _add(figures: Figures, key: str, metric: str, count: int) -> None:
    figures.setdefault(key, dict.fromkeys(METRICS, 0))[metric] += count


async def _tallied_days(
    store: HubStore, offload: Offload, first: dt.date, before: dt.date
) -> Tallied:
    # in a thread: a year's settled days are 0.1-0.2 s of Python, which the event loop
    # then shares at the GIL's switch interval instead of waiting for it whole
    return await offload.run(Tallied.of, await store.counter_sums(first, before))


async def report(
    store: HubStore, offload: Offload, tallied: Settled[Tallied], today: dt.date
) -> dict[str, Any]:
    """From the counters summed by organization, and by day and province; the settled
    days' figures made once (edoc.settled), the last two days' added at each report (a
    year's settled days were 0.08-0.13 s of the event loop at each)."""
    figures = await tallied.sums(functools.partial(_tallied_days, store, offload), today)
    backlogs = await store.backlogs()
    in_flight = {backlog.node: backlog.waiting for backlog in backlogs}
    stuck = {backlog.node: backlog.stuck for backlog in backlogs if backlog.stuck}
    return {
        "totals": figures.totals,
        "in_flight": sum(in_flight.values()),
        "in_flight_by_node": in_flight,
        # of those, collected STUCK_AFTER times or more and never acknowledged: still owed
        "stuck": sum(stuck.values()),
        "stuck_by_node": stuck,
        "stuck_after": STUCK_AFTER,
        "rejected_by_code": dict(sorted(figures.refused.items())),
        "by_province": dict(sorted(figures.by_province.items())),
        "by_organization": dict(sorted(figures.by_org.items())),
        "by_day": dict(sorted(figures.by_day.items())),
    }
