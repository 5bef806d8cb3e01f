"""Fault injection for the reliability suite.

* :class:`FaultNetwork`: the real network of :mod:`tests.support.network` (hub + node
  processes), with the hub's and nodes' flags a fault test needs (a short visibility timeout,
  fast retries, plain HTTP, a node pointed at a proxy) and a pause between provisioning and
  starting, where a test can put a data dir on a small tmpfs.
* :class:`Ledger` and :func:`post`: load that keeps posting through node crashes, every
  document with an ``Idempotency-Key`` so a retry after a kill is the same document.
* :func:`crash_loop`: ``kill -9`` of chosen processes at random moments, each restarted.
* :func:`delivery_check` / :func:`counts_agree` / :func:`statuses_back`: the exactly-once
  verdict over the recipients' real inboxes (``GET /api/v1/inbox``) and both sides' counters.
"""

from __future__ import annotations

import asyncio
import errno
import json
import random
import shutil
import sqlite3
import subprocess
import time
import uuid
from collections import Counter
from collections.abc import Awaitable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import aiohttp
import pytest

from edoc import errors, launcher, network, services, tls
from edoc.keystore import KeyStore
from tests.reliability import report
from tests.support.network import FAST_RETRIES, Agency, LocalNetwork, metadata, provision


def fast_and_long(fast: object, long: object) -> list[Any]:
    """A fault test's two sizes: the fast one runs in ``make test``, the long one (marked
    ``reliability``) only in ``make test-reliability``."""
    return [
        pytest.param(fast, id="fast"),
        pytest.param(long, id="long", marks=pytest.mark.reliability),
    ]


