"""The national axis hub (Trục liên thông văn bản quốc gia, mock VDXP) over HTTP.

Node API (bearer token of the node; over mutual TLS the client certificate must be
the node's too):

    POST /api/v1/packages                    a signed edXML package (document or status)
    POST /api/v1/packages/batch              up to 32 small packages in a frame body
                                             (edoc.framing), one result for each
    GET  /api/v1/deliveries?wait=S&limit=N   long-poll what waits for the node's province
                                             (small packages inline: as bytes in a frame
                                             body if asked for, else base64 in JSON)
    GET  /api/v1/deliveries/{id}/package     the package, as the hub relays it
    POST /api/v1/deliveries/ack              {"ids": [...]} stored: mark delivered
    GET  /api/v1/directory                   the signed address book
    POST /api/v1/directory                   register the node's organizations

Open: GET /api/v1/stats, GET /healthz, GET /metrics.
The operator's dashboard (edoc.dashboard.hub): /dashboard/, with the operator credential.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import functools
import time
import uuid
from collections.abc import AsyncIterator, Mapping
from pathlib import Path
from typing import Any

import structlog
from aiohttp import web

from edoc import atomic, errors, framing, tasks, tls, wire
from edoc.archive.batches import evidence_folder
from edoc.archive.hub import open_hub_packages
from edoc.archive.stamping import Stamping, stamp_forever
from edoc.dashboard import hub as hub_dashboard
from edoc.hub import directory, intake, queues, retention, stats
from edoc.hub.state import HubConfig, HubState
from edoc.keystore import KeyStore
from edoc.offload import SMALL_BYTES, Offload
from edoc.orgid import OrgId, parse_root_code
from edoc.store import open_hub_store, refuse_unless_held, store_is_shared
from edoc.store.hub import PackageRecord
from edoc.web import (
    HttpMetrics,
    TokenBook,
    bearer_token,
    body_to_file,
    give_token,
    json_body,
    middleware,
    path_id,
    query_number,
    serve,
    token_digest,
)

log = structlog.get_logger()
STATE = web.AppKey("state", HubState)


async def authenticate(request: web.Request) -> str:
    """The calling node's root code (``H53``), from its token and, over TLS, its certificate."""
    state = request.app[STATE]
    node = await state.tokens.owner(token_digest(bearer_token(request)), state.store.node_for_token)
    if node is None:
        raise errors.Unauthenticated("unknown node token")
    if state.config.tls:
        _check_client_certificate(request, state, node)
    structlog.contextvars.bind_contextvars(node=node)
    return node


def _check_client_certificate(request: web.Request, state: HubState, node: str) -> None:
    """Over TLS a node comes with its client certificate as well as its token (mutual
    TLS): the certificate must be the node's, and one the CA has not revoked, judged at
    each request (a kept-alive connection outlives a revocation) against the key index,
    which reloads the CRL when `edoc keys revoke` changes it. EDOC-AUTH-002 is what the
    node reads as its credentials refused (edoc.node.refusal), not a package's fault."""
    peer = tls.peer(request.transport.get_extra_info("ssl_object") if request.transport else None)
    if peer is None:
        raise errors.Forbidden(
            f"no client certificate: the hub takes node {node} over mutual TLS, with its"
            " TLS certificate"
        )
    if OrgId.parse(peer.org_id).root_code != node:
        raise errors.Forbidden(
            f"client certificate of {peer.org_id} does not belong to node {node}"
        )
    try:
        revoked = tls.revocation(peer, state.keys)
    except errors.KeyStoreError as exc:  # it names the hub's files: its log's, not the node's
        log.error("client certificate not judged", node=node, reason=exc.message)
        raise errors.KeyStoreError("the hub cannot read its key store now") from None
    if revoked is not None:
        raise errors.Forbidden(f"client {revoked}")


def _accepted(record: PackageRecord) -> wire.PackageAccepted:
    return wire.PackageAccepted(
        id=record.id,
        kind=record.kind,
        document_id=record.about,
        status_code=record.status_code or None,
        recipients=record.recipients,
        accepted_at=record.accepted_at.isoformat(),
    )


# A package body up to this is read into memory (a larger one is streamed to a file).
SMALL_BODY = 1024 * 1024


