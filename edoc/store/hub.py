"""What the hub keeps: the :class:`HubStore` interface and the records it takes and gives.

The hub's services speak only to this interface; a backend (edoc.store.sqlite.hub, later
PostgreSQL) stores and fetches. The exchange's rules (who may send what, which node serves
an organization, what counts as sent or received) stay in the services: a backend applies
none of them, it keeps what it is given.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from edoc import errors
from edoc.store.sums import CounterSums


@dataclass(frozen=True)
class Tally:
    """One step of a statistics counter: ``by`` more of ``metric`` for ``org_id`` on ``day``
    (``reason``: an error code, for refusals)."""

    day: dt.date
    org_id: str
    metric: str
    reason: str
    by: int = 1


@dataclass(frozen=True)
class Addressee:
    """A recipient of a package and the node (root code, e.g. ``H34``) that collects it."""

    org_id: str
    node: str


@dataclass(frozen=True)
class NewPackage:
    kind: str  # "document" | "status"
    sender: str
    about: str  # DocumentId the message concerns (a status: the answered document's)
    status_code: str  # "" for documents
    business_type: int
    priority: int
    digest: str  # SHA-256 of the seal's SignatureValue: the same content gives the same digest
    path: str  # "" when the package is kept in the store (body)
    size: int
    recipients: tuple[Addressee, ...]
    body: bytes | None = None  # a small package, kept with its row: no file of its own
    # a status: how many codes its responder had given the document when it was judged.
    # Two statuses judged on the same codes are not both kept (ChainMoved): without that,
    # a 04 and a 06 posted at once both followed 01 and both went out.
    follows: int | None = None

    @property
    def answers(self) -> str | None:
        """Whose document a status with a place in its chain answers: its one recipient
        (two senders may name their documents alike, so a chain is the responder's
        answers to one DocumentId of one sender)."""
        return self.recipients[0].org_id if self.follows is not None else None

    @property
    def key(self) -> PackageKey:
        return PackageKey(self.kind, self.sender, self.about, self.business_type, self.status_code)


def chain_moved(package: NewPackage) -> errors.ChainMoved:
    """What a store raises when ``package``'s place in its chain was taken meanwhile."""
    return errors.ChainMoved(
        f"status {package.status_code} for {package.about}: another status came first"
    )


def token_taken(node: str) -> errors.NodeExists:
    """What a store raises when ``node``'s token is another node's (a token is one node's:
    UNIQUE), asked to add it after the hub last looked (edoc.hub.app.add_node names whose)."""
    return errors.NodeExists(f"the token given to {node} is another node's")


# A PackageKey's business type asking for a document whatever it does to one: of its
# sender's documents of that DocumentId, the new one if there is one, else a revoke,
# update or replacement that carries the DocumentId as its own. A status names the
# document it answers by DocumentId alone (it carries no Bussiness): the one so found.
NEW_ELSE_ANY = -1


@dataclass(frozen=True)
class PackageKey:
    """What makes a package the same message: one per key is ever accepted. A key to
    find a package by (find_package, admission's ``original``) may have a business type
    of NEW_ELSE_ANY; a new package's has its own."""

    kind: str
    sender: str
    about: str
    business_type: int
    status_code: str


@dataclass(frozen=True)
class PackageRecord:
    id: int
    kind: str
    sender: str
    about: str
    status_code: str
    business_type: int
    digest: str
    accepted_at: dt.datetime
    recipients: tuple[str, ...]


@dataclass(frozen=True)
class Admission:
    """What the hub's intake judges a new package by, read in one go (a read each was a
    trip each to the store): see :meth:`HubStore.admission`."""

    earlier: PackageRecord | None  # the package accepted before under the new one's key
    original: PackageRecord | None  # the document asked for (revoked, replaced, answered…)
    codes_given: tuple[str, ...]  # a status's: its sender's statuses about the original
    known: frozenset[str]  # of the addressees asked about, those in the address book
    queued: Mapping[str, int]  # of the same, deliveries not yet acknowledged, each


@dataclass(frozen=True)
class Delivery:
    id: int
    package_id: int
    recipient: str
    node: str
    kind: str
    sender: str
    about: str
    status_code: str
    priority: int
    size: int
    path: str
    # the package itself when the store keeps it (path is then ""), loaded only where it is
    # sent: by delivery(), and by lease() and deliveries() up to ``bodies_up_to`` bytes.
    # From delivery(), which loads a body whatever its size, neither (no body, path ""):
    # acknowledged long ago, its bytes dropped by retention (a lease leaves out large ones)
    body: bytes | None
    attempts: int
    delivered: bool


