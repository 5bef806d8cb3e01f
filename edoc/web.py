"""What the hub and the node share on the HTTP side: errors, request ids, logs, metrics,
JSON bodies, and the bearer tokens their callers come with (given by the operator:
give_token)."""

from __future__ import annotations

import asyncio
import errno
import gc
import hashlib
import math
import random
import signal
import socket
import ssl
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

import structlog
import uvloop
from aiohttp import web
from aiohttp.typedefs import Middleware
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram
from prometheus_client.exposition import generate_latest

from edoc import errors, jsonsafe

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
log = structlog.get_logger()
# Connections the kernel holds for a service before it accepts them (aiohttp's default is
# 128). A hub's 85 nodes connect in bursts (up to 32 downloads each at once), and when the
# queue was full the kernel dropped the connects; clients resent them after 1, 3 and 7 s,
# past their 10 s connect timeout. The kernel caps it at net.core.somaxconn.
LISTEN_BACKLOG = 1024
# a file write failing with these is the store's trouble, not a bug: EDOC-STORE-001
STORAGE_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EIO})
# Objects made (and not yet freed) between two collections of the youngest generation
# (Python's default: 700). A request leaves almost nothing behind, so at 700 the collector
# ran ~400 times in 2,000 documents, for nothing; at 10,000 once.
YOUNG_COLLECTION = 10_000


def serve(
    app: web.Application,
    host: str,
    port: int,
    context: ssl.SSLContext | None,
    started: str,
    reuse_port: bool = False,
    **details: object,
) -> None:
    """Run a service until SIGTERM or Ctrl-C; log ``started`` once it listens (a port
    already taken fails before the service starts: before it makes its folders or opens
    its store, with only the error logged). With ``reuse_port``, other processes may
    listen on the same port (SO_REUSEPORT): the kernel spreads the connections among
    them, each doing its own TLS."""
    scheme = "https" if context else "http"

    def listening(_banner: str) -> None:
        log.info(started, url=f"{scheme}://{host}:{port}", **details)

    sockets = bound(host, port, reuse_port)
    app.on_shutdown.append(_ignore_further_stop_signals)
    settle_the_collector()
    web.run_app(
        app,
        sock=sockets,
        ssl_context=context,
        print=listening,
        access_log=None,
        shutdown_timeout=5,
        backlog=LISTEN_BACKLOG,
        # uvloop: the same asyncio API, its loop and transports (TLS too) in C; every
        # message is several requests, thread hand-offs and wake-ups.
        loop=uvloop.new_event_loop(),
    )


def bound(host: str, port: int, reuse_port: bool) -> list[socket.socket]:
    """Sockets bound to every address ``host`` has, as asyncio binds them, and not yet
    listening: a connection is refused until the service serves (asyncio listens on
    them). Bound before the service starts, so that a port already taken fails its
    start before it makes anything; said as asyncio says it, naming the address."""
    sockets: list[socket.socket] = []
    every = host or None  # as asyncio: "" is every address (getaddrinfo knows no such name)
    try:
        for family, kind, proto, _, address in sorted(
            set(socket.getaddrinfo(every, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE))
        ):
            listener = socket.socket(family, kind, proto)
            sockets.append(listener)
            listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if reuse_port:
                listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
            if family == socket.AF_INET6:  # as asyncio: an IPv4 address is bound on its own
                listener.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            try:
                listener.bind(address)
            except OSError as exc:
                reason = (exc.strerror or str(exc)).lower()
                raise OSError(
                    exc.errno, f"error while attempting to bind on address {address!r}: {reason}"
                ) from None
    except BaseException:
        for listener in sockets:
            listener.close()
        raise
    return sockets


