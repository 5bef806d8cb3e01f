"""What the node's PostgreSQL store writes inside its transactions, and its longer reads."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Sequence

import asyncpg

from edoc.store.node import Event, NewInboxItem, NewOutgoing, StateRule, Tally
from edoc.store.postgres.database import Connection

# the package's size, not its bytes: octet_length of a bytea reads the size its TOAST
# pointer records, without fetching (or decompressing) the value
DUE = """
SELECT t.id, t.outgoing_id, t.route, t.attempts, o.path, octet_length(o.body) AS size,
    o.created_at, o.kind, o.sender, o.document_id
FROM transfers t JOIN outgoing o ON o.id = t.outgoing_id
WHERE t.state = 'pending' AND t.next_at <= $1 AND t.id <> ALL($2::bigint[])
    -- first in, first out per sender, document and route (statuses in order)
    AND NOT EXISTS (SELECT 1 FROM outgoing f JOIN transfers e ON e.outgoing_id = f.id
        WHERE f.sender = o.sender AND f.document_id = o.document_id AND f.id < o.id
        AND e.state = 'pending' AND e.route = t.route)
ORDER BY t.priority DESC, t.id LIMIT $3
"""

# the packages of the outgoing messages carried now
PACKAGES = "SELECT id, body FROM outgoing WHERE id = ANY($1::bigint[]) AND body IS NOT NULL"

# the changes written since the last read folded into progress (by one reader at a time:
# PROGRESS_LOCK), then the counts with the changes written meanwhile
FOLD_PROGRESS = """
WITH folded AS (DELETE FROM progress_changes RETURNING metric, state, change)
INSERT INTO progress (metric, state, count)
SELECT metric, state, SUM(change) FROM folded GROUP BY metric, state
ON CONFLICT (metric, state) DO UPDATE SET count = progress.count + excluded.count
"""
PROGRESS = """
SELECT metric, state, SUM(count) FROM (SELECT metric, state, count FROM progress
    UNION ALL SELECT metric, state, change FROM progress_changes) AS counted
GROUP BY metric, state
"""

STORED_BEFORE = (
    "SELECT id FROM inbox WHERE recipient = $1 AND sender = $2 AND kind = $3"
    " AND document_id = $4 AND business_type = $5 AND status_code = $6"
)


def _json(value: object) -> str:
    return json.dumps(value, ensure_ascii=False)


async def count(conn: Connection, tallies: Sequence[Tally]) -> None:
    # counters in one order: two transactions adding to the same two never deadlock
    for t in sorted(tallies, key=lambda t: (t.day, t.org_id, t.partner, t.metric)):
        await conn.execute(
            "INSERT INTO counters (day, org_id, partner, metric, count)"
            " VALUES ($1, $2, $3, $4, $5) ON CONFLICT (day, org_id, partner, metric)"
            " DO UPDATE SET count = counters.count + excluded.count",
            t.day,
            t.org_id,
            t.partner,
            t.metric,
            t.by,
        )


async def insert_outgoing(conn: Connection, new: NewOutgoing, now: dt.datetime) -> int:
    outgoing_id = int(
        await conn.fetchval(
            "INSERT INTO outgoing (kind, sender, document_id, status_code, idempotency_key,"
            " priority, path, summary, created_at, body)"
            " VALUES ($1, $2, $3, $4, $5, $6, $7, $8::jsonb, $9, $10) RETURNING id",
            new.kind,
            new.sender,
            new.document_id,
            new.status_code,
            new.idempotency_key,
            new.priority,
            new.path,
            _json(new.summary),
            now,
            new.body,
        )
    )
    await conn.executemany(
        "INSERT INTO recipients (outgoing_id, recipient, local, state, history)"
        " VALUES ($1, $2, $3, 'queued', $4::jsonb)",
        [
            (outgoing_id, r, r in new.local, _json([{"state": "queued", "at": now.isoformat()}]))
            for r in new.recipients
        ],
    )
    await conn.executemany(
        "INSERT INTO transfers (outgoing_id, route, state, next_at, priority)"
        " VALUES ($1, $2, 'pending', $3, $4)",
        [(outgoing_id, route, now, new.priority) for route in new.routes],
    )
    return outgoing_id


async def record(
    conn: Connection,
    rows: Sequence[asyncpg.Record],
    event: Event,
    now: dt.datetime,
    rule: StateRule,
) -> None:
    """``event`` joins the history of each recipient row (outgoing id, recipient, state)
    of ``rows`` (locked by the caller), which moves to the state ``rule`` gives."""
    entry = {"state": event.state, "at": now.isoformat(), "detail": event.detail}
    await conn.executemany(
        "UPDATE recipients SET state = $1, history = history || $2::jsonb"
        " WHERE outgoing_id = $3 AND recipient = $4",
        [(rule(shown, event.state), _json([entry]), o, r) for o, r, shown in rows],
    )


async def insert_inbox(conn: Connection, item: NewInboxItem, now: dt.datetime) -> int:
    inbox_id = int(
        await conn.fetchval(
            "INSERT INTO inbox (recipient, sender, kind, document_id, business_type,"
            " status_code, path, summary, received_at, body)"
            " VALUES ($1, $2, $3, $4, $5, $6, $7, $8::jsonb, $9, $10) RETURNING id",
            *item.key,
            item.path,
            _json(item.summary),
            now,
            item.body,
        )
    )
    await conn.executemany(
        "INSERT INTO inbox_attachments (inbox_id, n, name, content_type, size, sha256, path,"
        " body) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        [
            (inbox_id, a.n, a.name, a.content_type, a.size, a.sha256, a.path, a.body)
            for a in item.attachments
        ],
    )
    return inbox_id