@dataclass(frozen=True)
class Drop:
    """What a step of retention did (HubStore.drop_delivered_bytes, edoc.hub.retention)."""

    dropped: int  # packages whose bytes went
    files: tuple[str, ...]  # theirs, to remove once the change is committed (listed till then)
    # when the last package the step looked at was accepted: the next step looks at those
    # after it. None: the step looked at every one left before its bound
    reached: dt.datetime | None


@dataclass(frozen=True)
class Receipt:
    """An acknowledged delivery and the counter it adds to if it is delivered for the
    first time (an acknowledgement repeated counts once)."""

    delivery_id: int
    tally: Tally


@dataclass(frozen=True)
class Count:
    """A counter's total."""

    day: dt.date
    org_id: str
    metric: str
    reason: str
    count: int


Sums = CounterSums[Count]  # what the store's counter_sums gives


def sums_sql(first: str, before: str) -> str:
    """The SQL of the hub's CounterSums (edoc.store.sums) of the days from parameter
    ``first`` to, not including, ``before`` (each store's placeholders): ``by_org`` rows
    (org_id, metric, reason, total); ``by_day`` counts per day and province (org_id its
    level-1 identifier; for a refusal the organization it claimed, which may be no valid
    identifier), metric and reason. One statement, so that both sums are of one
    snapshot. An accepted message's organization is a valid identifier: its province is
    its last three characters."""
    days = f"FROM counters WHERE day >= {first} AND day < {before}"
    province = "'000.00.00.' || substr(org_id, length(org_id) - 2)"
    return (
        f"SELECT 'org', NULL, org_id, metric, reason, SUM(count) {days}"
        " GROUP BY org_id, metric, reason"
        f" UNION ALL SELECT 'day', day,"
        f" CASE WHEN metric = 'rejected' THEN org_id ELSE {province} END,"
        f" metric, reason, SUM(count) {days} GROUP BY 2, 3, 4, 5"
        " ORDER BY 1, 2, 3, 4, 5"
    )


@dataclass(frozen=True)
class Hop:
    """One delivery of a package about a document: the document itself, or a status one of
    its recipients sent back (for the operator's search)."""

    kind: str
    sender: str
    status_code: str  # "" for the document
    accepted_at: dt.datetime
    recipient: str
    node: str
    attempts: int  # times the node collected it
    delivered_at: dt.datetime | None  # when the node acknowledged it
    delivery_id: int  # its package (the envelope the hub keeps): HubStore.delivery

    def place(self) -> tuple[dt.datetime, str, str]:
        """Its place in a trace: by when accepted, the document before the statuses, by
        recipient. (Sorted after the query: an ORDER BY made SQLite read the hops through
        the packages' index by time, every package the hub ever accepted: 0.9 s, not
        0.5 ms, for one trace in a million packages.)"""
        return (self.accepted_at, self.kind, self.recipient)


@dataclass(frozen=True)
class Stage:
    """A document's step toward one of its recipients (for the operator's status funnel):
    with ``status_code`` "", the hub accepted the document for ``party``; else ``party``,
    one of its recipients, sent that status about it."""

    about: str  # the document's DocumentId
    party: str
    status_code: str
    at: dt.datetime


@dataclass(frozen=True)
class Backlog:
    """Deliveries not yet acknowledged by a node; ``stuck``: of those, the ones leased
    STUCK_AFTER times or more."""

    node: str
    waiting: int
    stuck: int = 0


# A delivery leased this many times and still not acknowledged is "stuck": its node
# collects it and, lease after lease, neither stores nor refuses it (a fault it meets
# every time: its store, its disk, a bug, a seal it lacks). Nothing changes for it (it
# stays owed and is offered again), but the operator is shown it (edoc.hub.queues). A
# delivery's first lease is attempt 1, one whose acknowledgement was lost 2; at the
# default 60 s lease, 10 is ten minutes of a node failing on the same package, long past
# a hub restart or a passing fault, yet within one look at the dashboard. The backends
# keep the stuck ones in partial indexes made for this number (SQLite's carries it in
# its predicate, PostgreSQL's lease marks a delivery stuck at it): another number needs
# other indexes, and stores marked anew.
STUCK_AFTER = 10


