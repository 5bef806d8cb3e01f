"""Sums of daily counters whose older days no longer change: each count goes on the UTC
day it is made, and a service whose clock is a little behind may still add to
yesterday. The days before are settled, summed once and kept; the last two are summed at
every look. A look at a service's statistics or dashboard then costs two days' counters,
not every day's since it began (a year of a national hub: 2.6 s of its store's reading
thread at each)."""

from __future__ import annotations

import datetime as dt
import functools
import math
from collections.abc import Awaitable, Callable, Iterable
from typing import Generic, Protocol, Self, TypeVar

from edoc.recent import Recent

UNSETTLED = dt.timedelta(days=1)
KEPT_DAYS = 90  # the days whose counts are kept by day, to today (the longest chart)


class Addable(Protocol):
    def __add__(self, other: Self) -> Self: ...


Figures = dict[str, dict[str, int]]  # by organization, province or day: each metric's count


def merged(first: Figures, second: Figures) -> Figures:
    """The two figures added up, into new dicts (the settled days' are kept); a key's
    metrics are those of either (none is added as 0)."""
    added = {key: dict(counts) for key, counts in first.items()}
    for key, counts in second.items():
        into = added.setdefault(key, {})
        for metric, count in counts.items():
            into[metric] = into.get(metric, 0) + count
    return added


class Dated(Protocol):
    @property
    def day(self) -> dt.date: ...


C = TypeVar("C", bound=Dated)
Days = dict[dt.date, list[C]]  # a store's counts by day


def kept_days(counts: Iterable[C], today: dt.date) -> Days[C]:
    """The counts of the last KEPT_DAYS to ``today``, by day: what the figures of the
    settled days keep by day, not a year of them."""
    first = today - dt.timedelta(days=KEPT_DAYS - 1)
    days: Days[C] = {}
    for count in counts:
        if count.day >= first:
            days.setdefault(count.day, []).append(count)
    return days


def joined(first: Days[C], second: Days[C]) -> Days[C]:
    """Two days' counts together, in new lists (the settled days' are kept)."""
    return {day: first.get(day, []) + second.get(day, []) for day in first | second}


def last_days(days: Days[C], count: int, today: dt.date) -> Iterable[C]:
    """The counts of the ``count`` days to ``today``."""
    for back in range(count):
        yield from days.get(today - dt.timedelta(days=back), ())


S = TypeVar("S", bound=Addable)
SumDays = Callable[[dt.date, dt.date], Awaitable[S]]  # the days from the first to before


class Settled(Generic[S]):
    def __init__(self) -> None:
        self._settled: tuple[dt.date, Recent[S]] | None = None  # to this day, its sums

    async def sums(self, sum_days: SumDays[S], today: dt.date) -> S:
        """Every day's counters summed by ``sum_days`` (today is UTC's); the settled
        days' sums are kept, so ``+`` must make new ones, not add into them."""
        boundary = today - UNSETTLED
        if self._settled is None or self._settled[0] != boundary:
            self._settled = (boundary, Recent())  # (the day changed: the next one settles)
        settled = await self._settled[1].value(
            math.inf, functools.partial(sum_days, dt.date.min, boundary)
        )
        return settled + await sum_days(boundary, dt.date.max)
