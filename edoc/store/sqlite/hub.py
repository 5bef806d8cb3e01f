"""The hub's embedded store (SQLite): packages, delivery queues, counters, address book.

It implements :class:`edoc.store.hub.HubStore`; open one with edoc.store.open_hub_store.
"""

from __future__ import annotations

import datetime as dt
import json
import secrets
import sqlite3
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import replace
from functools import partial
from typing import Any

from edoc import errors
from edoc.store.hub import (
    STUCK_AFTER,
    Admission,
    Backlog,
    Count,
    Delivery,
    Directory,
    DirectoryEntry,
    Drop,
    NewPackage,
    PackageKey,
    PackageRecord,
    Receipt,
    Sums,
    Tally,
    backlogs_of,
    backlogs_sql,
    chain_moved,
    sums_sql,
    token_taken,
)
from edoc.store.sqlite.database import from_ms, query, to_ms, unique_as
from edoc.store.sqlite.hub_intake import admission, package_record
from edoc.store.sqlite.hub_views import HubViews
from edoc.store.sums import CounterSums

SCHEMA = """
-- the first release's tables; columns added since are in added_columns, added to new
-- stores and old ones alike when they open
CREATE TABLE IF NOT EXISTS packages (
    id INTEGER PRIMARY KEY,
    kind TEXT NOT NULL,
    sender TEXT NOT NULL,
    about TEXT NOT NULL,
    status_code TEXT NOT NULL,
    business_type INTEGER NOT NULL,
    priority INTEGER NOT NULL,
    digest TEXT NOT NULL,
    path TEXT NOT NULL,
    size INTEGER NOT NULL,
    accepted_at INTEGER NOT NULL,
    UNIQUE (kind, sender, about, business_type, status_code)
);
CREATE TABLE IF NOT EXISTS deliveries (
    id INTEGER PRIMARY KEY,
    package_id INTEGER NOT NULL REFERENCES packages(id),
    recipient TEXT NOT NULL,
    node TEXT NOT NULL,
    priority INTEGER NOT NULL,
    delivered_at INTEGER,
    lease_until INTEGER NOT NULL DEFAULT 0,
    attempts INTEGER NOT NULL DEFAULT 0,
    UNIQUE (package_id, recipient)
);
-- the deliveries still waiting, by node in the order they are leased: the lease and the
-- backlogs (hub statistics, dashboard) read these alone, never an entry per delivery
-- ever made (an index of all of them, deliveries_ready, did that for the backlogs)
DROP INDEX IF EXISTS deliveries_ready;
CREATE INDEX IF NOT EXISTS deliveries_to_lease
    ON deliveries (node, priority DESC, id) WHERE delivered_at IS NULL;
CREATE INDEX IF NOT EXISTS deliveries_recipient ON deliveries (recipient, delivered_at);
-- the dashboard's windows: packages accepted, deliveries acknowledged since a time
CREATE INDEX IF NOT EXISTS packages_accepted ON packages (kind, accepted_at);
CREATE INDEX IF NOT EXISTS deliveries_delivered ON deliveries (delivered_at)
    WHERE delivered_at IS NOT NULL;
CREATE TABLE IF NOT EXISTS counters (
    day TEXT NOT NULL,
    org_id TEXT NOT NULL,
    metric TEXT NOT NULL,
    reason TEXT NOT NULL,
    count INTEGER NOT NULL,
    PRIMARY KEY (day, org_id, metric, reason)
);
CREATE TABLE IF NOT EXISTS directory (
    org_id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    kind TEXT NOT NULL,
    node TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS nodes (node TEXT PRIMARY KEY, token_sha256 TEXT NOT NULL UNIQUE);
"""

# a status's place in its chain is taken once (NewPackage.follows); older rows have none
CHAIN = """
CREATE UNIQUE INDEX IF NOT EXISTS packages_chain
    ON packages (sender, about, answers, follows) WHERE kind = 'status';
"""

