"""Counters summed by a store over some days, the hub's and a node's alike (edoc.settled):
a year of a national network is over a million counters, too many to carry out and add
up at every look at the statistics or a dashboard."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

C = TypeVar("C")
# a day's count from its three keys and its total (the store's Count)
MakeCount = Callable[[dt.date, str, str, str, int], C]


@dataclass(frozen=True)
class CounterSums(Generic[C]):
    """``by_org`` rows are an organization's three keys and its total over those days,
    ``by_day`` counts a day's (what the keys are: each store's sums_sql). Two sums of
    other days add up by ``+``."""

    by_org: list[tuple[str, str, str, int]]
    by_day: list[C]

    def __add__(self, other: CounterSums[C]) -> CounterSums[C]:
        return CounterSums(self.by_org + other.by_org, self.by_day + other.by_day)

    @classmethod
    def of(cls, rows: Iterable[Any], count: MakeCount[C]) -> CounterSums[C]:
        """From rows of (part: "org" or "day", day, three keys, total); a day as SQLite
        gives it is text."""
        sums: CounterSums[C] = cls([], [])
        for part, on, first, second, third, total in rows:
            if part == "org":
                sums.by_org.append((first, second, third, int(total)))
            else:
                day = dt.date.fromisoformat(on) if isinstance(on, str) else on
                sums.by_day.append(count(day, first, second, third, int(total)))
        return sums