def _most_read() -> int:
    """The app's client_max_size, the most request.read() and request.json() take: a
    small package and a whole batch (wire.BATCH_BYTES). Derived from both so that neither
    bound is silently the other: a larger batch bound would meet aiohttp's 413 under it,
    a smaller one is checked by post_packages itself."""
    return max(SMALL_BODY, wire.BATCH_BYTES)


async def post_package(request: web.Request) -> web.Response:
    node = await authenticate(request)
    state = request.app[STATE]
    length = request.content_length
    if length is not None and length <= min(SMALL_BODY, state.config.max_package_bytes):
        record, resend = await intake.accept(state, node, await request.read())
    else:
        body = state.incoming_dir / f"{uuid.uuid4().hex}.edxml"
        try:
            await body_to_file(request, body, state.config.max_package_bytes)
            record, resend = await intake.accept(state, node, body)
        finally:
            body.unlink(missing_ok=True)
    return web.json_response(
        _accepted(record).to_json(),
        status=202,
        headers={"X-Edoc-Resend": "true"} if resend else None,
    )


def _result(outcome: intake.Outcome) -> wire.PackageResult:
    """One package's result in a batch: what the single door would have answered."""
    if isinstance(outcome, errors.EdocError):
        # the single door's Retry-After (edoc.web.error_response), in the result
        later = outcome.retry_after if isinstance(outcome, errors.QueueFull) else None
        return wire.PackageResult(
            outcome.status, code=outcome.code, message=outcome.message, retry_after=later
        )
    record, resend = outcome
    return wire.PackageResult(202, _accepted(record), resend=resend)


async def post_packages(request: web.Request) -> web.Response:
    """Up to BATCH_PACKAGES packages in one frame body, each judged as post_package
    judges one; the answer (200) has one result for each, in order. Each one accepted is
    stored before the answer; a malformed body is refused whole and nothing is stored."""
    node = await authenticate(request)
    too_large = errors.TooLarge(f"a batch is at most {wire.BATCH_BYTES} bytes")
    if (request.content_length or 0) > wire.BATCH_BYTES:
        raise too_large
    body = await request.read()  # a chunked one (no length): up to client_max_size
    if len(body) > wire.BATCH_BYTES:
        raise too_large
    bodies = framing.unframe(body, wire.BATCH_PACKAGES)
    state = request.app[STATE]
    state.batches_under_way += 1
    try:
        outcomes = await intake.accept_batch(state, node, bodies)
        others = state.batches_under_way - 1
    finally:
        state.batches_under_way -= 1
    results = [_result(outcome) for outcome in outcomes]
    return web.json_response(wire.batch_answer_json(results, others))


def _number(request: web.Request, name: str, default: float, low: float, high: float) -> float:
    return min(max(query_number(request, name, default), low), high)


def _hung_up(request: web.Request) -> bool:
    transport = request.transport
    return transport is None or transport.is_closing()


async def get_deliveries(request: web.Request) -> web.Response:
    node = await authenticate(request)
    state = request.app[STATE]
    state.polled[node] = dt.datetime.now(dt.UTC)
    wait = _number(request, "wait", 0, 0, state.config.max_wait)
    limit = int(_number(request, "limit", 10, 1, 100))
    framed = framing.MEDIA_TYPE in request.headers.get("Accept", "")
    holder = request.headers.get(wire.COLLECTOR, "")  # none, or too long: one of its own
    named = holder if 0 < len(holder) <= wire.COLLECTOR_CHARS else None
    gone = functools.partial(_hung_up, request)
    again = functools.partial(_still_node, request, node)  # a change during the wait
    items = await queues.collect(state, node, wait, limit, gone, named, again)
    answer = functools.partial(queues.answer_body, items, state.config.inline_bytes, framed)
    # framed here when small, its packages all kept in the store's rows (or none: at a
    # stop, the threads may be gone); in a thread when a package is read from its file,
    # the answer is large (up to INLINE_TOTAL), or JSON (base64 costs more than framing)
    small = not items or (
        framed
        and all(item.body is not None for item in items)
        and sum(item.size for item in items) <= SMALL_BYTES
    )
    body = await state.offload.run_small_here(small, answer)
    return web.Response(
        body=body, content_type=framing.MEDIA_TYPE if framed else "application/json"
    )


async def _still_node(request: web.Request, node: str) -> None:
    """Refuse a held collect whose credentials changed during its wait: revoked, or its
    token now another node's (replaced by `hub add-node --replace`, then given to another
    node): without TLS the token is all that says whose deliveries it leases."""
    if await authenticate(request) != node:
        raise errors.Unauthenticated(f"the node token is no longer node {node}'s")


