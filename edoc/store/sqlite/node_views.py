"""The node's SQLite queries for the operator's dashboard (edoc.dashboard.node)."""

from __future__ import annotations

import datetime as dt
import sqlite3

from edoc.model import DeliveryState, MessageKind, Route, TransferState
from edoc.store.sqlite.database import SqliteDatabase, to_ms

RECENT = "SELECT id FROM outgoing WHERE kind = ? ORDER BY id DESC LIMIT ?"
# the newest troubled transfers first, by their own index (walking the documents back until
# enough had one read every document the node ever sent when few had, and reading every
# troubled transfer to sort them, every one that ever failed); the index's condition is
# spelled as it is there, so that SQLite may use it
TROUBLED = (
    "SELECT DISTINCT t.outgoing_id FROM transfers t INDEXED BY transfers_troubled"
    " JOIN outgoing o ON o.id = t.outgoing_id"
    " WHERE (t.state = 'failed' OR (t.state = 'pending' AND t.attempts > 0)) AND o.kind = ?"
    " ORDER BY t.outgoing_id DESC LIMIT ?"
)

# an outgoing message has one transfer per route
REOPEN = (
    "UPDATE transfers SET state = ?, next_at = ? WHERE outgoing_id = ? AND route = ? AND state = ?"
)
REQUEUE = (
    "UPDATE recipients SET state = ?, history = json_insert(history, '$[#]',"
    " json_object('state', ?, 'at', ?, 'detail', ?))"
    " WHERE outgoing_id = ? AND local = ? AND state = ?"
)


class NodeViews(SqliteDatabase):
    async def recent_outgoing(self, limit: int, troubled: bool) -> list[int]:
        """Ids of the newest outgoing documents; with ``troubled``, those whose transfer
        failed or is being retried."""
        if troubled:
            rows = await self._rows(TROUBLED, (MessageKind.DOCUMENT, limit))
        else:
            rows = await self._rows(RECENT, (MessageKind.DOCUMENT, limit))
        return [row[0] for row in rows]

    async def pending_transfers(self) -> dict[str, int]:
        rows = await self._rows(
            "SELECT route, COUNT(*) FROM transfers WHERE state = ? GROUP BY route",
            (TransferState.PENDING,),
        )
        return {row[0]: row[1] for row in rows}

    async def reopen_transfer(
        self, outgoing_id: int, route: str, now: dt.datetime, detail: str
    ) -> bool:
        queued, failed = DeliveryState.QUEUED, DeliveryState.FAILED

        def reopen(db: sqlite3.Connection) -> bool:
            reopened = db.execute(
                REOPEN,
                (TransferState.PENDING, to_ms(now), outgoing_id, route, TransferState.FAILED),
            )
            if reopened.rowcount != 1:
                return False
            local = 1 if route == Route.LOCAL else 0
            db.execute(
                REQUEUE, (queued, queued, now.isoformat(), detail, outgoing_id, local, failed)
            )
            return True

        return await self._change(reopen)
