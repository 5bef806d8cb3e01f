"""The hub's configuration and the resources one running hub holds."""

from __future__ import annotations

import asyncio
import datetime as dt
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from prometheus_client import Counter, Gauge

from edoc.hub.directory import SignedBooks
from edoc.hub.stats import Tallied
from edoc.keystore import KeyStore
from edoc.offload import Offload
from edoc.recent import Recent
from edoc.settled import Settled
from edoc.store import sqlite_url
from edoc.store.hub import STUCK_AFTER, HubStore
from edoc.web import HttpMetrics, KnownTokens

HUB_ORG_ID = "000.00.00.G22"  # the axis is run by the Government Office (Văn phòng Chính phủ)


@dataclass(frozen=True)
class HubConfig:
    data_dir: Path
    keys_dir: Path
    org_id: str = HUB_ORG_ID
    host: str = "127.0.0.1"
    port: int = 8700
    tls: bool = True
    max_package_bytes: int = 600 * 1024 * 1024  # a 200 MB attachment is ~270 MB in base64
    # packages up to this size travel inside the collect answer, saving a request each: as
    # large as those the hub keeps in its store's rows (edoc.hub.app.SMALL_BODY); at 256 KB
    # most of a national day's documents (300 KB on average) were each a download of its
    # own, often on a new TLS connection. An answer carries at most 16 MB of them
    # (edoc.hub.queues.INLINE_TOTAL), so it holds fewer deliveries
    inline_bytes: int = 1024 * 1024
    queue_bound: int = 10_000  # undelivered messages per recipient before 429
    visibility: dt.timedelta = dt.timedelta(seconds=60)
    max_wait: float = 30.0
    workers: int = 4
    stamp_every: float = 5.0  # seconds between batches of time stamps (edoc.archive.hub)
    # seconds the dashboard's status funnel and relay latency are shown before they are
    # computed again (edoc.recent.Recent): their windows hold a week and a day
    flow_every: float = 10.0
    evidence_days: int | None = None  # how long batches are kept; None: all
    # how long the bytes of packages every recipient acknowledged are kept; None: all
    package_days: int | None = None
    store_url: str | None = None  # where the hub keeps its data; None: data_dir/hub.sqlite
    # the operator's dashboard credential (edoc.dashboard.auth); None: no dashboard
    operator_token: str | None = field(default=None, repr=False)

    @property
    def store(self) -> str:
        """The store's URL (see edoc.store)."""
        return self.store_url or sqlite_url(self.data_dir / "hub.sqlite")


@dataclass
class HubState:
    config: HubConfig
    store: HubStore
    keys: KeyStore
    offload: Offload
    metrics: HttpMetrics
    accepted: Counter = field(init=False)
    rejected: Counter = field(init=False)
    delivered: Counter = field(init=False)
    stuck: Gauge = field(init=False)
    wakeups: defaultdict[str, asyncio.Event] = field(
        default_factory=lambda: defaultdict(asyncio.Event)
    )
    tokens: KnownTokens = field(default_factory=KnownTokens)  # nodes' tokens
    stopping: bool = False  # the hub is shutting down: long polls answer at once
    batches_under_way: int = 0  # batch requests being handled (this instance), for their answers
    # node → when it last asked for deliveries (this instance only), for the dashboard
    polled: dict[str, dt.datetime] = field(default_factory=dict)
    reports: Recent[dict[str, Any]] = field(default_factory=Recent)  # GET /api/v1/stats
    tallied: Settled[Tallied] = field(default_factory=Settled)  # the statistics' figures
    books: SignedBooks = field(default_factory=SignedBooks)  # the address book signed last

    def __post_init__(self) -> None:
        registry = self.metrics.registry
        self.accepted = Counter(
            "edoc_hub_accepted", "Messages accepted", ["kind"], registry=registry
        )
        self.rejected = Counter(
            "edoc_hub_rejected", "Messages refused, by error code", ["code"], registry=registry
        )
        self.delivered = Counter(
            "edoc_hub_delivered", "Deliveries acknowledged", ["kind"], registry=registry
        )
        # counted by the store at each scrape (edoc.hub.app.metrics), of every instance
        self.stuck = Gauge(
            "edoc_hub_deliveries_stuck",
            f"Deliveries collected {STUCK_AFTER} times or more, never acknowledged (still owed)",
            registry=registry,
        )

    @property
    def packages_dir(self) -> Path:
        return self.config.data_dir / "packages"

    @property
    def incoming_dir(self) -> Path:
        return self.config.data_dir / "incoming"

    def wake(self, nodes: set[str]) -> None:
        for node in nodes:
            self.wakeups[node].set()

    def stop_waiting(self) -> None:
        """End every long poll now: one still waiting when the server's grace runs out is
        cancelled together with its connection's shutdown, which aiohttp then fails with
        InvalidStateError (a traceback in the log at every stop)."""
        self.stopping = True
        for event in self.wakeups.values():
            event.set()
