"""The provincial node (trục liên thông tỉnh / LGSP): the agency API over HTTP.

Agencies authenticate with ``Authorization: Bearer <token>``; each token is bound to
one organization, which may only act as itself. Endpoints are listed in
:mod:`edoc.node.openapi` (served at ``/api/v1/openapi.json``).
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import functools
import re
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from typing import Any
from urllib.parse import quote

import structlog
from aiohttp import web

from edoc import errors, folderlock, tasks
from edoc.archive import api as archive_api
from edoc.archive import stamping
from edoc.archive.batches import evidence_folder
from edoc.archive.stored import open_stored
from edoc.dashboard import node as node_dashboard
from edoc.hub import directory
from edoc.keystore import KeyStore
from edoc.model import MessageKind
from edoc.node import (
    answers,
    collector,
    hublink,
    leftovers,
    openapi,
    outbox,
    receiving,
    refusal,
    stats,
    submit,
)
from edoc.node.addressbook import AddressBook
from edoc.node.state import NodeConfig, NodeState
from edoc.offload import Offload
from edoc.orgid import OrgId, root_of
from edoc.retry import Backoff
from edoc.store import open_node_store, refuse_unless_held, sqlite_file
from edoc.store.node import InboxItem, NodeStore, Outgoing, OutgoingRecipient, StateChange
from edoc.urls import without_password
from edoc.web import (
    HttpMetrics,
    TokenBook,
    bearer_token,
    give_token,
    json_body,
    middleware,
    path_id,
    query_number,
    refuse_anothers_token,
    row_id,
    serve,
    token_digest,
)

STATE = web.AppKey("state", NodeState)
ADDRESS_BOOK = web.AppKey("address_book", AddressBook)
log = structlog.get_logger()


async def agency_of(request: web.Request) -> str:
    org = await request.app[STATE].agency_for_token(token_digest(bearer_token(request)))
    if org is None:
        raise errors.Unauthenticated("unknown agency token")
    structlog.contextvars.bind_contextvars(agency=org)
    return org


def _overall(outgoing: Outgoing) -> str:
    states = {r.state for r in outgoing.recipients}
    return states.pop() if len(states) == 1 else "mixed"


def _change_json(change: StateChange) -> dict[str, Any]:
    shown: dict[str, Any] = {"state": change.state, "at": change.at.isoformat()}
    if change.detail is not None:  # the first entry ("queued") has none
        shown["detail"] = change.detail
    return shown


def _recipient_json(recipient: OutgoingRecipient) -> dict[str, Any]:
    return {
        "org_id": recipient.org_id,
        "local": recipient.local,
        "state": recipient.state,
        "history": [_change_json(change) for change in recipient.history],
    }


def _outgoing_json(outgoing: Outgoing) -> dict[str, Any]:
    return {
        "id": outgoing.id,
        "kind": outgoing.kind,
        "document_id": outgoing.document_id,
        "status": _overall(outgoing),
        "created_at": outgoing.created_at.isoformat(),
        "summary": submit.public_summary(outgoing.summary),
        "recipients": [_recipient_json(r) for r in outgoing.recipients],
        "transfers": [
            {"route": t.route, "state": t.state, "attempts": t.attempts, "last_error": t.last_error}
            for t in outgoing.transfers
        ],
    }


async def post_document(request: web.Request) -> web.Response:
    agency = await agency_of(request)
    app = request.app
    outgoing, retry = await submit.submit(app[STATE], app[ADDRESS_BOOK], request, agency)
    body = {
        "id": outgoing.id,
        "document_id": outgoing.document_id,
        "status": _overall(outgoing),
        "recipients": [r.org_id for r in outgoing.recipients],
    }
    return web.json_response(body, status=202, headers={"X-Edoc-Retry": "true"} if retry else None)


async def get_document(request: web.Request) -> web.Response:
    agency = await agency_of(request)
    outgoing = await request.app[STATE].store.outgoing(path_id(request))
    if outgoing is None or outgoing.kind != MessageKind.DOCUMENT:
        raise errors.NotFound("no such document")
    if outgoing.sender != agency:
        raise errors.Forbidden("not a document of this agency")
    return web.json_response(_outgoing_json(outgoing))


def _inbox_json(item: InboxItem) -> dict[str, Any]:
    return {
        "id": item.id,
        "recipient": item.recipient,
        "sender": item.sender,
        "document_id": item.document_id,
        "business_type": item.business_type,
        "received_at": item.received_at.isoformat(),
        "summary": item.summary,
        "attachments": [
            {
                "n": a.n,
                "name": a.name,
                "content_type": a.content_type,
                "size": a.size,
                "sha256": a.sha256,
            }
            for a in item.attachments
        ],
        "answers": item.answers,
    }


async def list_inbox(request: web.Request) -> web.Response:
    agency = await agency_of(request)
    org = request.query.get("org", agency)
    if org != agency:
        raise errors.Forbidden(f"agency {agency} cannot read the inbox of {org}")
    since = None
    if "since" in request.query:
        try:
            since = dt.datetime.fromisoformat(request.query["since"])
        except ValueError:
            raise errors.InvalidField("since must be an ISO date or time") from None
        since = since if since.tzinfo else since.replace(tzinfo=dt.UTC)
    try:
        limit = min(max(int(request.query.get("limit", 100)), 1), 1000)
    except ValueError:
        raise errors.InvalidField("limit must be a number") from None
    state = request.app[STATE]
    wait = _wait(request, state.config.inbox_max_wait)
    if wait > 0:
        again = functools.partial(_still_agency, request, org)
        items = await _inbox_held(state, org, since, limit, wait, again)
    else:
        items = await state.store.inbox(org, since, limit)
    return web.json_response({"documents": [_inbox_json(item) for item in items]})


def _wait(request: web.Request, most: float) -> float:
    """The seconds an inbox read may be held (``wait``; 0 when absent), at most ``most``."""
    wait = query_number(request, "wait", 0)
    if wait < 0:
        raise errors.InvalidField("wait must be a number of seconds, 0 or more")
    return min(wait, most)


def _news(items: list[InboxItem], since: dt.datetime | None, first: set[int]) -> bool:
    """Whether ``items`` hold something received after ``since``, or not in the first
    read (``since`` takes what was received at that very moment too: a client that passes
    the last ``received_at`` it saw gets that document again, which is no news)."""
    return any(since is None or item.received_at > since or item.id not in first for item in items)


async def _still_agency(request: web.Request, org: str) -> None:
    """Refuse a held read whose token is no longer ``org``'s (replaced meanwhile by `edoc
    agency add --replace`): what came during the wait goes to the token's holder only."""
    if await agency_of(request) != org:
        raise errors.Unauthenticated(f"the agency token is no longer {org}'s")


async def _inbox_held(
    state: NodeState,
    org: str,
    since: dt.datetime | None,
    limit: int,
    wait: float,
    still_allowed: Callable[[], Awaitable[None]],
) -> list[InboxItem]:
    """``org``'s inbox since ``since``; when it holds nothing received after ``since``,
    held until a document for ``org`` is stored or ``wait`` seconds have passed (a long
    poll, as the hub's collect: an agency's software asks again at once instead of every
    few seconds for nothing). ``still_allowed`` judges the token again after each wait."""
    clock = asyncio.get_running_loop().time
    deadline = clock() + wait
    first: set[int] | None = None
    while True:
        woken = state.inbox_wakeup(org)  # before reading: one stored meanwhile sets it
        items = await state.store.inbox(org, since, limit)
        if first is None:
            first = {item.id for item in items}
        remaining = deadline - clock()
        # a stopping node answers with what it read (its store closes after the answers)
        done = state.stopping or remaining <= 0 or len(items) >= limit
        if done or _news(items, since, first):
            return items
        # asyncio.timeout, not wait_for, which on Python 3.11 can swallow a cancellation
        # (see edoc.node.outbox.run_forever)
        try:
            async with asyncio.timeout(remaining):
                await woken.wait()
        except TimeoutError:
            return items
        await still_allowed()


async def _own_item(request: web.Request) -> InboxItem:
    return await _item_of(request, await agency_of(request), path_id(request))


async def _item_of(request: web.Request, agency: str, inbox_id: int) -> InboxItem:
    item = await request.app[STATE].store.inbox_item(inbox_id)
    if item is None or item.kind != MessageKind.DOCUMENT:
        raise errors.NotFound("no such inbox document")
    if item.recipient != agency:
        raise errors.Forbidden("not addressed to this agency")
    return item


async def get_inbox_item(request: web.Request) -> web.Response:
    return web.json_response(_inbox_json(await _own_item(request)))


async def get_inbox_package(request: web.Request) -> web.StreamResponse:
    item = await _own_item(request)
    headers = {"Content-Type": "application/xml"}
    if item.path:
        return web.FileResponse(item.path, headers=headers)
    return web.Response(
        body=_kept(await request.app[STATE].store.inbox_package(item.id)), headers=headers
    )


async def get_inbox_attachment(request: web.Request) -> web.StreamResponse:
    item = await _own_item(request)
    n = path_id(request, "n")
    found = next((a for a in item.attachments if a.n == n), None)
    if found is None:
        raise errors.NotFound(f"no attachment {n}")
    headers = {
        "Content-Type": _served_type(found.content_type),
        "Content-Disposition": f"attachment; filename*=UTF-8''{quote(found.name)}",
        "X-Content-Type-Options": "nosniff",  # the type said, never one a browser guesses
    }
    if found.path:
        return web.FileResponse(found.path, headers=headers)
    state = request.app[STATE]
    # kept in a row of its own only by releases before 2026-12, which could file a body
    # under another entry's name (they paired bodies and entries by position): served
    # from there only when it is the file its entry names
    body = await state.store.inbox_attachment(item.id, n)
    if body is None or not receiving.holds(found, body):
        package = _kept(await state.store.inbox_package(item.id))
        body = await state.offload.run(receiving.attachment_in, package, found)
    return web.Response(body=body, headers=headers)


# A media type as HTTP writes it (RFC 9110 §8.3.1), in printable ASCII: type/subtype,
# then any "; name=value", each a token or the value a quoted string (no empty parameter:
# the form that leaves a regular expression one way to read each space)
_TCHARS = r"[!#$%&'*+.^_`|~0-9A-Za-z-]+"
_QUOTED = r'"(?:[\t !#-\[\]-~]|\\[\t -~])*"'
_MEDIA_TYPE = re.compile(rf"{_TCHARS}/{_TCHARS}(?:[ \t]*;[ \t]*{_TCHARS}=(?:{_TCHARS}|{_QUOTED}))*")


