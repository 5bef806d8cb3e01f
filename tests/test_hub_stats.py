"""The hub's statistics."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from edoc.hub import stats
from edoc.store import open_hub_store, sqlite_url


async def test_a_refusal_claiming_no_valid_sender_counts_as_unknown(tmp_path: Path) -> None:
    """A refused package's sender is what it claims, unchecked; the schema's pattern lets
    through ids OrgId refuses (001.00.00.A01): one such refusal must not break the report."""
    store = await open_hub_store(sqlite_url(tmp_path / "hub.sqlite"))
    try:
        await store.count(stats.rejected("001.00.00.A01", "EDOC-SIG-001", dt.date.today()))
        report = await stats.report(store)
    finally:
        await store.close()
    assert report["by_province"]["unknown"]["rejected"] == 1
