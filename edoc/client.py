"""HTTP clients of edoc's two APIs: a node's agency API and the hub's node API.

Every answer is an :class:`Answer`; :meth:`Answer.ok` is the one place that turns an
``{"error": {"code", "message"}}`` answer into an :class:`~edoc.errors.EdocError` under the
service's own code. The typed methods raise; :meth:`_Client.request` does not, for callers
(tests, the simulator) that look at refusals themselves. A connection that fails is the
client's ``unreachable`` error, so a caller never sees aiohttp's exceptions.
"""

from __future__ import annotations

import contextlib
import functools
import io
import json
import mimetypes
import secrets
import ssl
import time
from collections.abc import AsyncIterator, Callable, Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import IO, Any, NamedTuple, Self, TypeVar

import aiohttp

from edoc import errors, framing, wire
from edoc.urls import without_password

T = TypeVar("T")
# a context for every request, or what gives the one of each request (a running node's
# own certificate is followed: edoc.tls.OwnCertificate); True: the system's trust
TlsContext = ssl.SSLContext | bool | Callable[[], ssl.SSLContext]


class Answer(NamedTuple):
    status: int
    body: Any  # the parsed JSON, or the raw bytes of an answer that is not JSON
    headers: dict[str, str]

    def ok(self) -> Any:
        """The body of a success; the error the answer carries, raised, of a refusal."""
        if self.status >= 400:
            raise error_of(self.status, self.body)
        return self.body


def error_of(status: int, body: object) -> errors.RemoteError:
    """The error a refusal carries, under the code the service gave it."""
    error = body.get("error") if isinstance(body, dict) else None
    if isinstance(error, dict) and isinstance(error.get("code"), str):
        return errors.RemoteError(error["code"], str(error.get("message", "")), status)
    return errors.RemoteError(f"EDOC-HTTP-{status}", "the answer carries no edoc error", status)


def _parsed(raw: bytes, media_type: str = "") -> Any:
    if media_type == framing.MEDIA_TYPE:  # binary: no JSON attempt (it decodes it whole)
        return raw
    try:
        return json.loads(raw)
    except (ValueError, RecursionError):  # (nested past the parser's stack)
        return raw


def _no_connection(exc: Exception) -> bool:
    """Whether ``exc`` says the connection failed: aiohttp's errors, and the RuntimeError
    uvloop raises when a connect after a failed one finds its file descriptor still taken
    ("File descriptor N is used by transport": uvloop #653, aiohttp #10362). The next try
    gets another descriptor, so that is a connection to try again, not a fault that may
    end a node's collector."""
    return isinstance(exc, aiohttp.ClientError) or "is used by transport" in str(exc)


def _failure(exc: Exception) -> str:
    """Why a connection failed, naming the host and port it was to: aiohttp's own text of
    a failed connect carries its TLS context's repr (``ssl:<ssl.SSLContext object at
    0x7f…>``), which told an operator nothing, in the CLI's errors and in the
    ``last_error`` an agency reads on its document."""
    if isinstance(exc, aiohttp.ClientConnectorCertificateError):
        why = _reason(exc.certificate_error)
        return f"{exc.host}:{exc.port} presented a certificate not trusted here ({why})"
    if isinstance(exc, aiohttp.ClientConnectorError):
        return f"cannot connect to {exc.host}:{exc.port} ({_reason(exc.os_error)})"
    return str(exc) or type(exc).__name__


def _scheme_hint(url: str, exc: Exception) -> str:
    """The other scheme, when ``exc`` is what the wrong one gives: a TLS service asked
    over http:// hangs up (its handshake read no TLS), a plain one asked over https://
    answers no TLS (WRONG_VERSION_NUMBER). Said as "if": other faults end the same way."""
    scheme, _, rest = url.partition("://")
    if scheme == "http" and isinstance(exc, aiohttp.ServerDisconnectedError):
        return f"; if it serves TLS, its address is https://{rest}"
    if scheme == "https" and isinstance(exc, aiohttp.ClientConnectorSSLError):
        return f"; if it serves plain HTTP, its address is http://{rest}"
    return ""


def _reason(exc: BaseException) -> str:
    """An OS or TLS error's own words (a certificate's: what verifying it found)."""
    said = getattr(exc, "verify_message", None) or getattr(exc, "strerror", None)
    return str(said or exc or type(exc).__name__)


