"""The node's SQLite rows written and read inside one change: functions called on the
connection's thread (edoc.store.sqlite.database.SqliteDatabase._change), a change's
statements in one call."""

from __future__ import annotations

import datetime as dt
import json
import sqlite3
from collections.abc import Sequence
from typing import Any

from edoc.model import DeliveryState, TransferState
from edoc.store.node import (
    Event,
    NewInboxItem,
    NewOutgoing,
    Outgoing,
    OutgoingRecipient,
    StateRule,
    Tally,
    TransferRecord,
    as_stored,
    history,
)
from edoc.store.sqlite.database import from_ms, to_ms

OUTGOING = (
    "SELECT id, kind, sender, document_id, status_code, priority, path, summary, created_at"
    " FROM outgoing"
)


def outgoing(db: sqlite3.Connection, row: Any) -> Outgoing:
    """An outgoing message from its row (OUTGOING's columns), with its recipients and
    transfers."""
    recipients = db.execute(
        "SELECT recipient, local, state, history FROM recipients WHERE outgoing_id=?"
        " ORDER BY recipient",
        (row[0],),
    )
    transfers = db.execute(
        "SELECT route, state, attempts, last_error FROM transfers WHERE outgoing_id=? ORDER BY id",
        (row[0],),
    )
    return Outgoing(
        id=row[0],
        kind=row[1],
        sender=row[2],
        document_id=row[3],
        status_code=row[4],
        priority=row[5],
        path=row[6],
        summary=json.loads(row[7]),
        created_at=from_ms(row[8]),
        recipients=tuple(
            OutgoingRecipient(r[0], bool(r[1]), r[2], history(r[3])) for r in recipients
        ),
        transfers=tuple(TransferRecord(t[0], t[1], t[2], t[3]) for t in transfers),
    )


def insert_outgoing(db: sqlite3.Connection, new: NewOutgoing, now: dt.datetime) -> Outgoing:
    """The message, a row per recipient and a transfer per route; the message as
    :func:`outgoing` would read it back (made from what was written: no query more)."""
    return as_stored(new, insert_outgoing_rows(db, new, now), now, from_ms(to_ms(now)))


def insert_outgoing_rows(db: sqlite3.Connection, new: NewOutgoing, now: dt.datetime) -> int:
    """The message, a row per recipient and a transfer per route; its id (a status queued
    as an answer needs no more: the record as read back cost more than its rows)."""
    summary = json.dumps(new.summary, ensure_ascii=False)
    queued = json.dumps([{"state": DeliveryState.QUEUED, "at": now.isoformat()}])
    created_at, routes = to_ms(now), new.routes
    outgoing_id = int(
        db.execute(
            "INSERT INTO outgoing (kind, sender, document_id, status_code,"
            " idempotency_key, priority, path, summary, created_at, body)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                new.kind,
                new.sender,
                new.document_id,
                new.status_code,
                new.idempotency_key,
                new.priority,
                new.path,
                summary,
                created_at,
                new.body,
            ),
        ).lastrowid
        or 0
    )
    db.executemany(
        "INSERT INTO recipients (outgoing_id, recipient, local, state, history)"
        " VALUES (?, ?, ?, ?, ?)",
        [(outgoing_id, r, r in new.local, DeliveryState.QUEUED, queued) for r in new.recipients],
    )
    db.executemany(
        "INSERT INTO transfers (outgoing_id, route, state, next_at, priority)"
        " VALUES (?, ?, ?, ?, ?)",
        [(outgoing_id, route, TransferState.PENDING, created_at, new.priority) for route in routes],
    )
    return outgoing_id


def insert_inbox(db: sqlite3.Connection, item: NewInboxItem, now: dt.datetime) -> int:
    """The item received and its attachments; the item's id."""
    inbox_id = int(
        db.execute(
            "INSERT INTO inbox (recipient, sender, kind, document_id, business_type,"
            " status_code, path, summary, received_at, body)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                *item.key,
                item.path,
                json.dumps(item.summary, ensure_ascii=False),
                to_ms(now),
                item.body,
            ),
        ).lastrowid
        or 0
    )
    db.executemany(
        "INSERT INTO inbox_attachments (inbox_id, n, name, content_type, size,"
        " sha256, path, body) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        [
            (inbox_id, a.n, a.name, a.content_type, a.size, a.sha256, a.path, a.body)
            for a in item.attachments
        ],
    )
    return inbox_id


def insert_answer(db: sqlite3.Connection, inbox_id: int, code: str, now: dt.datetime) -> None:
    db.execute(
        "INSERT INTO answers (inbox_id, code, at) VALUES (?, ?, ?)", (inbox_id, code, to_ms(now))
    )


def count(db: sqlite3.Connection, tallies: Sequence[Tally]) -> None:
    db.executemany(
        "INSERT INTO counters (day, org_id, partner, metric, count) VALUES (?, ?, ?, ?, ?)"
        " ON CONFLICT (day, org_id, partner, metric)"
        " DO UPDATE SET count = count + excluded.count",
        [(t.day.isoformat(), t.org_id, t.partner, t.metric, t.by) for t in tallies],
    )


def record(
    db: sqlite3.Connection, rows: Any, event: Event, now: dt.datetime, rule: StateRule
) -> None:
    """``event`` joins the history of each recipient row (outgoing id, recipient, state)
    of ``rows``, which moves to the state ``rule`` gives."""
    db.executemany(
        "UPDATE recipients SET state=?, history=json_insert(history, '$[#]',"
        " json_object('state', ?, 'at', ?, 'detail', ?))"
        " WHERE outgoing_id=? AND recipient=?",
        [
            (rule(shown, event.state), event.state, now.isoformat(), event.detail, o, r)
            for o, r, shown in rows
        ],
    )
