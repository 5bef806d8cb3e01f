"""The node's configuration and the resources one running node holds."""

from __future__ import annotations

import asyncio
import datetime as dt
import functools
from dataclasses import dataclass, field
from pathlib import Path

from edoc.client import HubClient
from edoc.keystore import KeyStore
from edoc.node.stats import Tallied
from edoc.offload import Offload
from edoc.orgid import OrgId, parse_root_code, root_of
from edoc.settled import Settled
from edoc.store import sqlite_url
from edoc.store.node import NodeStore
from edoc.web import HttpMetrics, KnownTokens


@dataclass(frozen=True)
class NodeConfig:
    province: str  # root code of what this node serves, e.g. "H53"
    data_dir: Path
    keys_dir: Path
    hub_url: str
    hub_token: str = field(repr=False)  # a secret: never in a printed config
    host: str = "127.0.0.1"
    port: int = 8800
    hub_tls: bool = True
    max_upload_bytes: int = 300 * 1024 * 1024
    retry_base: float = 1.0  # seconds; doubles per attempt, with jitter
    retry_cap: float = 60.0
    give_up_after: dt.timedelta = dt.timedelta(hours=24)
    poll_wait: float = 20.0
    inbox_max_wait: float = 30.0  # seconds an agency's inbox read may be held (?wait=)
    workers: int = 4
    stamp_every: float = 5.0  # seconds between batches of time stamps (edoc.archive.stamping)
    evidence_days: int | None = None  # how long batches are kept; None: all
    store_url: str | None = None  # where the node keeps its data; None: data_dir/node.sqlite
    # the operator's dashboard credential (edoc.dashboard.auth); None: no dashboard
    operator_token: str | None = field(default=None, repr=False)

    @property
    def store(self) -> str:
        """The store's URL (see edoc.store)."""
        return self.store_url or sqlite_url(self.data_dir / "node.sqlite")

    @functools.cached_property  # asked several times a recipient at the agency door
    def root(self) -> OrgId:
        return parse_root_code(self.province)

    @property
    def org_id(self) -> str:
        """The node's own identity (its TLS certificate): the province's level-1 identifier."""
        return str(self.root)


@dataclass
class NodeState:
    config: NodeConfig
    store: NodeStore
    keys: KeyStore
    offload: Offload
    metrics: HttpMetrics
    hub: HubClient
    outbox_wakeup: asyncio.Event = field(default_factory=asyncio.Event)
    registered: bool = False  # the hub knows this node's agencies
    hub_unreachable: bool = False  # the outbox's last try found no hub at all
    # the hub's last answer to the outbox or the collector refused the node's own token or
    # certificate (401/403); and the transfers that wait only for it to take the node again
    # (edoc.node.refusal; at start, those the store says waited so: refusal.recall)
    hub_refused_node: bool = False
    waiting_on_credentials: set[int] = field(default_factory=set)
    hub_took_node_at: dt.datetime | None = None  # when a refusal last ended
    tokens: KnownTokens = field(default_factory=KnownTokens)  # agencies' tokens
    # agency → what its held inbox reads wait on, set (and dropped) when a document for it
    # is stored; only agencies someone waits for have one
    inbox_wakeups: dict[str, asyncio.Event] = field(default_factory=dict)
    stopping: bool = False  # the node is shutting down: held inbox reads answer at once
    # the counters' figures, for the statistics and the dashboard (edoc.settled)
    tallied: Settled[Tallied] = field(default_factory=Settled)

    async def agency_for_token(self, token_sha256: str) -> str | None:
        """The agency a token belongs to (a known one remembered for a few seconds)."""
        return await self.tokens.owner(token_sha256, self.store.agency_for_token)

    @property
    def outgoing_dir(self) -> Path:
        return self.config.data_dir / "outgoing"

    @property
    def inbox_dir(self) -> Path:
        return self.config.data_dir / "inbox"

    @property
    def incoming_dir(self) -> Path:
        return self.config.data_dir / "incoming"

    def serves(self, org_id: str) -> bool:
        return root_of(org_id) == self.config.root

    def inbox_wakeup(self, org_id: str) -> asyncio.Event:
        """What a held read of ``org_id``'s inbox waits on: set by the next document stored
        for it. Taken before reading the inbox, a document stored during the read sets it.
        Each document sets a new one (no reader clears a shared event another may be about
        to wait on)."""
        event = self.inbox_wakeups.get(org_id)
        if event is None:
            event = self.inbox_wakeups[org_id] = asyncio.Event()
        return event

    def document_stored(self, org_id: str) -> None:
        """Wake the held inbox reads of ``org_id`` (a document for it is stored)."""
        event = self.inbox_wakeups.pop(org_id, None)
        if event is not None:
            event.set()

    def stop_waiting(self) -> None:
        """End every held inbox read now, as the hub ends its long polls
        (edoc.hub.state.HubState.stop_waiting): one still held when the server's grace runs
        out would be cut off instead of answered."""
        self.stopping = True
        for event in self.inbox_wakeups.values():
            event.set()