def needs_root_mount() -> str | None:
    """Why tmpfs mounts cannot be used here, or None when they can."""
    probe = Path(f"/tmp/edoc-mount-probe-{uuid.uuid4().hex}")
    probe.mkdir()
    try:
        result = subprocess.run(
            ["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(probe)],
            capture_output=True,
            text=True,
        )
        if result.returncode != 0:
            return f"cannot mount a tmpfs (needs root / CAP_SYS_ADMIN): {result.stderr.strip()}"
        subprocess.run(["umount", str(probe)], check=True)
        return None
    except FileNotFoundError:
        return "no mount command"
    finally:
        probe.rmdir()


@dataclass
class FaultNetwork(LocalNetwork):
    tls: bool = True
    # a lease a killed or cut-off node never acknowledged comes back after 3 s, not 60 s
    hub_args: tuple[str, ...] = ("--visibility", "3")
    node_args: tuple[str, ...] = FAST_RETRIES
    hub_for_node: dict[str, str] = field(default_factory=dict)  # province → URL (a proxy)
    agencies: int = 4

    # --- lifecycle ---------------------------------------------------------------------------
    def provision(self) -> FaultNetwork:
        """Plan, issue certificates, register tokens: everything but the processes."""
        self.net = network.plan(
            self.data_dir, self.provinces, self.base_port, tls=self.tls, agencies=self.agencies
        )
        provision(self.net)  # the run's CA, from a copy when it issued these before
        network.register_tokens(self.net)
        (self.data_dir / "logs").mkdir(exist_ok=True)
        return self

    @property
    def hub_names(self) -> list[str]:
        return network.hub_names(self.network)

    def launch(self) -> FaultNetwork:
        """Start the hubs, then every node, and wait until the nodes registered their agencies."""
        try:
            for name in self.hub_names:
                self.restart(name)
            nodes = [self.node_name(n["province"]) for n in self.spec["nodes"]]
            for name in nodes:
                self.processes[name] = launcher.spawn(self.network, name, self.command(name))
            started = [self.service(name) for name in nodes]
            services.wait_healthy(started, self.context, registered=True)
        except BaseException:
            self.stop()
            raise
        return self

    def service(self, name: str) -> services.Service:
        log = launcher.log_path(self.network, name)
        return services.Service(name, self.url(name), self.processes[name], log)

    def start(self) -> FaultNetwork:
        return self.provision().launch()

    def restart(self, name: str) -> None:
        self.processes[name] = launcher.launch(
            self.network, name, self.command(name), self.url(name), self.context
        )

    def stop(self) -> None:
        """The end of a test: kill -9 whatever still runs (a clean stop waits out long polls,
        5 s a process, and proves nothing a kill does not)."""
        for name in list(self.processes):
            self.kill(name)

    def terminate(self, name: str) -> None:
        """A clean stop (SIGTERM), e.g. before remounting its data dir."""
        launcher.stop([(name, self.processes.pop(name))])

    # --- what is where -------------------------------------------------------------------------
    @property
    def network(self) -> network.Network:
        assert self.net is not None, "provision() first"
        return self.net

    @property
    def context(self) -> Any:
        return tls.admin_context(KeyStore(self.network.keys_dir))

    @property
    def keys_dir(self) -> Path:
        return self.network.keys_dir

    @staticmethod
    def node_name(province: str) -> str:
        return f"node {province}"

    def node_dir(self, province: str) -> Path:
        return self.data_dir / "nodes" / province

    @property
    def hub_dir(self) -> Path:
        return self.data_dir / "hub"

    def url(self, name: str) -> str:
        if name == "hub":
            return str(self.spec["hub"]["url"])
        return next(
            str(n["url"]) for n in self.spec["nodes"] if self.node_name(n["province"]) == name
        )

    def command(self, name: str) -> list[str]:
        command = dict(network.commands(self.network, self.node_args))[name]
        if name == "hub":
            return [*command, *self.hub_args]
        province = name.removeprefix("node ")
        if province in self.hub_for_node:
            command[command.index("--hub") + 1] = self.hub_for_node[province]
        return command

    def agencies_of(self, province: str) -> list[str]:
        node = next(n for n in self.spec["nodes"] if n["province"] == province)
        return [str(a["org_id"]) for a in node["agencies"]]

    def signer(self, org_id: str) -> dict[str, str]:
        for node in self.spec["nodes"]:
            for agency in node["agencies"]:
                if agency["org_id"] == org_id:
                    return dict(agency["signer"])
        raise KeyError(org_id)

    def hub_token(self, province: str) -> str:
        return str(next(n for n in self.spec["nodes"] if n["province"] == province)["hub_token"])

    def node_stats(self, province: str) -> Awaitable[dict[str, Any]]:
        return _get_json(self.url(self.node_name(province)) + "/api/v1/stats")

    def hub_report(self) -> Awaitable[dict[str, Any]]:
        """The hub's open statistics (what ``edoc stats --hub`` prints), without a subprocess."""
        return _get_json(self.url("hub") + "/api/v1/stats", self.context if self.tls else None)

    def keys(self, *args: str) -> str:
        """Run ``edoc keys ARGS`` against this network's keys, as an administrator would."""
        result = subprocess.run(
            [*network.edoc_command(), "keys", *args, "--keys-dir", str(self.keys_dir)],
            capture_output=True,
            text=True,
            check=True,
        )
        return result.stdout


async def _get_json(url: str, context: Any = None) -> dict[str, Any]:
    async with (
        aiohttp.ClientSession() as session,
        session.get(url, ssl=context or True) as response,
    ):
        assert response.status == 200, await response.text()
        body: dict[str, Any] = await response.json()
        return body


# --- load ---------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Sent:
    """A document a node answered 202 for: it must reach each recipient exactly once."""

    key: str
    sender: str
    recipients: tuple[str, ...]
    document_id: str
    outgoing_id: int
    priority: int
    posted_at: float  # time.time() when it was first posted
    answered_at: float  # time.time() when the 202 came back


@dataclass(frozen=True)
class Refusal:
    key: str
    sender: str
    status: int
    code: str
    posted_at: float


@dataclass
class Ledger:
    sent: list[Sent] = field(default_factory=list)
    refused: list[Refusal] = field(default_factory=list)
    retries: int = 0  # posts repeated because the node was down or cut the connection

    def refusals(self) -> set[tuple[int, str]]:
        return {(r.status, r.code) for r in self.refused}


async def post(
    agency: Agency,
    data: dict[str, Any],
    ledger: Ledger,
    files: dict[str, bytes] | None = None,
    patience: float = 120,
) -> Sent | None:
    """Post one document until the node answers, whatever happens to the node meanwhile.

    The ``Idempotency-Key`` makes every retry the same document: a node killed after it
    stored the document answers the retry with that one. A 202 goes in the ledger; any
    other answer is a refusal, kept with its code."""
    key = uuid.uuid4().hex
    posted_at = time.time()
    deadline = time.monotonic() + patience
    while True:
        try:
            status, body, _ = await agency.send(data, files or {}, idempotency_key=key)
            break
        except errors.Unreachable:  # the typed client says so for every failed connection
            if time.monotonic() > deadline:
                raise
            ledger.retries += 1
            await asyncio.sleep(0.2)  # the node is being restarted; no state to poll
    if status != 202:
        code = body["error"]["code"] if isinstance(body, dict) else f"HTTP-{status}"
        ledger.refused.append(Refusal(key, agency.org_id, status, code, posted_at))
        return None
    sent = Sent(
        key,
        agency.org_id,
        tuple(body["recipients"]),
        body["document_id"],
        body["id"],
        int(data.get("priority", 0)),
        posted_at,
        time.time(),
    )
    ledger.sent.append(sent)
    return sent


@dataclass
class Load:
    """Documents from ``senders`` to random recipients among ``recipients``."""

    net: FaultNetwork
    senders: Sequence[str]
    recipients: Sequence[str]
    rng: random.Random
    ledger: Ledger = field(default_factory=Ledger)
    priorities: Sequence[int] = (0, 0, 0, 1, 2, 3)
    most_recipients: int = 3

    def document(self, sender: str) -> tuple[dict[str, Any], dict[str, bytes]]:
        others = [r for r in self.recipients if r != sender]
        to = self.rng.sample(others, self.rng.randint(1, min(self.most_recipients, len(others))))
        data = metadata(sender, to, priority=self.rng.choice(self.priorities))
        if self.rng.random() < 0.3:  # some personally signed, as in real traffic
            data["signer"] = self.net.signer(sender)
        files = {}
        if self.rng.random() < 0.5:
            files["cong-van.pdf"] = b"%PDF-1.4\n" + self.rng.randbytes(self.rng.randint(1, 20_000))
        return data, files

    async def run(self, count: int, concurrency: int = 6) -> Ledger:
        """Post ``count`` documents, ``concurrency`` at a time."""
        numbers = iter(range(count))

        async def worker() -> None:
            for _ in numbers:
                sender = self.rng.choice(self.senders)
                data, files = self.document(sender)
                await post(self.net.agency(sender), data, self.ledger, files)

        await asyncio.gather(*(worker() for _ in range(concurrency)))
        return self.ledger

    async def until(self, stop: asyncio.Event, concurrency: int = 4) -> Ledger:
        """Post until ``stop`` is set."""

        async def worker() -> None:
            while not stop.is_set():
                sender = self.rng.choice(self.senders)
                data, files = self.document(sender)
                await post(self.net.agency(sender), data, self.ledger, files)

        await asyncio.gather(*(worker() for _ in range(concurrency)))
        return self.ledger


# --- faults -----------------------------------------------------------------------------------
async def crash_loop(
    net: FaultNetwork,
    targets: Sequence[str],
    done: asyncio.Event,
    rng: random.Random,
    at_least: int,
    pause: tuple[float, float] = (1.0, 3.0),
    downtime: tuple[float, float] = (0.0, 1.5),
) -> int:
    """``kill -9`` targets at random moments until ``done`` is set and ``at_least`` crashes
    were injected (every target at least once, in random order); each is restarted after a
    random downtime. Sometimes two go down together. Returns the number of kills."""
    crashes = 0
    pending = list(targets)
    rng.shuffle(pending)
    while not (done.is_set() and crashes >= max(at_least, len(targets))):
        await asyncio.sleep(rng.uniform(*pause))  # a random moment of the run
        victims = [pending.pop()] if pending else [rng.choice(targets)]
        if not pending and rng.random() < 0.25:
            victims = rng.sample(list(targets), 2)
        for name in victims:
            net.kill(name)
            crashes += 1
        await asyncio.sleep(rng.uniform(*downtime))  # how long it stays down
        for name in victims:  # restart blocks until healthy: keep the event loop (load) going
            await asyncio.to_thread(net.restart, name)
    return crashes


@dataclass
class Mount:
    """A small tmpfs over a directory, unmounted at the end. With ``carry`` what the directory
    held moves onto the tmpfs (a data dir, before its service starts; gone after unmounting),
    without it the tmpfs hides it until unmounted (a folder of a running service)."""

    path: Path
    size: str = "8m"
    carry: bool = True
    read_only: bool = False
    mounted: bool = False

    def __enter__(self) -> Mount:
        self.path.mkdir(parents=True, exist_ok=True)
        keep = self.path.with_name(self.path.name + ".before-mount")
        if self.carry:
            self.path.rename(keep)
            self.path.mkdir()
        options = f"size={self.size}" + (",ro" if self.read_only else "")
        subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(self.path)], check=True)
        self.mounted = True
        if self.carry:
            for item in keep.iterdir():
                shutil.move(str(item), self.path / item.name)
            keep.rmdir()
        return self

    def fill(self) -> Path:
        """Write a filler file until the file system is full (ENOSPC)."""
        filler = self.path / "filler"
        block = b"\0" * 65536
        with filler.open("wb", buffering=0) as out:
            try:
                while True:
                    out.write(block)
            except OSError as exc:
                assert exc.errno == errno.ENOSPC, exc
        with filler.open("ab", buffering=0) as out:  # the last partial page too
            try:
                while True:
                    out.write(b"\0" * 512)
            except OSError as exc:
                assert exc.errno == errno.ENOSPC, exc
        return filler

    def free(self) -> None:
        (self.path / "filler").unlink()

    def remount(self, mode: str) -> None:
        subprocess.run(["mount", "-o", f"remount,{mode}", str(self.path)], check=True)

    def __exit__(self, *_: object) -> None:
        if self.mounted:
            subprocess.run(["umount", "--lazy", str(self.path)], check=False)
            self.mounted = False