def _served_type(content_type: str) -> str:
    """The attachment's ContentType if it is a media type, else application/octet-stream.
    It is the sending node's word, in the signed manifest and any string there: one with
    a line break had aiohttp refuse the answer (an empty reply, every time)."""
    return content_type if _MEDIA_TYPE.fullmatch(content_type) else "application/octet-stream"


def _kept(body: bytes | None) -> bytes:
    if body is None:
        raise errors.NotFound("the received file is gone")
    return body


async def post_status(request: web.Request) -> web.Response:
    item = await _own_item(request)
    status = answers.agency_status(item, await json_body(request))
    answers.check_order([status])
    [status_id] = await answers.answer(request.app[STATE], [status])
    return web.json_response({"id": status_id, "code": status.code.value}, status=202)


def _entries(body: object) -> list[object]:
    entries = body.get("statuses") if isinstance(body, dict) else None
    if not isinstance(entries, list) or not 1 <= len(entries) <= answers.MAX_STATUSES:
        raise errors.InvalidField(
            f"statuses must be a list of 1 to {answers.MAX_STATUSES} objects"
            ' {"id": inbox id, "code": ..., "description": ..., "staff": {...}}'
        )
    return entries


def _entry_id(entry: object) -> int:
    found = entry.get("id") if isinstance(entry, dict) else None
    if not isinstance(found, int) or isinstance(found, bool) or row_id(str(found)) is None:
        raise errors.InvalidField("id must be the inbox id of a received document")
    return found


