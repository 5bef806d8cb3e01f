"""The one backoff rule every retry loop uses."""

from __future__ import annotations

import asyncio

import pytest

from edoc import retry


@pytest.mark.parametrize("failures", range(8))
def test_full_jitter_stays_under_the_doubled_base_and_the_cap(failures: int) -> None:
    ceiling = min(10.0, 0.5 * 2**failures)
    waits = [retry.full_jitter(0.5, 10.0, failures) for _ in range(200)]
    assert all(0 <= wait <= ceiling for wait in waits)
    assert max(waits) > ceiling / 2  # spread over the range, not pinned to its start


async def test_backoff_grows_after_failures_and_starts_again_after_a_success(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    slept: list[float] = []

    async def sleep(seconds: float) -> None:
        slept.append(seconds)

    monkeypatch.setattr(asyncio, "sleep", sleep)
    monkeypatch.setattr(retry, "full_jitter", lambda base, cap, n: min(cap, base * 2**n))
    backoff = retry.Backoff(1.0, 5.0)
    for _ in range(4):
        await backoff.failed()
    backoff.succeeded()
    await backoff.failed()
    assert slept == [1.0, 2.0, 4.0, 5.0, 1.0]
