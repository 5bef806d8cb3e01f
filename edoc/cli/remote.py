"""The CLI's HTTP calls to a hub or node (until the typed client replaces them)."""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any

import aiohttp

from edoc import errors, tls
from edoc.cli.options import existing_keys


async def answer(response: aiohttp.ClientResponse) -> Any:
    """The JSON body of a service's answer; its error, under its own code, if it refused."""
    try:
        data = await response.json(content_type=None)
    except ValueError:
        raise errors.RemoteError("EDOC-HTTP-" + str(response.status), "not JSON", 502) from None
    if response.status >= 400:
        error = data.get("error", {}) if isinstance(data, dict) else {}
        raise errors.RemoteError(
            error.get("code", f"EDOC-HTTP-{response.status}"),
            error.get("message", response.reason or ""),
            response.status,
        )
    return data


async def fetch_json(url: str, keys_dir: Path) -> Any:
    """GET ``url``; over HTTPS the service's certificate is checked against the CA in
    ``keys_dir``."""
    context = tls.admin_context(existing_keys(keys_dir)) if url.startswith("https") else True
    try:
        async with aiohttp.ClientSession() as session, session.get(url, ssl=context) as response:
            return await answer(response)
    except aiohttp.ClientError as exc:
        raise errors.InputError(f"cannot reach {url}: {exc}") from None


async def post_document(
    node_url: str, token: str, metadata_file: Path, files: tuple[Path, ...], key: str | None
) -> Any:
    headers = {"Authorization": f"Bearer {token}"}
    if key:
        headers["Idempotency-Key"] = key
    url = f"{node_url.rstrip('/')}/api/v1/documents"
    with contextlib.ExitStack() as handles:
        form = aiohttp.FormData()
        form.add_field("metadata", metadata_file.read_bytes(), content_type="application/json")
        for path in files:
            form.add_field("file", handles.enter_context(path.open("rb")), filename=path.name)
        try:
            async with (
                aiohttp.ClientSession() as session,
                session.post(url, data=form, headers=headers) as response,
            ):
                return await answer(response)
        except aiohttp.ClientError as exc:
            raise errors.InputError(f"cannot reach {node_url}: {exc}") from None
