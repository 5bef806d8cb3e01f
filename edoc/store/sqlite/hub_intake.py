"""The hub's SQLite reads for its intake: a package by its key, and all a new package is
judged by (HubStore.admission) in one call on the connection's thread."""

from __future__ import annotations

import json
import sqlite3

from edoc.model import MessageKind
from edoc.store.hub import NEW_ELSE_ANY, Admission, PackageKey, PackageRecord
from edoc.store.sqlite.database import from_ms

# the recipients come along as a JSON list: one query for the package and its deliveries.
# A key of business type NEW_ELSE_ANY matches each of its sender's documents of that
# DocumentId, the new one first (by the key's index all the same: its first three columns)
_PACKAGE = (  # constant text: the values are bound as parameters
    "SELECT id, kind, sender, about, status_code, business_type, digest,"  # noqa: S608
    " accepted_at, (SELECT json_group_array(recipient) FROM"
    "   (SELECT recipient FROM deliveries WHERE package_id = p.id ORDER BY id))"
    " FROM packages p WHERE kind=? AND sender=? AND about=? AND status_code=?"
    f" AND (business_type=? OR ?={NEW_ELSE_ANY}) ORDER BY business_type LIMIT 1"
)
_CODES_GIVEN = (
    "SELECT p.status_code FROM packages p JOIN deliveries d ON d.package_id = p.id"
    " WHERE p.kind=? AND p.sender=? AND p.about=? AND d.recipient=?"
)
# of each addressee: whether the address book knows it, and its deliveries waiting
_ADDRESSEES = (
    "SELECT a.value, EXISTS (SELECT 1 FROM directory WHERE org_id = a.value),"
    " (SELECT COUNT(*) FROM deliveries WHERE recipient = a.value AND delivered_at IS NULL)"
    " FROM (SELECT DISTINCT value FROM json_each(?)) a"
)


def package_record(db: sqlite3.Connection, key: PackageKey) -> PackageRecord | None:
    matched = (key.kind, key.sender, key.about, key.status_code)
    row = db.execute(_PACKAGE, (*matched, key.business_type, key.business_type)).fetchone()
    if row is None:
        return None
    return PackageRecord(
        id=row[0],
        kind=row[1],
        sender=row[2],
        about=row[3],
        status_code=row[4],
        business_type=row[5],
        digest=row[6],
        accepted_at=from_ms(row[7]),
        recipients=tuple(json.loads(row[8])),
    )


def _codes_given(
    db: sqlite3.Connection, responder: str, document_sender: str, about: str
) -> list[str]:
    rows = db.execute(_CODES_GIVEN, (MessageKind.STATUS, responder, about, document_sender))
    return [row[0] for row in rows]


def admission(
    db: sqlite3.Connection,
    key: PackageKey,
    original: PackageKey | None,
    addressees: list[str],
) -> Admission:
    """HubStore.admission's reads, one after the other on the connection's thread."""
    found = package_record(db, original) if original is not None else None
    given: list[str] = []
    if original is not None and key.kind == MessageKind.STATUS:
        given = _codes_given(db, key.sender, original.sender, original.about)
    asked = [*addressees, *(found.recipients if found else ())]
    known: set[str] = set()
    queued: dict[str, int] = {}
    for org_id, in_book, waiting in db.execute(_ADDRESSEES, (json.dumps(asked),)):
        queued[org_id] = waiting
        if in_book:
            known.add(org_id)
    return Admission(
        earlier=package_record(db, key),
        original=found,
        codes_given=tuple(given),
        known=frozenset(known),
        queued=queued,
    )
