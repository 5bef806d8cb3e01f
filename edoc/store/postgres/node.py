"""A node's store on PostgreSQL: for a province that runs its node on the database it
already has.

It implements :class:`edoc.store.node.NodeStore`; open one with edoc.store.open_node_store
and a ``postgresql://`` URL. Where a service's rule must hold inside the transaction
(a recipient's state, an agency's answers), the rows it judges are locked first
(``FOR UPDATE``), so two changes at once are judged one after the other.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import json
from collections.abc import Collection, Mapping, Sequence
from functools import partial

import asyncpg

from edoc import errors, tasks
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
    OutgoingRecipient,
    Progress,
    Received,
    StateRule,
    Sums,
    Tally,
    Transfer,
    TransferRecord,
    as_stored,
    by_event,
    history,
    progress,
    sums_sql,
    token_taken,
)
from edoc.store.postgres.database import PROGRESS_LOCK, Connection, unique_as
from edoc.store.postgres.node_rows import (
    DUE,
    FOLD_PROGRESS,
    PACKAGES,
    PROGRESS,
    STORED_BEFORE,
    count,
    insert_inbox,
    insert_outgoing,
    record,
)
from edoc.store.postgres.node_tables import (
    COMPLETED_COUNT,
    CREDENTIALS,
    FAILED,
    FIRST,
    INBOX_ITEM,
    PROGRESS_COUNTS,
    TROUBLED_INDEX,
    inbox_item,
)
from edoc.store.postgres.node_views import NodeViews
from edoc.store.sums import CounterSums

# the due transfers and when the next falls due, in one: one row per due transfer (DUE's columns, in
# its order: by the transfers' priority again, the outer join keeps none), each with when
# the next falls due after now; one row of NULLs and that when none is due
_OUTBOX_PASS = f"""
WITH due AS ({DUE})
SELECT due.*,
    (SELECT MIN(next_at) FROM transfers WHERE state = 'pending' AND next_at > $1) AS next_at
