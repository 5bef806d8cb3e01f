"""The node's statistics: what its agencies sent and received, by agency, partner
province and day; the share personally signed; recipients' statuses; on-time share."""

from __future__ import annotations

import datetime as dt
from collections import Counter, defaultdict
from typing import Any

from edoc.model import reached, recipient_state
from edoc.orgid import OrgId
from edoc.store.node import NewInboxItem, NewOutgoing, NodeStore, Sums, Tally


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


async def report(store: NodeStore, sums: Sums) -> dict[str, Any]:
    """From the counters summed by agency and partner, and by day (NodeState.counted)."""
    sent = received = signed = 0
    by_agency: defaultdict[str, Counter[str]] = defaultdict(Counter)
    by_partner: defaultdict[str, Counter[str]] = defaultdict(Counter)
    by_day: defaultdict[str, Counter[str]] = defaultdict(Counter)
    for org_id, partner, metric, count in sums.by_org:
        if metric == "sent":
            sent += count
            by_agency[org_id]["sent"] += count
        elif metric == "sent_signed":
            signed += count
        elif metric == "sent_to":
            by_partner[partner]["sent"] += count
        elif metric == "received":
            received += count
            by_agency[org_id]["received"] += count
            by_partner[partner]["received"] += count
    for counter in sums.by_day:
        if counter.metric in ("sent", "received"):
            by_day[counter.day.isoformat()][counter.metric] += counter.count
    progress = await store.progress()
    states = progress.states
    delivered = sum(n for state, n in states.items() if reached(recipient_state(state)))
    recipients = sum(states.values())
    return {
        "sent": sent,
        "received": received,
        "share_signed": round(signed / sent, 4) if sent else None,
        "share_delivered": round(delivered / recipients, 4) if recipients else None,
        "on_time_share": round(progress.on_time / progress.due, 4) if progress.due else None,
        "status_breakdown": states,
        "by_agency": {k: dict(v) for k, v in sorted(by_agency.items())},
        "by_partner_province": {k: dict(v) for k, v in sorted(by_partner.items())},
        "by_day": {k: dict(v) for k, v in sorted(by_day.items())},
    }
