"""What a node keeps: the :class:`NodeStore` interface and the records it takes and gives.

The node's services speak only to this interface; a backend (edoc.store.sqlite.node or
edoc.store.postgres.node) stores and fetches. The rules (routes, the order of statuses, what
counts as sent or received) stay in the services: where one must hold inside a
transaction (two changes at once must not both pass it), the service hands it to the
store as a function, which the backend calls on the rows it read in that transaction.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

from edoc import errors
from edoc.model import DeliveryState, Route, TransferState
from edoc.store.sums import CounterSums


@dataclass(frozen=True)
class Tally:
    """One step of a statistics counter: ``by`` more of ``metric`` for ``org_id`` and its
    ``partner`` province (or "") on ``day``."""

    day: dt.date
    org_id: str
    partner: str
    metric: str
    by: int = 1


# the same in both stores' SQL
PACKAGE_FILES = (
    "SELECT path FROM outgoing WHERE path != ''"
    " UNION ALL SELECT path FROM inbox WHERE path != ''"
    " UNION ALL SELECT path FROM inbox_attachments WHERE path != ''"
)


@dataclass(frozen=True)
class Count:
    """A counter's total."""

    day: dt.date
    org_id: str
    partner: str
    metric: str
    count: int


Sums = CounterSums[Count]  # what the store's counter_sums gives


def sums_sql(first: str, before: str) -> str:
    """The SQL of a node's CounterSums (edoc.store.sums) of the days from parameter
    ``first`` to, not including, ``before`` (each store's placeholders): ``by_org`` rows
    (org_id, partner, metric, total); ``by_day`` counts per day, partner and metric, over
    every agency (org_id ""). One statement, so that both sums are of one snapshot."""
    days = f"FROM counters WHERE day >= {first} AND day < {before}"
    return (
        f"SELECT 'org', NULL, org_id, partner, metric, SUM(count) {days}"
        " GROUP BY org_id, partner, metric"
        f" UNION ALL SELECT 'day', day, '', partner, metric, SUM(count) {days}"
        " GROUP BY day, partner, metric"
        " ORDER BY 1, 2, 3, 4, 5"
    )


@dataclass(frozen=True)
class Agency:
    org_id: str
    name: str


def token_taken(org_id: str) -> errors.AgencyExists:
    """What a store raises when ``org_id``'s token is another agency's (a token is one
    agency's: UNIQUE), asked to add it after the node last looked (edoc.node.app.add_agency
    names whose)."""
    return errors.AgencyExists(f"the token given to {org_id} is another agency's")


@dataclass(frozen=True)
class NewOutgoing:
    kind: str  # "document" | "status"
    sender: str
    document_id: str  # a status: the answered document's
    status_code: str
    idempotency_key: str | None
    priority: int
    path: str  # "" when the store keeps the package (body)
    summary: dict[str, Any]  # the service's, kept as given (a document's: due_date)
    recipients: tuple[str, ...]
    local: tuple[str, ...]  # those of the recipients this node serves itself
    body: bytes | None = None  # a small package, kept with its row: no file of its own

    @property
    def routes(self) -> list[Route]:
        """The transfers it needs: "hub" if a recipient is not this node's own, "local" if
        one is."""
        return ([Route.HUB] if set(self.recipients) - set(self.local) else []) + (
            [Route.LOCAL] if self.local else []
        )


@dataclass(frozen=True)
class StateChange:
    """One entry of a recipient's history."""

    state: str
    at: dt.datetime
    detail: str | None  # None for the first ("queued"), which has none


def history(text: str) -> tuple[StateChange, ...]:
    """A recipient's history as both backends keep it: a JSON list of its entries."""
    return tuple(
        StateChange(e["state"], dt.datetime.fromisoformat(e["at"]), e.get("detail"))
        for e in json.loads(text)
    )


@dataclass(frozen=True)
class OutgoingRecipient:
    org_id: str
    local: bool  # served by this node: its transfer is the "local" one, else the "hub" one
    state: str  # "queued", "sent", "delivered", "failed" or the last status code it moved to
    history: tuple[StateChange, ...]  # oldest first


@dataclass(frozen=True)
class TransferRecord:
    route: str  # "hub" | "local"
    state: str  # "pending" | "done" | "failed"
    attempts: int
    last_error: str


@dataclass(frozen=True)
class Outgoing:
    id: int
    kind: str
    sender: str
    document_id: str
    status_code: str
    priority: int
    path: str
    summary: dict[str, Any]
    created_at: dt.datetime
    recipients: tuple[OutgoingRecipient, ...]  # by org_id
    transfers: tuple[TransferRecord, ...]


