"""A value shared by callers until it is old enough (edoc.recent.Recent)."""

from __future__ import annotations

import asyncio

import pytest

from edoc.recent import Recent


async def test_recent_figures_are_computed_again_only_once_old_enough() -> None:
    now = [100.0]
    computed: list[float] = []

    async def compute() -> float:
        await asyncio.sleep(0)  # others ask meanwhile: they wait for this one
        computed.append(now[0])
        return now[0]

    recent: Recent[float] = Recent(clock=lambda: now[0])
    assert await asyncio.gather(*(recent.value(10, compute) for _ in range(3))) == [100.0] * 3
    now[0] = 109.9
    assert await recent.value(10, compute) == 100.0
    now[0] = 110.0
    assert await recent.value(10, compute) == 110.0
    assert await recent.value(0, compute) == 110.0 and computed == [100.0, 110.0, 110.0]


async def test_recent_figures_slower_to_compute_than_their_age_are_computed_once() -> None:
    now = [0.0]
    computed: list[float] = []

    async def slow() -> float:
        await asyncio.sleep(0)
        now[0] += 30  # longer than the figures may be old: aged from when they were done
        computed.append(now[0])
        return now[0]

    recent: Recent[float] = Recent(clock=lambda: now[0])
    assert await asyncio.gather(*(recent.value(10, slow) for _ in range(3))) == [30.0] * 3
    assert computed == [30.0]


async def test_callers_that_wait_for_a_computation_take_it_even_when_nothing_may_be_old() -> None:
    now = [0.0]
    computed: list[float] = []

    async def compute() -> float:
        await asyncio.sleep(0)
        now[0] += 1
        computed.append(now[0])
        return now[0]

    recent: Recent[float] = Recent(clock=lambda: now[0])
    assert await asyncio.gather(*(recent.value(0, compute) for _ in range(3))) == [1.0] * 3
    assert await recent.value(0, compute) == 2.0  # asked after it was done: computed again
    assert computed == [1.0, 2.0]


async def test_callers_that_wait_for_a_failing_computation_share_its_failure() -> None:
    calls: list[int] = []

    async def failing() -> float:
        await asyncio.sleep(0)
        calls.append(1)
        raise OSError("disk I/O error")

    recent: Recent[float] = Recent()
    answers = await asyncio.gather(
        *(recent.value(0, failing) for _ in range(3)), return_exceptions=True
    )
    assert [str(answer) for answer in answers] == ["disk I/O error"] * 3 and calls == [1]


async def test_a_caller_that_goes_away_stops_no_one_elses_value() -> None:
    release = asyncio.Event()

    async def slow() -> float:
        await release.wait()
        return 1.0

    recent: Recent[float] = Recent()
    first = asyncio.create_task(recent.value(0, slow))
    second = asyncio.create_task(recent.value(0, slow))
    await asyncio.sleep(0)
    first.cancel()  # its request was closed
    release.set()
    assert await second == 1.0
    assert first.cancelled()


async def test_after_a_failure_the_next_caller_computes_again() -> None:
    calls: list[int] = []

    async def flaky() -> float:
        calls.append(1)
        if len(calls) == 1:
            raise OSError("disk I/O error")
        return 2.0

    recent: Recent[float] = Recent()
    with pytest.raises(OSError, match="disk I/O"):
        await recent.value(10, flaky)
    assert await recent.value(10, flaky) == 2.0
