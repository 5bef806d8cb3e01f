"""The node's embedded store (SQLite): agencies, outgoing documents and their outbox,
per-recipient states, the inbox, and counters.

It implements :class:`edoc.store.node.NodeStore`; open one with edoc.store.open_node_store.
"""

from __future__ import annotations

import datetime as dt
import json
import sqlite3
from collections.abc import Callable, Collection, Mapping, Sequence
from functools import partial
from typing import Any

from edoc import errors
from edoc.model import MessageKind, Route, TransferState
from edoc.store.node import (
    PACKAGE_FILES,
    Agency,
    Count,
    Event,
    InboxItem,
    InboxKey,
    NewAnswer,
    NewInboxItem,
    NewOutgoing,
    OutboxPass,
    Outgoing,
    Progress,
    Received,
    StateRule,
    Sums,
    Tally,
    Transfer,
    by_event,
    progress,
    sums_sql,
    token_taken,
)
from edoc.store.sqlite.database import query, to_ms, unique_as
from edoc.store.sqlite.node_outbox import PACKAGES, due_transfers, next_transfer_at, packages_of
from edoc.store.sqlite.node_tables import (
    ADDED_COLUMNS,
    ADDED_TABLES,
    INBOX_ITEM,
    SCHEMA,
    inbox_item,
)
from edoc.store.sqlite.node_views import NodeViews
from edoc.store.sqlite.node_writes import (
    OUTGOING,
    count,
    insert_answer,
    insert_inbox,
    insert_outgoing,
    insert_outgoing_rows,
    outgoing,
    record,
)
from edoc.store.sums import CounterSums


def _outgoing_where(db: sqlite3.Connection, where: str, params: tuple[Any, ...]) -> Outgoing | None:
    """The outgoing message the condition picks, its recipients and transfers."""
    row = db.execute(f"{OUTGOING} WHERE {where}", params).fetchone()
    return None if row is None else outgoing(db, row)


def _add_answer(db: sqlite3.Connection, answer: NewAnswer, now: dt.datetime) -> int:
    # rowid after the time: the answers of one transaction share it
    given = db.execute(
        "SELECT code FROM answers WHERE inbox_id=? ORDER BY at, rowid", (answer.inbox_id,)
    )
    answer.check([row[0] for row in given])
    outgoing_id = insert_outgoing_rows(db, answer.message, now)
    insert_answer(db, answer.inbox_id, answer.message.status_code, now)
    return outgoing_id


_SUMS = sums_sql("?1", "?2")


# an agency's row, new or changed; a name not given (None) keeps the stored one ("" for
# a new agency): `edoc agency add` without --name blanked it
_UPSERT_AGENCY = (
    "INSERT INTO agencies (org_id, name, token_sha256) VALUES (?1, COALESCE(?2, ''), ?3)"
    " ON CONFLICT (org_id) DO UPDATE SET name=COALESCE(?2, agencies.name)"
)


def _add_new_agency(
    conn: sqlite3.Connection, org_id: str, name: str | None, token_sha256: str
) -> bool:
    # an agency holding another token keeps it, and its name: only a name with its own
    # token is changed
    conn.execute(
        f"{_UPSERT_AGENCY} WHERE agencies.token_sha256=excluded.token_sha256",
        (org_id, name, token_sha256),
    )
    ((held,),) = conn.execute(
        "SELECT token_sha256 FROM agencies WHERE org_id=?", (org_id,)
    ).fetchall()
    return bool(held == token_sha256)