def backlogs_sql(stuck: str) -> str:
    """The SQL of HubStore.backlogs: per node, its deliveries waiting and, of those, the
    stuck ones (each backend's ``stuck`` condition, which its partial index of stuck
    deliveries carries as it is): (node, waiting, stuck) rows, one of each count per
    node, summed by backlogs_of. The stuck are counted through that index, which holds
    them alone: asked at each statistics or dashboard request (every 2 s), a count of
    them among the waiting rows read every one of those (a national backlog: 100,000)."""
    return f"""
SELECT node, COUNT(*), 0 FROM deliveries WHERE delivered_at IS NULL GROUP BY node
UNION ALL
SELECT node, 0, COUNT(*) FROM deliveries WHERE delivered_at IS NULL AND {stuck} GROUP BY node
"""  # noqa: S608 (constant text)


def backlogs_of(rows: Iterable[Iterable[Any]]) -> list[Backlog]:
    """The Backlogs of the rows of backlogs_sql, by node."""
    waiting: dict[str, list[int]] = {}
    for node, queued, stuck in rows:
        counts = waiting.setdefault(node, [0, 0])
        counts[0] += int(queued)
        counts[1] += int(stuck)
    return [Backlog(node, queued, stuck) for node, (queued, stuck) in sorted(waiting.items())]


@dataclass(frozen=True)
class DirectoryEntry:
    org_id: str
    name: str
    kind: str
    node: str  # root code of the node that serves it, e.g. "H53"


@dataclass(frozen=True)
class Directory:
    version: int  # grows by one with every registration that changes an entry
    entries: tuple[DirectoryEntry, ...]  # by org_id