def integrity(database: Path) -> str:
    """PRAGMA integrity_check of an SQLite store (read-only; works beside the running
    service)."""
    connection = sqlite3.connect(f"file:{database}?mode=ro", uri=True)
    try:
        return str(connection.execute("PRAGMA integrity_check").fetchone()[0])
    finally:
        connection.close()


# --- verdicts -----------------------------------------------------------------------------------
async def inbox_of(agency: Agency) -> Counter[str]:
    """Document id → how many times it is in the agency's inbox, over every page."""
    seen: dict[int, str] = {}
    since: str | None = None
    while True:
        query = {"limit": "1000"} | ({"since": since} if since else {})
        status, body, _ = await agency.request("GET", f"/api/v1/inbox?{urlencode(query)}")
        assert status == 200, body
        page = body["documents"]
        fresh = [item for item in page if item["id"] not in seen]
        seen.update({item["id"]: item["document_id"] for item in fresh})
        if len(page) < 1000 or not fresh:
            return Counter(seen.values())
        since = page[-1]["received_at"]


@dataclass
class Verdict:
    pairs: int  # (document, recipient) pairs that must be delivered
    lost: list[tuple[str, str]]
    duplicated: list[tuple[str, str]]  # delivered more than once, or never sent there

    @property
    def clean(self) -> bool:
        return not self.lost and not self.duplicated


