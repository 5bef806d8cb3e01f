"""The hub's SQLite store: packages it keeps in their rows are loaded only where sent."""

from __future__ import annotations

import datetime as dt
from dataclasses import replace
from pathlib import Path

from edoc.store.base import NewPackage
from edoc.store.hub_sqlite import SqliteHubStore

NOW = dt.datetime(2026, 11, 24, 8, 0, tzinfo=dt.UTC)
SMALL = NewPackage(
    kind="document",
    sender="000.00.12.H53",
    about="small",
    status_code="",
    business_type=0,
    priority=0,
    digest="1",
    path="",
    size=10,
    recipients=("000.00.00.H34",),
    body=b"s" * 10,
)
LARGE = replace(SMALL, about="large", digest="2", size=1000, body=b"L" * 1000)


async def test_package_bodies_are_loaded_only_where_they_are_sent(tmp_path: Path) -> None:
    store = SqliteHubStore(tmp_path / "hub.sqlite")
    await store.open()
    try:
        for package in (SMALL, LARGE):
            await store.accept(package, NOW)
        # a lease brings the bodies that go inline in the collect answer, not the others
        leased = await store.lease("H34", NOW, dt.timedelta(seconds=60), 10, bodies_up_to=100)
        assert {d.about: d.body for d in leased} == {"small": SMALL.body, "large": None}
        # an acknowledgement's lookup needs none
        assert [d.body for d in await store.deliveries([d.id for d in leased])] == [None, None]
        # fetching one brings it whatever its size
        fetched = [await store.delivery(d.id) for d in leased]
        assert {d.about: d.body for d in fetched if d is not None} == {
            "small": SMALL.body,
            "large": LARGE.body,
        }
    finally:
        await store.close()
