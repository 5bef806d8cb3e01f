"""The hub dashboard's message search by organization and day (the documents an
organization sent or was sent that day, each with its deliveries and the statuses back),
and the download of the envelope the hub keeps for one delivery."""

from __future__ import annotations

import datetime as dt
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from aiohttp import web

from edoc import dashboard, errors
from edoc.hub.state import HubState
from edoc.orgid import OrgId
from edoc.store.hub import Delivery, Hop
from edoc.web import row_id

FOUND_AT_MOST = 50  # documents listed for one organization and day
DAY = dt.timedelta(days=1)
Download = Callable[[web.Request], Awaitable[web.StreamResponse]]


def described(hop: Hop) -> dict[str, Any]:
    return {
        "kind": hop.kind,
        "sender": hop.sender,
        "status_code": hop.status_code,
        "accepted_at": hop.accepted_at.isoformat(timespec="seconds"),
        "recipient": hop.recipient,
        "node": hop.node,
        "attempts": hop.attempts,
        "delivered_at": hop.delivered_at and hop.delivered_at.isoformat(timespec="seconds"),
        "delivery_id": hop.delivery_id,
    }


def _day(text: str) -> dt.date:
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        raise errors.InvalidField("day must be a date, YYYY-MM-DD") from None


def documents_of(state_key: web.AppKey[HubState]) -> dashboard.Handler:
    async def documents(request: web.Request) -> web.Response:
        """The documents an organization sent or was sent on a day (UTC, as the hub's
        counters), the first accepted first, each with its trace."""
        request.app[dashboard.OPERATOR].check(request)
        org_id = str(OrgId.parse(request.query.get("org_id", "").strip()))
        day = _day(request.query.get("day", "").strip())
        start = dt.datetime.combine(day, dt.time(), dt.UTC)
        store = request.app[state_key].store
        keys = await store.documents_of(org_id, start, start + DAY, FOUND_AT_MOST + 1)
        found = []
        for sender, document_id in keys[:FOUND_AT_MOST]:
            hops = await store.trace(sender, document_id)
            found.append({"document_id": document_id, "hops": [described(h) for h in hops]})
        body = {
            "org_id": org_id,
            "day": day.isoformat(),
            "documents": found,
            "more": len(keys) > FOUND_AT_MOST,
        }
        return web.json_response(body)

    return documents


def _delivery_id(text: str) -> int:
    found = row_id(text)
    if found is None:
        raise errors.InvalidField("delivery_id must be the id of a delivery")
    return found


def _package(delivery: Delivery) -> bytes | Path:
    """The package's bytes when the store keeps them, else its file (streamed)."""
    if delivery.body is not None:
        return delivery.body
    if not delivery.path:  # acknowledged long ago (edoc.hub.retention)
        raise errors.NotFound(f"the package of delivery {delivery.id} is no longer kept")
    path = Path(delivery.path)
    if not path.is_file():
        raise errors.NotFound(f"the package of delivery {delivery.id} is gone")
    return path


def envelope_of(state_key: web.AppKey[HubState]) -> Download:
    async def envelope(request: web.Request) -> web.StreamResponse:
        """The envelope the hub accepted, as it relays it, to download."""
        request.app[dashboard.OPERATOR].check(request)
        delivery_id = _delivery_id(request.query.get("delivery_id", "").strip())
        state = request.app[state_key]
        delivery = await state.store.delivery(delivery_id)
        if delivery is None:
            raise errors.NotFound(f"no delivery {delivery_id}")
        found = await state.offload.run(_package, delivery)
        name = f"edoc-{delivery.kind}-{delivery.id}.edxml"
        headers = {
            "Content-Type": "application/xml",
            "Content-Disposition": f'attachment; filename="{name}"',
        }
        if isinstance(found, Path):
            return web.FileResponse(found, headers=headers)
        return web.Response(body=found, headers=headers)

    return envelope
