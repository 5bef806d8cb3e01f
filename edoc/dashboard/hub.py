"""The hub's dashboard, the national view: traffic per province and ministry, queues,
last polls, refusals by code, certificates and alerts (served under /dashboard/)."""

from __future__ import annotations

import datetime as dt
import functools
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from edoc import dashboard, errors
from edoc.dashboard import charts, flow, search
from edoc.dashboard.auth import PREFIX, Operator
from edoc.hub.state import HubState
from edoc.keyindex import EXPIRY_WARNING, CertRecord
from edoc.keystore import KeyStore
from edoc.offload import Offload
from edoc.orgid import OrgId
from edoc.pki import CertKind
from edoc.recent import Recent
from edoc.settled import KEPT_DAYS, Days, Figures, Settled, joined, kept_days, last_days, merged
from edoc.store.hub import STUCK_AFTER, Backlog, Count, DirectoryEntry, HubStore, Sums

UNKNOWN = "unknown"  # refusals whose sender could not be told
QUEUE_WARNING = 0.8  # share of the queue bound at which a node's backlog is flagged
POLL_SLACK = dt.timedelta(seconds=10)  # beyond the longest long poll, before "not polling"
SHOWN_KINDS = (CertKind.ORGANIZATION, CertKind.TLS)
LIVE_STATES = ("active", "in overlap", "not yet valid")
METRICS = ("sent", "received", "rejected")  # the traffic chart's series
# a refusal spike: today's refusals (UTC day, so far) reach SPIKE_FACTOR times the mean of
# the SPIKE_DAYS days before, and at least SPIKE_MINIMUM (a few refusals are no spike)
SPIKE_DAYS = 7
SPIKE_FACTOR = 3
SPIKE_MINIMUM = 10
assert SPIKE_DAYS < KEPT_DAYS  # the week before is in the days kept by day


@functools.lru_cache(maxsize=65536)
def _root(org_id: str) -> str:
    try:
        return OrgId.parse(org_id).root_code if org_id else UNKNOWN
    except errors.InvalidOrgId:
        return UNKNOWN


def _names(entries: Iterable[DirectoryEntry]) -> dict[str, tuple[str, str]]:
    """Root code → (name, kind) of every province and ministry in the address book."""
    found = {}
    for entry in entries:
        org = OrgId.parse(entry.org_id)
        if org.level == 1:
            found[org.root_code] = (entry.name, entry.kind)
    return found


def _row(code: str, names: dict[str, tuple[str, str]]) -> dict[str, Any]:
    name, kind = names.get(code, (code, ""))
    return {
        "code": code,
        "name": name,
        "kind": kind,
        "sent_today": 0,
        "received_today": 0,
        "sent": 0,
        "received": 0,
        "refused": 0,
        "refused_by_code": {},
        "queue": 0,
        "stuck": 0,
        "last_poll": None,
        "last_poll_seconds": None,
    }


@dataclass(frozen=True)
class Board:
    """The overview's figures from some days' counter sums (by day and province): every
    province's totals, and the counts of the days a chart or the spike alert may show.
    Two of other days add up by ``+`` (into new ones: the settled days' are kept and
    added to at each look, a year of them was 0.18 s of the event loop at each)."""

    totals: Figures  # by province's root code: each metric's, "rejected <code>" each code's
    days: Days[Count]

    @classmethod
    def of(cls, sums: Sums, today: dt.date) -> Board:
        totals: Figures = {}
        for count in sums.by_day:
            into = totals.setdefault(_root(count.org_id), {})
            for key in _keys(count):
                into[key] = into.get(key, 0) + count.count
        return cls(totals, kept_days(sums.by_day, today))

    def __add__(self, other: Board) -> Board:
        return Board(merged(self.totals, other.totals), joined(self.days, other.days))


def _keys(count: Count) -> tuple[str, ...]:
    """What a count adds to in its province's totals."""
    if count.metric == "rejected":
        return (count.metric, f"{count.metric} {count.reason}")
    return (count.metric,)


async def _board_days(
    store: HubStore, offload: Offload, today: dt.date, first: dt.date, before: dt.date
) -> Board:
    # in a thread, as the statistics' (edoc.hub.stats._tallied_days says why)
    return await offload.run(Board.of, await store.counter_sums(first, before), today)


