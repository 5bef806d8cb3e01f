"""The node honours the hub's Retry-After: a 429 that says when (the single door's
header, a batch result's retry_after) is HubBusy, and the outbox tries that transfer again
not before then (its own backoff still applies, up to retry_cap)."""

from __future__ import annotations

import datetime as dt

import pytest

from edoc import errors, wire
from edoc.client import Answer, HubBusy, HubClient
from edoc.node import outbox
from tests.test_node_outbox import _Hub, _state, _transfer

FULL = {"error": {"code": "EDOC-HUB-004", "message": "full"}}


@pytest.mark.parametrize(
    ("headers", "said"),
    [
        ({"Retry-After": "7"}, 7),
        ({}, None),
        ({"Retry-After": "Wed, 21 Oct 2026 07:28:00 GMT"}, None),
    ],
)
def test_a_429_that_says_when_is_hub_busy(headers: dict[str, str], said: int | None) -> None:
    with pytest.raises(errors.HubUnavailable) as refused:
        HubClient("http://hub")._checked(Answer(429, FULL, headers))
    assert getattr(refused.value, "retry_after", None) == said
    assert isinstance(refused.value, HubBusy) is (said is not None)


def test_a_batch_result_that_says_when_is_hub_busy() -> None:
    result = wire.PackageResult(429, code="EDOC-HUB-004", message="full", retry_after=9)
    outcome = HubClient("http://hub")._outcome(result)
    assert isinstance(outcome, HubBusy) and outcome.retry_after == 9
    assert outcome.code == errors.HubUnavailable.code


class _Retries:
    def __init__(self) -> None:
        self.at: dict[int, dt.datetime] = {}

    async def retry_transfer(
        self, transfer_id: int, at: dt.datetime, _error: str, _for_credentials: bool = False
    ) -> None:
        self.at[transfer_id] = at


@pytest.mark.parametrize("said", [1, 30])  # the test node's retry_cap is 1 s
async def test_the_outbox_waits_as_long_as_the_hub_said_up_to_its_cap(said: int) -> None:
    state, _ = _state(_Hub([]))
    retries = _Retries()
    state.store = retries  # type: ignore[assignment]
    now = dt.datetime(2026, 12, 1, tzinfo=dt.UTC)
    busy = HubBusy("hub answered 429 EDOC-HUB-004: full", said)
    await outbox._not_carried(state, _transfer(1), busy, now)
    assert retries.at[1] - now == dt.timedelta(seconds=1)  # its backoff alone: up to 0.1 s