# the packages whose bytes the hub still holds, by age: retention walks these alone
# (edoc.hub.retention), not every package it ever accepted
HELD = """
CREATE INDEX IF NOT EXISTS packages_held ON packages (accepted_at)
    WHERE body IS NOT NULL OR path != '';
"""
# the files whose rows retention emptied, listed in the same change until they are
# removed: a hub killed in between removes them at its next pass (HubStore.dropped_files)
DROPPED_FILES = """
CREATE TABLE IF NOT EXISTS dropped_files (path TEXT PRIMARY KEY);
"""
# the deliveries leased STUCK_AFTER times or more and still owed (HubStore.backlogs):
# SQLite uses the index for a query whose condition holds the same literal
STUCK = f"delivered_at IS NULL AND attempts >= {STUCK_AFTER}"
STUCK_INDEX = f"CREATE INDEX IF NOT EXISTS deliveries_stuck ON deliveries (node) WHERE {STUCK};"
BACKLOGS = backlogs_sql(f"attempts >= {STUCK_AFTER}")
# when the held package a step of retention looks at last was accepted: the limit-th
# from its start (OFFSET limit - 1); none when fewer are left
_REACH = """
SELECT accepted_at FROM packages
WHERE accepted_at > ? AND accepted_at < ? AND (body IS NOT NULL OR path != '')
ORDER BY accepted_at LIMIT 1 OFFSET ?
"""
# those of the held packages up to there that every recipient acknowledged
_HELD_AND_DELIVERED = """
SELECT p.id, p.path FROM packages p
WHERE p.accepted_at > ? AND p.accepted_at <= ? AND (p.body IS NOT NULL OR p.path != '')
    AND NOT EXISTS (
        SELECT 1 FROM deliveries d WHERE d.package_id = p.id AND d.delivered_at IS NULL
    )
"""

# the first parameter is the largest package whose body comes along: an acknowledgement
# of 1,000 deliveries, or a lease of packages too large to go inline, needs none
_DELIVERY_SELECT = """
SELECT d.id, d.package_id, d.recipient, d.node, p.kind, p.sender, p.about, p.status_code,
    d.priority, p.size, p.path, CASE WHEN p.size <= ? THEN p.body END, d.attempts,
    d.delivered_at IS NOT NULL
FROM deliveries d JOIN packages p ON p.id = d.package_id
"""
ANY_SIZE = 2**63 - 1


# A status waits while an earlier delivery of its chain (responder, document, recipient)
# is leased, not acknowledged, by another holder: a node that restarts holding the lease
# of a 05 would otherwise be offered the 06 first, and store it first. The holder that
# leased the 05 (the same node process: edoc.node.collector orders what it holds) gets
# the 06 at once. Statuses all have priority 0, so an earlier one not leased comes in
# the same lease, before it. The chain's packages are found through the packages'
# unique key (kind, sender, about, ...), its deliveries through (package_id, recipient):
# a few index lookups per status offered. CROSS JOIN keeps that order: by the
# recipient first, SQLite read every delivery waiting for it.
_LEASE = """UPDATE deliveries SET lease_until=?, leased_by=?, attempts=attempts+1 WHERE id IN (
    SELECT d.id FROM deliveries d JOIN packages p ON p.id = d.package_id
    WHERE d.node=? AND d.delivered_at IS NULL AND d.lease_until <= ?
    AND NOT (p.kind = 'status' AND EXISTS (
        SELECT 1 FROM packages q CROSS JOIN deliveries e
            ON e.package_id = q.id AND e.recipient = d.recipient
        WHERE q.kind = 'status' AND q.sender = p.sender AND q.about = p.about
        AND e.id < d.id AND e.delivered_at IS NULL AND e.lease_until > ?
        AND e.leased_by IS NOT ?))
    ORDER BY d.priority DESC, d.id LIMIT ?
) RETURNING id
"""


def _delivery(row: Any) -> Delivery:
    return Delivery(
        id=row[0],
        package_id=row[1],
        recipient=row[2],
        node=row[3],
        kind=row[4],
        sender=row[5],
        about=row[6],
        status_code=row[7],
        priority=row[8],
        size=row[9],
        path=row[10],
        body=row[11],
        attempts=row[12],
        delivered=bool(row[13]),
    )