def provinces(
    board: Board,
    queues: Iterable[Backlog],
    polled: dict[str, dt.datetime],
    names: dict[str, tuple[str, str]],
    now: dt.datetime,
) -> list[dict[str, Any]]:
    """One row per province or ministry with any traffic, queue or poll, by code."""
    rows: dict[str, dict[str, Any]] = {}

    def row(code: str) -> dict[str, Any]:
        return rows.setdefault(code, _row(code, names))

    for code, figures in board.totals.items():
        target = row(code)
        for key, total in figures.items():
            metric, _, reason = key.partition(" ")
            if key in ("sent", "received"):
                target[key] += total
            elif key == "rejected":
                target["refused"] += total
            elif metric == "rejected":
                target["refused_by_code"][reason] = total
    for count in board.days.get(now.date(), ()):
        if count.metric in ("sent", "received"):
            row(_root(count.org_id))[f"{count.metric}_today"] += count.count
    for backlog in queues:
        target = row(backlog.node)
        target["queue"], target["stuck"] = backlog.waiting, backlog.stuck
    for code, at in polled.items():
        row(code)["last_poll"] = at.isoformat()
        row(code)["last_poll_seconds"] = round((now - at).total_seconds())
    return [rows[code] for code in sorted(rows)]


def totals(rows: list[dict[str, Any]]) -> dict[str, int]:
    return {
        key: sum(row[key] for row in rows)
        for key in ("sent_today", "received_today", "sent", "received", "refused", "queue", "stuck")
    }


def _points(counts: Iterable[Count]) -> Iterable[charts.Point]:
    return ((c.day, c.metric, c.count, _root(c.org_id)) for c in counts)


def refusals(rows: list[dict[str, Any]]) -> dict[str, int]:
    """Refusals by error code, the most frequent first."""
    found: defaultdict[str, int] = defaultdict(int)
    for row in rows:
        for code, count in row["refused_by_code"].items():
            found[code] += count
    return dict(sorted(found.items(), key=lambda item: (-item[1], item[0])))


def refusal_spike(board: Board, today: dt.date) -> dict[str, str] | None:
    """An alert when today's refusals are well above the usual daily rate."""
    now, before = 0, 0
    for back in range(SPIKE_DAYS + 1):
        for count in board.days.get(today - dt.timedelta(days=back), ()):
            if count.metric == "rejected":
                if back == 0:
                    now += count.count
                else:
                    before += count.count
    usual = before / SPIKE_DAYS
    if now < SPIKE_MINIMUM or now < SPIKE_FACTOR * usual:
        return None
    text = f"{now} refusals today, {usual:.1f} a day on average in the {SPIKE_DAYS} days before"
    return {"level": "danger", "what": "refusals", "text": text}


def certificates(keys: KeyStore, now: dt.datetime) -> list[dict[str, Any]]:
    """The seals and TLS certificates in use, the first to expire first (reads the key
    store's files: run off the event loop)."""
    shown = [r for r in keys.records() if r.kind in SHOWN_KINDS and r.state(now) in LIVE_STATES]
    return [_certificate(r, now) for r in sorted(shown, key=CertRecord.expires)]


def _certificate(record: CertRecord, now: dt.datetime) -> dict[str, Any]:
    left = record.expires() - now
    return {
        "org_id": record.org_id,
        "org_name": record.org_name or record.full_name,
        "kind": record.kind.value,
        "serial": record.shown_serial,  # whole, as `keys list` says it: what `keys revoke` takes
        "state": record.state(now),
        "expires": record.expires().date().isoformat(),
        "days_left": round(left.total_seconds() / 86400, 1),
        "warning": left < EXPIRY_WARNING,
    }


def crl_age_hours(keys: KeyStore, now: dt.datetime) -> float | None:
    """Hours since the CA last published its revocation list."""
    try:
        written = dt.datetime.fromtimestamp(keys.crl_path.stat().st_mtime, dt.UTC)
    except FileNotFoundError:
        return None
    return round((now - written).total_seconds() / 3600, 1)


def alerts(
    rows: list[dict[str, Any]],
    expiring: list[CertRecord],
    state: HubState,
    now: dt.datetime,
    board: Board,
) -> list[dict[str, str]]:
    """What an operator should look at now, the most serious first."""
    found = [_certificate_alert(record, now) for record in expiring]
    spike = refusal_spike(board, now.date())
    if spike is not None:
        found.append(spike)
    bound = state.config.queue_bound
    stale = dt.timedelta(seconds=state.config.max_wait) + POLL_SLACK
    for row in rows:
        if row["queue"] >= bound * QUEUE_WARNING:
            level = "danger" if row["queue"] >= bound else "warning"
            text = f"{row['code']} {row['name']}: {row['queue']} waiting (bound {bound})"
            found.append({"level": level, "what": "queue", "text": text})
        if row["stuck"]:
            found.append(_stuck_alert(row))
        seconds = row["last_poll_seconds"]
        if seconds is not None and seconds > stale.total_seconds():
            text = f"{row['code']} {row['name']}: no poll for {seconds} s"
            found.append({"level": "danger", "what": "polling", "text": text})
        elif seconds is None and row["queue"]:
            text = f"{row['code']} {row['name']}: {row['queue']} waiting, not polled since start"
            found.append({"level": "warning", "what": "polling", "text": text})
    return sorted(found, key=lambda alert: alert["level"] != "danger")


