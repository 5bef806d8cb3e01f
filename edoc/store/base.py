"""What the hub keeps, as one async interface; edoc.store.sqlite implements it.

The hub's logic speaks only to :class:`HubStore`, so another backend (PostgreSQL) can
take its place without touching the hub.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from typing import Any, Protocol


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
    recipients: tuple[str, ...]
    body: bytes | None = None  # a small package, kept with its row: no file of its own


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
    # sent: by delivery(), and by lease() and deliveries() up to ``bodies_up_to`` bytes
    body: bytes | None
    attempts: int
    delivered: bool


@dataclass(frozen=True)
class DirectoryEntry:
    org_id: str
    name: str
    kind: str
    node: str  # root code of the node that serves it, e.g. "H53"


class HubStore(Protocol):
    async def open(self) -> None: ...

    async def close(self) -> None: ...

    # packages and deliveries
    async def find_package(
        self, kind: str, sender: str, about: str, business_type: int, status_code: str
    ) -> PackageRecord | None: ...

    async def accept(self, package: NewPackage, now: dt.datetime) -> PackageRecord: ...

    async def queued_for(self, recipient: str) -> int: ...

    async def codes_given(self, responder: str, document_sender: str, about: str) -> list[str]: ...

    async def lease(
        self,
        node: str,
        now: dt.datetime,
        visibility: dt.timedelta,
        limit: int,
        bodies_up_to: int = 0,
    ) -> list[Delivery]: ...

    async def delivery(self, delivery_id: int) -> Delivery | None: ...

    async def deliveries(
        self, delivery_ids: Sequence[int], bodies_up_to: int = 0
    ) -> list[Delivery]: ...

    async def acknowledge(self, delivery_ids: Sequence[int], now: dt.datetime) -> list[int]: ...

    # statistics
    async def count(self, day: dt.date, org_id: str, metric: str, reason: str = "") -> None: ...

    async def stats(self) -> dict[str, Any]: ...

    # address book and nodes
    async def register(self, entries: list[DirectoryEntry]) -> int: ...

    async def directory(self) -> tuple[int, list[DirectoryEntry]]: ...

    async def unknown(self, org_ids: list[str]) -> list[str]: ...

    async def add_node(self, node: str, token_sha256: str) -> None: ...

    async def node_for_token(self, token_sha256: str) -> str | None: ...


# --- the node ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class NewOutgoing:
    kind: str  # "document" | "status"
    sender: str
    document_id: str  # a status: the answered document's
    status_code: str
    idempotency_key: str | None
    priority: int
    path: str  # "" when the store keeps the package (body)
    summary: dict[str, Any]
    recipients: tuple[str, ...]
    local: tuple[str, ...]  # those of the recipients this node serves itself
    body: bytes | None = None  # a small package, kept with its row: no file of its own


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
    recipients: list[dict[str, Any]]
    transfers: list[dict[str, Any]]


@dataclass(frozen=True)
class Transfer:
    """One step of the outbox: a message to the hub, or to this node's own agencies."""

    id: int
    outgoing_id: int
    route: str  # "hub" | "local"
    attempts: int
    path: str  # "" when the store keeps the package (body)
    body: bytes | None
    created_at: dt.datetime
    kind: str
    sender: str
    document_id: str


@dataclass(frozen=True)
class InboxAttachment:
    n: int
    name: str
    content_type: str
    size: int
    sha256: str
    path: str  # "" when the store keeps its bytes (see inbox_content)
    body: bytes | None = None  # its bytes, when storing: listings do not load them


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
    attachments: list[InboxAttachment]
    answers: list[str]


class NodeStore(Protocol):
    async def open(self) -> None: ...

    async def close(self) -> None: ...

    # agencies
    async def add_agency(self, org_id: str, name: str, token_sha256: str) -> None: ...

    async def agency_for_token(self, token_sha256: str) -> str | None: ...

    async def agencies(self) -> list[tuple[str, str]]: ...

    # what agencies send, and the outbox that carries it
    async def outgoing_by_key(self, sender: str, key: str) -> Outgoing | None: ...

    async def find_outgoing(self, sender: str, document_id: str) -> Outgoing | None: ...

    async def add_outgoing(self, new: NewOutgoing, now: dt.datetime) -> Outgoing: ...

    async def outgoing(self, outgoing_id: int) -> Outgoing | None: ...

    async def due_transfers(
        self, now: dt.datetime, limit: int, under_way: Collection[int] = ()
    ) -> list[Transfer]: ...

    async def next_transfer_at(self, after: dt.datetime) -> dt.datetime | None: ...

    async def retry_transfer(self, transfer_id: int, at: dt.datetime, error: str) -> None: ...

    async def retry_now(self, route: str, now: dt.datetime) -> None: ...

    async def finish_transfer(
        self, transfer: Transfer, state: str, recipient_state: str, detail: str, now: dt.datetime
    ) -> None: ...

    # what agencies receive
    async def add_inbox(
        self, item: NewInboxItem, now: dt.datetime, answer: NewOutgoing | None = None
    ) -> tuple[int, bool]: ...

    async def inbox(
        self, recipient: str, since: dt.datetime | None, limit: int
    ) -> list[InboxItem]: ...

    async def inbox_item(self, inbox_id: int) -> InboxItem | None: ...

    async def inbox_content(self, inbox_id: int, attachment: int | None = None) -> bytes | None: ...

    async def add_answer(self, inbox_id: int, answer: NewOutgoing, now: dt.datetime) -> int: ...

    # statistics
    async def counters(self) -> list[tuple[str, str, str, str, int]]: ...

    async def recipient_states(self) -> list[tuple[str, str, str, str]]: ...
