"""The hub's statistics."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from edoc.hub import stats
from edoc.offload import Offload
from edoc.settled import Settled
from edoc.store import open_hub_store, sqlite_url


async def test_a_refusal_claiming_no_valid_sender_counts_as_unknown(tmp_path: Path) -> None:
    """A refused package's sender is what it claims, unchecked; the schema's pattern lets
    through ids OrgId refuses (001.00.00.A01): one such refusal must not break the report."""
    store = await open_hub_store(sqlite_url(tmp_path / "hub.sqlite"))
    offload = Offload(1)
    try:
        await store.count(stats.rejected("001.00.00.A01", "EDOC-SIG-001", dt.date.today()))
        report = await stats.report(store, offload, Settled(), dt.date.today())
    finally:
        offload.close()
        await store.close()
    assert report["by_province"]["unknown"]["rejected"] == 1


async def test_the_days_before_yesterday_are_summed_once(tmp_path: Path) -> None:
    """Settled: no count goes on them any more. Yesterday and today are summed at every
    look, and when a day passes the days before the new yesterday are summed again."""
    today = dt.date(2026, 12, 3)
    store = await open_hub_store(sqlite_url(tmp_path / "hub.sqlite"))
    counted: Settled[stats.Tallied] = Settled()
    offload = Offload(1)

    async def sent_on(day: dt.date) -> int:
        report = await stats.report(store, offload, counted, day)
        return int(report["totals"]["sent"])

    try:
        await store.count(stats.sent("document", "000.00.12.H53", today - dt.timedelta(days=5)))
        await store.count(stats.sent("document", "000.00.12.H53", today - dt.timedelta(days=1)))
        assert await sent_on(today) == 2
        # (a count on a settled day, as a clock a day behind would make: not seen)
        await store.count(stats.sent("document", "000.00.12.H53", today - dt.timedelta(days=5)))
        await store.count(stats.sent("document", "000.00.12.H53", today - dt.timedelta(days=1)))
        await store.count(stats.sent("document", "000.00.12.H53", today))
        assert await sent_on(today) == 4
        assert await sent_on(today + dt.timedelta(days=1)) == 5  # summed again
    finally:
        offload.close()
        await store.close()
