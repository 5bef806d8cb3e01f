"""The hub's dashboard on how documents flow: the status funnel 01→06 with the median
times between stages, relay latency, and the refusal-spike alert."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from edoc.dashboard import flow
from edoc.dashboard import hub as hub_view
from edoc.model import StatusCode
from edoc.store.hub import Count, Stage
from edoc.store.sums import CounterSums
from tests.dashboard.support import NGHE_AN, NGHE_AN_TOKEN, TAY_NINH, hub
from tests.dashboard.test_hub_data import overview
from tests.support.hub import document, status

T0 = dt.datetime(2026, 11, 24, 8, 0, tzinfo=dt.UTC)
A, B = "000.00.00.H41", "000.00.00.H23"


def at(minutes: float) -> dt.datetime:
    return T0 + dt.timedelta(minutes=minutes)


def stage(name: str) -> dict[str, object]:
    (found,) = [s for s in flow.funnel(STAGES) if s["stage"] == name]
    return found


STAGES = [
    Stage("D1", A, "", at(0)),
    Stage("D1", B, "", at(0)),
    Stage("D1", A, "01", at(2)),
    Stage("D1", A, "01", at(9)),  # a repeated status: the first counts
    Stage("D1", B, "01", at(4)),
    Stage("D1", A, "03", at(12)),  # 01 → 03: 10 minutes
    Stage("D1", B, "04", at(10)),  # skips 03: 01 → 04, 6 minutes
    Stage("D2", A, "01", at(1)),  # about a document not accepted since: left out
]


def test_the_funnel_counts_each_recipients_way_once_per_stage() -> None:
    assert [(s["stage"], s["reached"]) for s in flow.funnel(STAGES)] == [
        ("sent", 2),
        ("01", 2),
        ("02", 0),
        ("03", 1),
        ("04", 1),
        ("05", 0),
        ("06", 0),
    ]
    assert stage("sent")["median_seconds"] is None
    assert (stage("sent")["label"], stage("01")["label"]) == ("sent", "01 arrived")
    assert stage("01")["median_seconds"] == 180.0  # 2 and 4 minutes after it was sent
    assert stage("03")["median_seconds"] == 600.0
    assert stage("04")["median_seconds"] == 360.0  # from 01, the stage before it reached
    assert stage("05")["median_seconds"] is None


def test_relay_latency_is_the_nearest_rank_p50_and_p99() -> None:
    times = [dt.timedelta(seconds=s) for s in range(1, 201)]
    assert flow.relay(times) | {"window_hours": 0} == {
        "deliveries": 200,
        "p50_seconds": 100.0,
        "p99_seconds": 198.0,
        "window_hours": 0,
    }
    assert flow.relay([])["p50_seconds"] is None


def refused(day: dt.date, count: int) -> Count:
    return Count(day, TAY_NINH, "rejected", "EDOC-SIG-002", count)


def spike_of(counts: list[Count], today: dt.date) -> dict[str, str] | None:
    return hub_view.refusal_spike(hub_view.Board.of(CounterSums([], counts), today), today)


def test_a_refusal_spike_is_today_well_above_the_week_before() -> None:
    today = T0.date()
    week = [refused(today - dt.timedelta(days=n), 5) for n in range(1, 8)]  # 5 a day
    assert spike_of([*week, refused(today, 14)], today) is None
    spike = spike_of([*week, refused(today, 15)], today)
    assert spike is not None and spike["level"] == "danger"
    assert spike["text"].startswith("15 refusals today, 5.0 a day")
    assert spike_of([refused(today, 9)], today) is None  # too few to tell
    assert spike_of([refused(today, 10)], today) is not None  # none before
    old = refused(today - dt.timedelta(days=8), 1000)  # beyond the week: not the usual rate
    assert spike_of([old, refused(today, 10)], today) is not None


async def test_a_document_its_status_and_its_delivery_show_in_funnel_and_latency(
    tmp_path: Path,
) -> None:
    async with hub(tmp_path) as running:
        before = await overview(running)
        sent = document(running.ca, [NGHE_AN], sender=TAY_NINH)
        assert await running.post_package(sent) == 202
        assert await running.collect_and_acknowledge(NGHE_AN_TOKEN) == 1
        answer = status(running.ca, NGHE_AN, sent, StatusCode.ARRIVED)
        assert await running.post_package(answer, token=NGHE_AN_TOKEN) == 202
        data = await overview(running)
        page = await running.get("/dashboard/")
    assert [s["reached"] for s in before["funnel"]] == [0] * 7
    assert before["relay"]["deliveries"] == 0
    reached = {s["stage"]: s["reached"] for s in data["funnel"]}
    assert (reached["sent"], reached["01"], reached["03"]) == (1, 1, 0)
    assert data["funnel"][1]["median_seconds"] >= 0
    assert data["relay"]["deliveries"] == 1 and data["relay"]["p99_seconds"] >= 0
    assert page[0] == 200 and "Status funnel" in page[1] and "01 arrived" in page[1]
    assert page[1].count('<time class="flow-at">20') == 2  # "as of" their time, beside both


async def test_the_dashboard_shows_the_same_flow_figures_until_they_are_old_enough(
    tmp_path: Path,
) -> None:
    async with hub(tmp_path, flow_every=3600) as running:
        before = await overview(running)
        assert await running.post_package(document(running.ca, [NGHE_AN], sender=TAY_NINH)) == 202
        after = await overview(running)
    assert after["totals"] != before["totals"]  # the rest is read at every look
    assert (after["funnel"], after["relay"]) == (before["funnel"], before["relay"])
    assert after["flow_at"] == before["flow_at"]
