"""The agency inbox as a long poll (``GET /api/v1/inbox?…&wait=S``), on a network of real
processes over mutual TLS: held while nothing new is there, answered as soon as a
document is stored for the agency, empty at the end of its wait, and at once when the
node stops."""

from __future__ import annotations

import asyncio
import datetime as dt
import secrets
import signal
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from edoc import errors
from edoc.node import app as node_app
from edoc.node.state import NodeConfig
from edoc.web import TOKEN_TTL
from tests.support.network import Agency, LocalNetwork, eventually, metadata

SENDER, LOCAL = "000.00.12.H53", "000.00.07.H53"
KON_TUM = "000.00.00.H34"


@pytest.fixture(scope="module")
def net(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalNetwork]:
    network = LocalNetwork(tmp_path_factory.mktemp("net"), ["H53", "H34"]).start()
    yield network
    network.stop()


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat()


async def _timed(read: Any) -> tuple[list[dict[str, Any]], float]:
    started = time.monotonic()
    documents = await read
    return documents, time.monotonic() - started


async def _held_until(
    recipient: Agency, since: str, wait: float
) -> asyncio.Task[tuple[list[dict[str, Any]], float]]:
    """A held read of ``recipient``'s inbox, under way (given a moment to reach the node)."""
    task = asyncio.ensure_future(_timed(recipient.inbox(since=since, wait=wait)))
    await asyncio.sleep(0.5)
    assert not task.done(), "held, with nothing new"
    return task


# to another province (through the hub and the recipient node's collector) and to an
# agency of the same province (the sender's node hands it to itself)
@pytest.mark.parametrize("to", [KON_TUM, LOCAL])
async def test_a_held_read_answers_as_soon_as_a_document_is_stored(
    net: LocalNetwork, to: str
) -> None:
    recipient = net.agency(to)
    held = await _held_until(recipient, _now(), wait=25)
    code, answer, _ = await net.agency(SENDER).send(metadata(SENDER, [to]))
    assert code == 202, answer
    documents, took = await held
    assert [d["document_id"] for d in documents] == [answer["document_id"]]
    assert took < 10  # the document's trip, not the 25 s wait


def _replace_token(net: LocalNetwork, org_id: str, token: str) -> None:
    """`edoc agency add --replace`, as an operator gives the agency a new token at its
    running node."""
    assert net.net is not None
    node = net.data_dir / "nodes" / org_id.rsplit(".", 1)[1]
    config = NodeConfig(org_id.rsplit(".", 1)[1], node, net.net.keys_dir, "", "")
    add = node_app.add_agency(config, org_id, None, token, replace=True)
    with ThreadPoolExecutor(1) as thread:  # (inside a running loop)
        thread.submit(asyncio.run, add).result()


async def test_a_held_read_whose_token_was_replaced_meanwhile_is_refused(
    net: LocalNetwork,
) -> None:
    """The token was good when the read began: what comes for the agency while it is held
    goes to no one presenting the token it no longer has."""
    org = "000.00.07.H34"
    before = _now()
    held = await _held_until(net.agency(org), before, wait=25)
    token = secrets.token_urlsafe(32)
    _replace_token(net, org, token)
    await asyncio.sleep(TOKEN_TTL + 0.5)  # the node's memory of the old token ends
    assert (await net.agency(SENDER).send(metadata(SENDER, [org])))[0] == 202
    with pytest.raises(errors.RemoteError) as refused:
        await held
    assert refused.value.code == "EDOC-AUTH-001"
    renewed = Agency(net.agency(org).base_url, token, org)
    assert len(await eventually(lambda: renewed.inbox(since=before))) == 1


async def test_with_nothing_arriving_a_read_answers_empty_at_the_end_of_its_wait(
    net: LocalNetwork,
) -> None:
    documents, took = await _timed(net.agency(KON_TUM).inbox(since=_now(), wait=1.5))
    assert documents == []
    assert 1.4 < took < 5