def _insert_package(
    package: NewPackage, now: dt.datetime, tally: Tally, db: sqlite3.Connection
) -> int:
    """The package, a delivery per recipient and ``tally``; the package's id."""
    package_id = db.execute(
        "INSERT INTO packages (kind, sender, about, status_code, business_type,"
        " priority, digest, path, size, accepted_at, body, answers, follows)"
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (
            package.kind,
            package.sender,
            package.about,
            package.status_code,
            package.business_type,
            package.priority,
            package.digest,
            package.path,
            package.size,
            to_ms(now),
            package.body,
            package.answers,
            package.follows,
        ),
    ).lastrowid
    db.executemany(
        "INSERT INTO deliveries (package_id, recipient, node, priority) VALUES (?, ?, ?, ?)",
        [(package_id, r.org_id, r.node, package.priority) for r in package.recipients],
    )
    _count(db, tally)
    return package_id or 0


def _deliveries(db: sqlite3.Connection, ids: Sequence[int], bodies_up_to: int) -> list[Delivery]:
    """Most urgent first. Sorted here: SQLite's ORDER BY copied every row, packages and
    all, into its sorter."""
    among = " WHERE d.id IN (SELECT value FROM json_each(?))"
    found = db.execute(_DELIVERY_SELECT + among, (bodies_up_to, json.dumps(list(ids))))
    return sorted((_delivery(row) for row in found), key=lambda d: (-d.priority, d.id))


def _acknowledge(
    db: sqlite3.Connection, receipts: Sequence[Receipt], now: dt.datetime
) -> list[int]:
    """Mark delivered; the ids delivered for the first time, their tallies added."""
    tallies = {receipt.delivery_id: receipt.tally for receipt in receipts}
    rows = db.execute(
        "UPDATE deliveries SET delivered_at=? WHERE delivered_at IS NULL"
        " AND id IN (SELECT value FROM json_each(?)) RETURNING id",
        (to_ms(now), json.dumps(list(tallies))),
    ).fetchall()
    first = sorted(row[0] for row in rows)
    added: Counter[Tally] = Counter()  # one statement per counter, not per delivery
    for delivery_id in first:
        added[replace(tallies[delivery_id], by=1)] += tallies[delivery_id].by
    for tally, by in added.items():
        _count(db, replace(tally, by=by))
    return first


def _drop_delivered(db: sqlite3.Connection, after: int, before: int, limit: int) -> Drop:
    """HubStore.drop_delivered_bytes, its times in milliseconds."""
    reach = db.execute(_REACH, (after, before, limit - 1)).fetchone()
    up_to = before - 1 if reach is None else reach[0]  # (times are whole milliseconds)
    found = db.execute(_HELD_AND_DELIVERED, (after, up_to)).fetchall()
    gone = [(package_id,) for package_id, _ in found]
    db.executemany("UPDATE packages SET body = NULL, path = '' WHERE id = ?", gone)
    files = tuple(path for _, path in found if path)
    listed = [(path,) for path in files]
    db.executemany("INSERT OR IGNORE INTO dropped_files (path) VALUES (?)", listed)
    return Drop(len(found), files, None if reach is None else from_ms(reach[0]))


def _count(db: sqlite3.Connection, tally: Tally) -> None:
    db.execute(
        "INSERT INTO counters (day, org_id, metric, reason, count) VALUES (?, ?, ?, ?, ?)"
        " ON CONFLICT (day, org_id, metric, reason)"
        " DO UPDATE SET count = count + excluded.count",
        (tally.day.isoformat(), tally.org_id, tally.metric, tally.reason, tally.by),
    )


def _directory_version(db: sqlite3.Connection) -> int:
    version = db.execute("SELECT value FROM meta WHERE key='directory_version'").fetchone()
    return int(version[0]) if version else 0


_SUMS = sums_sql("?1", "?2")


