"""The figures the statistics and the dashboards keep of their settled days: a day's part
and the others' add up to what all of them make at once, and the charts keep only the
days they may show (edoc.settled; what the store sums is edoc.store's contract)."""

from __future__ import annotations

import datetime as dt
import functools
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import pytest
from hypothesis import given
from hypothesis import strategies as st

from edoc.dashboard import charts
from edoc.dashboard import hub as hub_view
from edoc.hub import stats as hub_stats
from edoc.node import stats as node_stats
from edoc.offload import Offload
from edoc.settled import KEPT_DAYS, Dated, Settled, last_days
from edoc.store import hub as hub_store
from edoc.store import node as node_store
from edoc.store import open_hub_store, open_node_store, sqlite_url
from edoc.store.sums import CounterSums

TODAY = dt.date(2026, 12, 3)
NOW = dt.datetime.combine(TODAY, dt.time(9), dt.UTC)
TAY_NINH = "000.00.00.H53"
C = TypeVar("C", bound=Dated)

days = st.integers(0, 400).map(lambda back: TODAY - dt.timedelta(days=back))
hub_counts = st.lists(
    st.builds(
        hub_store.Count,
        days,
        st.sampled_from([TAY_NINH, "000.00.00.H41", "000.00.00.G05", "bad", ""]),
        st.sampled_from(["sent", "received", "status_sent", "rejected"]),
        st.sampled_from(["", "EDOC-SIG-002"]),
        st.integers(1, 50),
    )
)
node_counts = st.lists(
    st.builds(
        node_store.Count,
        days,
        st.just(""),
        st.sampled_from(["", TAY_NINH, "000.00.00.H41"]),
        st.sampled_from(["sent", "sent_to", "received", "sent_signed"]),
        st.integers(1, 50),
    )
)
org_rows = st.lists(
    st.tuples(
        st.sampled_from(["000.01.01.H53", "000.02.01.H53"]),
        st.sampled_from(["", TAY_NINH, "000.00.00.H41"]),
        st.sampled_from(["sent", "sent_to", "received", "sent_signed"]),
        st.integers(1, 50),
    )
)


def _split(counts: list[C], boundary: dt.date) -> tuple[list[C], list[C]]:
    return [c for c in counts if c.day < boundary], [c for c in counts if c.day >= boundary]


@given(hub_counts, days)
def test_a_hub_boards_parts_add_up_to_the_whole(
    counts: list[hub_store.Count], boundary: dt.date
) -> None:
    settled, recent = _split(counts, boundary)
    whole = hub_view.Board.of(CounterSums([], counts), TODAY)
    added = hub_view.Board.of(CounterSums([], settled), TODAY)
    added = added + hub_view.Board.of(CounterSums([], recent), TODAY)
    assert added == whole
    assert all(TODAY - day < dt.timedelta(days=KEPT_DAYS) for day in whole.days)


@given(node_counts, org_rows, org_rows, days)
def test_a_nodes_figures_parts_add_up_to_the_whole(
    counts: list[node_store.Count],
    settled_rows: list[tuple[str, str, str, int]],
    recent_rows: list[tuple[str, str, str, int]],
    boundary: dt.date,
) -> None:
    settled, recent = _split(counts, boundary)
    whole = node_stats.Tallied.of(CounterSums(settled_rows + recent_rows, counts), TODAY)
    added = node_stats.Tallied.of(CounterSums(settled_rows, settled), TODAY)
    assert added + node_stats.Tallied.of(CounterSums(recent_rows, recent), TODAY) == whole


async def test_the_hub_overview_counts_every_day_and_charts_the_last_ones(tmp_path: Path) -> None:
    store = await open_hub_store(sqlite_url(tmp_path / "hub.sqlite"))
    offload = Offload(1)
    try:
        for back, sent in ((0, 1), (1, 2), (5, 4), (89, 8), (90, 16), (400, 32)):
            day = TODAY - dt.timedelta(days=back)
            await store.count(hub_store.Tally(day, "000.00.12.H53", "sent", "", sent))
        old_refusal = TODAY - dt.timedelta(days=100)
        await store.count(hub_store.Tally(old_refusal, TAY_NINH, "rejected", "EDOC-SIG-002", 3))
        boards: Settled[hub_view.Board] = Settled()
        days = functools.partial(hub_view._board_days, store, offload, TODAY)
        board = await boards.sums(days, TODAY)
    finally:
        offload.close()
        await store.close()
    (row,) = hub_view.provinces(board, [], {}, {}, NOW)
    assert (row["code"], row["sent"], row["sent_today"]) == ("H53", 63, 1)
    assert (row["refused"], row["refused_by_code"]) == (3, {"EDOC-SIG-002": 3})

    def charted(period: int) -> int:
        filters = charts.Filters(period)
        points = hub_view._points(last_days(board.days, period, TODAY))
        return sum(charts.traffic(points, ("sent",), filters, TODAY)["series"]["sent"])

    assert (charted(7), charted(30), charted(90)) == (7, 7, 15)


async def test_the_settled_days_are_folded_off_the_event_loop(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A year of counters is 0.1-0.2 s of Python to fold: the hub's statistics, the hub's
    board and a node's statistics each fold them in the service's offload threads."""
    folded_in: dict[str, int] = {}

    def watched(name: str, fold: Callable[..., Any]) -> Callable[..., Any]:
        def fold_and_say(*args: Any) -> Any:
            folded_in[name] = threading.get_ident()
            return fold(*args)

        return fold_and_say

    for name, owner in (
        ("hub", hub_stats.Tallied),
        ("board", hub_view.Board),
        ("node", node_stats.Tallied),
    ):
        monkeypatch.setattr(owner, "of", watched(name, owner.of))
    hub = await open_hub_store(sqlite_url(tmp_path / "hub.sqlite"))
    node = await open_node_store(sqlite_url(tmp_path / "node.sqlite"))
    offload = Offload(1)
    try:
        await hub_stats.report(hub, offload, Settled(), TODAY)
        await Settled[hub_view.Board]().sums(
            functools.partial(hub_view._board_days, hub, offload, TODAY), TODAY
        )
        await node_stats.tallied(node, offload, Settled(), TODAY)
    finally:
        offload.close()
        await hub.close()
        await node.close()
    assert set(folded_in) == {"hub", "board", "node"}
    assert threading.get_ident() not in folded_in.values()
