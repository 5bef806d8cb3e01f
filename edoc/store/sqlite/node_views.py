"""The node's SQLite queries for the operator's dashboard (edoc.dashboard.node)."""

from __future__ import annotations

from edoc.model import MessageKind, TransferState
from edoc.store.sqlite.database import SqliteDatabase

RECENT = "SELECT id FROM outgoing WHERE kind = ? ORDER BY id DESC LIMIT ?"
TROUBLED = (
    "SELECT o.id FROM outgoing o WHERE o.kind = ? AND EXISTS (SELECT 1 FROM transfers t"
    " WHERE t.outgoing_id = o.id AND (t.state = ? OR (t.state = ? AND t.attempts > 0)))"
    " ORDER BY o.id DESC LIMIT ?"
)


class NodeViews(SqliteDatabase):
    async def recent_outgoing(self, limit: int, troubled: bool) -> list[int]:
        """Ids of the newest outgoing documents; with ``troubled``, those whose transfer
        failed or is being retried."""
        if troubled:
            rows = await self._rows(
                TROUBLED, (MessageKind.DOCUMENT, TransferState.FAILED, TransferState.PENDING, limit)
            )
        else:
            rows = await self._rows(RECENT, (MessageKind.DOCUMENT, limit))
        return [row[0] for row in rows]

    async def pending_transfers(self) -> dict[str, int]:
        rows = await self._rows(
            "SELECT route, COUNT(*) FROM transfers WHERE state = ? GROUP BY route",
            (TransferState.PENDING,),
        )
        return {row[0]: row[1] for row in rows}
