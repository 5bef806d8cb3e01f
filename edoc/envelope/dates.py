"""Dates and timestamps as edXML writes them: yyyy/MM/dd [HH:mm:ss], Vietnam's time."""

from __future__ import annotations

import datetime as dt
import functools
import re

from edoc import errors

VIETNAM = dt.timezone(dt.timedelta(hours=7), "ICT")
DATE_FORMAT = "%Y/%m/%d"
TIMESTAMP_FORMAT = "%Y/%m/%d %H:%M:%S"


def format_date(value: dt.date) -> str:
    # Not strftime: glibc's %Y does not pad years before 1000 to four digits.
    return f"{value.year:04d}/{value.month:02d}/{value.day:02d}"


# The form edoc writes, parsed without strptime (a package has several timestamps, read at
# every hop); anything else still goes to strptime, which decides what it accepts.
_USUAL_TIMESTAMP = re.compile(r"(\d{4})/(\d\d)/(\d\d)(?: (\d\d):(\d\d):(\d\d))?", re.ASCII)


def _usual(text: str, with_time: bool) -> dt.datetime | None:
    match = _USUAL_TIMESTAMP.fullmatch(text)
    if match is None or (match[4] is not None) != with_time:
        return None
    year, month, day, hour, minute, second = (int(part or 0) for part in match.groups())
    return dt.datetime(year, month, day, hour, minute, second)


# Texts of the usual length are remembered: the dates of a day's documents repeat, and a
# hop's time is read thrice per message at each hop. A longer text (strptime lets runs of
# spaces through) is read anew each time, so no key grows with what a sender writes; a
# refusal is never remembered.
_REMEMBERED = len("yyyy/MM/dd HH:mm:ss") + 8


def parse_date(text: str) -> dt.date:
    return _remembered_date(text) if len(text) <= _REMEMBERED else _date(text)


@functools.lru_cache(maxsize=1024)
def _remembered_date(text: str) -> dt.date:
    return _date(text)


def _date(text: str) -> dt.date:
    try:
        usual = _usual(text, with_time=False)
        return (usual or dt.datetime.strptime(text, DATE_FORMAT)).date()
    except ValueError:
        raise errors.InvalidField(f"not a yyyy/MM/dd date: {text!r}") from None


def format_timestamp(value: dt.datetime) -> str:
    local = value.astimezone(VIETNAM)
    # the fields, not strftime's %H:%M:%S: the same digits at half its cost (one per hop)
    return f"{format_date(local)} {local.hour:02d}:{local.minute:02d}:{local.second:02d}"


def parse_timestamp(text: str) -> dt.datetime:
    return _remembered_timestamp(text) if len(text) <= _REMEMBERED else _timestamp(text)


@functools.lru_cache(maxsize=1024)
def _remembered_timestamp(text: str) -> dt.datetime:
    return _timestamp(text)


def _timestamp(text: str) -> dt.datetime:
    try:
        usual = _usual(text, with_time=True)
        return (usual or dt.datetime.strptime(text, TIMESTAMP_FORMAT)).replace(tzinfo=VIETNAM)
    except ValueError:
        raise errors.InvalidField(f"not a yyyy/MM/dd HH:mm:ss timestamp: {text!r}") from None
