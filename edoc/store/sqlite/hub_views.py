"""The hub's SQLite queries for the operator's dashboard (edoc.dashboard.hub)."""

from __future__ import annotations

import datetime as dt

from edoc.model import MessageKind
from edoc.store.hub import Hop, Stage
from edoc.store.sqlite.database import SqliteDatabase, from_ms, to_ms

# by the packages' unique key (kind, sender, about, …): the document of its sender, then
# the statuses each of its recipients sent about it
HOPS = (
    "SELECT p.kind, p.sender, p.status_code, p.accepted_at, d.recipient, d.node, d.attempts,"
    " d.delivered_at, d.id FROM packages p JOIN deliveries d ON d.package_id = p.id"
)
TRACE = (  # constant text: the values are bound as parameters
    f"{HOPS} WHERE p.kind = ? AND p.sender = ? AND p.about = ?"  # noqa: S608
    f" UNION ALL {HOPS} WHERE p.kind = ? AND p.about = ? AND p.sender IN"
    " (SELECT r.recipient FROM packages o JOIN deliveries r ON r.package_id = o.id"
    "  WHERE o.kind = ? AND o.sender = ? AND o.about = ?)"
)

# a document's recipients, then the statuses about it accepted in the window too
# (status_code "" marks the document). A status of a document accepted in the window
# comes after it; one accepted before is about an earlier package with the same
# DocumentId (the document a revocation or update of it replaced). Both by index.
STAGES = (
    "SELECT p.about, d.recipient, '', p.accepted_at FROM packages p"
    " JOIN deliveries d ON d.package_id = p.id WHERE p.kind = ? AND p.accepted_at >= ?"
    " UNION ALL SELECT s.about, s.sender, s.status_code, s.accepted_at FROM packages s"
    " WHERE s.kind = ? AND s.accepted_at >= ? AND s.about IN"
    " (SELECT about FROM packages WHERE kind = ? AND accepted_at >= ?)"
)
DOCUMENTS_OF = (
    "SELECT p.sender, p.about FROM packages p WHERE p.kind = ? AND p.accepted_at >= ?"
    " AND p.accepted_at < ? AND (p.sender = ? OR EXISTS (SELECT 1 FROM deliveries d"
    "  WHERE d.package_id = p.id AND d.recipient = ?)) ORDER BY p.accepted_at, p.id LIMIT ?"
)
RELAY_TIMES = (
    "SELECT d.delivered_at - p.accepted_at FROM deliveries d"
    " JOIN packages p ON p.id = d.package_id WHERE d.delivered_at >= ?"
)


class HubViews(SqliteDatabase):
    async def trace(self, sender: str, about: str) -> list[Hop]:
        document, status = MessageKind.DOCUMENT, MessageKind.STATUS
        rows = await self._rows(
            TRACE, (document, sender, about, status, about, document, sender, about)
        )
        hops = (
            Hop(
                r[0],
                r[1],
                r[2],
                from_ms(r[3]),
                r[4],
                r[5],
                r[6],
                from_ms(r[7]) if r[7] else None,
                r[8],
            )
            for r in rows
        )
        return sorted(hops, key=Hop.place)

    async def stages(self, since: dt.datetime) -> list[Stage]:
        document, status, after = MessageKind.DOCUMENT, MessageKind.STATUS, to_ms(since)
        rows = await self._rows(STAGES, (document, after, status, after, document, after))
        return [Stage(r[0], r[1], r[2], from_ms(r[3])) for r in rows]

    async def relay_times(self, since: dt.datetime) -> list[dt.timedelta]:
        rows = await self._rows(RELAY_TIMES, (to_ms(since),))
        return [dt.timedelta(milliseconds=r[0]) for r in rows]

    async def documents_of(
        self, org_id: str, start: dt.datetime, end: dt.datetime, limit: int
    ) -> list[tuple[str, str]]:
        rows = await self._rows(
            DOCUMENTS_OF,
            (MessageKind.DOCUMENT, to_ms(start), to_ms(end), org_id, org_id, limit),
        )
        return [(row[0], row[1]) for row in rows]
