"""The node's statistics: what its agencies sent and received, by agency, partner
province and day; the share personally signed; recipients' statuses; on-time share."""

from __future__ import annotations

import datetime as dt
import functools
from dataclasses import dataclass
from typing import Any

from edoc.model import reached, recipient_state
from edoc.offload import Offload
from edoc.orgid import OrgId
from edoc.settled import Days, Figures, Settled, joined, kept_days, merged
from edoc.store.node import Count, NewInboxItem, NewOutgoing, NodeStore, Progress, Sums, Tally


def _province(org_id: str) -> str:
    return str(OrgId.parse(org_id).root)


def sent_tallies(document: NewOutgoing, personally_signed: bool, day: dt.date) -> list[Tally]:
    """The counters a document an agency sends adds to: its sender's, the share signed,
    and each recipient's province."""
    tallies = [Tally(day, document.sender, "", "sent")]
    if personally_signed:
        tallies.append(Tally(day, document.sender, "", "sent_signed"))
    tallies += [Tally(day, document.sender, _province(to), "sent_to") for to in document.recipients]
    return tallies


def received_tallies(document: NewInboxItem, day: dt.date) -> list[Tally]:
    """The counter a document an agency receives adds to, with its sender's province."""
    return [Tally(day, document.recipient, _province(document.sender), "received")]


@dataclass(frozen=True)
class Tallied:
    """The statistics' figures from some days' counter sums, and the counts by partner of
    the last days (the dashboard's chart). Two of other days add up by ``+`` (into new
    ones: the settled days' are kept and added to at each look)."""

    totals: dict[str, int]  # sent, received, sent_signed
    by_agency: Figures
    by_partner: Figures
    by_day: Figures
    days: Days[Count]

    @classmethod
    def of(cls, sums: Sums, today: dt.date) -> Tallied:
        days = kept_days(sums.by_day, today)
        tallied = cls(dict.fromkeys(("sent", "received", "sent_signed"), 0), {}, {}, {}, days)
        for org_id, partner, metric, count in sums.by_org:
            if metric in tallied.totals:
                tallied.totals[metric] += count
            if metric in ("sent", "received"):
                _add(tallied.by_agency, org_id, metric, count)
            if metric in ("sent_to", "received"):
                _add(tallied.by_partner, partner, metric.removesuffix("_to"), count)
        for counter in sums.by_day:
            if counter.metric in ("sent", "received"):
                _add(tallied.by_day, counter.day.isoformat(), counter.metric, counter.count)
        return tallied

    def __add__(self, other: Tallied) -> Tallied:
        return Tallied(
            {metric: n + other.totals[metric] for metric, n in self.totals.items()},
            merged(self.by_agency, other.by_agency),
            merged(self.by_partner, other.by_partner),
            merged(self.by_day, other.by_day),
            joined(self.days, other.days),
        )


def _add(figures: Figures, key: str, metric: str, count: int) -> None:
    into = figures.setdefault(key, {})
    into[metric] = into.get(metric, 0) + count


async def tallied(
    store: NodeStore, offload: Offload, figures: Settled[Tallied], today: dt.date
) -> Tallied:
    """Every day's figures, the settled days' made once (edoc.settled)."""
    return await figures.sums(functools.partial(_tallied_days, store, offload, today), today)


async def _tallied_days(
    store: NodeStore, offload: Offload, today: dt.date, first: dt.date, before: dt.date
) -> Tallied:
    # in a thread, as the hub's (edoc.hub.stats._tallied_days says why)
    return await offload.run(Tallied.of, await store.counter_sums(first, before), today)


def on_time_share(progress: Progress) -> float | None:
    """Of the recipients of documents with a due date that completed (06), the share
    that did on or before it; None while none has: nothing to judge yet, not "none on
    time". One still under way is not judged (before its due date it may well be on
    time), nor one that never completes (a limit: counting those past their due date
    would read every open recipient at each look)."""
    return round(progress.on_time / progress.completed, 4) if progress.completed else None


async def report(store: NodeStore, figures: Tallied) -> dict[str, Any]:
    """From every day's figures (``tallied``) and the recipients' progress."""
    totals = figures.totals
    sent = totals["sent"]
    progress = await store.progress()
    states = progress.states
    delivered = sum(n for state, n in states.items() if reached(recipient_state(state)))
    recipients = sum(states.values())
    return {
        "sent": sent,
        "received": totals["received"],
        "share_signed": round(totals["sent_signed"] / sent, 4) if sent else None,
        "share_delivered": round(delivered / recipients, 4) if recipients else None,
        "on_time_share": on_time_share(progress),
        "status_breakdown": states,
        "by_agency": dict(sorted(figures.by_agency.items())),
        "by_partner_province": dict(sorted(figures.by_partner.items())),
        "by_day": dict(sorted(figures.by_day.items())),
    }
