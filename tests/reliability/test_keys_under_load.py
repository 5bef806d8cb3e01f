"""Certificates rotated and revoked by an administrator (``edoc keys``) while documents flow.

Rotation: every exchange still succeeds; documents signed before verify through the old
seal's overlap, those after carry the new one. Revocation: what the agency signed before
is delivered; after it, its node refuses to sign (the agency sees the code), and a
document signed after it with the revoked key (a stale or stolen copy) is refused by the
hub with EDOC-SIG-005.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import math
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import aiohttp
import pytest

from edoc import signing, tls
from edoc.keystore import KeyStore
from tests.reliability.faults import (
    FaultNetwork,
    Load,
    Sent,
    delivered_once,
    fast_and_long,
    post,
)
from tests.support.network import Agency, metadata
from tests.support.pki import unsigned_root, wire

HUB_SEAL = "000.00.00.G22"


@dataclass(frozen=True)
class Scale:
    seconds: float  # of load
    changes: int  # rotations, or revocations, spread over it
    deliver_within: float


SCALES = fast_and_long(
    Scale(seconds=6, changes=3, deliver_within=60),
    Scale(seconds=180, changes=12, deliver_within=600),
)


async def _under_load(
    net: FaultNetwork, load: Load, seconds: float, changes: list[Callable[[], Awaitable[None]]]
) -> None:
    """Post for ``seconds``; make each change at an even moment inside that time."""
    stop = asyncio.Event()
    posting = asyncio.create_task(load.until(stop, concurrency=4))
    started = time.monotonic()
    for n, change in enumerate(changes, start=1):
        await asyncio.sleep(max(0.0, started + seconds * n / (len(changes) + 1) - time.monotonic()))
        await change()
    await asyncio.sleep(max(0.0, started + seconds - time.monotonic()))
    stop.set()
    await posting


async def _seal_serials(net: FaultNetwork, orgs: list[str]) -> dict[str, set[str]]:
    """The seal serials the documents in these agencies' inboxes were signed with, by sender."""
    found: dict[str, set[str]] = {}
    for org in orgs:
        for item in await _whole_inbox(net, org):
            seal = item["summary"]["signers"][0]
            found.setdefault(item["sender"], set()).add(seal["serial"])
    return found


async def _whole_inbox(net: FaultNetwork, org: str) -> list[dict[str, Any]]:
    """Every document in ``org``'s inbox, page by page: three minutes of load leave more
    than a page (1,000, oldest first), and a first page alone held only documents sealed
    before the rotations."""
    items: dict[int, dict[str, Any]] = {}
    since = ""
    while True:
        query = "limit=1000" + (f"&since={quote(since)}" if since else "")
        status, body, _ = await net.agency(org).request("GET", f"/api/v1/inbox?{query}")
        assert status == 200, body
        page = body["documents"]
        items |= {item["id"]: item for item in page}
        if len(page) < 1000 or page[-1]["received_at"] == since:
            return list(items.values())
        since = page[-1]["received_at"]


def _serials(net: FaultNetwork, org: str) -> list[str]:
    records = json.loads(net.keys("list", "--json"))
    return [r["serial"] for r in records if r["org_id"] == org and r["kind"] == "organization"]


@pytest.mark.parametrize("scale", SCALES)
async def test_rotation_under_load_fails_no_exchange(tmp_path: Path, scale: Scale) -> None:
    net = await asyncio.to_thread(FaultNetwork(tmp_path / "net", ["H53", "H34"]).start)
    try:
        tay_ninh, kon_tum = net.agencies_of("H53"), net.agencies_of("H34")
        everyone = tay_ninh + kon_tum
        load = Load(net, everyone, everyone, random.Random(11))
        # senders' seals (documents, and the recipients' 01s) and the hub's (address book)
        rotated = [load.rng.choice(tay_ninh), load.rng.choice(kon_tum), HUB_SEAL]
        turns = [rotated[n % len(rotated)] for n in range(scale.changes)]
        before = {org: set(_serials(net, org)) for org in rotated}

        def rotate(org: str) -> Callable[[], Awaitable[None]]:
            async def change() -> None:
                await asyncio.to_thread(net.keys, "rotate", org, "--overlap-days", "7")

            return change

        await _under_load(net, load, scale.seconds, [rotate(org) for org in turns])
        ledger = load.ledger
        assert not ledger.refused, ledger.refused  # zero failed exchanges
        await delivered_once(
            net, ledger, everyone, scale.deliver_within, figures={"rotations": len(turns)}
        )
        assert (await net.hub_report())["rejected_by_code"] == {}

        # the running nodes signed with the new seals, without a restart
        used = await _seal_serials(net, everyone)
        for org in rotated[:2]:
            new = set(_serials(net, org)) - before[org]
            assert len(new) == turns.count(org)
            assert used.get(org, set()) & new, (org, used.get(org), new)
    finally:
        await asyncio.to_thread(net.stop)


async def _post_to_hub(net: FaultNetwork, province: str, package: bytes) -> tuple[int, Any]:
    """What a node with a stale copy of a key would send: straight to the hub, with the
    node's own token and client certificate."""
    context = tls.client_context(KeyStore(net.keys_dir), f"000.00.00.{province}")
    async with (
        aiohttp.ClientSession() as session,
        session.post(
            net.url("hub") + "/api/v1/packages",
            data=package,
            headers={
                "Authorization": f"Bearer {net.hub_token(province)}",
                "Content-Type": "application/xml",
            },
            ssl=context,
        ) as response,
    ):
        return response.status, await response.json(content_type=None)


