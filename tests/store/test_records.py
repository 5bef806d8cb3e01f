"""The rules both node backends share, kept on the records they take (edoc.store.node)."""

from __future__ import annotations

import datetime as dt

import pytest

from edoc.model import Route
from edoc.store.node import NewInboxItem, NewOutgoing, Progress, history, progress


def _outgoing(recipients: tuple[str, ...], local: tuple[str, ...]) -> NewOutgoing:
    return NewOutgoing(
        kind="document",
        sender="000.00.01.H01",
        document_id="1/QD",
        status_code="",
        idempotency_key=None,
        priority=0,
        path="",
        summary={},
        recipients=recipients,
        local=local,
    )


@pytest.mark.parametrize(
    ("recipients", "local", "routes"),
    [
        (("A", "B"), (), [Route.HUB]),
        (("A", "B"), ("A", "B"), [Route.LOCAL]),
        (("A", "B"), ("B",), [Route.HUB, Route.LOCAL]),
    ],
)
def test_an_outgoing_needs_the_hub_for_others_and_local_for_its_own(
    recipients: tuple[str, ...], local: tuple[str, ...], routes: list[Route]
) -> None:
    assert _outgoing(recipients, local).routes == routes


def test_an_inbox_items_key_is_the_inbox_unique_columns_in_order() -> None:
    item = NewInboxItem("R", "S", "status", "1/QD", 2, "03", "", {}, ())
    assert item.key == ("R", "S", "status", "1/QD", 2, "03")


def test_history_and_progress_read_what_both_backends_keep() -> None:
    at = dt.datetime(2026, 1, 2, 3, 4, tzinfo=dt.UTC)
    entries = history(
        f'[{{"state": "queued", "at": "{at.isoformat()}"}},'
        f' {{"state": "sent", "at": "{at.isoformat()}", "detail": "ok"}}]'
    )
    assert [(e.state, e.at, e.detail) for e in entries] == [
        ("queued", at, None),
        ("sent", at, "ok"),
    ]


def test_progress_rows_read_as_counts_by_state_without_the_empty_ones() -> None:
    rows = [("recipients", "sent", 2), ("recipients", "queued", 0), ("recipients", "06", 5)]
    rows += [("due", "", 4), ("on_time", "", 3), ("completed", "", 3)]
    assert progress(rows) == Progress({"06": 5, "sent": 2}, due=4, on_time=3, completed=3)
    assert list(progress(rows).states) == ["06", "sent"]  # in order of state