def as_stored(
    new: NewOutgoing, outgoing_id: int, queued_at: dt.datetime, created_at: dt.datetime
) -> Outgoing:
    """``new`` as a store reads it back once written as ``outgoing_id`` at ``queued_at``
    (``created_at`` that time as the store keeps it): what add_outgoing gives back without
    reading it. Plain str where an enum was given, recipients by code point (organization
    ids are ASCII, so every backend's order), the summary through JSON as it is kept."""
    first = (StateChange(str(DeliveryState.QUEUED), queued_at, None),)
    return Outgoing(
        id=outgoing_id,
        kind=str(new.kind),
        sender=new.sender,
        document_id=new.document_id,
        status_code=new.status_code,
        priority=new.priority,
        path=new.path,
        summary=json.loads(json.dumps(new.summary, ensure_ascii=False)),
        created_at=created_at,
        recipients=tuple(
            OutgoingRecipient(r, r in new.local, str(DeliveryState.QUEUED), first)
            for r in sorted(new.recipients)
        ),
        transfers=tuple(
            TransferRecord(str(route), str(TransferState.PENDING), 0, "") for route in new.routes
        ),
    )


@dataclass(frozen=True)
class Transfer:
    """One step of the outbox: a message to the hub, or to this node's own agencies.

    It holds the package's size, not its bytes: the outbox reads the due transfers on
    each wake-up and starts only those a request to the hub is free for, so the others
    were read again and again, bytes and all. A package the store keeps is read when it
    is carried (NodeStore.outgoing_packages)."""

    id: int
    outgoing_id: int
    route: str  # "hub" | "local"
    attempts: int
    path: str  # "" when the store keeps the package
    size: int | None  # bytes of the package the store keeps; None: it is in its file (path)
    created_at: dt.datetime
    kind: str
    sender: str
    document_id: str

    @property
    def kept(self) -> bool:
        """Whether the store keeps the package (else it is the file at ``path``)."""
        return self.size is not None


@dataclass(frozen=True)
class OutboxPass:
    """What one pass of the outbox reads (NodeStore.outbox_pass)."""

    due: tuple[Transfer, ...]  # the transfers to start now, most urgent first
    next_at: dt.datetime | None  # when the next pending transfer falls due after now


@dataclass(frozen=True)
class Event:
    """What happened to recipients of an outgoing message; it joins their history."""

    state: str  # "sent", "delivered", "failed", or a status code they answered
    detail: str


# The service's rule: the state a recipient shows after an event (its state) when it
# showed the first; it may stay as it is, when the event comes late and only joins the
# history.
StateRule = Callable[[str, str], str]


class _Indexed(Protocol):
    def __getitem__(self, index: int, /) -> Any: ...


RecipientRow = TypeVar("RecipientRow", bound=_Indexed)  # each backend's row


def by_event(
    rows: Iterable[RecipientRow], event: Event, own: Mapping[str, Event] | None
) -> dict[Event, list[RecipientRow]]:
    """Recipient rows (outgoing id, recipient, state) by the event each records: its
    own, in ``own`` by recipient, else ``event`` (NodeStore.finish_transfer)."""
    grouped: dict[Event, list[RecipientRow]] = {}
    for row in rows:
        grouped.setdefault((own or {}).get(row[1], event), []).append(row)
    return grouped


# The service's rule for an agency's answer: raises if it may not follow the codes the
# agency gave before (oldest first).
AnswerCheck = Callable[[Sequence[str]], None]


@dataclass(frozen=True)
class NewAnswer:
    """An agency's own status about an item of its inbox, to be queued with its message:
    ``check`` judges it against the codes answered before."""

    inbox_id: int
    message: NewOutgoing
    check: AnswerCheck


@dataclass(frozen=True)
class InboxAttachment:
    n: int
    name: str
    content_type: str
    size: int
    sha256: str
    # "" when its package is kept in the store: its bytes are read from the package (or,
    # in stores written by releases before 2026-12, from this row: see inbox_attachment)
    path: str
    body: bytes | None = None  # its bytes kept apart, when storing: listings do not load them


# What makes an inbox item the same when delivered again (the inbox's unique columns):
# recipient, sender, kind, document id, business type, status code.
InboxKey = tuple[str, str, str, str, int, str]


@dataclass(frozen=True)
class NewInboxItem:
    recipient: str
    sender: str
    kind: str
    document_id: str
    business_type: int
    status_code: str
    path: str  # "" when the store keeps the package (body)
    summary: dict[str, Any]
    attachments: tuple[InboxAttachment, ...]
    body: bytes | None = None  # a small package, kept with its row: no file of its own

    @property
    def key(self) -> InboxKey:
        """What makes it the same item when delivered again."""
        return (
            self.recipient,
            self.sender,
            self.kind,
            self.document_id,
            self.business_type,
            self.status_code,
        )


