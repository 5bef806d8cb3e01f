"""The node's PostgreSQL queries for the operator's dashboard (edoc.dashboard.node)."""

from __future__ import annotations

import datetime as dt
import json

from edoc.model import DeliveryState, Route, TransferState
from edoc.store.postgres.database import PostgresDatabase

RECENT = "SELECT id FROM outgoing WHERE kind = 'document' ORDER BY id DESC LIMIT $1"
# the newest troubled transfers first, by their own index (version 4; walking the
# documents back until enough had one read every document the node ever sent when few
# had, and reading every troubled transfer to sort them, every one that ever failed)
TROUBLED = (
    "SELECT DISTINCT t.outgoing_id FROM transfers t JOIN outgoing o ON o.id = t.outgoing_id"
    " WHERE (t.state = 'failed' OR (t.state = 'pending' AND t.attempts > 0))"
    " AND o.kind = 'document' ORDER BY t.outgoing_id DESC LIMIT $1"
)

REOPEN = (
    "UPDATE transfers SET state = 'pending', next_at = $1"
    " WHERE outgoing_id = $2 AND route = $3 AND state = 'failed' RETURNING id"
)
REQUEUE = (
    "UPDATE recipients SET state = $1, history = history || $2::jsonb"
    " WHERE outgoing_id = $3 AND local = $4 AND state = $5"
)


class NodeViews(PostgresDatabase):
    async def recent_outgoing(self, limit: int, troubled: bool) -> list[int]:
        """Ids of the newest outgoing documents; with ``troubled``, those whose transfer
        failed or is being retried."""
        rows = await self._rows(TROUBLED if troubled else RECENT, limit)
        return [row[0] for row in rows]

    async def pending_transfers(self) -> dict[str, int]:
        rows = await self._rows(
            "SELECT route, COUNT(*) FROM transfers WHERE state = $1 GROUP BY route",
            TransferState.PENDING.value,
        )
        return {row[0]: row[1] for row in rows}

    async def reopen_transfer(
        self, outgoing_id: int, route: str, now: dt.datetime, detail: str
    ) -> bool:
        queued = DeliveryState.QUEUED.value
        entry = json.dumps(
            [{"state": queued, "at": now.isoformat(), "detail": detail}], ensure_ascii=False
        )
        async with self._transaction() as conn:
            if await conn.fetchval(REOPEN, now, outgoing_id, route) is None:
                return False
            await conn.execute(
                REQUEUE,
                queued,
                entry,
                outgoing_id,
                route == Route.LOCAL,
                DeliveryState.FAILED.value,
            )
        return True
