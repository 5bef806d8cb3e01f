"""kill -9 of nodes and the hub at random moments while documents flow.

Whatever is killed when, every document a node answered 202 for reaches each recipient
exactly once (checked in the recipients' inboxes), every recipient's 01 comes back once,
and the nodes' and the hub's counters agree with what was sent.
"""

from __future__ import annotations

import asyncio
import random
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.reliability.faults import (
    FaultNetwork,
    Load,
    crash_loop,
    delivered_once,
    fast_and_long,
)


@dataclass(frozen=True)
class Scale:
    documents: int
    crashes: int  # at least this many kills (each target at least once)
    pause: tuple[float, float]  # seconds between kills
    deliver_within: float


FAST = Scale(documents=60, crashes=3, pause=(1.0, 2.5), deliver_within=60)
LONG = Scale(documents=3000, crashes=40, pause=(2.0, 8.0), deliver_within=600)


@pytest.mark.parametrize("scale", fast_and_long(FAST, LONG))
async def test_kill_9_at_random_moments_loses_and_doubles_nothing(
    tmp_path: Path, scale: Scale
) -> None:
    net = await asyncio.to_thread(FaultNetwork(tmp_path / "net", ["H53", "H34"]).start)
    rng = random.Random(9)
    try:
        senders = net.agencies_of("H53") + net.agencies_of("H34")[:1]
        recipients = net.agencies_of("H34") + net.agencies_of("H53")
        load = Load(net, senders, recipients, rng)
        sending_done = asyncio.Event()
        killer = asyncio.create_task(
            crash_loop(
                net,
                ["hub", "node H53", "node H34"],
                sending_done,
                rng,
                at_least=scale.crashes,
                pause=scale.pause,
            )
        )
        try:
            await load.run(scale.documents)
        finally:
            sending_done.set()
        crashes = await killer  # the last kills land while the documents are delivered

        ledger = load.ledger
        assert not ledger.refused, ledger.refused
        assert len(ledger.sent) == scale.documents
        await delivered_once(
            net, ledger, recipients, scale.deliver_within, figures={"crashes_injected": crashes}
        )
    finally:
        await asyncio.to_thread(net.stop)