@dataclass(frozen=True)
class InboxItem:
    id: int
    recipient: str
    sender: str
    kind: str
    document_id: str
    business_type: int
    status_code: str
    path: str
    summary: dict[str, Any]
    received_at: dt.datetime
    attachments: tuple[InboxAttachment, ...]  # by n, without their bytes
    answers: tuple[str, ...]  # codes the recipient answered, oldest first


@dataclass(frozen=True)
class Received:
    inbox_id: int
    first: bool  # False: it was stored before (a redelivery), and nothing changed


@dataclass(frozen=True)
class Progress:
    """Where the recipients of the node's documents stand, for the statistics: counts the
    store keeps as their rows change, so reading them costs the same after a year."""

    states: dict[str, int]  # recipients by their state now (none of a state: absent)
    due: int  # recipients of documents that set a due date
    on_time: int  # of those, the ones that first reached 06 on or before it
    completed: int  # of those, the ones that reached 06, on time or late


def progress(rows: Iterable[Any]) -> Progress:
    """Progress from the (metric, state, count) rows both backends keep: "recipients" by
    state, "due", "on_time" and "completed" with an empty state."""
    states: dict[str, int] = {}
    totals = {"due": 0, "on_time": 0, "completed": 0}
    for metric, state, count in rows:
        if metric == "recipients":
            if count:
                states[state] = int(count)
        else:
            totals[metric] = int(count)
    return Progress(states=dict(sorted(states.items())), **totals)


