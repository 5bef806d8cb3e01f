"""The node's statistics: what its agencies sent and received, by agency, partner
province and day; the share personally signed; recipients' statuses; on-time share."""

from __future__ import annotations

import datetime as dt
from collections import Counter, defaultdict
from typing import Any

from edoc.model import StatusCode, reached, recipient_state
from edoc.orgid import OrgId
from edoc.store.node import NewInboxItem, NewOutgoing, NodeStore, Tally


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


async def report(store: NodeStore) -> dict[str, Any]:
    sent = received = signed = 0
    by_agency: defaultdict[str, Counter[str]] = defaultdict(Counter)
    by_partner: defaultdict[str, Counter[str]] = defaultdict(Counter)
    by_day: defaultdict[str, Counter[str]] = defaultdict(Counter)
    for row in await store.counters():
        day = row.day.isoformat()
        if row.metric == "sent":
            sent += row.count
            by_agency[row.org_id]["sent"] += row.count
            by_day[day]["sent"] += row.count
        elif row.metric == "sent_signed":
            signed += row.count
        elif row.metric == "sent_to":
            by_partner[row.partner]["sent"] += row.count
        elif row.metric == "received":
            received += row.count
            by_agency[row.org_id]["received"] += row.count
            by_partner[row.partner]["received"] += row.count
            by_day[day]["received"] += row.count
    statuses: Counter[str] = Counter()
    due = on_time = 0
    for recipient in await store.recipient_progress(StatusCode.COMPLETED):
        statuses[recipient.state] += 1
        if recipient.due_date is not None:
            due += 1
            completed = recipient.reached_at
            on_time += completed is not None and completed.date() <= recipient.due_date
    delivered = sum(n for state, n in statuses.items() if reached(recipient_state(state)))
    recipients = sum(statuses.values())
    return {
        "sent": sent,
        "received": received,
        "share_signed": round(signed / sent, 4) if sent else None,
        "share_delivered": round(delivered / recipients, 4) if recipients else None,
        "on_time_share": round(on_time / due, 4) if due else None,
        "status_breakdown": dict(sorted(statuses.items())),
        "by_agency": {k: dict(v) for k, v in sorted(by_agency.items())},
        "by_partner_province": {k: dict(v) for k, v in sorted(by_partner.items())},
        "by_day": {k: dict(v) for k, v in sorted(by_day.items())},
    }