async def post_statuses(request: web.Request) -> web.Response:
    """Several statuses at once, in order, all or none: those about one document follow
    each other as if posted one by one, and one refused refuses them all."""
    agency = await agency_of(request)
    items: dict[int, InboxItem] = {}
    statuses = []
    for n, entry in enumerate(_entries(await json_body(request))):
        with answers.naming(n):
            inbox_id = _entry_id(entry)
            if inbox_id not in items:
                items[inbox_id] = await _item_of(request, agency, inbox_id)
            statuses.append(answers.agency_status(items[inbox_id], entry, n))
    answers.check_order(statuses)
    queued = await answers.answer(request.app[STATE], statuses)
    shown = [
        {"id": outgoing_id, "inbox_id": status.item.id, "code": status.code.value}
        for outgoing_id, status in zip(queued, statuses, strict=True)
    ]
    return web.json_response({"statuses": shown}, status=202)


async def get_stats(request: web.Request) -> web.Response:
    state = request.app[STATE]
    today = dt.datetime.now(dt.UTC).date()
    figures = await stats.tallied(state.store, state.offload, state.tallied, today)
    return web.json_response(await stats.report(state.store, figures))


async def healthz(request: web.Request) -> web.Response:
    state = request.app[STATE]
    await state.store.ping()  # if it does not answer: 503, EDOC-STORE-001
    book = request.app[ADDRESS_BOOK].trusted(state)
    return web.json_response(
        {
            "status": "ok",
            "service": "node",
            "province": state.config.province,
            "registered": state.registered,  # the hub knows its agencies
            "store": "ok",
            # null: no valid copy, remote recipients are left to the hub to judge
            "address_book": book and {"version": book.version, "expires": book.expires.isoformat()},
        }
    )