class SqliteHubStore(HubViews):
    schema = SCHEMA
    added_columns = (
        ("packages", "body", "BLOB"),
        ("packages", "answers", "TEXT"),
        ("packages", "follows", "INTEGER"),
        ("deliveries", "leased_by", "TEXT"),
    )
    added_scripts = (CHAIN, HELD, DROPPED_FILES, STUCK_INDEX)

    # --- packages -----------------------------------------------------------------------
    async def find_package(self, key: PackageKey) -> PackageRecord | None:
        return await self._read(partial(package_record, key=key))

    async def admission(
        self, key: PackageKey, original: PackageKey | None, addressees: Sequence[str]
    ) -> Admission:
        """What the intake judges a new package by, in one trip."""
        return await self._read(
            partial(admission, key=key, original=original, addressees=list(addressees))
        )

    async def accept(self, package: NewPackage, now: dt.datetime, tally: Tally) -> PackageRecord:
        """Store a package, one delivery per recipient and ``tally``, all or nothing."""
        try:
            package_id = await self._change(partial(_insert_package, package, now, tally))
        except sqlite3.IntegrityError as exc:
            if "packages.follows" in str(exc):
                raise chain_moved(package) from None
            raise errors.DuplicateDocument(
                f"{package.about} from {package.sender} was accepted already"
            ) from None
        return PackageRecord(
            id=package_id,
            kind=package.kind,
            sender=package.sender,
            about=package.about,
            status_code=package.status_code,
            business_type=package.business_type,
            digest=package.digest,
            accepted_at=from_ms(to_ms(now)),
            recipients=tuple(r.org_id for r in package.recipients),
        )

    async def lease(
        self,
        node: str,
        now: dt.datetime,
        visibility: dt.timedelta,
        limit: int,
        bodies_up_to: int,
        holder: str | None = None,
    ) -> list[Delivery]:
        """Hand out up to ``limit`` deliveries, most urgent first, hidden until acknowledged."""
        by = holder or secrets.token_hex(8)

        def lease(db: sqlite3.Connection) -> list[Delivery]:  # and read them, in one call
            until, at = to_ms(now + visibility), to_ms(now)
            leased = db.execute(_LEASE, (until, by, node, at, at, by, limit)).fetchall()
            if not leased:
                return []
            return _deliveries(db, [row[0] for row in leased], bodies_up_to)

        return await self._change(lease)

    async def delivery(self, delivery_id: int) -> Delivery | None:
        rows = await self._rows(_DELIVERY_SELECT + " WHERE d.id=?", (ANY_SIZE, delivery_id))
        return _delivery(rows[0]) if rows else None

    async def acknowledge_checked(
        self,
        delivery_ids: Sequence[int],
        now: dt.datetime,
        receipts: Callable[[Sequence[Delivery]], Sequence[Receipt]],
    ) -> list[Delivery]:
        """The deliveries read, checked (``receipts``) and marked in one trip."""

        def acknowledge(db: sqlite3.Connection) -> list[Delivery]:
            found = {d.id: d for d in _deliveries(db, delivery_ids, bodies_up_to=0)}
            first = _acknowledge(db, receipts(list(found.values())), now)
            return [found[delivery_id] for delivery_id in first]

        return await self._change(acknowledge)

    async def drop_delivered_bytes(
        self, after: dt.datetime, before: dt.datetime, limit: int
    ) -> Drop:
        return await self._change(
            partial(_drop_delivered, after=to_ms(after), before=to_ms(before), limit=limit)
        )

    async def dropped_files(self, after: str, limit: int) -> list[str]:
        rows = await self._rows(
            "SELECT path FROM dropped_files WHERE path > ? ORDER BY path LIMIT ?", (after, limit)
        )
        return [row[0] for row in rows]

    async def files_removed(self, paths: Sequence[str]) -> None:
        await self._change(
            partial(
                query,
                sql="DELETE FROM dropped_files WHERE path IN (SELECT value FROM json_each(?))",
                params=(json.dumps(list(paths)),),
            )
        )

    # --- statistics ------------------------------------------------------------------------
    async def count(self, tally: Tally) -> None:
        await self._change(partial(_count, tally=tally))

    async def counters(self) -> list[Count]:
        rows = await self._rows(
            "SELECT day, org_id, metric, reason, count FROM counters ORDER BY day, org_id"
        )
        return [Count(dt.date.fromisoformat(r[0]), r[1], r[2], r[3], r[4]) for r in rows]

    async def counter_sums(self, first: dt.date, before: dt.date) -> Sums:
        rows = await self._rows(_SUMS, (first.isoformat(), before.isoformat()))
        return CounterSums.of(rows, Count)

    async def backlogs(self) -> list[Backlog]:
        return backlogs_of(await self._rows(BACKLOGS))

    # --- address book and nodes -----------------------------------------------------------------
    async def register(
        self, entries: Sequence[DirectoryEntry], replacing: str | None = None
    ) -> int:
        """Add or update organizations; returns the directory's version after it."""

        def register(db: sqlite3.Connection) -> int:
            before = db.total_changes
            if replacing is not None:
                db.execute(
                    "DELETE FROM directory WHERE node = ? AND kind = 'agency'"
                    " AND org_id NOT IN (SELECT value FROM json_each(?))",
                    (replacing, json.dumps([e.org_id for e in entries])),
                )
            db.executemany(
                "INSERT INTO directory (org_id, name, kind, node) VALUES (?, ?, ?, ?)"
                " ON CONFLICT (org_id) DO UPDATE SET name=excluded.name, kind=excluded.kind,"
                " node=excluded.node WHERE (name, kind, node) IS NOT"
                " (excluded.name, excluded.kind, excluded.node)",
                [(e.org_id, e.name, e.kind, e.node) for e in entries],
            )
            if db.total_changes != before:
                db.execute(
                    "INSERT INTO meta (key, value) VALUES ('directory_version', 1)"
                    " ON CONFLICT (key) DO UPDATE SET value = value + 1"
                )
            return _directory_version(db)

        return await self._change(register)

    async def directory(self) -> Directory:
        def directory(db: sqlite3.Connection) -> Directory:
            rows = db.execute("SELECT org_id, name, kind, node FROM directory ORDER BY org_id")
            entries = tuple(DirectoryEntry(r[0], r[1], r[2], r[3]) for r in rows)
            return Directory(_directory_version(db), entries)

        return await self._read(directory)

    async def directory_version(self) -> int:
        return await self._read(_directory_version)

    async def add_node(self, node: str, token_sha256: str) -> None:
        with unique_as("nodes.token_sha256", partial(token_taken, node)):
            await self._change(
                partial(
                    query,
                    sql="INSERT INTO nodes (node, token_sha256) VALUES (?, ?)"
                    " ON CONFLICT (node) DO UPDATE SET token_sha256=excluded.token_sha256",
                    params=(node, token_sha256),
                )
            )

    async def add_new_node(self, node: str, token_sha256: str) -> bool:
        with unique_as("nodes.token_sha256", partial(token_taken, node)):
            return await self._change(partial(_add_new_node, node=node, token_sha256=token_sha256))

    async def node_for_token(self, token_sha256: str) -> str | None:
        rows = await self._rows("SELECT node FROM nodes WHERE token_sha256=?", (token_sha256,))
        return str(rows[0][0]) if rows else None

    async def watch(self, wake: Callable[[str], None]) -> None:
        """Nothing to watch: one hub process owns the file."""


def _add_new_node(conn: sqlite3.Connection, node: str, token_sha256: str) -> bool:
    # a clash with another node's token (UNIQUE) still raises (NodeExists, in the caller):
    # only this node's row is kept
    conn.execute(
        "INSERT INTO nodes (node, token_sha256) VALUES (?, ?) ON CONFLICT (node) DO NOTHING",
        (node, token_sha256),
    )
    ((held,),) = conn.execute("SELECT token_sha256 FROM nodes WHERE node=?", (node,)).fetchall()
    return bool(held == token_sha256)