@pytest.mark.parametrize("scale", SCALES)
async def test_revocation_under_load_refuses_what_is_signed_after(
    tmp_path: Path, scale: Scale
) -> None:
    net = await asyncio.to_thread(FaultNetwork(tmp_path / "net", ["H53", "H34"]).start)
    try:
        tay_ninh, kon_tum = net.agencies_of("H53"), net.agencies_of("H34")
        load = Load(net, tay_ninh + kon_tum[:1], kon_tum, random.Random(12))
        # one agency's certificates per change, never all senders of the load
        revoked = load.rng.sample(tay_ninh, min(scale.changes, len(tay_ninh) - 1))
        keys = KeyStore(net.keys_dir)
        stolen = {org: keys.identity(org) for org in revoked}  # copies made before
        moments: dict[str, tuple[float, float]] = {}  # org → (command started, done)

        def revoke(org: str) -> Callable[[], Awaitable[None]]:
            async def change() -> None:
                started = time.time()
                await asyncio.to_thread(net.keys, "revoke", org, "--reason", "superseded")
                moments[org] = (started, time.time())

            return change

        await _under_load(net, load, scale.seconds, [revoke(org) for org in revoked])
        ledger = load.ledger
        at = {
            r["org_id"]: dt.datetime.fromisoformat(r["revoked_at"]).timestamp()
            for r in json.loads(net.keys("list", "--json"))
            if r["org_id"] in revoked and r["kind"] == "organization"
        }

        # Signing times have whole seconds, and one of the revocation's own second counts as
        # before it: so what was answered before the revocation's next second is "before".
        def before(sent: Sent) -> bool:
            return sent.sender not in at or sent.answered_at < math.floor(at[sent.sender]) + 1

        def after(posted_at: float, sender: str) -> bool:
            return sender in moments and posted_at > moments[sender][1]

        surely = [s for s in ledger.sent if before(s)]
        edge = [s for s in ledger.sent if not before(s)]
        assert not [s for s in ledger.sent if after(s.posted_at, s.sender)]  # never signed
        # after it, the node refuses to sign for the agency, and says so
        assert {(r.status, r.code) for r in ledger.refused} <= {(404, "EDOC-KEY-002")}
        assert all(r.posted_at > moments[r.sender][0] for r in ledger.refused)
        for org in revoked:  # each, now: refused with the code, nothing stored
            await post(net.agency(org), metadata(org, kon_tum[:1]), ledger)
        assert {(r.sender, r.code) for r in ledger.refused[-len(revoked) :]} == {
            (org, "EDOC-KEY-002") for org in revoked
        }

        # in flight at the moment of revocation: delivered once, or refused by the hub
        fates = await asyncio.gather(*(_fate(net.agency(s.sender), s) for s in edge))
        edge_fates = {s.document_id: fate for s, fate in zip(edge, fates, strict=True)}
        refused_at_hub = [s for s in edge if edge_fates[s.document_id] == "EDOC-SIG-005"]
        # the hub's copy of the CRL was a moment behind the recipient node's: the hub took
        # it, the node refused it and told the sender (02), nothing waits for ever
        refused_there = [s for s in edge if edge_fates[s.document_id] == REFUSED_THERE]
        delivered = surely + [s for s in edge if edge_fates[s.document_id] == "delivered"]
        fates_known = len(delivered) + len(refused_at_hub) + len(refused_there)
        assert fates_known == len(ledger.sent), edge_fates

        # signed after the revocation (a later second) with the revoked key: the hub refuses
        await asyncio.sleep(max(0.0, max(math.floor(t) + 1 for t in at.values()) - time.time()))
        for org, identity in stolen.items():
            changes: dict[str, Any] = {"from": org, "to": kon_tum[:1]}
            changes["code"] = {"number": org, "notation": "X"}
            root = unsigned_root(signed_at=dt.datetime.now(dt.UTC), **changes)
            package = wire(signing.sign(root, identity))
            status, body = await _post_to_hub(net, "H53", package)
            assert (status, body["error"]["code"]) == (422, "EDOC-SIG-005"), body

        # and nothing refused reached anyone
        await delivered_once(
            net,
            ledger,
            kon_tum,
            scale.deliver_within,
            delivered=delivered,
            relayed=refused_there,
            figures={"revocations": len(revoked)},
        )
        rejected = (await net.hub_report())["rejected_by_code"]
        assert rejected == {"EDOC-SIG-005": len(stolen) + len(refused_at_hub)}, rejected
    finally:
        await asyncio.to_thread(net.stop)


REFUSED_THERE = "refused by the recipient's node (02)"


async def _fate(sender: Agency, sent: Sent, timeout: float = 60) -> str:
    """ "delivered" once every recipient answered 01, or the code the hub refused it with."""
    deadline = time.monotonic() + timeout
    while True:
        document = await sender.document(sent.outgoing_id)
        states = {r["state"] for r in document["recipients"]}
        if states == {"01"}:
            return "delivered"
        if states == {"02"}:
            return REFUSED_THERE
        if states == {"failed"}:
            found = {t["last_error"].split(":")[0] for t in document["transfers"]}
            return found.pop() if len(found) == 1 else str(found)
        if time.monotonic() > deadline:
            return f"still {sorted(states)}"
        await asyncio.sleep(0.3)
