"""The agency API's evidence: a document's ASiC-E container, for the agency that sent it
(``GET /api/v1/documents/{id}/evidence``) or received it (``GET /api/v1/inbox/{id}/evidence``).

Built on request from what the node keeps, time-stamped then; the container is the
agency's to keep (edoc.archive.container), and verifies offline with the root alone.

A build reads, hashes, deflates and copies every package of the document (a 40 MB
document's took the node's memory from 87 to 563 MB six at a time, and held the worker
threads its posts are signed on). So it is written off the loop, from the package files
in chunks, to a file of its own (in ``incoming/``, which a node's start empties) that is
sent and removed; and a node runs at most half its worker threads' worth of builds at
once (at least one), answering 429 EDOC-HUB-004 with a Retry-After past them.

What the store or the files fail with is the operator's to read, in the log: the
agency is told EDOC-STORE-001 without the node's file paths (a package gone from
``/…/outgoing/….edxml``, a batch index that does not open).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import tempfile
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import BinaryIO

import structlog
from aiohttp import web

from edoc import errors
from edoc.archive import container, export
from edoc.archive.batches import BatchLog, evidence_folder
from edoc.archive.evidence import KeptDocument
from edoc.archive.stored import open_stored
from edoc.keystore import KeyStore
from edoc.model import MessageKind
from edoc.node.state import NodeState
from edoc.offload import Offload
from edoc.web import path_id

log = structlog.get_logger()

AgencyOf = Callable[[web.Request], Awaitable[str]]
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class Builds:
    """The evidence builds under way on one node, refused past ``bound(state)``."""

    def __init__(self) -> None:
        self.running = 0

    @staticmethod
    def bound(state: NodeState) -> int:
        # half the worker threads: posts and deliveries keep the rest
        return max(1, state.config.workers // 2)

    @contextlib.contextmanager
    def slot(self, state: NodeState) -> Iterator[None]:
        if self.running >= self.bound(state):
            raise errors.QueueFull(
                f"{self.running} evidence containers are being built: ask again shortly"
            )
        self.running += 1
        try:
            yield
        finally:
            self.running -= 1


CHUNK = 256 * 1024  # bytes of the container's file read at a time, off the loop


async def _sent(
    request: web.Request, path: Path, offload: Offload, headers: dict[str, str]
) -> web.StreamResponse:
    """The container's file, whole, then removed (sent, or its sending failed). Not a
    FileResponse: that answers Range and If-* with a part of this file, or a 304, where
    each request builds another container (its time stamp, its size), so a resumed
    download would splice parts of two."""
    try:
        with await offload.run(path.open, "rb") as file:
            response = web.StreamResponse(headers=headers)
            response.content_length = await offload.run(_size, file)
            await response.prepare(request)
            while chunk := await offload.run(file.read, CHUNK):
                await response.write(chunk)
            await response.write_eof()
            return response
    finally:  # off the loop: unlinks wait for the file system's journal
        await offload.run(path.unlink, missing_ok=True)


def _size(file: BinaryIO) -> int:
    return os.fstat(file.fileno()).st_size


def _written(
    kept: KeptDocument,
    keys: KeyStore,
    now: dt.datetime,
    proofs: container.Proofs,
    folder: Path,
) -> Path:
    """The container written to a new file in ``folder`` (its owner's only)."""
    folder.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile(
        dir=folder, prefix="evidence-", suffix=".asice", delete=False
    ) as out:
        try:
            export.write_container(kept, keys, export.stamper(keys, now), now, out, proofs)
        except BaseException:
            Path(out.name).unlink(missing_ok=True)
            raise
    return Path(out.name)


async def _container(state: NodeState, org_id: str, document_id: str) -> Path:
    """The document's container, built in a file off the loop (with the CA material)."""
    stored = await open_stored(state.config.store)
    try:
        kept = await export.kept_of(stored, org_id, document_id)
    finally:
        await stored.close()
    proofs = BatchLog(evidence_folder(state.config.data_dir)).proofs_of
    now = dt.datetime.now(dt.UTC)
    return await state.offload.run(_written, kept, state.keys, now, proofs, state.incoming_dir)


def _unsaid(exc: errors.StorageError, document_id: str) -> errors.StorageError:
    """The failure as the agency is told it: its reason (which names the node's files)
    goes to the log."""
    log.error("evidence not built", document_id=document_id, reason=exc.message)
    return errors.StorageError(
        f"what the node keeps of {document_id} cannot be read now; the node's log says why"
    )


async def _evidence(
    request: web.Request, state: NodeState, builds: Builds, org_id: str, document_id: str
) -> web.StreamResponse:
    with builds.slot(state):
        try:
            path = await _container(state, org_id, document_id)
        except errors.StorageError as exc:
            raise _unsaid(exc, document_id) from None
    headers = {
        "Content-Type": container.MIMETYPE,
        "Content-Disposition": 'attachment; filename="evidence.asice"',
    }
    return await _sent(request, path, state.offload, headers)


def sent_evidence(state_key: web.AppKey[NodeState], agency_of: AgencyOf, builds: Builds) -> Handler:
    async def handler(request: web.Request) -> web.StreamResponse:
        agency = await agency_of(request)
        state = request.app[state_key]
        outgoing = await state.store.outgoing(path_id(request))
        if outgoing is None or outgoing.kind != MessageKind.DOCUMENT:
            raise errors.NotFound("no such document")
        if outgoing.sender != agency:
            raise errors.Forbidden("not a document of this agency")
        return await _evidence(request, state, builds, agency, outgoing.document_id)

    return handler


def received_evidence(
    state_key: web.AppKey[NodeState], agency_of: AgencyOf, builds: Builds
) -> Handler:
    async def handler(request: web.Request) -> web.StreamResponse:
        agency = await agency_of(request)
        state = request.app[state_key]
        item = await state.store.inbox_item(path_id(request))
        if item is None or item.kind != MessageKind.DOCUMENT:
            raise errors.NotFound("no such inbox document")
        if item.recipient != agency:
            raise errors.Forbidden("not addressed to this agency")
        return await _evidence(request, state, builds, agency, item.document_id)

    return handler


def install(app: web.Application, state_key: web.AppKey[NodeState], agency_of: AgencyOf) -> None:
    """Add the two evidence routes to a node's agency API (their builds bounded together)."""
    builds = Builds()
    # no HEAD: it would build a whole container, and take a build's place, for nothing
    app.router.add_get(
        "/api/v1/documents/{id}/evidence",
        sent_evidence(state_key, agency_of, builds),
        allow_head=False,
    )
    app.router.add_get(
        "/api/v1/inbox/{id}/evidence",
        received_evidence(state_key, agency_of, builds),
        allow_head=False,
    )