FROM (SELECT 1) AS one LEFT JOIN (due JOIN transfers p ON p.id = due.id) ON true
ORDER BY p.priority DESC, due.id
"""  # noqa: S608 (constant text: the values are bound as parameters)


async def _add_answer(conn: Connection, answer: NewAnswer, now: dt.datetime) -> int:
    rows = await conn.fetch(
        "SELECT code FROM answers WHERE inbox_id = $1 ORDER BY id", answer.inbox_id
    )
    answer.check([row[0] for row in rows])
    outgoing_id = await insert_outgoing(conn, answer.message, now)
    await conn.execute(
        "INSERT INTO answers (inbox_id, code, at) VALUES ($1, $2, $3)",
        answer.inbox_id,
        answer.message.status_code,
        now,
    )
    return outgoing_id


FOLD_EVERY = 60.0  # seconds: the progress changes are folded into the counts this often


_SUMS = sums_sql("$1", "$2")


# an agency's row, new or changed; a name not given (None) keeps the stored one ("" for
# a new agency): `edoc agency add` without --name blanked it
_UPSERT_AGENCY = (
    "INSERT INTO agencies (org_id, name, token_sha256) VALUES ($1, COALESCE($2, ''), $3)"
    " ON CONFLICT (org_id) DO UPDATE SET name = COALESCE($2, agencies.name)"
)


class PostgresNodeStore(NodeViews):
    component = "node"
    migrations = (FIRST, PROGRESS_COUNTS, FAILED, TROUBLED_INDEX, CREDENTIALS, COMPLETED_COUNT)
    _folding: asyncio.Task[None] | None = None

    async def open(self, up_to: int | None = None) -> None:
        await super().open(up_to)
        self._folding = asyncio.create_task(self._fold_now_and_then(), name="progress fold")

    async def close(self) -> None:
        folding, self._folding = self._folding, None
        await tasks.stop(folding)
        await super().close()

    async def _fold_now_and_then(self) -> None:
        """A read of the progress folds the changes written since into the counts; read
        every FOLD_EVERY seconds, they never pile up on a node whose statistics nobody
        asks for."""
        while True:
            await asyncio.sleep(FOLD_EVERY)
            with contextlib.suppress(errors.StorageError):  # the next read folds them
                await self.progress()

    # --- agencies -----------------------------------------------------------------------------
    async def add_agency(self, org_id: str, name: str | None, token_sha256: str) -> None:
        with unique_as(partial(token_taken, org_id)):
            async with self._transaction() as conn:
                await conn.execute(
                    f"{_UPSERT_AGENCY}, token_sha256 = excluded.token_sha256",
                    org_id,
                    name,
                    token_sha256,
                )

    async def add_new_agency(self, org_id: str, name: str | None, token_sha256: str) -> bool:
        with unique_as(partial(token_taken, org_id)):
            async with self._transaction() as conn:
                # an agency holding another token keeps it, and its name: only a name with
                # its own token is changed
                await conn.execute(
                    f"{_UPSERT_AGENCY} WHERE agencies.token_sha256 = excluded.token_sha256",
                    org_id,
                    name,
                    token_sha256,
                )
                held = await conn.fetchval(
                    "SELECT token_sha256 FROM agencies WHERE org_id = $1", org_id
                )
        return bool(held == token_sha256)

    async def agency_for_token(self, token_sha256: str) -> str | None:
        found = await self._value(
            "SELECT org_id FROM agencies WHERE token_sha256 = $1", token_sha256
        )
        return None if found is None else str(found)

    async def agencies(self) -> list[Agency]:
        rows = await self._rows("SELECT org_id, name FROM agencies ORDER BY org_id")
        return [Agency(org_id=row[0], name=row[1]) for row in rows]

    # --- outgoing and the outbox ------------------------------------------------------------
    async def outgoing_by_key(self, sender: str, key: str) -> Outgoing | None:
        found = await self._value(
            "SELECT id FROM outgoing WHERE sender = $1 AND idempotency_key = $2", sender, key
        )
        return None if found is None else await self.outgoing(int(found))

    async def find_outgoing(self, sender: str, document_id: str) -> Outgoing | None:
        found = await self._value(
            "SELECT id FROM outgoing WHERE kind = 'document' AND sender = $1"
            " AND document_id = $2 ORDER BY id LIMIT 1",
            sender,
            document_id,
        )
        return None if found is None else await self.outgoing(int(found))

    async def add_outgoing(
        self, new: NewOutgoing, now: dt.datetime, tallies: Sequence[Tally]
    ) -> Outgoing:
        """The message, its per-recipient rows and its transfers, in one transaction; what
        it gives back is made from what it wrote (reading it back took three queries)."""
        try:
            async with self._transaction() as conn:
                outgoing_id = await insert_outgoing(conn, new, now)
                await count(conn, tallies)
        except asyncpg.UniqueViolationError:
            raise errors.DuplicateDocument(
                "this Idempotency-Key was used for another document"
            ) from None
        return as_stored(new, outgoing_id, now, now)  # made from what it wrote: no read back

    async def outgoing(self, outgoing_id: int) -> Outgoing | None:
        async with self._snapshot() as conn:
            row = await conn.fetchrow(
                "SELECT id, kind, sender, document_id, status_code, priority, path,"
                " summary::text, created_at FROM outgoing WHERE id = $1",
                outgoing_id,
            )
            recipients = await conn.fetch(
                "SELECT recipient, local, state, history::text FROM recipients"
                " WHERE outgoing_id = $1 ORDER BY recipient",
                outgoing_id,
            )
            transfers = await conn.fetch(
                "SELECT route, state, attempts, last_error FROM transfers"
                " WHERE outgoing_id = $1 ORDER BY id",
                outgoing_id,
            )
        if row is None:
            return None
        return Outgoing(
            id=row[0],
            kind=row[1],
            sender=row[2],
            document_id=row[3],
            status_code=row[4],
            priority=row[5],
            path=row[6],
            summary=json.loads(row[7]),
            created_at=row[8],
            recipients=tuple(
                OutgoingRecipient(r[0], r[1], r[2], history(r[3])) for r in recipients
            ),
            transfers=tuple(TransferRecord(t[0], t[1], t[2], t[3]) for t in transfers),
        )

    async def outbox_pass(
        self, now: dt.datetime, limit: int, under_way: Collection[int]
    ) -> OutboxPass:
        """The transfers due and when the next falls due, in one statement."""
        rows = await self._rows(_OUTBOX_PASS, now, list(under_way), max(limit, 0))
        due = tuple(Transfer(*row[:-1]) for row in rows if row["id"] is not None)
        return OutboxPass(due, rows[0]["next_at"])

    async def outgoing_packages(self, outgoing_ids: Collection[int]) -> dict[int, bytes]:
        """The packages kept of these outgoing messages, in one statement (rows never change
        once written: the bytes whose size the outbox pass read)."""
        rows = await self._rows(PACKAGES, sorted(set(outgoing_ids)))
        return {row[0]: row[1] for row in rows}

    async def retry_transfer(
        self, transfer_id: int, at: dt.datetime, error: str, for_credentials: bool = False
    ) -> None:
        async with self._transaction() as conn:
            await conn.execute(
                "UPDATE transfers SET attempts = attempts + 1, next_at = $1, last_error = $2,"
                " waits_on_credentials = $3 WHERE id = $4",
                at,
                error,
                for_credentials,
                transfer_id,
            )

    async def waiting_on_credentials(self) -> set[int]:
        rows = await self._rows(
            "SELECT id FROM transfers WHERE state = 'pending' AND waits_on_credentials"
        )
        return {row[0] for row in rows}

    async def retry_now(self, route: str, now: dt.datetime) -> None:
        """Every pending transfer on ``route`` waiting out its backoff falls due now."""
        async with self._transaction() as conn:
            await conn.execute(
                "UPDATE transfers SET next_at = $1 WHERE state = 'pending' AND next_at > $1"
                " AND route = $2",
                now,
                route,
            )

    async def due_now(self, transfer_ids: Collection[int], now: dt.datetime) -> None:
        """Those of ``transfer_ids`` still pending and waiting out their backoff fall due
        now."""
        async with self._transaction() as conn:
            await conn.execute(
                "UPDATE transfers SET next_at = $1 WHERE state = 'pending' AND next_at > $1"
                " AND id = ANY($2::bigint[])",
                now,
                sorted(transfer_ids),
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
        async with self._transaction() as conn:
            await conn.execute(
                "UPDATE transfers SET state = $1, attempts = attempts + 1, last_error = $2"
                " WHERE id = $3",
                state,
                last_error,
                transfer.id,
            )
            rows = await conn.fetch(
                "SELECT outgoing_id, recipient, state FROM recipients"
                " WHERE outgoing_id = $1 AND local = $2 ORDER BY recipient FOR UPDATE",
                transfer.outgoing_id,
                transfer.route == "local",
            )
            for each, carried in by_event(rows, event, own).items():
                await record(conn, carried, each, now, rule)

    # --- inbox ----------------------------------------------------------------------------------
    async def add_received_document(
        self, item: NewInboxItem, answer: NewOutgoing, now: dt.datetime, tallies: Sequence[Tally]
    ) -> Received:
        try:
            async with self._transaction() as conn:
                inbox_id = await insert_inbox(conn, item, now)
                await count(conn, tallies)
                await insert_outgoing(conn, answer, now)
                await conn.execute(
                    "INSERT INTO answers (inbox_id, code, at) VALUES ($1, $2, $3)",
                    inbox_id,
                    answer.status_code,
                    now,
                )
            return Received(inbox_id, first=True)
        except asyncpg.UniqueViolationError:
            return Received(await self._stored_before(item), first=False)

    async def add_received_status(
        self, item: NewInboxItem, event: Event, now: dt.datetime, rule: StateRule
    ) -> Received:
        try:
            async with self._transaction() as conn:
                inbox_id = await insert_inbox(conn, item, now)
                # the status's sender as a recipient of our document it is about
                rows = await conn.fetch(
                    "SELECT o.id, r.recipient, r.state FROM outgoing o"
                    " JOIN recipients r ON r.outgoing_id = o.id"
                    " WHERE o.kind = 'document' AND o.sender = $1 AND o.document_id = $2"
                    " AND r.recipient = $3 ORDER BY o.id FOR UPDATE OF r",
                    item.recipient,
                    item.document_id,
                    item.sender,
                )
                await record(conn, rows, event, now, rule)
            return Received(inbox_id, first=True)
        except asyncpg.UniqueViolationError:
            return Received(await self._stored_before(item), first=False)

    async def _stored_before(self, item: NewInboxItem) -> int:
        return int(await self._value(STORED_BEFORE, *item.key))

    async def received_before(self, key: InboxKey) -> int | None:
        inbox_id = await self._value(STORED_BEFORE, *key)
        return None if inbox_id is None else int(inbox_id)

    async def inbox(self, recipient: str, since: dt.datetime | None, limit: int) -> list[InboxItem]:
        rows = await self._rows(
            INBOX_ITEM + " WHERE i.recipient = $1 AND i.kind = 'document'"
            " AND i.received_at >= $2 ORDER BY i.received_at, i.id LIMIT $3",
            recipient,
            since or dt.datetime.min.replace(tzinfo=dt.UTC),
            limit,
        )
        return [inbox_item(row) for row in rows]

    async def inbox_item(self, inbox_id: int) -> InboxItem | None:
        rows = await self._rows(INBOX_ITEM + " WHERE i.id = $1", inbox_id)
        return inbox_item(rows[0]) if rows else None

    async def received_change(self, recipient: str, sender: str, document_id: str) -> bool:
        found = await self._value(
            "SELECT EXISTS (SELECT 1 FROM inbox WHERE recipient = $1 AND sender = $2"
            " AND kind = 'document' AND business_type > 0"
            " AND COALESCE(NULLIF(summary -> 'business' ->> 'document_id', ''), document_id)"
            " = $3)",
            recipient,
            sender,
            document_id,
        )
        return bool(found)

    async def inbox_package(self, inbox_id: int) -> bytes | None:
        body: bytes | None = await self._value("SELECT body FROM inbox WHERE id = $1", inbox_id)
        return body

    async def inbox_attachment(self, inbox_id: int, n: int) -> bytes | None:
        body: bytes | None = await self._value(
            "SELECT body FROM inbox_attachments WHERE inbox_id = $1 AND n = $2", inbox_id, n
        )
        return body

    async def add_answers(self, answers: Sequence[NewAnswer], now: dt.datetime) -> list[int]:
        """Agencies' own statuses, each checked against the answers given before it in the
        transaction that queues them all; their inbox rows are locked first (in one order,
        so that two such transactions cannot wait on each other): two posts at once are
        judged one after the other."""
        async with self._transaction() as conn:
            await conn.execute(
                "SELECT 1 FROM inbox WHERE id = ANY($1::bigint[]) ORDER BY id FOR UPDATE",
                sorted({answer.inbox_id for answer in answers}),
            )
            return [await _add_answer(conn, answer, now) for answer in answers]

    # --- statistics ------------------------------------------------------------------------------
    async def package_files(self) -> list[str]:
        return [row[0] for row in await self._rows(PACKAGE_FILES)]

    async def counter_sums(self, first: dt.date, before: dt.date) -> Sums:
        return CounterSums.of(await self._rows(_SUMS, first, before), Count)

    async def counters(self) -> list[Count]:
        rows = await self._rows("SELECT day, org_id, partner, metric, count FROM counters")
        return [Count(r[0], r[1], r[2], r[3], int(r[4])) for r in rows]

    async def progress(self) -> Progress:
        async with self._transaction() as conn:
            # one reader folds at a time (two would wait on each other's rows); another
            # reads the counts and the changes not yet folded, which add up the same
            if await conn.fetchval("SELECT pg_try_advisory_xact_lock($1)", PROGRESS_LOCK):
                await conn.execute(FOLD_PROGRESS)
            return progress(await conn.fetch(PROGRESS))