HELD_MARGIN = 30.0  # seconds a held answer may take beyond its wait (a busy service)


def _outlasting(timeout: aiohttp.ClientTimeout, held: float) -> aiohttp.ClientTimeout:
    """``timeout`` with its whole-request and read limits no shorter than ``held``
    seconds and a margin (no limit stays none)."""
    least = held + HELD_MARGIN
    return aiohttp.ClientTimeout(
        total=None if timeout.total is None else max(timeout.total, least),
        connect=timeout.connect,
        sock_read=None if timeout.sock_read is None else max(timeout.sock_read, least),
        sock_connect=timeout.sock_connect,
        ceil_threshold=timeout.ceil_threshold,
    )


class _Client:
    """One service at ``base_url``: a kept-alive session inside ``async with``, else a
    session per call (enough for a command that makes one or two)."""

    unreachable: type[errors.EdocError] = errors.Unreachable
    kind = "an edoc service"  # what the client talks to, as its errors name it

    def __init__(
        self,
        base_url: str,
        token: str = "",  # none: no Authorization header
        ssl_context: TlsContext = True,
        session: aiohttp.ClientSession | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.shown_url = without_password(self.base_url)  # in errors (a last_error, the CLI's)
        self.token = token
        self.ssl_context = ssl_context
        self._session = session
        self._owned = False

    def _tls(self) -> ssl.SSLContext | bool:
        """The TLS context of the next request."""
        return self.ssl_context() if callable(self.ssl_context) else self.ssl_context

    async def __aenter__(self) -> Self:
        if self._session is None:
            self._session = aiohttp.ClientSession()
            self._owned = True
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._owned:
            await self.close()

    async def close(self) -> None:
        """Close the kept-alive session, whoever opened it."""
        if self._session is not None:
            await self._session.close()
            self._session, self._owned = None, False

    def _headers(self, extra: Mapping[str, str] | None) -> dict[str, str]:
        auth = {"Authorization": f"Bearer {self.token}"} if self.token else {}
        return auth | dict(extra or {})

    async def request(
        self,
        method: str,
        path: str,
        *,
        json_body: Any = None,
        data: Any = None,
        params: Mapping[str, str] | None = None,
        headers: Mapping[str, str] | None = None,
        held: float = 0,
    ) -> Answer:
        """One call, whatever the answer; only a failed connection raises. ``held``: the
        seconds the service may hold its answer (a long poll), which the session's read
        timeouts are stretched to outlast."""
        session = self._session or aiohttp.ClientSession()
        # a held answer's limits: the session's, stretched (an answer not held: the session's)
        outlasting: dict[str, Any] = {"timeout": _outlasting(session.timeout, held)} if held else {}
        try:
            with self._reaching():
                async with session.request(
                    method,
                    f"{self.base_url}{path}",
                    json=json_body,
                    data=data,
                    params=params,
                    headers=self._headers(headers),
                    ssl=self._tls(),
                    **outlasting,
                ) as response:
                    raw = await response.read()
                    parsed = _parsed(raw, response.content_type)
                    return Answer(response.status, parsed, dict(response.headers))
        finally:
            if session is not self._session:
                await session.close()

    @contextlib.contextmanager
    def _reaching(self) -> Iterator[None]:
        """A connection that fails is this client's ``unreachable`` error."""
        try:
            yield
        except (aiohttp.ClientError, RuntimeError) as exc:
            if not _no_connection(exc):
                raise
            raise self.unreachable(
                f"cannot reach {self.shown_url}: {_failure(exc)}{_scheme_hint(self.shown_url, exc)}"
            ) from None

    def _checked(self, answer: Answer) -> Any:
        return answer.ok()

    async def _ok(self, method: str, path: str, **kwargs: Any) -> Any:
        return self._checked(await self.request(method, path, **kwargs))

    async def stats(self) -> dict[str, Any]:
        """The service's statistics; BadAnswer if they are not of its kind's shape: a hub
        and a node answer the same path, each with figures of its own."""
        body = await self._ok("GET", "/api/v1/stats")
        try:
            return self._stats_shape(body)
        except errors.BadAnswer as exc:
            raise errors.BadAnswer(
                f"{self.shown_url}/api/v1/stats answered what is not {self.kind}'s statistics"
                f" ({exc.message}): is that the address of another kind of service?"
            ) from None

    @staticmethod
    def _stats_shape(body: object) -> dict[str, Any]:
        if not isinstance(body, dict):
            raise errors.BadAnswer(f"not a JSON object: {body!r:.80}")
        return body

    async def health(self) -> dict[str, Any]:
        health: dict[str, Any] = await self._ok("GET", "/healthz")
        return health


FileSource = bytes | Path | IO[bytes]
Files = Mapping[str, FileSource] | Iterable[tuple[str, FileSource]]  # by name, in order


class AgencyClient(_Client):
    """An agency's software at its node: post documents and statuses, read the inbox."""

    kind = "a node"
    _stats_shape = staticmethod(wire.node_stats_from_json)

    async def send(
        self,
        metadata: Mapping[str, Any] | bytes,
        files: Files = (),
        idempotency_key: str | None = None,
    ) -> Answer:
        """``POST /api/v1/documents``, whatever the answer (a file given as a Path is
        streamed from disk)."""
        if isinstance(files, Mapping):
            files = files.items()
        form = aiohttp.FormData()
        text = (
            metadata.decode()
            if isinstance(metadata, bytes)
            else json.dumps(metadata, ensure_ascii=False)
        )
        form.add_field("metadata", text, content_type="application/json")
        opened: list[IO[bytes]] = []
        try:
            for name, content in files:
                if isinstance(content, Path):
                    content = content.open("rb")
                    opened.append(content)
                elif isinstance(content, bytes):
                    content = io.BytesIO(content)
                kind = mimetypes.guess_type(name)[0] or "application/octet-stream"
                form.add_field("file", content, filename=name, content_type=kind)
            key = {"Idempotency-Key": idempotency_key} if idempotency_key else None
            return await self.request("POST", "/api/v1/documents", data=form, headers=key)
        finally:
            for handle in opened:
                handle.close()

    async def post_document(
        self,
        metadata: Mapping[str, Any] | bytes,
        files: Files = (),
        idempotency_key: str | None = None,
    ) -> dict[str, Any]:
        """The node's 202 (``id``, ``document_id``, ``status``, ``recipients``)."""
        accepted: dict[str, Any] = (await self.send(metadata, files, idempotency_key)).ok()
        return accepted

    async def document(self, outgoing_id: int) -> dict[str, Any]:
        found: dict[str, Any] = await self._ok("GET", f"/api/v1/documents/{outgoing_id}")
        return found

    async def inbox(
        self,
        org: str | None = None,
        since: str | None = None,
        limit: int | None = None,
        wait: float = 0,
    ) -> list[dict[str, Any]]:
        """The documents received since ``since`` (that moment included); with ``wait``,
        when none was received after ``since``, the node holds the answer until one is (or
        ``wait`` seconds, at most its maximum, 30 s by default, have passed)."""
        asked = {
            "org": org,
            "since": since,
            "limit": None if limit is None else str(limit),
            "wait": str(wait) if wait else None,
        }
        params = {name: value for name, value in asked.items() if value is not None}
        body = await self._ok("GET", "/api/v1/inbox", params=params, held=wait)
        documents: list[dict[str, Any]] = body["documents"]
        return documents

    async def inbox_item(self, inbox_id: int) -> dict[str, Any]:
        item: dict[str, Any] = await self._ok("GET", f"/api/v1/inbox/{inbox_id}")
        return item

    async def package(self, inbox_id: int) -> bytes:
        package: bytes = await self._ok("GET", f"/api/v1/inbox/{inbox_id}/package")
        return package

    async def post_status(
        self,
        inbox_id: int,
        code: str,
        description: str = "",
        staff: Mapping[str, str] | None = None,
    ) -> dict[str, Any]:
        body: dict[str, Any] = {"code": code, "description": description}
        if staff:
            body["staff"] = dict(staff)
        answer: dict[str, Any] = await self._ok(
            "POST", f"/api/v1/inbox/{inbox_id}/status", json_body=body
        )
        return answer

    async def post_statuses(self, statuses: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
        """Several statuses in one request, in order, all or none: each ``{"id": inbox id,
        "code": ..., "description": ..., "staff": {...}}``; what each was queued as."""
        answer = await self._ok(
            "POST", "/api/v1/inbox/statuses", json_body={"statuses": list(statuses)}
        )
        queued: list[dict[str, Any]] = answer["statuses"]
        return queued


# Refusals after which the same request may succeed later; any other 4xx is final. Every
# 5xx may pass (a proxy's 520-524 and 507 as much as a 503): a document is not failed for
# good for a server's trouble, only retried until the outbox gives up on it.
RETRYABLE_4XX = frozenset({408, 425, 429})


def retryable(status: int) -> bool:
    """Whether a request refused with ``status`` may be tried again later."""
    return status >= 500 or status in RETRYABLE_4XX


class HubBusy(errors.HubUnavailable):
    """The hub answered that it may take it later, and when: not before ``retry_after``
    seconds (its Retry-After, on a 429)."""

    def __init__(self, message: str, retry_after: int) -> None:
        super().__init__(message)
        self.retry_after = retry_after


def _retry_after(headers: Mapping[str, str]) -> int | None:
    """A Retry-After header's seconds; None when absent or not a number of seconds (an
    HTTP date is not what the hub sends)."""
    value = headers.get("Retry-After", "")
    return int(value) if value.isascii() and value.isdigit() else None


class HubAdminClient(_Client):
    """An administrator's view of the hub (``edoc stats --hub``): to the CLI a service
    like a node, its refusals under the hub's own codes and no connection
    :class:`~edoc.errors.Unreachable` (EDOC-NET-001). HubClient's errors are a node's
    (EDOC-NODE-001: its outbox retries), which a command that tries once is not."""

    kind = "a hub"
    _stats_shape = staticmethod(wire.hub_stats_from_json)


class HubClient(_Client):
    """A provincial node at the hub: packages in, deliveries out. A refusal for good is a
    :class:`~edoc.errors.RemoteError`; an answer worth retrying is
    :class:`~edoc.errors.HubUnavailable`; no connection at all is
    :class:`~edoc.errors.HubUnreachable`."""

    unreachable = errors.HubUnreachable
    kind = "a hub"
    _stats_shape = staticmethod(wire.hub_stats_from_json)
    _batches_from = 0.0  # time.monotonic() from which the hub is sent batches again
    # the other batches the hub said it was handling as it answered the last one, this
    # node's own among them (None: none answered yet, the last request failed, or a hub
    # that does not say, or says it wrong)
    batches_under_way: int | None = None

    _holder = ""

    @property
    def holder(self) -> str:
        """This client's name as a collector (wire.COLLECTOR): the hub hands it a status
        whose chain's earlier one it leased to it. Named anew after a collect whose answer
        did not come whole, which may have leased what this process never saw."""
        if not self._holder:
            self._holder = secrets.token_hex(8)
        return self._holder

    def without_batches(self, seconds: float) -> None:
        """Send this hub no batch for ``seconds``: it lacks the batch door (an older hub),
        and a batch posted meanwhile would only be refused before each package goes alone."""
        self._batches_from = time.monotonic() + seconds

    @property
    def takes_batches(self) -> bool:
        """Whether to send this hub batches (``POST /api/v1/packages/batch``) now."""
        return time.monotonic() >= self._batches_from

    @staticmethod
    def _refusal(status: int, body: object, retry_after: int | None = None) -> errors.EdocError:
        """A refusal's error: HubUnavailable if worth retrying (HubBusy when the hub said
        when), else RemoteError for good."""
        refusal = error_of(status, body)
        if retryable(status):
            said = f"hub answered {status} {refusal.code}: {refusal.message}"
            return (
                errors.HubUnavailable(said) if retry_after is None else HubBusy(said, retry_after)
            )
        return refusal

    def _checked(self, answer: Answer) -> Any:
        if answer.status >= 400:
            raise self._refusal(answer.status, answer.body, _retry_after(answer.headers))
        return answer.body

    @staticmethod
    def _shaped(read: Callable[[object], T], body: object) -> T:
        """A hub answer of the wrong shape is a hub not working, to be tried again."""
        try:
            return read(body)
        except errors.BadAnswer as exc:
            raise errors.HubUnavailable(f"the hub's answer is malformed: {exc.message}") from None

    async def post_package(self, package: bytes | IO[bytes]) -> wire.PackageAccepted:
        body = await self._ok(
            "POST", "/api/v1/packages", data=package, headers={"Content-Type": "application/xml"}
        )
        return self._shaped(wire.PackageAccepted.from_json, body)

    async def post_packages(
        self, packages: Sequence[bytes]
    ) -> list[wire.PackageAccepted | errors.EdocError]:
        """Up to wire.BATCH_PACKAGES small packages in one request: for each, in order,
        the hub's acceptance, or its refusal as post_package would raise it (RemoteError
        for good, HubUnavailable for later). A whole request that fails raises."""
        try:
            body = await self._ok(
                "POST",
                "/api/v1/packages/batch",
                data=framing.frame(packages),
                headers={"Content-Type": framing.MEDIA_TYPE},
            )
        except Exception:  # a hub down or busy has no room to speak of (after a restart
            self.batches_under_way = None  # 63 nodes must not all come back wide)
            raise
        results = self._shaped(functools.partial(wire.results_from_json, count=len(packages)), body)
        try:
            self.batches_under_way = wire.batches_under_way_from_json(body)
        except errors.BadAnswer:  # only the outbox's window hangs on it: the results stand
            self.batches_under_way = None
        return [self._outcome(result) for result in results]

    def _outcome(self, result: wire.PackageResult) -> wire.PackageAccepted | errors.EdocError:
        if result.accepted is not None:
            return result.accepted
        # not accepted: an error status (wire.PackageResult reads 202 or 4xx/5xx only)
        refusal = {"error": {"code": result.code, "message": result.message}}
        return self._refusal(result.status, refusal, result.retry_after)

    async def collect(self, wait: float = 0, limit: int = 20) -> list[wire.DeliveryNotice]:
        """What waits for the node, inline packages as bytes: asked for as a frame body
        (no base64), a JSON answer read too."""
        params = {"wait": str(wait), "limit": str(limit)}
        headers = {"Accept": f"{framing.MEDIA_TYPE}, application/json", wire.COLLECTOR: self.holder}
        try:
            body = await self._ok("GET", "/api/v1/deliveries", params=params, headers=headers)
            if isinstance(body, bytes):
                return self._shaped(wire.deliveries_from_frames, body)
            return self._shaped(wire.deliveries_from_json, body)
        except BaseException:
            self._holder = ""  # (see holder)
            raise

    @contextlib.asynccontextmanager
    async def _get(
        self, path: str, headers: Mapping[str, str] | None = None
    ) -> AsyncIterator[aiohttp.ClientResponse]:
        """A GET's response, its body not yet read; a refusal raised under its code."""
        assert self._session is not None, "streaming needs the kept-alive session"
        with self._reaching():
            async with self._session.get(
                f"{self.base_url}{path}", headers=self._headers(headers), ssl=self._tls()
            ) as response:
                if response.status >= 400:
                    raw = await response.read()
                    self._checked(Answer(response.status, _parsed(raw), dict(response.headers)))
                yield response

    async def _stream(self, path: str) -> AsyncIterator[bytes]:
        """The body of a GET in chunks (never whole in memory)."""
        async with self._get(path) as response:
            async for chunk in response.content.iter_chunked(256 * 1024):
                yield chunk

    async def download(self, delivery_id: int, target: Path) -> Path:
        """A delivery's package, streamed to ``target``."""
        with target.open("wb") as out:
            async for chunk in self._stream(f"/api/v1/deliveries/{delivery_id}/package"):
                out.write(chunk)
        return target

    async def acknowledge(self, delivery_ids: list[int]) -> wire.Acknowledged:
        body = await self._ok("POST", "/api/v1/deliveries/ack", json_body={"ids": delivery_ids})
        return self._shaped(wire.Acknowledged.from_json, body)

    async def register(self, organizations: list[dict[str, str]]) -> wire.Registered:
        body = await self._ok(
            "POST", "/api/v1/directory", json_body={"organizations": organizations}
        )
        return self._shaped(wire.Registered.from_json, body)

    async def directory(self, max_bytes: int, held: str = "") -> wire.Book | None:
        """The signed address book (XML) and its ETag, refused past ``max_bytes``; None
        while the hub's is still the one ``held`` names (its ETag). Verify it with
        ``hub.directory.read_signed``."""
        asked = {"If-None-Match": held} if held else None
        async with self._get("/api/v1/directory", asked) as response:
            if response.status == 304:
                return None
            body = bytearray()
            async for chunk in response.content.iter_chunked(256 * 1024):
                body += chunk
                if len(body) > max_bytes:
                    raise errors.HubUnavailable(f"the hub's address book is over {max_bytes} bytes")
            return wire.Book(bytes(body), response.headers.get("ETag", ""))
