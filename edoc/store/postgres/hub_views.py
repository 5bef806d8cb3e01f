"""The hub's PostgreSQL queries for the operator's dashboard (edoc.dashboard.hub)."""

from __future__ import annotations

import datetime as dt

from edoc.model import MessageKind
from edoc.store.hub import Hop, Stage
from edoc.store.postgres.database import PostgresDatabase

# by the packages' unique key (kind, sender, about, …): the document of its sender, then
# the statuses each of its recipients sent about it
HOPS = (
    "SELECT p.kind, p.sender, p.status_code, p.accepted_at, d.recipient, d.node, d.attempts,"
    " d.delivered_at, d.id FROM packages p JOIN deliveries d ON d.package_id = p.id"
)
TRACE = (  # constant text: the values are bound as parameters
    f"{HOPS} WHERE p.kind = $1 AND p.sender = $2 AND p.about = $3"  # noqa: S608
    f" UNION ALL {HOPS} WHERE p.kind = $4 AND p.about = $3 AND p.sender IN"
    " (SELECT r.recipient FROM packages o JOIN deliveries r ON r.package_id = o.id"
    "  WHERE o.kind = $1 AND o.sender = $2 AND o.about = $3)"
)

# a document's recipients, then the statuses about it accepted in the window too
# (status_code "" marks the document). A status of a document accepted in the window
# comes after it; one accepted before is about an earlier package with the same
# DocumentId (the document a revocation or update of it replaced). Both by index.
STAGES = (
    "SELECT p.about, d.recipient, '', p.accepted_at FROM packages p"
    " JOIN deliveries d ON d.package_id = p.id WHERE p.kind = $1 AND p.accepted_at >= $2"
    " UNION ALL SELECT s.about, s.sender, s.status_code, s.accepted_at FROM packages s"
    " WHERE s.kind = $3 AND s.accepted_at >= $2 AND s.about IN"
    " (SELECT about FROM packages WHERE kind = $1 AND accepted_at >= $2)"
)
DOCUMENTS_OF = (
    "SELECT p.sender, p.about FROM packages p WHERE p.kind = $1 AND p.accepted_at >= $2"
    " AND p.accepted_at < $3 AND (p.sender = $4 OR EXISTS (SELECT 1 FROM deliveries d"
    "  WHERE d.package_id = p.id AND d.recipient = $4)) ORDER BY p.accepted_at, p.id LIMIT $5"
)
RELAY_TIMES = (
    "SELECT d.delivered_at - p.accepted_at FROM deliveries d"
    " JOIN packages p ON p.id = d.package_id WHERE d.delivered_at >= $1"
)


class HubViews(PostgresDatabase):
    async def trace(self, sender: str, about: str) -> list[Hop]:
        rows = await self._rows(
            TRACE, MessageKind.DOCUMENT.value, sender, about, MessageKind.STATUS.value
        )
        return sorted((Hop(*row) for row in rows), key=Hop.place)

    async def stages(self, since: dt.datetime) -> list[Stage]:
        rows = await self._rows(STAGES, MessageKind.DOCUMENT.value, since, MessageKind.STATUS.value)
        return [Stage(*row) for row in rows]

    async def relay_times(self, since: dt.datetime) -> list[dt.timedelta]:
        return [row[0] for row in await self._rows(RELAY_TIMES, since)]

    async def documents_of(
        self, org_id: str, start: dt.datetime, end: dt.datetime, limit: int
    ) -> list[tuple[str, str]]:
        rows = await self._rows(DOCUMENTS_OF, MessageKind.DOCUMENT.value, start, end, org_id, limit)
        return [(row[0], row[1]) for row in rows]
