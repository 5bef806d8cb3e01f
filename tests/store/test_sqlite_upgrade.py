"""Stores, new or made by an earlier release, open with the columns added since."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from edoc.store.hub_sqlite import SqliteHubStore
from edoc.store.node_sqlite import SqliteNodeStore
from edoc.store.sqlite_base import SqliteDatabase


def _columns(database: Path, table: str) -> set[str]:
    connection = sqlite3.connect(database)
    try:
        return {row[1] for row in connection.execute(f"PRAGMA table_info({table})")}
    finally:
        connection.close()


@pytest.mark.parametrize("store_class", [SqliteHubStore, SqliteNodeStore])
async def test_a_store_made_before_its_added_columns_gains_them(
    tmp_path: Path, store_class: type[SqliteDatabase]
) -> None:
    assert store_class.added_columns
    database = tmp_path / "store.sqlite"
    connection = sqlite3.connect(database)
    connection.executescript(store_class.schema)  # what the first release made
    connection.close()
    for table, column, _ in store_class.added_columns:
        assert column not in _columns(database, table)  # declared in added_columns alone

    fresh = tmp_path / "new.sqlite"
    for path in (database, database, fresh):  # opening it again finds them there
        store = store_class(path)
        await store.open()
        await store.close()
        for table, column, _ in store_class.added_columns:
            assert column in _columns(path, table)
