"""The node's statistics: what its agencies sent and received, by agency, partner
province and day; the share personally signed; recipients' statuses; on-time share."""

from __future__ import annotations

from collections import Counter, defaultdict
from typing import Any

from edoc.model import reached, recipient_state
from edoc.store.base import NodeStore


async def report(store: NodeStore) -> dict[str, Any]:
    sent = received = signed = 0
    by_agency: defaultdict[str, Counter[str]] = defaultdict(Counter)
    by_partner: defaultdict[str, Counter[str]] = defaultdict(Counter)
    by_day: defaultdict[str, Counter[str]] = defaultdict(Counter)
    for day, org, partner, metric, count in await store.counters():
        if metric == "sent":
            sent += count
            by_agency[org]["sent"] += count
            by_day[day]["sent"] += count
        elif metric == "sent_signed":
            signed += count
        elif metric == "sent_to":
            by_partner[partner]["sent"] += count
        elif metric == "received":
            received += count
            by_agency[org]["received"] += count
            by_partner[partner]["received"] += count
            by_day[day]["received"] += count
    statuses: Counter[str] = Counter()
    due = on_time = 0
    for _sender, state, due_date, completed_at in await store.recipient_states():
        statuses[state] += 1
        if due_date and completed_at:
            due += 1
            on_time += completed_at[:10] <= due_date
        elif due_date:
            due += 1
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