class HubStore(Protocol):
    async def open(self) -> None: ...

    async def close(self) -> None: ...

    async def ping(self) -> None:
        """Return if the store answers; raise StorageError if not."""
        ...

    # packages and deliveries
    async def find_package(self, key: PackageKey) -> PackageRecord | None:
        """The package of ``key`` (of its business type NEW_ELSE_ANY: see there)."""
        ...

    async def accept(self, package: NewPackage, now: dt.datetime, tally: Tally) -> PackageRecord:
        """Store a package, one delivery per recipient and ``tally``, all or nothing;
        DuplicateDocument if a package of the same key is there already, ChainMoved if a
        status of the same ``follows`` in its chain is."""
        ...

    async def admission(
        self, key: PackageKey, original: PackageKey | None, addressees: Sequence[str]
    ) -> Admission:
        """For a new package of ``key``: the package of that key accepted before; the
        package of ``original`` (if asked; as find_package finds it); if ``key`` is a
        status's and ``original`` is asked, the status codes ``key.sender`` sent
        ``original.sender`` about ``original.about``; and of ``addressees`` and the
        original's recipients, those the address book knows and how many deliveries to
        each are not yet acknowledged. One read, where the intake made up to six."""
        ...

    async def lease(
        self,
        node: str,
        now: dt.datetime,
        visibility: dt.timedelta,
        limit: int,
        bodies_up_to: int,
        holder: str | None = None,
    ) -> list[Delivery]:
        """Up to ``limit`` unacknowledged deliveries for ``node`` whose lease ran out, most
        urgent (priority, then oldest) first, hidden until ``now + visibility``; each one's
        attempts grow by one. Bodies of packages up to ``bodies_up_to`` bytes come along.
        A status is left while an earlier delivery of its chain (responder, document,
        recipient) is leased, not acknowledged, by another ``holder`` than this one (the
        collecting process, which orders what it holds itself; None: one of its own)."""
        ...

    async def delivery(self, delivery_id: int) -> Delivery | None:
        """One delivery, with its body whatever its size."""
        ...

    async def acknowledge_checked(
        self,
        delivery_ids: Sequence[int],
        now: dt.datetime,
        receipts: Callable[[Sequence[Delivery]], Sequence[Receipt]],
    ) -> list[Delivery]:
        """Mark delivered the deliveries named by the receipts ``receipts`` makes of those
        of ``delivery_ids`` that exist (most urgent first, without bodies), adding each
        one's tally in the same transaction, the first time only: ``receipts`` raising
        acknowledges none. The deliveries acknowledged for the first time, by id.
        ``receipts`` only computes: a backend may call it on a thread of its own.

        SQLite reads, checks and marks in one change (one trip to its thread). PostgreSQL
        reads in one statement, checks, then marks and counts in a second: what is
        checked (a delivery's recipient, node and kind) never changes once accepted, and
        the marking takes only deliveries not yet delivered, so an acknowledgement
        marked in between (a node's retry, on another instance) is counted once."""
        ...

    # statistics
    async def count(self, tally: Tally) -> None: ...

    async def counters(self) -> list[Count]: ...

    async def counter_sums(self, first: dt.date, before: dt.date) -> Sums:
        """The counters of the days from ``first`` to, not including, ``before``."""
        ...

    async def backlogs(self) -> list[Backlog]:
        """Unacknowledged deliveries per node, for the nodes that have any, and of those
        the stuck ones (STUCK_AFTER)."""
        ...

    async def trace(self, sender: str, about: str) -> list[Hop]:
        """Every delivery of document ``about`` of ``sender`` and of the statuses its
        recipients sent about it, in the order the hub accepted them."""
        ...

    async def documents_of(
        self, org_id: str, start: dt.datetime, end: dt.datetime, limit: int
    ) -> list[tuple[str, str]]:
        """(sender, DocumentId) of up to ``limit`` documents ``org_id`` sent, or was sent,
        that the hub accepted from ``start`` to before ``end``, in the order accepted."""
        ...

    async def stages(self, since: dt.datetime) -> list[Stage]:
        """The steps of the documents accepted since ``since``: one per recipient of each,
        and one per status sent about one of them."""
        ...

    async def relay_times(self, since: dt.datetime) -> list[dt.timedelta]:
        """Accepted to acknowledged by the node, of every delivery acknowledged since
        ``since``."""
        ...

    # address book and nodes
    async def register(
        self, entries: Sequence[DirectoryEntry], replacing: str | None = None
    ) -> int:
        """Add or update organizations; returns the directory's version after it. With
        ``replacing`` (a node), ``entries`` are all that node's: its agencies not among
        them are removed (level-1 identifiers, the seeds', stay)."""
        ...

    async def directory(self) -> Directory: ...

    async def directory_version(self) -> int:
        """The directory's version alone (Directory.version): one row, not every entry."""
        ...

    async def add_node(self, node: str, token_sha256: str) -> None:
        """Let ``node`` in with this token, replacing any token it had. A token another
        node holds (one node's each) raises errors.NodeExists, nothing changed."""
        ...

    async def add_new_node(self, node: str, token_sha256: str) -> bool:
        """Let ``node`` in with this token unless it holds another one (kept as it is);
        whether it holds this one now. One change: two operators adding at once do not
        both think theirs is the token. A token another node holds raises
        errors.NodeExists, as for add_node."""
        ...

    async def node_for_token(self, token_sha256: str) -> str | None: ...

    # retention
    async def drop_delivered_bytes(
        self, after: dt.datetime, before: dt.datetime, limit: int
    ) -> Drop:
        """Look at the packages still holding their bytes accepted after ``after`` and
        before ``before``, oldest first: ``limit`` of them, and any others accepted at
        the same moment as the last (the next step, after Drop.reached, misses none).
        Those still owed to a recipient are passed over, not looked at again by the next
        step: a step's work is bounded however many are owed. Drop the bytes of those
        whose every delivery was acknowledged, and list their files (dropped_files) in
        the same change: a hub killed before it removes them leaves them listed, not
        forgotten. The rows stay: a resend is answered as before, the statistics count
        them."""
        ...

    async def dropped_files(self, after: str, limit: int) -> list[str]:
        """Up to ``limit`` of the files listed by drop_delivered_bytes and not yet said
        removed (files_removed), by name, those after ``after``. Any instance may remove
        them: no row names them any more, nor will one (a file is named by its package's
        digest: the same name is the same package, whose row stays)."""
        ...

    async def files_removed(self, paths: Sequence[str]) -> None:
        """Take ``paths`` off the list of dropped files: they are gone from the disk."""
        ...

    # other processes on the same store
    async def watch(self, wake: Callable[[str], None]) -> None:
        """Call ``wake(node)`` when another process sharing the store adds a delivery for
        ``node``, and ``wake("")`` when such news may have been lost (every node). A hint
        only, maybe late or lost: pollers still look now and then. A store no other
        process shares never calls it."""
        ...