async def delivery_check(
    net: FaultNetwork,
    expected: Iterable[Sent],
    recipients: Sequence[str],
    timeout: float,
) -> Verdict:
    """Wait (up to ``timeout``) until every expected document is in each of its recipients'
    inboxes; then count what is missing, doubled, or there without having been sent."""
    wanted: dict[str, set[str]] = {org: set() for org in recipients}
    for sent in expected:
        for recipient in sent.recipients:
            wanted.setdefault(recipient, set()).add(sent.document_id)
    deadline = time.monotonic() + timeout
    while True:
        inboxes = dict(
            zip(
                wanted,
                await asyncio.gather(*(inbox_of(net.agency(org)) for org in wanted)),
                strict=True,
            )
        )
        lost = [(d, org) for org, ids in wanted.items() for d in sorted(ids - set(inboxes[org]))]
        if not lost or time.monotonic() > deadline:
            break
        await asyncio.sleep(0.5)
    duplicated = [
        (d, org)
        for org, counts in inboxes.items()
        for d, n in sorted(counts.items())
        if n > 1 or d not in wanted[org]
    ]
    return Verdict(sum(len(ids) for ids in wanted.values()), lost, duplicated)


async def counts_agree(
    net: FaultNetwork,
    posted: Sequence[Sent],
    delivered: Sequence[Sent],
    timeout: float = 30,
    relayed: Sequence[Sent] = (),
) -> None:
    """The nodes' and the hub's counters say what the ledger says: every document ``posted``
    (answered 202) counted sent once by its node; every one ``delivered`` counted received
    once by each recipient's node, and, across provinces, sent and received once by the hub,
    with nothing left in flight; so are those ``relayed`` by the hub that the recipient's
    node then refused (answering 02)."""
    province = {n["province"]: n for n in net.spec["nodes"]}
    node_sent: Counter[str] = Counter(s.sender for s in posted)
    node_received: Counter[str] = Counter(r for s in delivered for r in s.recipients)
    remote = [
        (s, [r for r in s.recipients if r[-3:] != s.sender[-3:]]) for s in [*delivered, *relayed]
    ]
    hub_sent: Counter[str] = Counter(s.sender for s, far in remote if far)
    hub_received: Counter[str] = Counter(r for _, far in remote for r in far)

    async def observed() -> tuple[dict[str, Any], dict[str, Any]]:
        nodes = dict(
            zip(
                province,
                await asyncio.gather(*(net.node_stats(p) for p in province)),
                strict=True,
            )
        )
        hub = await net.hub_report()
        return nodes, hub

    deadline = time.monotonic() + timeout
    while True:  # the last acknowledgements may still be on their way
        nodes, hub = await observed()
        if hub["in_flight"] == 0 or time.monotonic() > deadline:
            break
        await asyncio.sleep(0.5)
    agencies = {
        org: nodes[org[-3:]]["by_agency"].get(org, {})
        for p in province
        for org in net.agencies_of(p)
    }
    assert {o: a.get("sent", 0) for o, a in agencies.items() if a.get("sent")} == dict(node_sent)
    assert {o: a.get("received", 0) for o, a in agencies.items() if a.get("received")} == dict(
        node_received
    )
    by_org = hub["by_organization"]
    assert {o: c["sent"] for o, c in by_org.items() if c["sent"]} == dict(hub_sent)
    assert {o: c["received"] for o, c in by_org.items() if c["received"]} == dict(hub_received)
    assert hub["in_flight"] == 0, hub["in_flight_by_node"]


