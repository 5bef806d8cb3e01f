"""The node's side of the hub protocol: one kept-alive HTTPS session with the node's
client certificate and token."""

from __future__ import annotations

import base64
import binascii
import contextlib
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp

from edoc import errors, tls
from edoc.keystore import KeyStore
from edoc.node.state import NodeConfig, NodeState

RETRYABLE = {408, 425, 429, 500, 502, 503, 504}


def open_session(config: NodeConfig, keys: KeyStore) -> aiohttp.ClientSession:
    context = tls.client_context(keys, config.org_id) if config.hub_tls else None
    return aiohttp.ClientSession(
        base_url=config.hub_url,
        headers={"Authorization": f"Bearer {config.hub_token}"},
        connector=aiohttp.TCPConnector(ssl=context or True, limit=32),
        timeout=aiohttp.ClientTimeout(total=None, sock_connect=10, sock_read=120),
    )


class HubUnreachable(errors.HubUnavailable):
    """No connection to the hub at all (refused, reset, timed out), as opposed to a hub
    that answered 5xx or 429."""


@contextlib.contextmanager
def _reaching_hub() -> Iterator[None]:
    """No connection at all (refused, reset, timed out) is HubUnreachable, whatever the call."""
    try:
        yield
    except aiohttp.ClientError as exc:
        raise HubUnreachable(f"hub unreachable: {exc}") from None


class HubRefused(Exception):
    """The hub refused a message for good (4xx): its code and message."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message


async def _json(response: aiohttp.ClientResponse) -> Any:
    try:
        return await response.json(content_type=None)
    except ValueError:
        return {}


async def _check(response: aiohttp.ClientResponse) -> Any:
    body = await _json(response)
    if response.status < 400:
        return body
    error = body.get("error", {}) if isinstance(body, dict) else {}
    code, message = error.get("code", f"HTTP-{response.status}"), error.get("message", "")
    if response.status in RETRYABLE:
        raise errors.HubUnavailable(f"hub answered {response.status} {code}: {message}")
    raise HubRefused(code, message)


SMALL_PACKAGE = 1024 * 1024  # read whole in one offload call; larger ones are streamed


def _small_package(path: Path) -> bytes | None:
    with path.open("rb") as file:
        return file.read() if os.fstat(file.fileno()).st_size <= SMALL_PACKAGE else None


async def post_package(state: NodeState, package: bytes | Path) -> dict[str, Any]:
    """Send a package (its bytes, or its file); the hub's answer, or HubRefused /
    HubUnavailable.

    A small file is read in one offload call: aiohttp streams a file with a call to its
    own thread pool for each chunk and one to close it."""
    if isinstance(package, Path):
        small = await state.offload.run(_small_package, package)
        package = small if small is not None else package
    with _reaching_hub(), contextlib.ExitStack() as files:
        body = package if isinstance(package, bytes) else files.enter_context(package.open("rb"))
        async with state.hub.post(
            "/api/v1/packages", data=body, headers={"Content-Type": "application/xml"}
        ) as response:
            answer: dict[str, Any] = await _check(response)
            return answer


async def collect(state: NodeState, wait: float, limit: int = 20) -> list[dict[str, Any]]:
    with _reaching_hub():
        async with state.hub.get(
            "/api/v1/deliveries", params={"wait": str(wait), "limit": str(limit)}
        ) as response:
            body = await _check(response)
            deliveries: list[dict[str, Any]] = body["deliveries"]
            return deliveries


def _decoded(package: str) -> bytes:
    try:
        return base64.b64decode(package, validate=True)
    except binascii.Error:
        raise errors.HubUnavailable("the hub sent a package that is not base64") from None


async def fetch(state: NodeState, delivery: dict[str, Any], target: Path) -> bytes | Path:
    """A collected delivery's package: the bytes inside the collect answer, or else
    downloaded to ``target``."""
    inline = delivery.get("package")
    if isinstance(inline, str):
        return _decoded(inline)
    with _reaching_hub():
        async with state.hub.get(f"/api/v1/deliveries/{delivery['id']}/package") as response:
            if response.status >= 400:
                await _check(response)
            with target.open("wb") as out:
                async for chunk in response.content.iter_chunked(256 * 1024):
                    out.write(chunk)
    return target


async def acknowledge(state: NodeState, delivery_ids: list[int]) -> None:
    with _reaching_hub():
        async with state.hub.post("/api/v1/deliveries/ack", json={"ids": delivery_ids}) as response:
            await _check(response)


async def register(state: NodeState, organizations: list[dict[str, str]]) -> None:
    with _reaching_hub():
        async with state.hub.post(
            "/api/v1/directory", json={"organizations": organizations}
        ) as response:
            await _check(response)


MAX_DIRECTORY_BYTES = 64 * 1024 * 1024  # what directory.read_signed will parse


async def directory(state: NodeState) -> bytes:
    """The hub's signed address book, as the hub sent it (verified by the caller)."""
    with _reaching_hub():
        async with state.hub.get("/api/v1/directory") as response:
            if response.status >= 400:
                await _check(response)
            body = bytearray()
            async for chunk in response.content.iter_chunked(256 * 1024):
                body += chunk
                if len(body) > MAX_DIRECTORY_BYTES:
                    raise errors.HubUnavailable("the hub's address book is too large")
            return bytes(body)