async def metrics(request: web.Request) -> web.Response:
    return request.app[STATE].metrics.exposition()


async def get_openapi(_request: web.Request) -> web.Response:
    return web.json_response(openapi.SPEC)


async def _register_with_hub(state: NodeState) -> None:
    """Tell the hub which agencies this node serves (retried until the hub is there, and
    takes the node's credentials)."""
    backoff = Backoff(state.config.retry_base, state.config.retry_cap)
    refused = refusal.backoff(state.config)
    while True:
        agencies = await _own_agencies(state)
        if not agencies:
            # A registration replaces the node's agencies in the book: one of none, from
            # a new store (a mistaken --store?), would take its province's out of it.
            # (and "registered" stays false in the health: the node serves nobody)
            log.warning("no agency in the store: the hub's address book is left as it is")
            return
        try:
            await state.hub.register(agencies)
        except errors.EdocError as exc:
            if refusal.refuses_the_node(exc):  # said once, by refusal
                refusal.refused(state, exc)
                await refused.failed()
            else:
                log.warning("hub registration failed", reason=str(exc))
                await backoff.failed()
            continue
        state.registered = True
        log.info("registered with the hub", agencies=len(agencies))
        # the hub takes the node: what waited for that goes, refused before this answer or
        # before the node started (refusal.recall); nothing is done when nothing waits
        await refusal.accepted(state)
        return


