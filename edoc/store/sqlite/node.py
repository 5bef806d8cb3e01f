"""The node's embedded store (SQLite): agencies, outgoing documents and their outbox,
per-recipient states, the inbox, and counters."""

from __future__ import annotations

import datetime as dt
import json
import sqlite3
from collections.abc import Collection
from typing import Any

from edoc import errors
from edoc.model import StatusCode, may_follow
from edoc.store.base import (
    InboxAttachment,
    InboxItem,
    NewInboxItem,
    NewOutgoing,
    Outgoing,
    Transfer,
)
from edoc.store.sqlite_base import SqliteDatabase, from_ms, to_ms

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


def _province(org_id: str) -> str:
    return f"000.00.00.{org_id[-3:]}"


class SqliteNodeStore(SqliteDatabase):
    schema = SCHEMA
    added_columns = (
        ("outgoing", "body", "BLOB"),
        ("inbox", "body", "BLOB"),
        ("inbox_attachments", "body", "BLOB"),
    )

    # --- agencies -----------------------------------------------------------------------------
    async def add_agency(self, org_id: str, name: str, token_sha256: str) -> None:
        async with self._transaction() as db:
            await db.execute(
                "INSERT INTO agencies (org_id, name, token_sha256) VALUES (?, ?, ?)"
                " ON CONFLICT (org_id) DO UPDATE SET name=excluded.name,"
                " token_sha256=excluded.token_sha256",
                (org_id, name, token_sha256),
            )

    async def agency_for_token(self, token_sha256: str) -> str | None:
        rows = await self._rows("SELECT org_id FROM agencies WHERE token_sha256=?", (token_sha256,))
        return str(rows[0][0]) if rows else None

    async def agencies(self) -> list[tuple[str, str]]:
        rows = await self._rows("SELECT org_id, name FROM agencies ORDER BY org_id")
        return [(row[0], row[1]) for row in rows]

    # --- outgoing and the outbox ------------------------------------------------------------
    async def outgoing_by_key(self, sender: str, key: str) -> Outgoing | None:
        rows = await self._rows(
            "SELECT id FROM outgoing WHERE sender=? AND idempotency_key=?", (sender, key)
        )
        return await self.outgoing(rows[0][0]) if rows else None

    async def find_outgoing(self, sender: str, document_id: str) -> Outgoing | None:
        rows = await self._rows(
            "SELECT id FROM outgoing WHERE kind='document' AND sender=? AND document_id=?"
            " ORDER BY id LIMIT 1",
            (sender, document_id),
        )
        return await self.outgoing(rows[0][0]) if rows else None

    async def add_outgoing(self, new: NewOutgoing, now: dt.datetime) -> Outgoing:
        """The message, its per-recipient rows and its transfers, in one transaction."""
        try:
            async with self._transaction() as db:
                outgoing_id = await self._insert_outgoing(db, new, now)
        except sqlite3.IntegrityError:
            raise errors.DuplicateDocument(
                "this Idempotency-Key was used for another document"
            ) from None
        result = await self.outgoing(outgoing_id or 0)
        assert result is not None
        return result

    async def _insert_outgoing(self, db: Any, new: NewOutgoing, now: dt.datetime) -> int:
        history = json.dumps([{"state": "queued", "at": now.isoformat()}])
        cursor = await db.execute(
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
                json.dumps(new.summary, ensure_ascii=False),
                to_ms(now),
                new.body,
            ),
        )
        outgoing_id = int(cursor.lastrowid or 0)
        await db.executemany(
            "INSERT INTO recipients (outgoing_id, recipient, local, state, history)"
            " VALUES (?, ?, ?, 'queued', ?)",
            [(outgoing_id, r, r in new.local, history) for r in new.recipients],
        )
        routes = (["hub"] if set(new.recipients) - set(new.local) else []) + (
            ["local"] if new.local else []
        )
        await db.executemany(
            "INSERT INTO transfers (outgoing_id, route, state, next_at, priority)"
            " VALUES (?, ?, 'pending', ?, ?)",
            [(outgoing_id, route, to_ms(now), new.priority) for route in routes],
        )
        if new.kind == "document":
            await self._count(db, now, new.sender, "", "sent")
            if new.summary.get("personally_signed"):
                await self._count(db, now, new.sender, "", "sent_signed")
            for recipient in new.recipients:
                await self._count(db, now, new.sender, _province(recipient), "sent_to")
        return outgoing_id

    async def outgoing(self, outgoing_id: int) -> Outgoing | None:
        rows = await self._rows(
            "SELECT id, kind, sender, document_id, status_code, priority, path, summary,"
            " created_at FROM outgoing WHERE id=?",
            (outgoing_id,),
        )
        if not rows:
            return None
        row = rows[0]
        recipients = await self._rows(
            "SELECT recipient, local, state, history FROM recipients WHERE outgoing_id=?"
            " ORDER BY recipient",
            (outgoing_id,),
        )
        transfers = await self._rows(
            "SELECT route, state, attempts, last_error FROM transfers WHERE outgoing_id=?",
            (outgoing_id,),
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
            recipients=[
                {"org_id": r[0], "local": bool(r[1]), "state": r[2], "history": json.loads(r[3])}
                for r in recipients
            ],
            transfers=[
                {"route": t[0], "state": t[1], "attempts": t[2], "last_error": t[3]}
                for t in transfers
            ],
        )

    async def due_transfers(
        self, now: dt.datetime, limit: int, under_way: Collection[int] = ()
    ) -> list[Transfer]:
        """The most urgent due transfers, except those ``under_way`` (still pending)."""
        rows = await self._rows(
            "SELECT t.id, t.outgoing_id, t.route, t.attempts, o.path, o.body, o.created_at, o.kind,"
            " o.sender, o.document_id FROM transfers t INDEXED BY transfers_in_order"
            " JOIN outgoing o ON o.id = t.outgoing_id"
            " WHERE t.state='pending' AND t.next_at <= ?"
            " AND t.id NOT IN (SELECT value FROM json_each(?))"
            # first in, first out per sender, document and route (statuses in order)
            # (driven from the earlier outgoing rows of the same document, by index: the
            # other way round the check was quadratic in the backlog)
            " AND NOT EXISTS (SELECT 1 FROM outgoing f JOIN transfers e ON e.outgoing_id = f.id"
            "  WHERE f.sender = o.sender AND f.document_id = o.document_id AND f.id < o.id"
            "  AND e.state = 'pending' AND e.route = t.route)"
            " ORDER BY t.priority DESC, t.id LIMIT ?",
            (to_ms(now), json.dumps(list(under_way)), limit),
        )
        return [
            Transfer(r[0], r[1], r[2], r[3], r[4], r[5], from_ms(r[6]), r[7], r[8], r[9])
            for r in rows
        ]

    async def next_transfer_at(self, after: dt.datetime) -> dt.datetime | None:
        """When the next retry falls due (transfers due already are under way)."""
        rows = await self._rows(
            "SELECT MIN(next_at) FROM transfers WHERE state='pending' AND next_at > ?",
            (to_ms(after),),
        )
        return from_ms(rows[0][0]) if rows and rows[0][0] is not None else None

    async def retry_transfer(self, transfer_id: int, at: dt.datetime, error: str) -> None:
        async with self._transaction() as db:
            await db.execute(
                "UPDATE transfers SET attempts=attempts+1, next_at=?, last_error=? WHERE id=?",
                (to_ms(at), error, transfer_id),
            )

    async def retry_now(self, route: str, now: dt.datetime) -> None:
        """Every pending transfer on ``route`` waiting out its backoff falls due now."""
        async with self._transaction() as db:
            await db.execute(
                "UPDATE transfers SET next_at=? WHERE state='pending' AND next_at > ? AND route=?",
                (to_ms(now), to_ms(now), route),
            )

    async def finish_transfer(
        self, transfer: Transfer, state: str, recipient_state: str, detail: str, now: dt.datetime
    ) -> None:
        """Close a transfer and move the recipients it carried to ``recipient_state``."""
        async with self._transaction() as db:
            await db.execute(
                "UPDATE transfers SET state=?, attempts=attempts+1, last_error=? WHERE id=?",
                (state, detail if state == "failed" else "", transfer.id),
            )
            local = 1 if transfer.route == "local" else 0
            # Only forward: when a transfer finishes late (the node was killed after the hub
            # took it, and the resend got the hub's first answer), the recipient may have
            # answered 01 already; "sent" must not overwrite that, only join the history.
            rows = await db.execute_fetchall(
                "SELECT recipient, state FROM recipients WHERE outgoing_id=? AND local=?",
                (transfer.outgoing_id, local),
            )
            for recipient, before in rows:
                after = before if before.isdigit() else recipient_state
                await self._set_state(
                    db, transfer.outgoing_id, recipient, after, recipient_state, detail, now
                )

    async def _set_state(
        self,
        db: Any,
        outgoing_id: int,
        recipient: str,
        state: str,
        event: str,
        detail: str,
        now: dt.datetime,
    ) -> None:
        """Move a recipient row to ``state``; its history records what happened, ``event``
        (which may be behind the state when it comes late)."""
        await db.execute(
            "UPDATE recipients SET state=?, history=json_insert(history, '$[#]',"
            " json_object('state', ?, 'at', ?, 'detail', ?))"
            " WHERE outgoing_id=? AND recipient=?",
            (state, event, now.isoformat(), detail, outgoing_id, recipient),
        )

    async def _record_status(self, db: Any, status: NewInboxItem, now: dt.datetime) -> None:
        """A recipient's status about our document: its recipient row moves forward to the
        status's code (a status overtaken by a later one only joins the history)."""
        code = status.status_code
        rows = await db.execute_fetchall(
            "SELECT o.id, r.state FROM outgoing o JOIN recipients r ON r.outgoing_id = o.id"
            " WHERE o.kind='document' AND o.sender=? AND o.document_id=? AND r.recipient=?",
            (status.recipient, status.document_id, status.sender),
        )
        for outgoing_id, state in rows:
            forward = not state.isdigit() or code > state or state in ("13", "15", "16")
            after = code if forward else state
            await self._set_state(
                db, outgoing_id, status.sender, after, code, f"status {code}", now
            )

    # --- inbox ----------------------------------------------------------------------------------
    async def add_inbox(
        self, item: NewInboxItem, now: dt.datetime, answer: NewOutgoing | None = None
    ) -> tuple[int, bool]:
        """Store a received message once, with the recipient's automatic ``answer`` (status
        01) in the same transaction, so no later status can be queued before it; a status
        about one of our documents moves that document's recipient row forward in it too.
        Returns the inbox id and whether the message is new."""
        try:
            async with self._transaction() as db:
                cursor = await db.execute(
                    "INSERT INTO inbox (recipient, sender, kind, document_id, business_type,"
                    " status_code, path, summary, received_at, body)"
                    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (
                        item.recipient,
                        item.sender,
                        item.kind,
                        item.document_id,
                        item.business_type,
                        item.status_code,
                        item.path,
                        json.dumps(item.summary, ensure_ascii=False),
                        to_ms(now),
                        item.body,
                    ),
                )
                inbox_id = cursor.lastrowid or 0
                await db.executemany(
                    "INSERT INTO inbox_attachments (inbox_id, n, name, content_type, size,"
                    " sha256, path, body) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                    [
                        (inbox_id, a.n, a.name, a.content_type, a.size, a.sha256, a.path, a.body)
                        for a in item.attachments
                    ],
                )
                if item.kind == "document":
                    await self._count(db, now, item.recipient, _province(item.sender), "received")
                else:
                    await self._record_status(db, item, now)
                if answer is not None:
                    await self._insert_outgoing(db, answer, now)
                    await db.execute(
                        "INSERT INTO answers (inbox_id, code, at) VALUES (?, ?, ?)",
                        (inbox_id, answer.status_code, to_ms(now)),
                    )
            return inbox_id, True
        except sqlite3.IntegrityError:
            rows = await self._rows(
                "SELECT id FROM inbox WHERE recipient=? AND sender=? AND kind=? AND document_id=?"
                " AND business_type=? AND status_code=?",
                (
                    item.recipient,
                    item.sender,
                    item.kind,
                    item.document_id,
                    item.business_type,
                    item.status_code,
                ),
            )
            return int(rows[0][0]), False

    async def inbox(self, recipient: str, since: dt.datetime | None, limit: int) -> list[InboxItem]:
        rows = await self._rows(
            f"{INBOX_ITEM} WHERE i.recipient=? AND i.kind='document' AND i.received_at>=?"
            " ORDER BY i.received_at, i.id LIMIT ?",
            (recipient, to_ms(since) if since else 0, limit),
        )
        return [_inbox_item(row) for row in rows]

    async def inbox_item(self, inbox_id: int) -> InboxItem | None:
        rows = await self._rows(f"{INBOX_ITEM} WHERE i.id=?", (inbox_id,))
        return _inbox_item(rows[0]) if rows else None

    async def inbox_content(self, inbox_id: int, attachment: int | None = None) -> bytes | None:
        """The bytes the store keeps of a received package (or of its attachment ``n``)."""
        rows = await (
            self._rows("SELECT body FROM inbox WHERE id=?", (inbox_id,))
            if attachment is None
            else self._rows(
                "SELECT body FROM inbox_attachments WHERE inbox_id=? AND n=?",
                (inbox_id, attachment),
            )
        )
        return rows[0][0] if rows else None

    async def add_answer(self, inbox_id: int, answer: NewOutgoing, now: dt.datetime) -> int:
        """An agency's own status about what it received, queued with its outgoing message
        in one transaction that checks the order again: two posts at once cannot both pass."""
        async with self._transaction() as db:
            rows = await db.execute_fetchall(
                "SELECT code FROM answers WHERE inbox_id=? ORDER BY at", (inbox_id,)
            )
            given = [StatusCode(row[0]) for row in rows]
            if not may_follow(given, StatusCode(answer.status_code)):
                raise errors.StatusOutOfOrder(
                    f"{answer.status_code} cannot follow {', '.join(c.value for c in given)}"
                )
            outgoing_id = await self._insert_outgoing(db, answer, now)
            await db.execute(
                "INSERT INTO answers (inbox_id, code, at) VALUES (?, ?, ?)",
                (inbox_id, answer.status_code, to_ms(now)),
            )
        return outgoing_id

    # --- statistics ------------------------------------------------------------------------------
    @staticmethod
    async def _count(db: Any, now: dt.datetime, org_id: str, partner: str, metric: str) -> None:
        await db.execute(
            "INSERT INTO counters (day, org_id, partner, metric, count) VALUES (?, ?, ?, ?, 1)"
            " ON CONFLICT (day, org_id, partner, metric) DO UPDATE SET count = count + 1",
            (now.date().isoformat(), org_id, partner, metric),
        )

    async def counters(self) -> list[tuple[str, str, str, str, int]]:
        rows = await self._rows("SELECT day, org_id, partner, metric, count FROM counters")
        return [(r[0], r[1], r[2], r[3], r[4]) for r in rows]

    async def recipient_states(self) -> list[tuple[str, str, str, str]]:
        """(sender, state, due date or '', completed-at or '') of every outgoing recipient."""
        rows = await self._rows(
            "SELECT o.sender, r.state, COALESCE(json_extract(o.summary, '$.due_date'), ''),"
            " COALESCE((SELECT json_extract(h.value, '$.at') FROM json_each(r.history) h"
            "  WHERE json_extract(h.value, '$.state') = '06'), '')"
            " FROM recipients r JOIN outgoing o ON o.id = r.outgoing_id WHERE o.kind='document'"
        )
        return [(r[0], r[1], r[2], r[3]) for r in rows]


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


def _inbox_item(r: Any) -> InboxItem:
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
        attachments=[InboxAttachment(*a) for a in json.loads(r[10])],
        answers=json.loads(r[11]),
    )