def settle_the_collector() -> None:
    """What the service imported and built before it serves (~75,000 objects) stays for
    its life: frozen, no collection walks it again (a full one took 40-50 ms, a pause of
    every request under way); and the youngest generation is collected less often
    (YOUNG_COLLECTION). Under load the collector took 3-4 % of each service's CPU, now
    next to none (bench/HISTORY.md, part ten)."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(YOUNG_COLLECTION, *gc.get_threshold()[1:])


async def _ignore_further_stop_signals(_app: web.Application) -> None:
    """Once stopping, a second SIGINT or SIGTERM (the group's Ctrl-C, then `edoc up`
    stopping what is still running) would cut the cleanup short, leaving the store's
    thread to finish after the loop closed; the stop under way goes on instead."""
    loop = asyncio.get_running_loop()
    for stop in (signal.SIGINT, signal.SIGTERM):
        loop.remove_signal_handler(stop)
        signal.signal(stop, signal.SIG_IGN)


def error_response(exc: errors.EdocError) -> web.Response:
    response = web.json_response(exc.as_json(), status=exc.status)
    if isinstance(exc, errors.QueueFull):
        response.headers["Retry-After"] = str(exc.retry_after)
    return response


class HttpMetrics:
    """Per-service registry: no global state, one set of request metrics for every app."""

    def __init__(self, service: str) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "edoc_http_requests",
            "HTTP requests answered",
            ["service", "route", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "edoc_http_request_seconds",
            "Time to answer an HTTP request",
            ["service", "route"],
            registry=self.registry,
        )
        self.service = service
        # each route's and status's children, found once: labels() takes a lock and
        # checks its values on every call, twice per request
        self._answered: dict[tuple[str, int], tuple[Counter, Histogram]] = {}

    def answered(self, route: str, status: int, seconds: float) -> None:
        """A request to ``route`` answered ``status`` after ``seconds``."""
        children = self._answered.get((route, status))
        if children is None:
            children = (
                self.requests.labels(self.service, route, str(status)),
                self.latency.labels(self.service, route),
            )
            self._answered[(route, status)] = children
        requests, latency = children
        requests.inc()
        latency.observe(seconds)

    def exposition(self) -> web.Response:
        return web.Response(
            body=generate_latest(self.registry), headers={"Content-Type": CONTENT_TYPE_LATEST}
        )


def _unexpected(exc: Exception) -> errors.EdocError:
    """What a failure no handler expected is answered as. A package or upload file that
    cannot be written (disk full, read-only) is the store's trouble, the documented 503
    EDOC-STORE-001; anything else is an internal error."""
    if isinstance(exc, OSError) and exc.errno in STORAGE_ERRNOS:
        return errors.StorageError(f"cannot write: {exc.strerror}")
    return errors.EdocError("internal error")


def _request_id() -> str:
    """16 hex digits that tell one request's log lines from another's: no secret, so not
    from the system's random source (secrets.token_hex was a getrandom call a request)."""
    return f"{random.getrandbits(64):016x}"


def middleware(metrics: HttpMetrics) -> Middleware:
    """Request id in the log context, EdocError → JSON with its status, metrics."""

    @web.middleware
    async def handle(request: web.Request, handler: Handler) -> web.StreamResponse:
        request_id = request.headers.get("X-Request-Id") or _request_id()
        structlog.contextvars.clear_contextvars()
        structlog.contextvars.bind_contextvars(request_id=request_id)
        route = (
            request.match_info.route.resource.canonical
            if request.match_info.route.resource
            else "?"
        )
        started = time.perf_counter()
        try:
            response = await handler(request)
        except errors.EdocError as exc:
            log.info(
                "refused",
                method=request.method,
                path=request.path,
                code=exc.code,
                reason=exc.message,
            )
            response = error_response(exc)
        except web.HTTPException as exc:  # aiohttp's own: unknown route, body over its limit
            response = exc if exc.status < 400 else error_response(_http_error(exc))
        except Exception as exc:
            log.exception("failed", method=request.method, path=request.path)
            response = error_response(_unexpected(exc))
        response.headers["X-Request-Id"] = request_id
        metrics.answered(route, response.status, time.perf_counter() - started)
        return response

    return handle


def _http_error(exc: web.HTTPException) -> errors.EdocError:
    """aiohttp's refusals in our error form, so every 4xx body is the same JSON."""
    if exc.status == 413:
        return errors.TooLarge(exc.text or exc.reason)
    return errors.HttpRefusal(exc.status, exc.reason)


def row_id(text: str) -> int | None:
    """``text`` as a row id or index (ASCII digits, within what the stores keep), else None."""
    if not text.isascii() or not text.isdigit() or int(text) >= 2**63:
        return None
    return int(text)