async def get_delivery_package(request: web.Request) -> web.StreamResponse:
    node = await authenticate(request)
    found = await queues.package(request.app[STATE], node, path_id(request))
    headers = {"Content-Type": "application/xml"}
    if isinstance(found, Path):
        return web.FileResponse(found, headers=headers)
    return web.Response(body=found, headers=headers)


async def ack_deliveries(request: web.Request) -> web.Response:
    node = await authenticate(request)
    ids = queues.delivery_ids(await json_body(request))
    first = await queues.acknowledge(request.app[STATE], node, ids)
    return web.json_response(wire.Acknowledged(tuple(ids), tuple(first)).to_json())


async def get_directory(request: web.Request) -> web.Response:
    """The book signed last while its version holds (only the version is read), else the
    entries signed anew; 304 to a node that holds it (If-None-Match)."""
    await authenticate(request)
    state = request.app[STATE]
    now = dt.datetime.now(dt.UTC)
    seal = state.keys.identity(state.config.org_id)
    book = state.books.fresh(await state.store.directory_version(), seal.cert, now)
    if book is None:
        book = await state.offload.run(state.books.sign, await state.store.directory(), now, seal)
    headers = {"ETag": book.etag}
    asked = ",".join(request.headers.getall("If-None-Match", []))
    held = {tag.strip().removeprefix("W/") for tag in asked.split(",")}
    if book.etag in held or "*" in held:
        return web.Response(status=304, headers=headers)
    return web.Response(body=book.body, content_type="application/xml", headers=headers)


async def post_directory(request: web.Request) -> web.Response:
    node = await authenticate(request)
    data = await json_body(request)
    entries = directory.registration(
        node, data.get("organizations") if isinstance(data, dict) else None
    )
    version = await request.app[STATE].store.register(entries, replacing=node)
    return web.json_response(wire.Registered(version, len(entries)).to_json())


async def get_stats(request: web.Request) -> web.Response:
    """Open to anyone, and a year of a national network is a million counters: requests
    that come while a report is made take that one (edoc.recent.Recent)."""
    state = request.app[STATE]

    async def report() -> dict[str, Any]:
        today = dt.datetime.now(dt.UTC).date()
        return await stats.report(state.store, state.offload, state.tallied, today)

    return web.json_response(await state.reports.value(0, report))


async def healthz(request: web.Request) -> web.Response:
    await request.app[STATE].store.ping()  # if it does not answer: 503, EDOC-STORE-001
    return web.json_response({"status": "ok", "service": "hub", "store": "ok"})


async def metrics(request: web.Request) -> web.Response:
    state = request.app[STATE]
    try:
        backlogs = await state.store.backlogs()
    except errors.StorageError as exc:
        # the other metrics still answer (the HTTP ones say what fails); the gauge keeps
        # the last count it had, /healthz says the store does not answer
        log.warning("stuck deliveries not counted for /metrics", reason=exc.message)
    else:
        state.stuck.set(sum(backlog.stuck for backlog in backlogs))
    return state.metrics.exposition()


async def _stop_waiting(app: web.Application) -> None:
    if STATE in app:
        app[STATE].stop_waiting()


def _woken(state: HubState, node: str) -> None:
    state.wake({node} if node else set(state.wakeups))


async def _stamp_batches(state: HubState) -> None:
    """Time-stamp the packages the hub accepted, in batches (edoc.archive.hub), if the
    key store has a time-stamping authority; kept ``evidence_days`` (None: all)."""
    config = state.config
    stamping = Stamping(evidence_folder(config.data_dir), config.stamp_every, config.evidence_days)
    opened = functools.partial(open_hub_packages, config.store)
    await stamp_forever(opened, stamping, state.keys, state.offload)


# What a hub stopped mid-way leaves (an upload and its parts in incoming/, a package's
# temporary file in packages/) is removed at start once it has not changed for this long:
# the hub instances on one folder (edoc up --hubs) may be writing theirs now.
SCRATCH_AGE = dt.timedelta(days=1)