class SqliteNodeStore(NodeViews):
    schema = SCHEMA
    added_columns = ADDED_COLUMNS
    added_scripts = ADDED_TABLES

    # --- agencies -----------------------------------------------------------------------------
    async def add_agency(self, org_id: str, name: str | None, token_sha256: str) -> None:
        with unique_as("agencies.token_sha256", partial(token_taken, org_id)):
            await self._change(
                partial(
                    query,
                    sql=f"{_UPSERT_AGENCY}, token_sha256=excluded.token_sha256",
                    params=(org_id, name, token_sha256),
                )
            )

    async def add_new_agency(self, org_id: str, name: str | None, token_sha256: str) -> bool:
        with unique_as("agencies.token_sha256", partial(token_taken, org_id)):
            return await self._change(
                partial(_add_new_agency, org_id=org_id, name=name, token_sha256=token_sha256)
            )

    async def agency_for_token(self, token_sha256: str) -> str | None:
        rows = await self._rows("SELECT org_id FROM agencies WHERE token_sha256=?", (token_sha256,))
        return str(rows[0][0]) if rows else None

    async def agencies(self) -> list[Agency]:
        rows = await self._rows("SELECT org_id, name FROM agencies ORDER BY org_id")
        return [Agency(org_id=row[0], name=row[1]) for row in rows]

    # --- outgoing and the outbox ------------------------------------------------------------
    async def outgoing_by_key(self, sender: str, key: str) -> Outgoing | None:
        return await self._read(
            partial(
                _outgoing_where,
                where="sender=? AND idempotency_key=?",
                params=(sender, key),
            )
        )

    async def find_outgoing(self, sender: str, document_id: str) -> Outgoing | None:
        return await self._read(
            partial(
                _outgoing_where,
                where="kind=? AND sender=? AND document_id=? ORDER BY id LIMIT 1",
                params=(MessageKind.DOCUMENT, sender, document_id),
            )
        )

    async def add_outgoing(
        self, new: NewOutgoing, now: dt.datetime, tallies: Sequence[Tally]
    ) -> Outgoing:
        """The message, its per-recipient rows and its transfers, in one transaction; what
        it gives back is made from what it wrote (reading it back cost three trips)."""

        def add(db: sqlite3.Connection) -> Outgoing:
            written = insert_outgoing(db, new, now)
            count(db, tallies)
            return written

        try:
            return await self._change(add)
        except sqlite3.IntegrityError:
            raise errors.DuplicateDocument(
                "this Idempotency-Key was used for another document"
            ) from None

    async def outgoing(self, outgoing_id: int) -> Outgoing | None:
        return await self._read(partial(_outgoing_where, where="id=?", params=(outgoing_id,)))

    async def outbox_pass(
        self, now: dt.datetime, limit: int, under_way: Collection[int]
    ) -> OutboxPass:
        """The transfers due and when the next falls due, in one trip."""

        def both(db: sqlite3.Connection) -> OutboxPass:
            due = due_transfers(db, now, limit, under_way) if limit > 0 else []
            return OutboxPass(tuple(due), next_transfer_at(db, now))

        return await self._read(both)

    async def outgoing_packages(self, outgoing_ids: Collection[int]) -> dict[int, bytes]:
        """The packages kept of these outgoing messages, in one trip (rows never change once
        written: the bytes whose size the outbox pass read)."""
        return {row[0]: row[1] for row in await self._rows(PACKAGES, packages_of(outgoing_ids))}

    async def retry_transfer(
        self, transfer_id: int, at: dt.datetime, error: str, for_credentials: bool = False
    ) -> None:
        await self._change(
            partial(
                query,
                sql="UPDATE transfers SET attempts=attempts+1, next_at=?, last_error=?,"
                " waits_on_credentials=? WHERE id=?",
                params=(to_ms(at), error, for_credentials, transfer_id),
            )
        )

    async def waiting_on_credentials(self) -> set[int]:
        rows = await self._rows(
            "SELECT id FROM transfers WHERE state=? AND waits_on_credentials",
            (TransferState.PENDING,),
        )
        return {row[0] for row in rows}

    async def retry_now(self, route: str, now: dt.datetime) -> None:
        """Every pending transfer on ``route`` waiting out its backoff falls due now."""
        await self._change(
            partial(
                query,
                sql="UPDATE transfers SET next_at=? WHERE state=? AND next_at > ? AND route=?",
                params=(to_ms(now), TransferState.PENDING, to_ms(now), route),
            )
        )

    async def due_now(self, transfer_ids: Collection[int], now: dt.datetime) -> None:
        """Those of ``transfer_ids`` still pending and waiting out their backoff fall due
        now."""
        await self._change(
            partial(
                query,
                sql="UPDATE transfers SET next_at=? WHERE state=? AND next_at > ?"
                " AND id IN (SELECT value FROM json_each(?))",
                params=(
                    to_ms(now),
                    TransferState.PENDING,
                    to_ms(now),
                    json.dumps(sorted(transfer_ids)),
                ),
            )
        )

    async def finish_transfer(
        self,
        transfer: Transfer,
        state: str,
        last_error: str,
        event: Event,
        now: dt.datetime,
        rule: StateRule,
        own: Mapping[str, Event] | None = None,
    ) -> None:
        """Close a transfer and record ``event`` (or their ``own``) for the recipients it
        carried."""

        def finish(db: sqlite3.Connection) -> None:
            db.execute(
                "UPDATE transfers SET state=?, attempts=attempts+1, last_error=? WHERE id=?",
                (state, last_error, transfer.id),
            )
            carried = db.execute(
                "SELECT outgoing_id, recipient, state FROM recipients"
                " WHERE outgoing_id=? AND local=?",
                (transfer.outgoing_id, 1 if transfer.route == Route.LOCAL else 0),
            ).fetchall()
            for each, rows in by_event(carried, event, own).items():
                record(db, rows, each, now, rule)

        await self._change(finish)

    # --- inbox ----------------------------------------------------------------------------------
    async def add_received_document(
        self, item: NewInboxItem, answer: NewOutgoing, now: dt.datetime, tallies: Sequence[Tally]
    ) -> Received:
        def add(db: sqlite3.Connection) -> int:
            inbox_id = insert_inbox(db, item, now)
            count(db, tallies)
            insert_outgoing_rows(db, answer, now)
            insert_answer(db, inbox_id, answer.status_code, now)
            return inbox_id

        return await self._received(item, add)

    async def _received(
        self, item: NewInboxItem, add: Callable[[sqlite3.Connection], int]
    ) -> Received:
        """``add`` the item received; one received before is not added again."""
        try:
            return Received(await self._change(add), first=True)
        except sqlite3.IntegrityError:
            return Received(await self._stored_before(item), first=False)

    async def add_received_status(
        self, item: NewInboxItem, event: Event, now: dt.datetime, rule: StateRule
    ) -> Received:
        def add(db: sqlite3.Connection) -> int:
            inbox_id = insert_inbox(db, item, now)
            # the status's sender as a recipient of our document it is about
            reached = db.execute(
                "SELECT o.id, r.recipient, r.state FROM outgoing o"
                " JOIN recipients r ON r.outgoing_id = o.id"
                " WHERE o.kind=? AND o.sender=? AND o.document_id=?"
                " AND r.recipient=?",
                (MessageKind.DOCUMENT, item.recipient, item.document_id, item.sender),
            ).fetchall()
            record(db, reached, event, now, rule)
            return inbox_id

        return await self._received(item, add)

    async def _stored_before(self, item: NewInboxItem) -> int:
        inbox_id = await self.received_before(item.key)
        assert inbox_id is not None, "a row the inbox refused as a duplicate is there"
        return inbox_id

    async def received_before(self, key: InboxKey) -> int | None:
        rows = await self._rows(
            "SELECT id FROM inbox WHERE recipient=? AND sender=? AND kind=? AND document_id=?"
            " AND business_type=? AND status_code=?",
            key,
        )
        return int(rows[0][0]) if rows else None

    async def inbox(self, recipient: str, since: dt.datetime | None, limit: int) -> list[InboxItem]:
        rows = await self._rows(
            f"{INBOX_ITEM} WHERE i.recipient=? AND i.kind=? AND i.received_at>=?"
            " ORDER BY i.received_at, i.id LIMIT ?",
            (recipient, MessageKind.DOCUMENT, to_ms(since) if since else 0, limit),
        )
        return [inbox_item(row) for row in rows]

    async def inbox_item(self, inbox_id: int) -> InboxItem | None:
        rows = await self._rows(f"{INBOX_ITEM} WHERE i.id=?", (inbox_id,))
        return inbox_item(rows[0]) if rows else None

    async def received_change(self, recipient: str, sender: str, document_id: str) -> bool:
        rows = await self._rows(
            "SELECT 1 FROM inbox WHERE recipient=? AND sender=? AND kind=? AND business_type>0"
            " AND COALESCE(NULLIF(json_extract(summary, '$.business.document_id'), ''),"
            " document_id)=? LIMIT 1",
            (recipient, sender, MessageKind.DOCUMENT, document_id),
        )
        return bool(rows)

    async def inbox_package(self, inbox_id: int) -> bytes | None:
        rows = await self._rows("SELECT body FROM inbox WHERE id=?", (inbox_id,))
        return rows[0][0] if rows else None

    async def inbox_attachment(self, inbox_id: int, n: int) -> bytes | None:
        rows = await self._rows(
            "SELECT body FROM inbox_attachments WHERE inbox_id=? AND n=?", (inbox_id, n)
        )
        return rows[0][0] if rows else None

    async def add_answers(self, answers: Sequence[NewAnswer], now: dt.datetime) -> list[int]:
        """Agencies' own statuses, each checked against the answers given before it in the
        transaction that queues them all."""

        def add(db: sqlite3.Connection) -> list[int]:
            return [_add_answer(db, answer, now) for answer in answers]

        return await self._change(add)

    # --- statistics ------------------------------------------------------------------------------
    async def package_files(self) -> list[str]:
        return [row[0] for row in await self._rows(PACKAGE_FILES)]

    async def counter_sums(self, first: dt.date, before: dt.date) -> Sums:
        rows = await self._rows(_SUMS, (first.isoformat(), before.isoformat()))
        return CounterSums.of(rows, Count)

    async def counters(self) -> list[Count]:
        rows = await self._rows("SELECT day, org_id, partner, metric, count FROM counters")
        return [Count(dt.date.fromisoformat(r[0]), r[1], r[2], r[3], r[4]) for r in rows]

    async def progress(self) -> Progress:
        return progress(await self._rows("SELECT metric, state, count FROM progress"))