def query_number(request: web.Request, name: str, default: float) -> float:
    """The query parameter ``name`` as a finite number (``default`` when absent); anything
    else is InvalidField (float() takes "nan" and "inf": a NaN wait would never end)."""
    try:
        value = float(request.query.get(name, default))
    except ValueError:
        value = math.nan
    if not math.isfinite(value):
        raise errors.InvalidField(f"{name} must be a number")
    return value


def path_id(request: web.Request, name: str = "id") -> int:
    """A row id from the URL; anything else is not found."""
    found = row_id(request.match_info[name])
    if found is None:
        raise errors.NotFound(f"no such {name}")
    return found


TOKEN_TTL = 5.0  # seconds a known token is trusted from memory; a replaced one works that long


class KnownTokens:
    """Whom bearer tokens belong to, a known one remembered for TOKEN_TTL seconds: every
    request authenticates, and asking the store each time was a trip to its thread per
    request. An unknown token is asked of the store each time."""

    def __init__(self) -> None:
        self._known: dict[str, tuple[str, float]] = {}  # digest → (owner, trusted until)

    async def owner(
        self, digest: str, ask_store: Callable[[str], Awaitable[str | None]]
    ) -> str | None:
        known = self._known.get(digest)
        if known is not None and known[1] > time.monotonic():
            return known[0]
        owner = await ask_store(digest)
        if owner is not None:
            self._known[digest] = (owner, time.monotonic() + TOKEN_TTL)
        return owner


def token_digest(token: str) -> str:
    """Tokens are stored only as their SHA-256."""
    return hashlib.sha256(token.encode()).hexdigest()


@dataclass(frozen=True)
class TokenBook:
    """Where a service keeps the tokens it lets its callers in with, one holder's each
    (the hub's nodes, a node's agencies), as give_token asks it: by SHA-256."""

    kind: str  # what a holder is, as the operator is told: "node", "agency"
    holder_of: Callable[[str], Awaitable[str | None]]  # digest → who holds it
    put: Callable[[str, str], Awaitable[None]]  # (holder, digest): any token it had replaced
    put_new: Callable[[str, str], Awaitable[bool]]  # unless it holds another: whether it holds it
    taken: type[errors.EdocError]  # what put and put_new raise for another holder's token


async def give_token(book: TokenBook, holder: str, token: str, *, replace: bool) -> bool:
    """Let ``holder`` in with ``token``; whether it holds it now. False: it holds another,
    kept unless ``replace`` (the software running with that one would be locked out, its
    every request refused). Another holder's token is refused naming that holder
    (book.taken), ``replace`` or not, also one given to it since it was asked about."""
    digest = token_digest(token)
    await refuse_anothers_token(book, holder, digest)
    try:
        if replace:
            await book.put(holder, digest)
            return True
        return await book.put_new(holder, digest)
    except book.taken:  # another took the token since it was asked about
        await refuse_anothers_token(book, holder, digest)  # (whose: the operator is told)
        raise


async def refuse_anothers_token(book: TokenBook, holder: str, digest: str) -> None:
    """A token is one holder's (the store holds it UNIQUE): asked first, so that the
    operator reads whose it is rather than the store's constraint failing (and by
    a command before it makes anything for ``holder``, as `edoc agency add` its seal)."""
    owner = await book.holder_of(digest)
    if owner is not None and owner != holder:
        raise book.taken(
            f"that token is {book.kind} {owner}'s; give {holder} another (or none: one is made)"
        )


def bearer_token(request: web.Request) -> str:
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise errors.Unauthenticated("missing bearer token")
    return token.strip()


async def json_body(request: web.Request) -> object:
    """The request's JSON body (edoc.jsonsafe), else BadMetadataJson (EDOC-ENV-004)."""
    try:
        return await request.json(loads=jsonsafe.read)
    except (UnicodeDecodeError, LookupError) as exc:  # not in its charset; an unknown one
        raise errors.BadMetadataJson(f"body cannot be read as text: {exc}") from None


async def body_to_file(request: web.Request, path: Path, limit: int) -> int:
    """Stream the request body to ``path``; refuse beyond ``limit`` bytes with 413."""
    size = 0
    with path.open("wb") as out:
        async for chunk in request.content.iter_chunked(256 * 1024):
            size += len(chunk)
            if size > limit:
                raise errors.TooLarge(f"body larger than {limit} bytes")
            out.write(chunk)
        out.flush()
    return size
