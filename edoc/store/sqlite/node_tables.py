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
-- the dashboard's newest troubled documents, walked newest first; only troubled rows
-- are in it, so a transfer done at its first try never touches it
CREATE INDEX IF NOT EXISTS transfers_troubled ON transfers (outgoing_id)
    WHERE state = 'failed' OR (state = 'pending' AND attempts > 0);
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
    # 1: its last try was refused for the node's credentials (NodeStore.retry_transfer)
    ("transfers", "waits_on_credentials", "INTEGER NOT NULL DEFAULT 0"),
)


# When a recipient first reached 06, or NULL.
_COMPLETED_AT = (
    "(SELECT json_extract(h.value, '$.at') FROM json_each({history}) h"
    " WHERE json_extract(h.value, '$.state') = '06' ORDER BY h.key LIMIT 1)"
)
_DOCUMENT = "(SELECT kind FROM outgoing WHERE id = new.outgoing_id) = 'document'"
# the change that made a recipient first reach 06 (see PROGRESS_COUNTS)
_FIRST_06 = (
    "json_extract(new.history, '$[#-1].state') = '06'"
    f" AND {_COMPLETED_AT.format(history='old.history')} IS NULL"
)
_ADD = " ON CONFLICT (metric, state) DO UPDATE SET count = count + excluded.count;"

# The statistics' counts of where the recipients of the node's documents stand (see
# edoc.store.node.Progress), kept by triggers as the rows change: reading them once
# meant reading every recipient the node ever had. A store made before them has them
# counted from its rows when it first opens (added_scripts): the count inserts a "due" and
# an "on_time" row whatever it finds, so an empty table is one never counted.
# A history only grows, by one entry per change: a recipient first reached 06 when the
# entry added is a 06 and the history before held none (looked for only then).
PROGRESS_COUNTS = f"""
CREATE TABLE IF NOT EXISTS progress (
    metric TEXT NOT NULL,
    state TEXT NOT NULL,
    count INTEGER NOT NULL,
    PRIMARY KEY (metric, state)
);
CREATE TRIGGER IF NOT EXISTS progress_of_new_recipients AFTER INSERT ON recipients WHEN {_DOCUMENT}
BEGIN
    INSERT INTO progress VALUES ('recipients', new.state, 1){_ADD}
    INSERT INTO progress SELECT 'due', '', 1 FROM outgoing
        WHERE id = new.outgoing_id AND json_extract(summary, '$.due_date') IS NOT NULL{_ADD}
END;
CREATE TRIGGER IF NOT EXISTS progress_of_moved_recipients AFTER UPDATE OF state ON recipients
WHEN old.state <> new.state AND {_DOCUMENT}
BEGIN
    UPDATE progress SET count = count - 1 WHERE metric = 'recipients' AND state = old.state;
    INSERT INTO progress VALUES ('recipients', new.state, 1){_ADD}
END;
CREATE TRIGGER IF NOT EXISTS progress_of_completed_recipients AFTER UPDATE OF history ON recipients
WHEN {_FIRST_06}
BEGIN
    INSERT INTO progress SELECT 'on_time', '', 1 FROM outgoing
        WHERE id = new.outgoing_id AND kind = 'document'
        AND substr(json_extract(new.history, '$[#-1].at'), 1, 10)
            <= json_extract(summary, '$.due_date'){_ADD}
END;
INSERT INTO progress (metric, state, count) SELECT * FROM (
    SELECT 'recipients', r.state, COUNT(*) FROM recipients r JOIN outgoing o
        ON o.id = r.outgoing_id WHERE o.kind = 'document' GROUP BY r.state
    UNION ALL SELECT 'due', '', COUNT(*) FROM recipients r JOIN outgoing o
        ON o.id = r.outgoing_id WHERE o.kind = 'document'
        AND json_extract(o.summary, '$.due_date') IS NOT NULL
    UNION ALL SELECT 'on_time', '', COUNT(*) FROM recipients r JOIN outgoing o
        ON o.id = r.outgoing_id WHERE o.kind = 'document'
        AND substr({_COMPLETED_AT.format(history="r.history")}, 1, 10)
            <= json_extract(o.summary, '$.due_date')
) WHERE NOT EXISTS (SELECT 1 FROM progress);
"""  # noqa: S608 (constant text)

# The recipients of documents with a due date that reached 06, on time or late: those
# the on-time share judges (edoc.node.stats). Added after PROGRESS_COUNTS, so a store
# counted before has them counted from its rows when it first opens with them (the
# count inserts a "completed" row whatever it finds).
COMPLETED_COUNT = f"""
CREATE TRIGGER IF NOT EXISTS progress_of_completed_due AFTER UPDATE OF history ON recipients
WHEN {_FIRST_06}
BEGIN
    INSERT INTO progress SELECT 'completed', '', 1 FROM outgoing
        WHERE id = new.outgoing_id AND kind = 'document'
        AND json_extract(summary, '$.due_date') IS NOT NULL{_ADD}
END;
INSERT INTO progress (metric, state, count) SELECT * FROM (
    SELECT 'completed', '', COUNT(*) FROM recipients r JOIN outgoing o
        ON o.id = r.outgoing_id WHERE o.kind = 'document'
        AND json_extract(o.summary, '$.due_date') IS NOT NULL
        AND {_COMPLETED_AT.format(history="r.history")} IS NOT NULL
) WHERE NOT EXISTS (SELECT 1 FROM progress WHERE metric = 'completed');
"""  # noqa: S608 (constant text)

# tables added since the first release (see SqliteDatabase.added_scripts)
ADDED_TABLES = (PROGRESS_COUNTS, COMPLETED_COUNT)


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
