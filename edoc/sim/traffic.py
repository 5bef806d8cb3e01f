"""Traffic a profile describes, as a reproducible list of documents to send.

The same profile, agencies, window and seed give the same documents, byte for byte.
Flow totals are split with largest remainders, first over (sender, recipient) pairs,
then over working days weighted by the calendar, so a full period reproduces the
profile's figures exactly.
"""

from __future__ import annotations

import datetime as dt
import math
import random
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from edoc.model import StatusCode
from edoc.sim.profile import Flow, Profile

# what an accepting recipient answers, in order (a refusing one answers 02 alone)
PROCESSING_FLOW = (
    StatusCode.ACCEPTED,
    StatusCode.ASSIGNED,
    StatusCode.PROCESSING,
    StatusCode.COMPLETED,
)
VIETNAM = dt.timezone(dt.timedelta(hours=7))
# public holidays (dương lịch and the lunar ones of those years)
HOLIDAYS = {
    2018: [
        "01-01",
        "02-14",
        "02-15",
        "02-16",
        "02-19",
        "02-20",
        "04-25",
        "04-30",
        "05-01",
        "09-03",
    ],
    2019: [
        "01-01",
        "02-04",
        "02-05",
        "02-06",
        "02-07",
        "02-08",
        "04-15",
        "04-29",
        "04-30",
        "05-01",
        "09-02",
    ],
    2021: [
        "01-01",
        "02-10",
        "02-11",
        "02-12",
        "02-15",
        "02-16",
        "04-21",
        "04-30",
        "05-03",
        "09-02",
        "09-03",
    ],
}
TOPICS = (
    "chuyển đổi số",
    "cải cách hành chính",
    "phòng chống thiên tai",
    "xây dựng nông thôn mới",
    "chính quyền điện tử",
    "an toàn thông tin mạng",
    "quản lý ngân sách",
    "công tác cán bộ",
    "thu ngân sách nhà nước",
    "đầu tư công",
    "phòng, chống dịch COVID-19",
    "thi đua khen thưởng",
)
SUBJECTS = (
    "V/v triển khai {topic} năm {year}",
    "V/v báo cáo kết quả {topic} quý {quarter}",
    "V/v góp ý dự thảo kế hoạch {topic}",
    "V/v phối hợp thực hiện {topic}",
    "Về việc tăng cường {topic}",
)
NOTATIONS = {
    "00": "UBND-VP",
    "01": "VP",
    "02": "KHTC",
    "03": "TCCB",
    "07": "SNV-TCBC",
    "12": "STTTT-CĐS",
    "15": "STC-QLNS",
}


@dataclass(frozen=True)
class Agency:
    org_id: str
    root: str
    place: str  # where its documents are promulgated (the province's name)
    url: str
    token: str
    signer: dict[str, str]


@dataclass(frozen=True)
class Planned:
    index: int
    at: dt.datetime  # simulated time of sending
    sender: Agency
    recipient: Agency
    metadata: dict[str, Any]
    attachments: tuple[tuple[str, int], ...]  # (file name, size in bytes)
    answers: tuple[tuple[str, float], ...]  # (status code, hours after arrival)
    on_time: bool | None  # planned: completed on or before DueDate

    @property
    def document_id(self) -> str:
        code = self.metadata["code"]
        day = self.metadata["promulgation"]["date"].replace("-", "/")
        return f"{self.sender.org_id},{day},{code['number']}/{code['notation']}"


def split(total: int, weights: Sequence[float]) -> list[int]:
    """``total`` shared in proportion to ``weights``, whole numbers summing exactly."""
    if total <= 0 or not weights:
        return [0] * len(weights)
    whole = sum(weights)
    shares = [total * w / whole for w in weights]
    counts = [math.floor(s) for s in shares]
    by_remainder = sorted(range(len(weights)), key=lambda i: (counts[i] - shares[i], i))
    for i in by_remainder[: total - sum(counts)]:
        counts[i] += 1
    return counts


def working_days(profile: Profile) -> list[dt.date]:
    first = dt.date(profile.year, profile.months[0], 1)
    last_month = profile.months[1]
    after = dt.date(profile.year + (last_month == 12), last_month % 12 + 1, 1)
    holidays = {
        dt.date.fromisoformat(f"{profile.year}-{d}") for d in HOLIDAYS.get(profile.year, [])
    }
    allowed = set(profile.calendar["working_days"])
    return [
        first + dt.timedelta(days=n)
        for n in range((after - first).days)
        if (first + dt.timedelta(days=n)).isoweekday() in allowed
        and first + dt.timedelta(days=n) not in holidays
    ]


def day_weights(days: list[dt.date], peak: float) -> list[float]:
    """1 per working day, ``peak`` in the last three working days of each month."""
    weights = []
    for index, day in enumerate(days):
        later_same_month = sum(1 for d in days[index + 1 : index + 4] if d.month == day.month)
        weights.append(peak if later_same_month < 3 else 1.0)
    return weights


def _pairs(flow: Flow) -> list[tuple[str, str]]:
    local = flow.senders == flow.recipients and len(flow.senders) == 1
    return [(s, r) for s in flow.senders for r in flow.recipients if local or s != r]


def _pair_counts(flow: Flow, scale: float) -> dict[tuple[str, str], int]:
    pairs = _pairs(flow)
    if not flow.per_sender:
        return dict(
            zip(pairs, split(round(flow.documents * scale), [1.0] * len(pairs)), strict=True)
        )
    counts: dict[tuple[str, str], int] = {}
    for sender in flow.senders:
        mine = [p for p in pairs if p[0] == sender]
        counts |= dict(
            zip(mine, split(round(flow.documents * scale), [1.0] * len(mine)), strict=True)
        )
    return counts