async def _own_agencies(state: NodeState) -> list[dict[str, str]]:
    """The store's agencies of the node's province, as a registration names them; the
    hub refuses a registration naming one of another (the store has it from before
    `edoc agency add` refused that), which would keep all of them out of the book."""
    agencies = await state.store.agencies()
    own = [a for a in agencies if root_of(a.org_id).root_code == state.config.province]
    if len(own) < len(agencies):
        others = [a.org_id for a in agencies if a not in own]
        log.error("agencies of another province are not registered", agencies=others)
    return [{"org_id": a.org_id, "name": _registered_name(a.org_id, a.name)} for a in own]


def _registered_name(org_id: str, name: str) -> str:
    """``name``, or none where the hub refuses it (stored before `edoc agency add` held
    names to what XML can carry): it would keep all the node's agencies out of the book."""
    try:
        return directory.organization_name(org_id, name)
    except errors.InvalidField as exc:
        log.error("an agency's name is not registered", agency=org_id, reason=exc.message)
        return ""


async def _stamp_batches(state: NodeState) -> None:
    """Time-stamp what the store kept, in batches (edoc.archive.stamping), if the key
    store has a time-stamping authority; kept ``evidence_days`` (None: all)."""
    config = state.config
    every = stamping.Stamping(
        evidence_folder(config.data_dir), config.stamp_every, config.evidence_days
    )
    opened = functools.partial(open_stored, config.store)
    await stamping.stamp_forever(opened, every, state.keys, state.offload)


async def _stop_waiting(app: web.Application) -> None:
    if STATE in app:
        app[STATE].stop_waiting()


def create_app(config: NodeConfig) -> web.Application:
    http_metrics = HttpMetrics("node")
    app = web.Application(middlewares=[middleware(http_metrics)], client_max_size=1024 * 1024)

    async def resources(app: web.Application) -> AsyncIterator[None]:
        # What is open is closed again whatever fails after it, at start (keys, TLS) or at
        # the end (a worker that died): the store's thread is no daemon and would keep the
        # process alive, a node that printed its error and never exited.
        async with contextlib.AsyncExitStack() as opened:
            opened.enter_context(folderlock.held(config.data_dir, "node"))  # before all
            for folder in ("outgoing", "inbox", "incoming"):
                (config.data_dir / folder).mkdir(parents=True, exist_ok=True)
            store = await open_node_store(config.store)
            opened.push_async_callback(store.close)
            keys = KeyStore(config.keys_dir)
            offload = Offload(config.workers)
            opened.callback(offload.close)
            await offload.run(leftovers.sweep, config.data_dir, await store.package_files())
            hub = hublink.open_hub(config, keys)
            opened.push_async_callback(hub.close)
            state = NodeState(config, store, keys, offload, http_metrics, hub)
            app[STATE] = state
            await refusal.recall(state)  # before the registration can say the hub takes it
            book = app[ADDRESS_BOOK] = AddressBook(config.data_dir / "addressbook.xml")
            opened.push_async_callback(book.close)
            running = [
                asyncio.create_task(outbox.run_forever(state), name="outbox"),
                asyncio.create_task(collector.collect_forever(state), name="inbox"),
                asyncio.create_task(_register_with_hub(state), name="register"),
                asyncio.create_task(book.keep_fresh(state), name="address book"),
                asyncio.create_task(_stamp_batches(state), name="batch stamps"),
            ]
            yield
            await tasks.stop(*running)

    app.cleanup_ctx.append(resources)
    app.on_shutdown.append(_stop_waiting)  # before the server waits for its requests
    app.router.add_post("/api/v1/documents", post_document)
    app.router.add_get("/api/v1/documents/{id}", get_document)
    app.router.add_get("/api/v1/inbox", list_inbox)
    app.router.add_post("/api/v1/inbox/statuses", post_statuses)  # before /inbox/{id}
    app.router.add_get("/api/v1/inbox/{id}", get_inbox_item)
    app.router.add_get("/api/v1/inbox/{id}/package", get_inbox_package)
    archive_api.install(app, STATE, agency_of)  # the evidence of a document, sent or received
    app.router.add_get("/api/v1/inbox/{id}/attachments/{n}", get_inbox_attachment)
    app.router.add_post("/api/v1/inbox/{id}/status", post_status)
    app.router.add_get("/api/v1/stats", get_stats)
    app.router.add_get("/api/v1/openapi.json", get_openapi)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/metrics", metrics)
    node_dashboard.install(app, STATE, config.operator_token)
    return app