async def statuses_back(
    net: FaultNetwork, delivered: Sequence[Sent], timeout: float, want: str = "01"
) -> list[str]:
    """Wait until every recipient of every delivered document answered ``want`` and the
    sender recorded it, once; returns what is wrong (empty when all is well)."""
    limit = asyncio.Semaphore(16)

    async def problems(sent: Sent) -> list[str]:
        async with limit:
            document = await net.agency(sent.sender).document(sent.outgoing_id)
        found = []
        for recipient in document["recipients"]:
            answers = [h for h in recipient["history"] if h.get("detail") == f"status {want}"]
            if recipient["state"] != want or len(answers) != 1:
                found.append(
                    f"{sent.document_id} → {recipient['org_id']}: state {recipient['state']},"
                    f" {len(answers)}× {want}: {json.dumps(recipient['history'][-3:])}"
                )
        return found

    deadline = time.monotonic() + timeout
    while True:
        wrong = [p for found in await asyncio.gather(*map(problems, delivered)) for p in found]
        if not wrong or time.monotonic() > deadline:
            return wrong
        await asyncio.sleep(0.5)


async def delivered_once(
    net: FaultNetwork,
    ledger: Ledger,
    recipients: Sequence[str],
    timeout: float,
    delivered: Sequence[Sent] | None = None,
    relayed: Sequence[Sent] = (),
    figures: Mapping[str, int] | None = None,
) -> None:
    """The closing check of every fault test: each document ``delivered`` (by default all
    answered 202) is in each recipient's inbox exactly once, its 01 came back once, and the
    counters agree; the figures go to the report first, so a failing run still counts."""
    delivered = ledger.sent if delivered is None else delivered
    verdict = await delivery_check(net, delivered, recipients, timeout)
    report.record(
        documents_sent=len(ledger.sent),
        lost=len(verdict.lost),
        duplicated=len(verdict.duplicated),
        **(figures or {}),
    )
    assert verdict.clean, verdict
    assert await statuses_back(net, delivered, timeout) == []
    await counts_agree(net, ledger.sent, delivered, relayed=relayed)
