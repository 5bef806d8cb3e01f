"""A node's statistics report (edoc.node.stats.report) read from a real store."""

from __future__ import annotations

import datetime as dt
from dataclasses import replace
from pathlib import Path
from typing import Any

from edoc.node import stats
from edoc.offload import Offload
from edoc.settled import Settled
from edoc.store import open_node_store, sqlite_url
from edoc.store.node import Event, NodeStore
from tests.store.test_node import DOCUMENT, NEIGHBOUR, NOW, status, status_codes_win


async def _report(store: NodeStore, offload: Offload) -> dict[str, Any]:
    figures = await stats.tallied(store, offload, Settled(), NOW.date())
    return await stats.report(store, figures)


async def test_the_on_time_share_judges_only_the_recipients_that_completed(
    tmp_path: Path,
) -> None:
    """Nothing completed yet is nothing to judge (null, as `edoc stats` says n/a), not
    "nothing was on time" (0.0); a document without a due date is judged by none."""
    store = await open_node_store(sqlite_url(tmp_path / "node.sqlite"))
    offload = Offload(1)
    try:
        assert (await _report(store, offload))["on_time_share"] is None  # nothing sent
        await store.add_outgoing(DOCUMENT, NOW, [])  # due 2026-11-30, two recipients
        await store.add_outgoing(replace(DOCUMENT, document_id="D2", summary={}), NOW, [])
        assert (await _report(store, offload))["on_time_share"] is None  # none completed
        late = NOW + dt.timedelta(days=9)
        await store.add_received_status(
            status("06", document_id="D2"), Event("06", ""), late, status_codes_win
        )
        assert (await _report(store, offload))["on_time_share"] is None  # no due date
        await store.add_received_status(status("06"), Event("06", ""), late, status_codes_win)
        assert (await _report(store, offload))["on_time_share"] == 0.0  # one, late
        on_time = NOW + dt.timedelta(days=2)
        from_neighbour = status("06", responder=NEIGHBOUR)
        await store.add_received_status(from_neighbour, Event("06", ""), on_time, status_codes_win)
        assert (await _report(store, offload))["on_time_share"] == 0.5
    finally:
        offload.close()
        await store.close()