def run(config: NodeConfig) -> None:
    making = "`edoc agency add ORGID --data-dir …` makes one"
    asyncio.run(refuse_unless_held(config.store, "node", making, new=_may_make(config)))
    serve(
        create_app(config),
        config.host,
        config.port,
        None,
        "node started",
        province=config.province,
        hub=without_password(config.hub_url),
    )


def _may_make(config: NodeConfig) -> bool:
    """Whether the node makes its store where none is: in an empty database (README says
    so), not at a missing SQLite file. SQLite would make an empty store at a mistyped
    path, its folders too, and the node would start serving nobody; `edoc agency add`
    makes that one. A hub's store is refused in any case."""
    path = sqlite_file(config.store)
    return path is None or path.is_file()


async def admit_agency(config: NodeConfig, org: OrgId, token: str, *, replace: bool) -> None:
    """Refuse what add_agency would, before anything is made for ``org`` (`edoc agency
    add` issues its seal): an agency of another province than the node's others (the hub
    refuses a registration that names it, so none of the node's would be registered),
    another agency's token, and a new token for an agency the node lets in already
    unless ``replace``. add_agency asks again as it changes the store."""
    store = await open_node_store(config.store)
    try:
        agencies = {agency.org_id for agency in await store.agencies()}
        served = {root_of(agency).root_code for agency in agencies}
        if served and org.root_code not in served:
            raise errors.InvalidField(
                f"{org} is of province {org.root_code}; the node at {config.data_dir} serves"
                f" {', '.join(sorted(served))}"
            )
        digest = token_digest(token)
        await refuse_anothers_token(_token_book(store, None), str(org), digest)
        holds_it = await store.agency_for_token(digest) == str(org)
    finally:
        await store.close()
    if str(org) in agencies and not holds_it and not replace:
        raise _holds_another_token(str(org))


async def add_agency(
    config: NodeConfig, org_id: str, name: str | None, token: str, *, replace: bool = False
) -> None:
    """Let agency ``org_id`` use the node with ``token`` (``name`` None: its stored name
    kept). An agency the node already lets in with another token is refused
    (AgencyExists) unless ``replace``: its software, running with that token, would be
    locked out. Its own token again is no change; another agency's is refused."""
    store = await open_node_store(config.store)
    try:
        added = await give_token(_token_book(store, name), org_id, token, replace=replace)
    finally:
        await store.close()
    if not added:
        raise _holds_another_token(org_id)


def _token_book(store: NodeStore, name: str | None) -> TokenBook:
    """The node's agencies' tokens, as give_token asks them (``name``: see add_agency)."""
    return TokenBook(
        "agency",
        store.agency_for_token,
        lambda org, digest: store.add_agency(org, name, digest),
        lambda org, digest: store.add_new_agency(org, name, digest),
        errors.AgencyExists,
    )


def _holds_another_token(org_id: str) -> errors.AgencyExists:
    return errors.AgencyExists(
        f"agency {org_id} already has another token, which its software uses; give"
        " --replace to give it a new one (then give that one to its software)"
    )


async def add_agencies(config: NodeConfig, agencies: Iterable[tuple[str, str, str]]) -> None:
    """Let agencies (organization, name, bearer token) use the node, in one opening of its
    store and changes made together."""
    store = await open_node_store(config.store)
    try:
        await asyncio.gather(
            *(store.add_agency(org, name, token_digest(token)) for org, name, token in agencies)
        )
    finally:
        await store.close()