def _remove_old_scratch(data_dir: Path, now: float) -> None:
    oldest = now - SCRATCH_AGE.total_seconds()
    packages = (data_dir / "packages").iterdir()
    scratch = [*(data_dir / "incoming").iterdir(), *filter(atomic.left_by_a_writer, packages)]
    for path in scratch:
        try:
            if path.lstat().st_mtime < oldest:
                atomic.remove(path)
        except OSError as exc:  # left there: a start is not refused for it
            log.error("old scratch file not removed", path=str(path), reason=str(exc))


def create_app(config: HubConfig) -> web.Application:
    http_metrics = HttpMetrics("hub")
    app = web.Application(middlewares=[middleware(http_metrics)], client_max_size=_most_read())

    async def resources(app: web.Application) -> AsyncIterator[None]:
        for folder in ("packages", "incoming"):
            (config.data_dir / folder).mkdir(parents=True, exist_ok=True)
        _remove_old_scratch(config.data_dir, time.time())
        # the store closed again whatever fails after it: its thread is no daemon and would
        # keep the process alive (as in edoc.node.app)
        async with contextlib.AsyncExitStack() as opened:
            store = await open_hub_store(config.store)
            opened.push_async_callback(store.close)
            keys = KeyStore(config.keys_dir)
            keys.identity(config.org_id)  # fail at start, not at the first request
            offload = Offload(config.workers)
            opened.callback(offload.close)
            state = HubState(config, store, keys, offload, http_metrics)
            await store.register(directory.seed_entries())
            # another instance on the same database accepted a package: its long polls here
            await store.watch(functools.partial(_woken, state))
            app[STATE] = state
            stamps = asyncio.create_task(_stamp_batches(state), name="batch stamps")
            dropping = None
            if config.package_days is not None:
                dropping = asyncio.create_task(
                    retention.drop_forever(state, config.package_days), name="package retention"
                )
            yield
            await tasks.stop(stamps, dropping)

    app.cleanup_ctx.append(resources)
    app.on_shutdown.append(_stop_waiting)
    app.router.add_post("/api/v1/packages", post_package)
    app.router.add_post("/api/v1/packages/batch", post_packages)
    app.router.add_get("/api/v1/deliveries", get_deliveries)
    app.router.add_get("/api/v1/deliveries/{id}/package", get_delivery_package)
    app.router.add_post("/api/v1/deliveries/ack", ack_deliveries)
    app.router.add_get("/api/v1/directory", get_directory)
    app.router.add_post("/api/v1/directory", post_directory)
    app.router.add_get("/api/v1/stats", get_stats)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/metrics", metrics)
    hub_dashboard.install(app, STATE, config.operator_token)
    return app


def run(config: HubConfig) -> None:
    # where no store is (no SQLite file, an empty database) the hub makes its own
    making = "`edoc serve hub` makes one where no store is"
    asyncio.run(refuse_unless_held(config.store, "hub", making))
    context = tls.server_context(KeyStore(config.keys_dir), config.org_id) if config.tls else None
    serve(
        create_app(config),
        config.host,
        config.port,
        context,
        "hub started",
        # instances sharing a database may share a port too (edoc up --hubs); on a file
        # store a second hub on the same port stays an error
        reuse_port=store_is_shared(config.store),
        org_id=config.org_id,
    )


async def add_node(config: HubConfig, node: str, token: str, *, replace: bool = False) -> None:
    """Register a node (by root code) and the token it authenticates with. A node the hub
    already lets in with another token is refused (NodeExists) unless ``replace``: the
    node running with that token would be locked out. Its own token again is no change;
    another node's token is refused, ``replace`` or not."""
    root = parse_root_code(node).root_code
    store = await open_hub_store(config.store)
    try:
        book = TokenBook(
            "node", store.node_for_token, store.add_node, store.add_new_node, errors.NodeExists
        )
        added = await give_token(book, root, token, replace=replace)
    finally:
        await store.close()
    if not added:
        raise errors.NodeExists(
            f"node {root} is already connected with another token, which its running node"
            " uses; give --replace to give it a new one (then restart the node with it)"
        )


async def add_nodes(config: HubConfig, tokens: Mapping[str, str]) -> None:
    """Register nodes (root code → the token each authenticates with), in one opening of
    the store and changes made together (a national network has 85)."""
    codes = {parse_root_code(node).root_code: token for node, token in tokens.items()}
    store = await open_hub_store(config.store)
    try:
        await asyncio.gather(
            *(store.add_node(code, token_digest(token)) for code, token in codes.items())
        )
    finally:
        await store.close()
