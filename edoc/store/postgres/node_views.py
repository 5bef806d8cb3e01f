"""The node's PostgreSQL queries for the operator's dashboard (edoc.dashboard.node)."""

from __future__ import annotations

from edoc.model import MessageKind, TransferState
from edoc.store.postgres.database import PostgresDatabase

TROUBLE = (
    " AND EXISTS (SELECT 1 FROM transfers t WHERE t.outgoing_id = o.id"
    " AND (t.state = $3 OR (t.state = $4 AND t.attempts > 0)))"
)


class NodeViews(PostgresDatabase):
    async def recent_outgoing(self, limit: int, troubled: bool) -> list[int]:
        """Ids of the newest outgoing documents; with ``troubled``, those whose transfer
        failed or is being retried."""
        query = "SELECT o.id FROM outgoing o WHERE o.kind = $1"
        if troubled:
            rows = await self._rows(
                f"{query}{TROUBLE} ORDER BY o.id DESC LIMIT $2",
                MessageKind.DOCUMENT.value,
                limit,
                TransferState.FAILED.value,
                TransferState.PENDING.value,
            )
        else:
            rows = await self._rows(
                f"{query} ORDER BY o.id DESC LIMIT $2", MessageKind.DOCUMENT.value, limit
            )
        return [row[0] for row in rows]

    async def pending_transfers(self) -> dict[str, int]:
        rows = await self._rows(
            "SELECT route, COUNT(*) FROM transfers WHERE state = $1 GROUP BY route",
            TransferState.PENDING.value,
        )
        return {row[0]: row[1] for row in rows}
