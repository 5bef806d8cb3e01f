"""A batch (POST /api/v1/packages/batch) against an in-process hub: a package its intake
fails on unexpectedly gets the internal error the single door answers (500 EDOC-000,
logged with its traceback), the others are judged as usual, and nothing is still being
judged once the answer is out; a package refused for a full queue gets the single
door's Retry-After in its result; the batch bound (wire.BATCH_BYTES) is the door's own,
whatever the bound of a package read in memory."""

from __future__ import annotations

import asyncio
import contextlib
import io
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestServer

from edoc import envelope, framing, wire
from edoc.client import HubClient
from edoc.hub import app as hub_app
from edoc.hub import intake
from edoc.hub.state import HubConfig
from tests.support.hub import HUB_ORG, document, hub_ca
from tests.support.pki import Ca

H41 = "000.00.00.H41"
BATCH = "/api/v1/packages/batch"


@pytest.fixture(scope="module")
def ca(tmp_path_factory: pytest.TempPathFactory) -> Ca:
    return hub_ca(tmp_path_factory.mktemp("hubca") / "keys")


QUEUE_BOUND = 3


@contextlib.asynccontextmanager
async def _running(ca: Ca, folder: Path) -> AsyncIterator[HubClient]:
    """An in-process hub, H53's client of it."""
    config = HubConfig(
        data_dir=folder,
        keys_dir=ca.keys.path,
        org_id=HUB_ORG,
        tls=False,
        queue_bound=QUEUE_BOUND,
    )
    await hub_app.add_node(config, "H53", "token-H53")
    server = TestServer(hub_app.create_app(config))
    await server.start_server()
    try:
        async with HubClient(str(server.make_url("")).rstrip("/"), "token-H53") as client:
            yield client
    finally:
        await server.close()


@pytest.fixture
async def hub(ca: Ca, tmp_path: Path) -> AsyncIterator[HubClient]:
    async with _running(ca, tmp_path) as client:
        yield client


class _Log:
    """intake's logger, recording what it logs with a traceback."""

    def __init__(self, real: Any) -> None:
        self.real = real
        self.failed: list[BaseException] = []

    def exception(self, event: str, exc_info: BaseException, **_: object) -> None:
        self.failed.append(exc_info)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.real, name)


def _judging() -> list[asyncio.Task[Any]]:
    return [
        task
        for task in asyncio.all_tasks()
        if getattr(task.get_coro(), "__qualname__", "") == intake._judge.__qualname__
    ]


async def _batch(hub: HubClient, packages: list[bytes]) -> list[tuple[int, str]]:
    answer = await hub.request(
        "POST", BATCH, data=framing.frame(packages), headers={"Content-Type": framing.MEDIA_TYPE}
    )
    assert answer.status == 200, answer.body
    assert _judging() == []  # none goes on admitting after the answer
    return [
        (r["status"], "" if r["status"] == 202 else r["error"]["code"])
        for r in answer.body["results"]
    ]


@pytest.mark.parametrize("phase", ["_examine", "_admit"])
async def test_an_unexpected_failure_is_that_packages_internal_error_alone(
    ca: Ca, hub: HubClient, monkeypatch: pytest.MonkeyPatch, phase: str
) -> None:
    packages = [document(ca, to=[H41]) for _ in range(3)]
    bad = packages[1]
    real = getattr(intake, phase)
    bug = RuntimeError("a bug")

    def failing_examine(state: Any, body: bytes, *rest: Any) -> intake.Examined:
        if body == bad:
            raise bug
        return real(state, body, *rest)  # type: ignore[no-any-return]

    async def failing_admit(state: Any, node: str, examined: intake.Examined) -> Any:
        if examined.verified.message.about == _document_id(bad):
            raise bug
        return await real(state, node, examined)

    log = _Log(intake.log)
    monkeypatch.setattr(intake, "log", log)
    monkeypatch.setattr(intake, phase, failing_admit if phase == "_admit" else failing_examine)
    got = await _batch(hub, packages)
    assert got == [(202, ""), (500, "EDOC-000"), (202, "")]
    assert log.failed == [bug]
    # the single door answers the same package the same
    single = await hub.request(
        "POST", "/api/v1/packages", data=bad, headers={"Content-Type": "application/xml"}
    )
    assert (single.status, single.body["error"]["code"]) == (500, "EDOC-000")
    monkeypatch.undo()
    assert await _batch(hub, packages) == [(202, "")] * 3  # judged afresh: nothing kept of it


def _document_id(package: bytes) -> str:
    return envelope.read_package(package).document.document_id


async def test_a_refusal_the_store_cannot_count_is_that_packages_answer_alone(
    ca: Ca, hub: HubClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    refused = document(ca, to=[H41], seal=ca.keys.identity("000.00.00.H23"))  # 403
    good = document(ca, to=[H41])
    bug = RuntimeError("counting failed")

    async def failing_count(*_: object) -> None:
        raise bug

    log = _Log(intake.log)
    monkeypatch.setattr(intake, "log", log)
    monkeypatch.setattr(intake, "_count_refusal", failing_count)
    assert await _batch(hub, [good, refused]) == [(202, ""), (500, "EDOC-000")]
    assert log.failed == [bug]


async def test_a_full_queues_result_carries_the_single_doors_retry_after(
    ca: Ca, hub: HubClient
) -> None:
    for _ in range(QUEUE_BOUND):
        await hub.post_package(document(ca, to=[H41]))
    package = document(ca, to=[H41])
    single = await hub.request(
        "POST", "/api/v1/packages", data=package, headers={"Content-Type": "application/xml"}
    )
    assert single.status == 429
    answer = await hub.request(
        "POST",
        BATCH,
        data=framing.frame([package]),
        headers={"Content-Type": framing.MEDIA_TYPE},
    )
    (result,) = answer.body["results"]
    assert (result["status"], result["error"]["code"]) == (429, single.body["error"]["code"])
    assert result["retry_after"] == int(single.headers["Retry-After"])


async def _chunks(body: bytes) -> AsyncIterator[bytes]:
    """A body sent chunked: no Content-Length for the door to check first."""
    for start in range(0, len(body), 16 * 1024):
        yield body[start : start + 16 * 1024]


@pytest.mark.parametrize("chunked", [False, True], ids=["length", "chunked"])
async def test_the_batch_bound_is_the_batch_doors_own(
    ca: Ca, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, chunked: bool
) -> None:
    """Above the in-memory bound (aiohttp's client_max_size refused such a batch as too
    large) and below it (a chunked batch was read up to that bound and judged)."""
    large = [document(ca, to=[H41], files={"scan.pdf": bytes(700 * 1024)}) for _ in range(2)]
    small = [document(ca, to=[H41], files={"note.txt": bytes(40 * 1024)}) for _ in range(2)]
    for bound, packages, status in [
        (hub_app.SMALL_BODY * 2, large, 200),
        (64 * 1024, small, 413),
    ]:
        monkeypatch.setattr(wire, "BATCH_BYTES", bound)
        async with _running(ca, tmp_path / str(bound)) as hub:
            body = framing.frame(packages)
            answer = await hub.request(
                "POST",
                BATCH,
                data=_chunks(body) if chunked else io.BytesIO(body),
                headers={"Content-Type": framing.MEDIA_TYPE},
            )
        assert answer.status == status, (bound, answer.body)
        if status == 200:
            assert [r["status"] for r in answer.body["results"]] == [202, 202]
        else:
            assert answer.body["error"]["code"] == "EDOC-IN-001"
