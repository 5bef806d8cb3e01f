"""A node's dashboard, the province view: what each agency sent and received, partner
provinces, the outbox's backlog, transfers that failed or are being retried with the
hub's reason, recent documents and their recipients' states (served under /dashboard/)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from typing import Any

from aiohttp import web

from edoc import dashboard, errors
from edoc.dashboard import charts
from edoc.dashboard.auth import PREFIX, Operator
from edoc.hub.directory import seed_entries
from edoc.model import Route
from edoc.node import stats
from edoc.node.state import NodeState
from edoc.orgid import OrgId
from edoc.settled import last_days
from edoc.store.node import Count, Outgoing
from edoc.web import row_id

RECENT = 15  # documents listed
TROUBLED = 20  # troubled documents listed
METRICS = ("sent", "received")
REOPENED = "retried by the operator"  # joins the history of the recipients queued again


def _root(org_id: str) -> str:
    return OrgId.parse(org_id).root_code


def province_names() -> dict[str, str]:
    """Root code → the province's or ministry's name, from the seeds."""
    return {_root(e.org_id): e.name for e in seed_entries() if OrgId.parse(e.org_id).level == 1}


def _points(counts: Iterable[Count], filters: charts.Filters) -> Iterable[charts.Point]:
    """Documents sent and received by day; with a province, those to and from it (a
    document to two of its agencies counts twice then)."""
    sent = "sent_to" if filters.province else "sent"
    for c in counts:
        if c.metric in (sent, "received"):
            metric = "sent" if c.metric == sent else "received"
            yield c.day, metric, c.count, _root(c.partner) if c.partner else ""


def _subject(outgoing: Outgoing) -> str:
    return str(outgoing.summary.get("subject", ""))


def troubled_rows(documents: list[Outgoing]) -> list[dict[str, Any]]:
    """One row per transfer that failed or is being retried."""
    return [
        {
            "id": o.id,
            "document_id": o.document_id,
            "sender": o.sender,
            "subject": _subject(o),
            "route": t.route,
            "state": t.state,
            "attempts": t.attempts,
            "last_error": t.last_error,
        }
        for o in documents
        for t in o.transfers
        if t.state == "failed" or (t.state == "pending" and t.attempts > 0)
    ]


def recent_rows(documents: list[Outgoing]) -> list[dict[str, Any]]:
    return [
        {
            "id": o.id,
            "document_id": o.document_id,
            "sender": o.sender,
            "subject": _subject(o),
            "created_at": o.created_at.isoformat(timespec="seconds"),
            "recipients": [{"org_id": r.org_id, "state": r.state} for r in o.recipients],
        }
        for o in documents
    ]


async def _documents(state: NodeState, troubled: bool, limit: int) -> list[Outgoing]:
    found = []
    for outgoing_id in await state.store.recent_outgoing(limit, troubled):
        outgoing = await state.store.outgoing(outgoing_id)
        if outgoing is not None:
            found.append(outgoing)
    return found


def _agencies(report: dict[str, Any], names: dict[str, str]) -> list[dict[str, Any]]:
    counts = report["by_agency"]
    return [
        {"org_id": org, "name": name, **{m: counts.get(org, {}).get(m, 0) for m in METRICS}}
        for org, name in sorted(names.items())
    ]


def _partners(report: dict[str, Any], names: dict[str, str]) -> list[dict[str, Any]]:
    rows = []
    for partner, counts in report["by_partner_province"].items():
        code = _root(partner)
        rows.append(
            {"code": code, "name": names.get(code, code), **{m: counts.get(m, 0) for m in METRICS}}
        )
    return rows


def overview_of(state_key: web.AppKey[NodeState]) -> dashboard.Overview:
    names = province_names()

    async def overview(request: web.Request) -> dict[str, Any]:
        state = request.app[state_key]
        now = dt.datetime.now(dt.UTC)
        filters = charts.Filters.of(request)
        figures = await stats.tallied(state.store, state.offload, state.tallied, now.date())
        report = await stats.report(state.store, figures)
        agencies = {a.org_id: a.name for a in await state.store.agencies()}
        counts = last_days(figures.days, filters.days, now.date())
        backlog = await state.store.pending_transfers()
        return {
            "generated_at": now.isoformat(timespec="seconds"),
            "province": state.config.province,
            "name": names.get(state.config.province, state.config.province),
            "totals": {
                "sent": report["sent"],
                "received": report["received"],
                "share_delivered": report["share_delivered"],
                "on_time_share": report["on_time_share"],
                "backlog_hub": backlog.get(Route.HUB, 0),
                "backlog_local": backlog.get(Route.LOCAL, 0),
            },
            "hub_unreachable": state.hub_unreachable,
            # the hub refuses the node's token or certificate: its documents wait for that
            "hub_refuses_node": state.hub_refused_node,
            "agencies": _agencies(report, agencies),
            "partners": _partners(report, names),
            "status_breakdown": report["status_breakdown"],
            "troubled": troubled_rows(await _documents(state, True, TROUBLED)),
            "recent": recent_rows(await _documents(state, False, RECENT)),
            "traffic": charts.traffic(_points(counts, filters), METRICS, filters, now.date()),
            "filters": filters.to_json(),
        }

    return overview


def retry_of(state_key: web.AppKey[NodeState]) -> dashboard.Handler:
    async def retry(request: web.Request) -> web.Response:
        """Every transfer on a route that waits out its backoff is tried again now (one
        that failed for good, refused by the hub, stays failed: it would be refused again)."""
        request.app[dashboard.OPERATOR].check(request)
        route = (await request.post()).get("route")
        if route not in set(Route):
            raise errors.InvalidField(f"route must be one of {', '.join(Route)}")
        state = request.app[state_key]
        await state.store.retry_now(Route(str(route)), dt.datetime.now(dt.UTC))
        state.outbox_wakeup.set()
        if "application/json" in request.headers.get("Accept", ""):
            return web.json_response({"retried": route})
        return web.Response(status=303, headers={"Location": PREFIX})

    return retry


def _outgoing_id(form: Any) -> int:
    given = form.get("outgoing_id")
    found = row_id(given) if isinstance(given, str) else None
    if found is None:
        raise errors.InvalidField("outgoing_id must be the id of an outgoing document")
    return found


def reopen_of(state_key: web.AppKey[NodeState]) -> dashboard.Handler:
    async def reopen(request: web.Request) -> web.Response:
        """A transfer that failed for good (refused by the hub, or given up) is tried
        again: pending and due now, its failed recipients queued again. The operator
        takes it on: fixed the address book, or the hub is back."""
        request.app[dashboard.OPERATOR].check(request)
        form = await request.post()
        outgoing_id, route = _outgoing_id(form), form.get("route")
        if route not in set(Route):
            raise errors.InvalidField(f"route must be one of {', '.join(Route)}")
        state = request.app[state_key]
        now = dt.datetime.now(dt.UTC)
        if not await state.store.reopen_transfer(outgoing_id, str(route), now, REOPENED):
            raise errors.NotFound(f"no failed transfer of document {outgoing_id} on {route}")
        state.outbox_wakeup.set()
        if "application/json" in request.headers.get("Accept", ""):
            return web.json_response({"reopened": {"outgoing_id": outgoing_id, "route": route}})
        return web.Response(status=303, headers={"Location": PREFIX})

    return reopen


def install(app: web.Application, state_key: web.AppKey[NodeState], token: str | None) -> None:
    """The node's dashboard under /dashboard/ (closed when ``token`` is None)."""
    dashboard.install(app, Operator(token), "node", overview_of(state_key))
    app.router.add_post(f"{PREFIX}api/retry", retry_of(state_key))
    app.router.add_post(f"{PREFIX}api/reopen", reopen_of(state_key))
