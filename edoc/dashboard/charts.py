"""What the dashboards' charts show: counters by day, filtered by period and province."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from edoc import errors
from edoc.orgid import parse_root_code
from edoc.settled import KEPT_DAYS

PERIODS = (7, 30, KEPT_DAYS)  # days a traffic chart may span
Point = tuple[dt.date, str, int, str]  # a counter: day, metric, count, province's root code


@dataclass(frozen=True)
class Filters:
    days: int = PERIODS[0]
    province: str = ""  # a root code, or "" for all of them

    @classmethod
    def of(cls, request: web.Request) -> Filters:
        """The filters a data request asks for; anything else is refused (EDOC-ENV-002)."""
        days = request.query.get("days", str(PERIODS[0]))
        if days not in {str(period) for period in PERIODS}:
            raise errors.InvalidField(f"days must be one of {', '.join(map(str, PERIODS))}")
        province = request.query.get("province", "")
        return cls(int(days), parse_root_code(province).root_code if province else "")

    def to_json(self) -> dict[str, Any]:
        return {"days": self.days, "province": self.province, "periods": list(PERIODS)}


def traffic(
    points: Iterable[Point], metrics: tuple[str, ...], filters: Filters, today: dt.date
) -> dict[str, Any]:
    """Per day of the period, oldest first, the sum of each of ``metrics``."""
    days = [today - dt.timedelta(days=back) for back in range(filters.days - 1, -1, -1)]
    index = {day: n for n, day in enumerate(days)}
    series = {metric: [0] * len(days) for metric in metrics}
    for day, metric, count, root in points:
        if metric not in series or day not in index:
            continue
        if not filters.province or root == filters.province:
            series[metric][index[day]] += count
    return {"days": [day.isoformat() for day in days], "series": series}