class NodeStore(Protocol):
    async def open(self) -> None: ...

    async def close(self) -> None: ...

    async def ping(self) -> None:
        """Return if the store answers; raise StorageError if not."""
        ...

    # agencies
    async def add_agency(self, org_id: str, name: str | None, token_sha256: str) -> None:
        """Let ``org_id`` in with this token, replacing any token it had (``name`` None:
        its name kept). A token another agency holds raises errors.AgencyExists, nothing
        changed."""
        ...

    async def add_new_agency(self, org_id: str, name: str | None, token_sha256: str) -> bool:
        """Let ``org_id`` in with this token unless it holds another one (kept as it is);
        whether it holds this one now (then named ``name``, if given). One change, as
        HubStore.add_new_node. A token another agency holds raises errors.AgencyExists."""
        ...

    async def agency_for_token(self, token_sha256: str) -> str | None: ...

    async def agencies(self) -> list[Agency]:
        """By org_id."""
        ...

    # what agencies send, and the outbox that carries it
    async def outgoing_by_key(self, sender: str, key: str) -> Outgoing | None: ...

    async def find_outgoing(self, sender: str, document_id: str) -> Outgoing | None:
        """The first document ``sender`` sent under ``document_id``."""
        ...

    async def add_outgoing(
        self, new: NewOutgoing, now: dt.datetime, tallies: Sequence[Tally]
    ) -> Outgoing:
        """The message, its recipients ("queued"), a pending transfer for each route that
        has recipients ("local" for ``new.local``, "hub" for the others) and ``tallies``,
        in one transaction; DuplicateDocument if the sender used its idempotency key."""
        ...

    async def outgoing(self, outgoing_id: int) -> Outgoing | None: ...

    async def outbox_pass(
        self, now: dt.datetime, limit: int, under_way: Collection[int]
    ) -> OutboxPass:
        """What the outbox's pass at ``now`` needs, in one read (a read each was a trip
        each to the store): up to ``limit`` pending transfers due by ``now`` (none if
        ``limit`` is 0 or less), most urgent (priority, then oldest) first, except those
        ``under_way``, and of the pending transfers of one (sender, document, route) only
        the oldest (statuses go in order); and when the next pending transfer falls due
        after ``now``. The transfers carry their packages' sizes, not their bytes
        (outgoing_packages reads those)."""
        ...

    async def outgoing_packages(self, outgoing_ids: Collection[int]) -> dict[int, bytes]:
        """The packages the store keeps of these outgoing messages, by outgoing id, in one
        read (one kept in a file is not there, nor an id of none). An outgoing message is
        never changed once written: what this reads when a transfer is carried is, byte
        for byte, the package whose size the outbox pass read (Transfer.size)."""
        ...

    async def retry_transfer(
        self, transfer_id: int, at: dt.datetime, error: str, for_credentials: bool = False
    ) -> None:
        """The transfer goes again at ``at``, ``error`` its last error (its attempts grow
        by one); ``for_credentials``: the hub refused the node's credentials, not the
        package (edoc.node.refusal), kept until its next retry so that a node restarted
        knows which transfers wait for the hub to take it again."""
        ...

    async def waiting_on_credentials(self) -> set[int]:
        """The pending transfers whose last try the hub refused for the node's
        credentials (retry_transfer's ``for_credentials``)."""
        ...

    async def retry_now(self, route: str, now: dt.datetime) -> None:
        """Every pending transfer on ``route`` due later falls due ``now``."""
        ...

    async def due_now(self, transfer_ids: Collection[int], now: dt.datetime) -> None:
        """Those of ``transfer_ids`` still pending and due later fall due ``now``."""
        ...

    async def reopen_transfer(
        self, outgoing_id: int, route: str, now: dt.datetime, detail: str
    ) -> bool:
        """An operator's retry: the failed transfer of ``outgoing_id`` on ``route`` is
        pending again, due ``now`` (its attempts and last error kept), and its recipients
        that show "failed" show "queued" again, ``detail`` joining their history. False,
        and nothing changed, when there is no such failed transfer."""
        ...

    async def finish_transfer(
        self,
        transfer: Transfer,
        state: str,
        last_error: str,
        event: Event,
        now: dt.datetime,
        rule: StateRule,
        own: Mapping[str, Event] | None = None,
    ) -> None:
        """Close a transfer (its attempts grow by one) and record ``event`` for the
        recipients it carried, moving each to the state ``rule`` gives; those in ``own``
        (by org id) record their own event instead (a local transfer refused when
        carried again: the recipients that hold its package already stay delivered)."""
        ...

    # what the operator's dashboard shows
    async def recent_outgoing(self, limit: int, troubled: bool) -> list[int]:
        """Ids of the newest outgoing documents, newest first; with ``troubled``, only
        those with a transfer that failed or is being retried (attempts made, pending)."""
        ...

    async def pending_transfers(self) -> dict[str, int]:
        """Pending transfers by route: the outbox's backlog."""
        ...

    # what agencies receive
    async def add_received_document(
        self, item: NewInboxItem, answer: NewOutgoing, now: dt.datetime, tallies: Sequence[Tally]
    ) -> Received:
        """Store a received document once, with the recipient's automatic ``answer`` (an
        outgoing status, recorded among the item's answers) and ``tallies`` in the same
        transaction, so no later status can be queued before it."""
        ...

    async def add_received_status(
        self, item: NewInboxItem, event: Event, now: dt.datetime, rule: StateRule
    ) -> Received:
        """Store a received status once; in the same transaction ``event`` joins the
        history of its sender as a recipient of the document it is about (the item's
        recipient's, by document id), moving it to the state ``rule`` gives."""
        ...

    async def received_before(self, key: InboxKey) -> int | None:
        """The id of the inbox item stored under ``key`` (NewInboxItem.key), or None: what
        a package offered again is known by before it is verified again."""
        ...

    async def inbox(self, recipient: str, since: dt.datetime | None, limit: int) -> list[InboxItem]:
        """Documents received for ``recipient`` (since ``since``, or all), oldest first."""
        ...

    async def inbox_item(self, inbox_id: int) -> InboxItem | None: ...

    async def received_change(self, recipient: str, sender: str, document_id: str) -> bool:
        """Whether a revoke, update or replacement of ``sender``'s document
        ``document_id`` reached ``recipient``: the document a change names in its
        Bussiness/DocumentId, or, naming none, its own DocumentId (as the hub reads it)."""
        ...

    async def inbox_package(self, inbox_id: int) -> bytes | None:
        """The package's bytes, when the store keeps them."""
        ...

    async def inbox_attachment(self, inbox_id: int, n: int) -> bytes | None:
        """Attachment ``n``'s bytes, when the store keeps them apart from the package (rows
        written by releases before 2026-12; since, a package in the store holds them)."""
        ...

    async def package_files(self) -> list[str]:
        """The files outgoing and inbox rows name (a package in a file of its own, and
        its attachments): what the node's start keeps (edoc.node.leftovers)."""
        ...

    async def add_answers(self, answers: Sequence[NewAnswer], now: dt.datetime) -> list[int]:
        """Agencies' own statuses about what they received, each queued with its outgoing
        message, in order, in one transaction: all or none. Each ``check`` sees the codes
        answered so far, those earlier in ``answers`` included; two posts at once cannot
        both pass. Returns the outgoing ids, in order."""
        ...

    # statistics
    async def counters(self) -> list[Count]: ...

    async def counter_sums(self, first: dt.date, before: dt.date) -> Sums:
        """The counters of the days from ``first`` to, not including, ``before``."""
        ...

    async def progress(self) -> Progress:
        """Where the recipients of the node's documents stand (kept as rows change)."""
        ...
