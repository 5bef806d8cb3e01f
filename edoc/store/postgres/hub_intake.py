"""The hub's PostgreSQL reads for its intake: a package by its key, and all a new package
is judged by (HubStore.admission) in one statement."""

from __future__ import annotations

from collections.abc import Sequence

import asyncpg

from edoc.model import MessageKind
from edoc.store.hub import NEW_ELSE_ANY, Admission, PackageKey, PackageRecord
from edoc.store.postgres.hub_views import HubViews

_RECORD = (
    "id, kind, sender, about, status_code, business_type, digest, accepted_at,"
    " ARRAY(SELECT recipient FROM deliveries WHERE package_id = p.id ORDER BY id) AS recipients"
)
_BY_KEY = "kind = $1 AND sender = $2 AND about = $3 AND business_type = $4 AND status_code = $5"


def _found_by(first: int) -> str:
    """The package of the key in parameters $first to $first+4 (kind, sender, about,
    business type, status code): with a business type of NEW_ELSE_ANY, of its sender's
    documents of that DocumentId the new one first (by the key's index all the same)."""
    kind, sender, about, business, status = (f"${n}" for n in range(first, first + 5))
    return (
        f"SELECT {_RECORD} FROM packages p WHERE kind = {kind} AND sender = {sender}"  # noqa: S608
        f" AND about = {about} AND status_code = {status}"
        f" AND (business_type = {business} OR {business} = {NEW_ELSE_ANY})"
        " ORDER BY business_type LIMIT 1"
    )


_PACKAGE = _found_by(1)

# one row per finding, told apart by ``what``: the package of the new one's key ($1-$5),
# the original ($6-$10; NULLs when none is asked: no row), the codes the new one's sender
# gave the original's sender about it (if $12), each addressee ($11 and the original's
# recipients) with whether the address book knows it and its deliveries waiting
_ADMISSION = f"""
WITH original AS ({_found_by(6)}), asked AS (
    SELECT DISTINCT org_id FROM (
        SELECT unnest($11::text[]) AS org_id UNION ALL SELECT unnest(recipients) FROM original
    ) a
)
SELECT 'earlier' AS what, {_RECORD}, NULL::boolean AS in_book, NULL::bigint AS waiting
FROM packages p WHERE {_BY_KEY}
UNION ALL
SELECT 'original', *, NULL, NULL FROM original
UNION ALL
SELECT 'code', NULL, NULL, NULL, NULL, p.status_code, NULL, NULL, NULL, NULL, NULL, NULL
FROM packages p JOIN deliveries d ON d.package_id = p.id
WHERE $12 AND p.kind = 'status' AND p.sender = $2 AND p.about = $8 AND d.recipient = $7
UNION ALL
SELECT 'addressee', NULL, NULL, a.org_id, NULL, NULL, NULL, NULL, NULL, NULL,
    EXISTS (SELECT 1 FROM directory WHERE org_id = a.org_id),
    (SELECT COUNT(*) FROM deliveries WHERE recipient = a.org_id AND delivered_at IS NULL)
FROM asked a
"""  # noqa: S608 (constant text: the values are bound as parameters)

_RECORD_FIELDS = (
    "id",
    "kind",
    "sender",
    "about",
    "status_code",
    "business_type",
    "digest",
    "accepted_at",
)


def _record(row: asyncpg.Record) -> PackageRecord:
    fields = {name: row[name] for name in _RECORD_FIELDS}
    return PackageRecord(**fields, recipients=tuple(row["recipients"]))


def _key(key: PackageKey | None) -> tuple[object, ...]:
    if key is None:  # compared with NULL: no row
        return (None, None, None, None, None)
    return (key.kind, key.sender, key.about, key.business_type, key.status_code)


class HubIntake(HubViews):
    async def find_package(self, key: PackageKey) -> PackageRecord | None:
        rows = await self._rows(_PACKAGE, *_key(key))
        return _record(rows[0]) if rows else None

    async def admission(
        self, key: PackageKey, original: PackageKey | None, addressees: Sequence[str]
    ) -> Admission:
        """What the intake judges a new package by, in one statement."""
        codes = original is not None and key.kind == MessageKind.STATUS
        rows = await self._rows(_ADMISSION, *_key(key), *_key(original), list(addressees), codes)
        found = {
            what: [row for row in rows if row["what"] == what] for what in ("earlier", "original")
        }
        addressed = [row for row in rows if row["what"] == "addressee"]
        return Admission(
            earlier=_record(found["earlier"][0]) if found["earlier"] else None,
            original=_record(found["original"][0]) if found["original"] else None,
            codes_given=tuple(row["status_code"] for row in rows if row["what"] == "code"),
            known=frozenset(row["sender"] for row in addressed if row["in_book"]),
            queued={row["sender"]: int(row["waiting"]) for row in addressed},
        )