async def test_since_still_filters_and_what_was_received_at_since_is_no_news(
    net: LocalNetwork,
) -> None:
    recipient = net.agency(KON_TUM)
    before = _now()
    _, answer, _ = await net.agency(SENDER).send(metadata(SENDER, [KON_TUM]))
    (item,) = await eventually(lambda: recipient.inbox(since=before))
    assert item["document_id"] == answer["document_id"]

    # received after `since`: answered at once
    documents, took = await _timed(recipient.inbox(since=before, wait=20))
    assert [d["id"] for d in documents] == [item["id"]] and took < 2
    # received at `since` itself: listed, as without a wait, but no news: held to the end
    documents, took = await _timed(recipient.inbox(since=item["received_at"], wait=1.5))
    assert [d["id"] for d in documents] == [item["id"]] and took > 1.4
    # received before `since`: not listed, not news
    after = dt.datetime.fromisoformat(item["received_at"]) + dt.timedelta(milliseconds=1)
    documents, took = await _timed(recipient.inbox(since=after.isoformat(), wait=1.5))
    assert documents == [] and took > 1.4
    # without a wait (or wait=0): the answer at once, as always
    for wait in (None, "0"):
        params = {"since": before} | ({"wait": wait} if wait else {})
        status, body, _ = await recipient.request("GET", "/api/v1/inbox", params=params)
        assert status == 200 and [d["id"] for d in body["documents"]] == [item["id"]]


async def test_a_status_does_not_end_a_held_read(net: LocalNetwork) -> None:
    """The inbox lists documents: a status stored for the agency is no news to it."""
    sender, recipient = net.agency(SENDER), net.agency(KON_TUM)
    _, answer, _ = await sender.send(metadata(SENDER, [KON_TUM]))
    (item,) = await eventually(lambda: _received(recipient, answer["document_id"]))
    await eventually(lambda: _state(sender, answer["id"], "01"))  # the 01 is stored, before
    held = await _held_until(sender, _now(), wait=8)
    status, body, _ = await recipient.request(
        "POST", f"/api/v1/inbox/{item['id']}/status", json_body={"code": "03"}
    )
    assert status == 202, body
    await eventually(lambda: _state(sender, answer["id"], "03"))  # stored at the sender's node
    assert not held.done()
    documents, took = await held
    assert documents == [] and took > 7.9


async def _received(recipient: Agency, document_id: str) -> list[dict[str, Any]]:
    return [d for d in await recipient.inbox() if d["document_id"] == document_id]


async def _state(sender: Agency, outgoing_id: int, want: str) -> bool:
    document = await sender.document(outgoing_id)
    return all(r["state"] == want for r in document["recipients"])


@pytest.mark.parametrize("wait", ["soon", "-1", "nan", "inf", ""])
async def test_a_wait_that_is_not_seconds_is_refused(net: LocalNetwork, wait: str) -> None:
    status, body, _ = await net.agency(KON_TUM).request(
        "GET", "/api/v1/inbox", params={"wait": wait}
    )
    assert (status, body["error"]["code"]) == (400, "EDOC-ENV-002"), body
    assert "wait" in body["error"]["message"]


async def test_a_stopping_node_answers_its_held_reads_at_once(net: LocalNetwork) -> None:
    """Last here: the node of Kon Tum stops. Its held reads are answered (not cut off) as it
    stops, not at the server's grace's end, and it exits cleanly."""
    recipient = net.agency(KON_TUM)
    since = _now()
    reads = [await _held_until(recipient, since, wait=25) for _ in range(3)]
    process = net.processes["node H34"]
    started = time.monotonic()
    process.send_signal(signal.SIGTERM)
    assert await asyncio.to_thread(process.wait, 20) == 0
    stopped_in = time.monotonic() - started
    for documents, took in await asyncio.gather(*reads):
        assert documents == []
        assert took < 15
    assert stopped_in < 4  # the held reads end at once, not at the grace's end (5 s)
    log = (net.data_dir / "logs" / "node-H34.log").read_text()
    assert "Traceback" not in log, log