def _choose(rng: random.Random, table: Sequence[float]) -> int:
    return rng.choices(range(len(table)), weights=table)[0]


class _Writer:
    """Turns (day, sender, recipient) slots into documents that look real."""

    def __init__(self, profile: Profile, rng: random.Random, seed: int) -> None:
        self.profile = profile
        self.rng = rng
        self.numbers: dict[str, int] = {}
        # Code numbers restart each year per agency; another seed's run on the same network
        # numbers from seed × 100,000, so its DocumentIds never collide with this one's.
        self.first_number = seed * 100_000

    def _time(self, day: dt.date) -> dt.datetime:
        start, end = self.profile.calendar["office_hours"]
        morning = self.rng.random() < self.profile.calendar["morning_peak"]
        hour = self.rng.uniform(start, start + 2) if morning else self.rng.uniform(start + 2, end)
        return dt.datetime.combine(day, dt.time(), VIETNAM) + dt.timedelta(hours=hour)

    def _attachments(self, type_name: str, number: int) -> tuple[tuple[str, int], ...]:
        mix = self.profile.mix
        sizes = mix["attachment_kb"]
        result = []
        for n in range(_choose(self.rng, mix["attachments"])):
            kb = min(
                sizes["max"], self.rng.lognormvariate(math.log(sizes["median"]), sizes["sigma"])
            )
            name = f"{type_name} {number}.pdf" if n == 0 else f"Phụ lục {n}.pdf"
            result.append((name, max(1, int(kb * 1024))))
        return tuple(result)

    def _answers(self) -> tuple[tuple[tuple[str, float], ...], float]:
        plan = self.profile.answers
        jitter = self.rng.lognormvariate(0, 0.5)
        if self.rng.random() >= plan["share_answered"]:
            return (), 0.0
        if self.rng.random() < plan["rejected"]:
            return ((StatusCode.REJECTED, plan["hours_to"][StatusCode.ACCEPTED] * jitter),), 0.0
        steps = tuple((code, plan["hours_to"][code] * jitter) for code in PROCESSING_FLOW)
        return steps, steps[-1][1]

    def document(self, index: int, day: dt.date, sender: Agency, recipient: Agency) -> Planned:
        mix, rng = self.profile.mix, self.rng
        code, type_name, _share = mix["types"][_choose(rng, [t[2] for t in mix["types"]])]
        number = self.numbers[sender.org_id] = (
            self.numbers.get(sender.org_id, self.first_number) + 1
        )
        answers, hours_to_complete = self._answers()
        metadata: dict[str, Any] = {
            "from": sender.org_id,
            "to": [recipient.org_id],
            "code": {"number": str(number), "notation": NOTATIONS.get(sender.org_id[7:9], "VP")},
            "promulgation": {"place": sender.place, "date": day.isoformat()},
            "type": {"code": code, "name": type_name},
            "subject": rng.choice(SUBJECTS).format(
                topic=rng.choice(TOPICS), year=day.year, quarter=(day.month - 1) // 3 + 1
            ),
            "priority": _choose(rng, mix["priorities"]),
        }
        if rng.random() < mix["personal_signature"]:
            metadata["signer"] = dict(sender.signer)
        on_time = None
        due = mix["due_days"]
        if hours_to_complete and rng.random() < due["share"]:
            on_time = rng.random() < self.profile.answers["completed_on_time"]
            done = math.ceil(hours_to_complete / 24)
            days = (
                rng.randint(max(done, due["min"]), max(done, due["max"]))
                if on_time
                else max(0, done - 1)
            )
            metadata["due_date"] = (day + dt.timedelta(days=days)).isoformat()
        return Planned(
            index,
            self._time(day),
            sender,
            recipient,
            metadata,
            self._attachments(type_name, number),
            answers,
            on_time,
        )


def plan(
    profile: Profile,
    agencies: dict[str, list[Agency]],
    days: int | None = None,
    seed: int = 0,
    scale: float = 1.0,
) -> list[Planned]:
    """The documents of the profile's period (or its first ``days`` working days)."""
    calendar = working_days(profile)
    weights = day_weights(calendar, profile.calendar["deadline_peak"])
    window = len(calendar) if days is None else min(days, len(calendar))
    share = sum(weights[:window]) / sum(weights)
    rng = random.Random(seed)  # noqa: S311 - reproducible traffic, not secrets
    writer = _Writer(profile, rng, seed)
    slots: list[tuple[dt.date, str, str]] = []
    for flow in profile.flows:
        pairs = _pair_counts(flow, scale)
        if days is not None:  # the window's share of the flow, over pairs as in the year
            in_window = split(round(sum(pairs.values()) * share), list(pairs.values()))
            pairs = dict(zip(pairs, in_window, strict=True))
        for (sender_root, recipient_root), count in pairs.items():
            for day, n in zip(calendar[:window], split(count, weights[:window]), strict=True):
                slots += [(day, sender_root, recipient_root)] * n
    documents = []
    for index, (day, sender_root, recipient_root) in enumerate(slots):
        sender = rng.choice(agencies[sender_root])
        choices = [a for a in agencies[recipient_root] if a.org_id != sender.org_id]
        documents.append(writer.document(index, day, sender, rng.choice(choices)))
    documents.sort(key=lambda d: (d.at, d.index))
    return documents
