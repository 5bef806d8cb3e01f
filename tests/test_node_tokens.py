"""The node remembers a known agency token for a few seconds (every agency request
authenticates: a store read each was a trip to the store's thread per request); an
unknown one is asked of the store each time, and a remembered one is asked again once
its time is up, so a replaced token stops working within it."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any, cast

import pytest

from edoc import web
from edoc.node.state import NodeState
from edoc.store.node import NodeStore


class _Store:
    def __init__(self) -> None:
        self.tokens = {"known": "000.00.01.H53"}
        self.asked: list[str] = []

    async def agency_for_token(self, token_sha256: str) -> str | None:
        self.asked.append(token_sha256)
        return self.tokens.get(token_sha256)


def _state(store: _Store) -> NodeState:
    unused = cast(Any, None)  # what authenticating does not touch
    return NodeState(unused, cast(NodeStore, store), unused, unused, unused, unused)


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """The monotonic clock token memory reads, moved by the test."""
    now = [100.0]
    monkeypatch.setattr("edoc.web.time", SimpleNamespace(monotonic=lambda: now[0]))
    return now


async def test_a_known_token_is_remembered_an_unknown_one_never(clock: list[float]) -> None:
    store = _Store()
    state = _state(store)
    assert await state.agency_for_token("known") == "000.00.01.H53"
    assert await state.agency_for_token("known") == "000.00.01.H53"
    assert store.asked == ["known"]  # the second from memory
    assert await state.agency_for_token("other") is None
    assert await state.agency_for_token("other") is None
    assert store.asked == ["known", "other", "other"]  # refusals are not remembered


async def test_a_replaced_token_stops_working_once_its_time_is_up(clock: list[float]) -> None:
    store = _Store()
    state = _state(store)
    assert await state.agency_for_token("known") == "000.00.01.H53"
    del store.tokens["known"]  # the agency was given another token
    clock[0] += web.TOKEN_TTL - 0.01
    assert await state.agency_for_token("known") == "000.00.01.H53"
    clock[0] += 0.02
    assert await state.agency_for_token("known") is None
