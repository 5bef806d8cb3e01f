"""The hub down for a while as agencies keep posting: the nodes keep answering 202, and when
the hub is back they deliver everything, once, the most urgent first."""

from __future__ import annotations

import asyncio
import random
import re
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from edoc.node.outbox import IN_FLIGHT
from tests.reliability.faults import (
    FaultNetwork,
    Load,
    Sent,
    delivered_once,
    fast_and_long,
)


@dataclass(frozen=True)
class Outage:
    seconds: float  # the hub stays down at least this long
    ordinary: int  # posted first, priority 0 and 1 (thường, khẩn)
    urgent: int  # posted after them, priority 2 and 3 (thượng khẩn, hỏa tốc)
    deliver_within: float


# Retries as a real node would space them (the suite's usual 0.1..1 s would hide how they
# are ordered); shorter than the 60 s default cap so the test ends in seconds.
REAL_RETRIES = ("--retry-base", "0.5", "--retry-cap", "5")


async def hub_order(net: FaultNetwork, sent: list[Sent]) -> list[Sent]:
    """The documents in the order the hub accepted them (its package ids, which the sender's
    node notes as "hub id N" when the hub answers)."""

    async def hub_id(item: Sent) -> int:
        document = await net.agency(item.sender).document(item.outgoing_id)
        details = [h.get("detail", "") for r in document["recipients"] for h in r["history"]]
        (found,) = {int(m[1]) for d in details if (m := re.fullmatch(r"hub id (\d+)", d))}
        return found

    ids = await asyncio.gather(*map(hub_id, sent))
    return [item for _, item in sorted(zip(ids, sent, strict=True), key=lambda pair: pair[0])]


def overtaken(order: list[Sent]) -> dict[str, int]:
    """For each document, how many less urgent ones the hub took before it."""
    return {
        item.document_id: sum(earlier.priority < item.priority for earlier in order[:place])
        for place, item in enumerate(order)
    }


@pytest.mark.parametrize(
    "outage",
    fast_and_long(
        Outage(seconds=5, ordinary=80, urgent=12, deliver_within=90),
        Outage(seconds=180, ordinary=600, urgent=80, deliver_within=900),
    ),
)
async def test_hub_down_nodes_keep_accepting_then_deliver_in_priority_order(
    tmp_path: Path, outage: Outage
) -> None:
    net = FaultNetwork(tmp_path / "net", ["H53", "H34"], node_args=REAL_RETRIES)
    await asyncio.to_thread(net.start)
    try:
        senders, recipients = net.agencies_of("H53"), net.agencies_of("H34")
        load = Load(net, senders, recipients, random.Random(5))
        net.kill("hub")
        down_since = time.monotonic()
        # the ordinary ones first: first-in first-out would deliver the urgent ones last
        for count, priorities in ((outage.ordinary, (0, 1)), (outage.urgent, (2, 3))):
            batch = Load(net, senders, recipients, load.rng, load.ledger, priorities, 1)
            await batch.run(count, concurrency=4)
        backlog = list(load.ledger.sent)
        # then ordinary traffic for the rest of the outage, with the hub still away
        rest = outage.seconds - (time.monotonic() - down_since)
        if rest > 0:
            stop = asyncio.Event()
            asyncio.get_running_loop().call_later(rest, stop.set)
            await load.until(stop, concurrency=2)
        ledger = load.ledger
        assert not ledger.refused, ledger.refused  # the node kept answering 202 throughout
        await asyncio.to_thread(net.restart, "hub")

        outage_seconds = round(time.monotonic() - down_since)
        await delivered_once(
            net,
            ledger,
            recipients,
            outage.deliver_within,
            figures={"hub_outage_seconds": outage_seconds},
        )

        # Most urgent first. The node keeps IN_FLIGHT transfers under way at once, and those
        # under way when the hub came back were whatever happened to be due; so a document
        # may be overtaken by up to 2 × IN_FLIGHT - 1 less urgent ones, never more. In the
        # order they were posted an urgent one would be overtaken by every ordinary one, in
        # the order their retry timers fire by most of them.
        assert outage.ordinary > 2 * IN_FLIGHT  # or this proves nothing
        late = overtaken(await hub_order(net, backlog))
        worst = max(late.values())
        assert worst < 2 * IN_FLIGHT, sorted(late.values())
    finally:
        await asyncio.to_thread(net.stop)