def _stuck_alert(row: dict[str, Any]) -> dict[str, str]:
    """A node collecting deliveries again and again without acknowledging them: owed
    still, but the node fails on them at each offer (its log says why)."""
    text = (
        f"{row['code']} {row['name']}: {row['stuck']} collected {STUCK_AFTER} times or more,"
        " never acknowledged (still owed; the node's log says why)"
    )
    return {"level": "warning", "what": "stuck", "text": text}


def _certificate_alert(record: CertRecord, now: dt.datetime) -> dict[str, str]:
    days = (record.expires() - now).total_seconds() / 86400
    who = record.full_name or record.org_name or record.org_id
    return {
        "level": "danger" if days < 7 else "warning",
        "what": "certificate",
        "text": f"{record.kind.value} certificate of {record.org_id} ({who}) expires in"
        f" {days:.1f} days, {record.expires().date().isoformat()}",
    }


KeysView = tuple[list[dict[str, Any]], list[CertRecord], float | None]


def _keys_view(keys: KeyStore, now: dt.datetime) -> KeysView:
    return certificates(keys, now), keys.expiring(now), crl_age_hours(keys, now)


async def _flow(state: HubState) -> dict[str, Any]:
    """The status funnel and relay latency of their windows, and when they were computed."""
    now = dt.datetime.now(dt.UTC)
    return {
        "funnel": flow.funnel(await state.store.stages(now - flow.FUNNEL_WINDOW)),
        "relay": flow.relay(await state.store.relay_times(now - flow.RELAY_WINDOW)),
        "flow_at": now.isoformat(timespec="seconds"),
    }


def overview_of(state_key: web.AppKey[HubState]) -> dashboard.Overview:
    recent_flow: Recent[dict[str, Any]] = Recent()
    boards: Settled[Board] = Settled()  # this hub's (an app per hub)
    # the provinces' names by the address book's version: not every entry read and parsed
    # at each refresh (every 2 s) while the book stays as it was
    named: dict[int, dict[str, tuple[str, str]]] = {}

    async def names_of(store: HubStore) -> dict[str, tuple[str, str]]:
        version = await store.directory_version()
        if version not in named:
            named.clear()
            named[version] = _names((await store.directory()).entries)
        return named[version]

    async def overview(request: web.Request) -> dict[str, Any]:
        state = request.app[state_key]
        now = dt.datetime.now(dt.UTC)
        today = now.date()
        filters = charts.Filters.of(request)
        days = functools.partial(_board_days, state.store, state.offload, today)
        board = await boards.sums(days, today)
        names = await names_of(state.store)
        rows = provinces(board, await state.store.backlogs(), dict(state.polled), names, now)
        shown, expiring, crl_age = await state.offload.run(_keys_view, state.keys, now)
        points = _points(last_days(board.days, filters.days, today))
        return {
            "generated_at": now.isoformat(timespec="seconds"),
            "totals": totals(rows),
            "stuck_after": STUCK_AFTER,  # a delivery collected this often is counted stuck
            "provinces": rows,
            "refusals": refusals(rows),
            "traffic": charts.traffic(points, METRICS, filters, today),
            "filters": filters.to_json(),
            "certificates": shown,
            "crl_age_hours": crl_age,
            "alerts": alerts(rows, expiring, state, now, board),
            **await recent_flow.value(state.config.flow_every, lambda: _flow(state)),
        }

    return overview


def document_sender(document_id: str) -> str:
    """The sender of a document: the first part of its DocumentId (ORGID,date,number)."""
    if not document_id or len(document_id) > 500:
        raise errors.InvalidField("document_id must be a DocumentId")
    return str(OrgId.parse(document_id.split(",", 1)[0]))


def trace_of(state_key: web.AppKey[HubState]) -> dashboard.Handler:
    async def trace(request: web.Request) -> web.Response:
        """A document's way through the hub: its deliveries, and the statuses back."""
        request.app[dashboard.OPERATOR].check(request)
        document_id = request.query.get("document_id", "").strip()
        hops = await request.app[state_key].store.trace(document_sender(document_id), document_id)
        body = {"document_id": document_id, "hops": [search.described(hop) for hop in hops]}
        return web.json_response(body)

    return trace


def install(app: web.Application, state_key: web.AppKey[HubState], token: str | None) -> None:
    """The hub's dashboard under /dashboard/ (closed when ``token`` is None)."""
    dashboard.install(app, Operator(token), "hub", overview_of(state_key))
    app.router.add_get(f"{PREFIX}api/trace", trace_of(state_key))
    app.router.add_get(f"{PREFIX}api/documents", search.documents_of(state_key))
    app.router.add_get(f"{PREFIX}api/envelope", search.envelope_of(state_key))
