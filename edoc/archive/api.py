"""The agency API's evidence: a document's ASiC-E container, for the agency that sent it
(``GET /api/v1/documents/{id}/evidence``) or received it (``GET /api/v1/inbox/{id}/evidence``).

Built on request from what the node keeps, time-stamped then; the container is the
agency's to keep (edoc.archive.container), and verifies offline with the root alone.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Awaitable, Callable

from aiohttp import web

from edoc import errors
from edoc.archive import container, export
from edoc.archive.batches import BatchLog, evidence_folder, proofs_lookup
from edoc.archive.stored import open_stored
from edoc.model import MessageKind
from edoc.node.state import NodeState
from edoc.web import path_id

AgencyOf = Callable[[web.Request], Awaitable[str]]
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


async def _container(state: NodeState, org_id: str, document_id: str) -> web.Response:
    stored = await open_stored(state.config.store)
    try:
        proofs_of = proofs_lookup(BatchLog(evidence_folder(state.config.data_dir)), state.offload)
        evidence = await export.evidence_of(stored, state.keys, org_id, document_id, proofs_of)
    finally:
        await stored.close()
    now = dt.datetime.now(dt.UTC)
    stamp = export.stamper(state.keys, now)
    data = await state.offload.run(container.build, evidence, stamp, now)
    return web.Response(
        body=data,
        content_type=container.MIMETYPE,
        headers={"Content-Disposition": 'attachment; filename="evidence.asice"'},
    )


def sent_evidence(state_key: web.AppKey[NodeState], agency_of: AgencyOf) -> Handler:
    async def handler(request: web.Request) -> web.StreamResponse:
        agency = await agency_of(request)
        state = request.app[state_key]
        outgoing = await state.store.outgoing(path_id(request))
        if outgoing is None or outgoing.kind != MessageKind.DOCUMENT:
            raise errors.NotFound("no such document")
        if outgoing.sender != agency:
            raise errors.Forbidden("not a document of this agency")
        return await _container(state, agency, outgoing.document_id)

    return handler


def received_evidence(state_key: web.AppKey[NodeState], agency_of: AgencyOf) -> Handler:
    async def handler(request: web.Request) -> web.StreamResponse:
        agency = await agency_of(request)
        state = request.app[state_key]
        item = await state.store.inbox_item(path_id(request))
        if item is None or item.kind != MessageKind.DOCUMENT:
            raise errors.NotFound("no such inbox document")
        if item.recipient != agency:
            raise errors.Forbidden("not addressed to this agency")
        return await _container(state, agency, item.document_id)

    return handler


def install(app: web.Application, state_key: web.AppKey[NodeState], agency_of: AgencyOf) -> None:
    """Add the two evidence routes to a node's agency API."""
    app.router.add_get("/api/v1/documents/{id}/evidence", sent_evidence(state_key, agency_of))
    app.router.add_get("/api/v1/inbox/{id}/evidence", received_evidence(state_key, agency_of))
