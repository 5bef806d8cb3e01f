"""The node's SQLite tables, and the rows read from them turned into records."""

from __future__ import annotations

import json
from typing import Any

from edoc.store.node import InboxAttachment, InboxItem
from edoc.store.sqlite.database import from_ms

SCHEMA = """
-- the first release's tables; columns added since are in added_columns, added to new
-- stores and old ones alike when they open
CREATE TABLE IF NOT EXISTS agencies (
    org_id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    token_sha256 TEXT NOT NULL UNIQUE
);
CREATE TABLE IF NOT EXISTS outgoing (
    id INTEGER PRIMARY KEY,
    kind TEXT NOT NULL,
    sender TEXT NOT NULL,
    document_id TEXT NOT NULL,
    status_code TEXT NOT NULL,
    idempotency_key TEXT,
    priority INTEGER NOT NULL,
    path TEXT NOT NULL,
    summary TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    UNIQUE (sender, idempotency_key)
);
CREATE TABLE IF NOT EXISTS transfers (
    id INTEGER PRIMARY KEY,
    outgoing_id INTEGER NOT NULL REFERENCES outgoing(id),
    route TEXT NOT NULL,
    state TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    next_at INTEGER NOT NULL,
    last_error TEXT NOT NULL DEFAULT '',
    priority INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS transfers_due ON transfers (state, next_at, priority DESC);
-- the outbox takes the most urgent due transfers: walked in this order it stops after a
-- window's worth, where sorting every due transfer cost time in proportion to the backlog
CREATE INDEX IF NOT EXISTS transfers_in_order ON transfers (state, priority DESC, id);
-- the outbox's first-in-first-out check looks up earlier transfers of the same document
CREATE INDEX IF NOT EXISTS transfers_by_outgoing ON transfers (outgoing_id, state);
CREATE INDEX IF NOT EXISTS outgoing_by_document ON outgoing (sender, document_id);
CREATE TABLE IF NOT EXISTS recipients (
    outgoing_id INTEGER NOT NULL REFERENCES outgoing(id),
    recipient TEXT NOT NULL,
    local INTEGER NOT NULL,
    state TEXT NOT NULL,
    history TEXT NOT NULL,
    PRIMARY KEY (outgoing_id, recipient)
);
CREATE TABLE IF NOT EXISTS inbox (
    id INTEGER PRIMARY KEY,
    recipient TEXT NOT NULL,
    sender TEXT NOT NULL,
    kind TEXT NOT NULL,
    document_id TEXT NOT NULL,
    business_type INTEGER NOT NULL,
    status_code TEXT NOT NULL,
    path TEXT NOT NULL,
    summary TEXT NOT NULL,
    received_at INTEGER NOT NULL,
    UNIQUE (recipient, sender, kind, document_id, business_type, status_code)
);
CREATE INDEX IF NOT EXISTS inbox_by_recipient ON inbox (recipient, kind, received_at);
CREATE TABLE IF NOT EXISTS inbox_attachments (
    inbox_id INTEGER NOT NULL REFERENCES inbox(id),
    n INTEGER NOT NULL,
    name TEXT NOT NULL,
    content_type TEXT NOT NULL,
    size INTEGER NOT NULL,
    sha256 TEXT NOT NULL,
    path TEXT NOT NULL,
    PRIMARY KEY (inbox_id, n)
);
CREATE TABLE IF NOT EXISTS answers (
    inbox_id INTEGER NOT NULL REFERENCES inbox(id),
    code TEXT NOT NULL,
    at INTEGER NOT NULL,
    PRIMARY KEY (inbox_id, code)
);
CREATE TABLE IF NOT EXISTS counters (
    day TEXT NOT NULL,
    org_id TEXT NOT NULL,
    partner TEXT NOT NULL,
    metric TEXT NOT NULL,
    count INTEGER NOT NULL,
    PRIMARY KEY (day, org_id, partner, metric)
);
"""

# columns added since the first release (see SqliteDatabase.added_columns)
ADDED_COLUMNS = (
    ("outgoing", "body", "BLOB"),
    ("inbox", "body", "BLOB"),
    ("inbox_attachments", "body", "BLOB"),
)


# An inbox item with its attachments and answers in one query (listing is a hot path).
INBOX_ITEM = (
    "SELECT i.id, i.recipient, i.sender, i.kind, i.document_id, i.business_type,"
    " i.status_code, i.path, i.summary, i.received_at,"
    " (SELECT json_group_array(json_array(n, name, content_type, size, sha256, path))"
    "  FROM (SELECT * FROM inbox_attachments WHERE inbox_id = i.id ORDER BY n)),"
    " (SELECT json_group_array(code) FROM (SELECT code FROM answers WHERE inbox_id = i.id"
    "  ORDER BY at))"
    " FROM inbox i"
)


def inbox_item(r: Any) -> InboxItem:
    return InboxItem(
        id=r[0],
        recipient=r[1],
        sender=r[2],
        kind=r[3],
        document_id=r[4],
        business_type=r[5],
        status_code=r[6],
        path=r[7],
        summary=json.loads(r[8]),
        received_at=from_ms(r[9]),
        attachments=tuple(
            InboxAttachment(a[0], a[1], a[2], a[3], a[4], a[5]) for a in json.loads(r[10])
        ),
        answers=tuple(json.loads(r[11])),
    )
