"""Provincial nodes, hub and agencies as real processes over real HTTP (mutual TLS); what
the agency API's door accepts and refuses, with one node in-process before a fake hub
(tests/support/node.py)."""

from __future__ import annotations

import asyncio
import datetime as dt
import os
import sqlite3
import subprocess
import uuid
from collections.abc import AsyncIterator, Iterator
from functools import partial
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestServer
from click.testing import CliRunner
from structlog.testing import capture_logs

from edoc import errors, network
from edoc.cli import main
from edoc.hub.state import HUB_ORG_ID
from edoc.keystore import KeyStore
from edoc.node import addressbook, openapi
from edoc.node import app as node_app
from edoc.store import sqlite_url
from tests.support import node as node_support
from tests.support.network import Agency, LocalNetwork, eventually, metadata
from tests.support.node import Door, Node

SENDER, LOCAL = "000.00.12.H53", "000.00.07.H53"
KON_TUM, PHU_THO = "000.00.00.H34", "000.00.00.H44"


@pytest.fixture(scope="module")
def net(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalNetwork]:
    network = LocalNetwork(tmp_path_factory.mktemp("net"), ["H53", "H34", "H44"]).start()
    yield network
    network.stop()


async def _arrived(agency: Agency, document_id: str) -> list[dict[str, Any]]:
    return [d for d in await agency.inbox() if d["document_id"] == document_id]


async def _states(sender: Agency, outgoing_id: int, want: str) -> dict[str, str] | None:
    states = {r["org_id"]: r["state"] for r in (await sender.document(outgoing_id))["recipients"]}
    return states if set(states.values()) == {want} else None


def _kept_in_store(net: LocalNetwork, recipient: str, document_id: str) -> bool:
    """Whether the node keeps the received package in its store (no file of its own)."""
    database = net.data_dir / "nodes" / recipient[-3:] / "node.sqlite"
    connection = sqlite3.connect(f"file:{database}?mode=ro", uri=True)
    try:
        ((path, kept),) = connection.execute(
            "SELECT path, body IS NOT NULL FROM inbox WHERE recipient=? AND document_id=?"
            " AND kind='document'",
            (recipient, document_id),
        ).fetchall()
    finally:
        connection.close()
    assert bool(path) != bool(kept), "a package is kept in one place"
    return bool(kept)


def _sent_package(net: LocalNetwork, sender: str, document_id: str) -> bytes:
    """The package the sending node stored for the document (in its row or its file)."""
    database = net.data_dir / "nodes" / sender[-3:] / "node.sqlite"
    connection = sqlite3.connect(f"file:{database}?mode=ro", uri=True)
    try:
        ((path, body),) = connection.execute(
            "SELECT path, body FROM outgoing WHERE sender=? AND document_id=? AND kind='document'",
            (sender, document_id),
        ).fetchall()
    finally:
        connection.close()
    return bytes(body) if body is not None else Path(path).read_bytes()


def _inserted(relayed: bytes, sent: bytes) -> bytes:
    """What ``relayed`` adds to ``sent``, which it must be with one piece inserted."""
    pairs = enumerate(zip(relayed, sent, strict=False))
    head = next((at for at, (mine, theirs) in pairs if mine != theirs), len(sent))
    tail = len(sent) - head
    assert relayed.endswith(sent[head:]) and len(relayed) > len(sent), "not sent + one piece"
    return relayed[head : len(relayed) - tail]


# A small document is packed in memory and kept in each store it passes through; a larger
# one (more than compose.IN_STORE attached, more than the hub puts inside a collect answer)
# travels as files.
@pytest.mark.parametrize(("blocks", "in_store"), [(64, True), (4800, False)])
async def test_document_to_two_provinces_and_a_local_agency(
    net: LocalNetwork, blocks: int, in_store: bool
) -> None:
    sender = net.agency(SENDER)
    files = {"Kế hoạch 2027.pdf": b"%PDF-1.4\n" + bytes(range(256)) * blocks, "phu-luc.txt": b"x"}
    code, answer, _ = await sender.send(metadata(SENDER, [KON_TUM, PHU_THO, LOCAL]), files)
    assert code == 202, answer
    assert answer["status"] == "queued"

    for org in (KON_TUM, PHU_THO, LOCAL):
        recipient = net.agency(org)
        (item,) = await eventually(partial(_arrived, recipient, answer["document_id"]))
        assert {a["name"]: a["size"] for a in item["attachments"]} == {
            name: len(content) for name, content in files.items()
        }
        status, content, headers = await recipient.request(
            "GET", f"/api/v1/inbox/{item['id']}/attachments/0"
        )
        assert status == 200 and content == files["Kế hoạch 2027.pdf"]
        assert "K%E1%BA%BF%20ho%E1%BA%A1ch%202027.pdf" in headers["Content-Disposition"]
        status, package, _ = await recipient.request("GET", f"/api/v1/inbox/{item['id']}/package")
        assert status == 200 and package.startswith(b"<?xml") and b"Signature" in package
        # the outbox reads the bytes it carries only as it carries them: the package stored,
        # byte for byte, as the local agency gets it, and in the hub's relay with its hop
        sent = _sent_package(net, SENDER, answer["document_id"])
        if org == LOCAL:
            assert package == sent
        else:
            assert b"</edXML:TraceHeader>" in _inserted(package, sent)
        assert item["summary"]["signers"][0]["org_id"] == SENDER
        assert _kept_in_store(net, org, answer["document_id"]) == in_store

    # every recipient answered 01 (arrived) by itself
    states = await eventually(lambda: _states(sender, answer["id"], "01"))
    assert states is not None and set(states) == {KON_TUM, PHU_THO, LOCAL}


async def test_statuses_flow_back_to_06_and_the_rules_hold(net: LocalNetwork) -> None:
    sender, recipient = net.agency(SENDER), net.agency(KON_TUM)
    _, answer, _ = await sender.send(metadata(SENDER, [KON_TUM]))
    (item,) = await eventually(lambda: _arrived(recipient, answer["document_id"]))
    path = f"/api/v1/inbox/{item['id']}/status"
    unwritable = {"code": "03", "description": "Đã nhận\x01"}  # XML cannot carry \x01
    status, body, _ = await recipient.request("POST", path, json_body=unwritable)
    assert (status, body["error"]["code"]) == (400, "EDOC-ENV-002"), body
    for code in ("03", "04", "05", "06"):
        status, body, _ = await recipient.request("POST", path, json_body={"code": code})
        assert status == 202, body
    await eventually(lambda: _states(sender, answer["id"], "06"))

    status, body, _ = await recipient.request("POST", path, json_body={"code": "04"})
    assert (status, body["error"]["code"]) == (409, "EDOC-HUB-006")
    other = net.agency(PHU_THO)
    status, body, _ = await other.request("POST", path, json_body={"code": "03"})
    assert status in (403, 404) and body["error"]["code"] in ("EDOC-AUTH-002", "EDOC-HTTP-404")


@pytest.mark.parametrize(
    ("staff", "code", "names"),
    [
        ({"name": "Trần Thị Bình", "position": "Chuyên viên"}, "EDOC-ENV-003", "staff.position"),
        ({"department": "Văn phòng", "name": "x" * 501}, "EDOC-ENV-002", "staff.name"),
        ({"mobile": 912345678}, "EDOC-ENV-002", "staff.mobile"),
    ],
)
async def test_a_status_refuses_staff_it_would_not_send_whole(
    net: LocalNetwork, staff: dict[str, Any], code: str, names: str
) -> None:
    """As the document metadata does: an unknown field, or a value cut or made text,
    would sign a status that says other than the agency posted."""
    ((_, item),) = await _received(net, 1)
    recipient = net.agency(KON_TUM)
    path = f"/api/v1/inbox/{item['id']}/status"
    status, body, _ = await recipient.request(
        "POST", path, json_body={"code": "03", "staff": staff}
    )
    assert (status, body["error"]["code"]) == (400, code), body
    assert body["error"]["message"].startswith(names), body
    assert (await recipient.inbox_item(item["id"]))["answers"] == ["01"]  # nothing queued
    whole = {"department": "Văn phòng", "name": "x" * 500, "email": "", "mobile": "0912345678"}
    status, body, _ = await recipient.request(
        "POST", path, json_body={"code": "03", "staff": whole}
    )
    assert status == 202, body


BATCH = "/api/v1/inbox/statuses"


async def _received(net: LocalNetwork, count: int) -> list[tuple[int, dict[str, Any]]]:
    """``count`` documents from SENDER that have arrived at KON_TUM: (the sender's
    outgoing id, the recipient's inbox item) each."""
    sender, recipient = net.agency(SENDER), net.agency(KON_TUM)
    found = []
    for _ in range(count):
        _, answer, _ = await sender.send(metadata(SENDER, [KON_TUM]))
        (item,) = await eventually(partial(_arrived, recipient, answer["document_id"]))
        found.append((answer["id"], item))
    return found


async def test_statuses_together_in_one_request_all_or_none(net: LocalNetwork) -> None:
    sender, recipient = net.agency(SENDER), net.agency(KON_TUM)
    (first_id, first), (second_id, second) = await _received(net, 2)
    # the third may not follow the first (03 again): refused whole, none of them queued
    again = [(first, "03"), (second, "03"), (first, "03")]
    status, body, _ = await recipient.request(
        "POST", BATCH, json_body={"statuses": [{"id": i["id"], "code": c} for i, c in again]}
    )
    assert (status, body["error"]["code"]) == (409, "EDOC-HUB-006"), body
    assert body["error"]["message"].startswith("statuses[2]: 03 cannot follow")
    for item in (first, second):
        assert (await recipient.inbox_item(item["id"]))["answers"] == ["01"]

    queued = await recipient.post_statuses(
        [
            {"id": first["id"], "code": "03"},
            {"id": second["id"], "code": "02", "description": "Không thuộc thẩm quyền"},
            {"id": first["id"], "code": "04", "staff": {"name": "Trần Thị Bình"}},
        ]
    )
    assert [(q["inbox_id"], q["code"]) for q in queued] == [
        (first["id"], "03"),
        (second["id"], "02"),
        (first["id"], "04"),
    ]
    assert len({q["id"] for q in queued}) == 3
    assert await eventually(lambda: _states(sender, first_id, "04"))
    assert await eventually(lambda: _states(sender, second_id, "02"))
    assert (await recipient.inbox_item(first["id"]))["answers"] == ["01", "03", "04"]


@pytest.mark.parametrize(
    ("statuses", "status", "code", "names"),
    [
        ([], 400, "EDOC-ENV-002", ""),
        ("03", 400, "EDOC-ENV-002", ""),
        ([{"id": 0, "code": "05"}] * 101, 400, "EDOC-ENV-002", ""),
        ([{"code": "05"}], 400, "EDOC-ENV-002", "statuses[0]"),
        ([{"id": True, "code": "05"}], 400, "EDOC-ENV-002", "statuses[0]"),
        ([{"id": "7", "code": "05"}], 400, "EDOC-ENV-002", "statuses[0]"),
        (
            [{"id": "{first}", "code": "05"}, {"id": "{first}", "code": "01"}],
            400,
            "EDOC-ENV-002",
            "statuses[1]",
        ),
        ([{"id": "{first}", "code": "05", "description": 5}], 400, "EDOC-ENV-002", "statuses[0]"),
        (
            [
                {"id": "{first}", "code": "03"},
                {"id": "{first}", "code": "04", "description": "x\x01"},
            ],
            400,
            "EDOC-ENV-002",
            "statuses[1]",
        ),
        (
            [{"id": "{first}", "code": "05", "staff": {"name": "An", "phone": "0900"}}],
            400,
            "EDOC-ENV-003",
            "statuses[0]: staff.phone",
        ),
        (
            [{"id": "{first}", "code": "05", "staff": {"email": "a" * 501}}],
            400,
            "EDOC-ENV-002",
            "statuses[0]: staff.email",
        ),
        (
            [{"id": "{first}", "code": "06"}, {"id": "{first}", "code": "03"}],
            409,
            "EDOC-HUB-006",
            "statuses[1]",
        ),
        (
            [{"id": "{first}", "code": "05"}, {"id": 2**62, "code": "05"}],
            404,
            "EDOC-HTTP-404",
            "statuses[1]",
        ),
    ],
)
async def test_the_batch_door_refuses_what_it_cannot_take(
    net: LocalNetwork, statuses: Any, status: int, code: str, names: str
) -> None:
    recipient = net.agency(KON_TUM)
    ((_, item),) = await _received(net, 1)
    if isinstance(statuses, list):
        statuses = [
            {**entry, "id": item["id"]} if entry.get("id") == "{first}" else entry
            for entry in statuses
        ]
    answer, body, _ = await recipient.request("POST", BATCH, json_body={"statuses": statuses})
    assert (answer, body["error"]["code"]) == (status, code), body
    assert body["error"]["message"].startswith(names)
    assert (await recipient.inbox_item(item["id"]))["answers"] == ["01"]  # nothing queued


async def test_the_batch_door_answers_only_the_agency_a_document_was_sent_to(
    net: LocalNetwork,
) -> None:
    ((_, item),) = await _received(net, 1)
    other = net.agency(PHU_THO)
    status, body, _ = await other.request(
        "POST", BATCH, json_body={"statuses": [{"id": item["id"], "code": "03"}]}
    )
    assert status in (403, 404) and body["error"]["message"].startswith("statuses[0]"), body
    nobody = Agency(other.base_url, "not-a-token", PHU_THO)
    status, body, _ = await nobody.request(
        "POST", BATCH, json_body={"statuses": [{"id": item["id"], "code": "03"}]}
    )
    assert (status, body["error"]["code"]) == (401, "EDOC-AUTH-001"), body
    assert (await net.agency(KON_TUM).inbox_item(item["id"]))["answers"] == ["01"]


async def test_counts_agree_on_both_sides(net: LocalNetwork) -> None:
    sender = net.agency(SENDER)
    _, answer, _ = await sender.send(metadata(SENDER, [PHU_THO]))
    await eventually(lambda: _arrived(net.agency(PHU_THO), answer["document_id"]))
    _, h53, _ = await sender.request("GET", "/api/v1/stats")
    _, h34, _ = await net.agency(KON_TUM).request("GET", "/api/v1/stats")
    _, h44, _ = await net.agency(PHU_THO).request("GET", "/api/v1/stats")
    sent_to = h53["by_partner_province"]
    assert (
        sent_to["000.00.00.H34"]["sent"] == h34["by_partner_province"]["000.00.00.H53"]["received"]
    )
    assert (
        sent_to["000.00.00.H44"]["sent"] == h44["by_partner_province"]["000.00.00.H53"]["received"]
    )
    hub = net.hub_stats()
    assert (
        hub["by_province"]["000.00.00.H53"]["sent"]
        == (h53["sent"] - sent_to.get("000.00.00.H53", {}).get("sent", 0))
        or hub["by_province"]["000.00.00.H53"]["sent"] >= 3
    )


async def test_idempotent_retry_sends_once(net: LocalNetwork) -> None:
    sender, recipient = net.agency(SENDER), net.agency(KON_TUM)
    data = metadata(SENDER, [KON_TUM])
    first = await sender.send(data, idempotency_key="retry-1")
    again = await sender.send(data, idempotency_key="retry-1")
    assert first[0] == again[0] == 202
    assert first[1]["id"] == again[1]["id"] and again[2].get("X-Edoc-Retry") == "true"
    other = await sender.send({**data, "subject": "Một văn bản khác"}, idempotency_key="retry-1")
    assert (other[0], other[1]["error"]["code"]) == (409, "EDOC-NODE-002")
    await eventually(lambda: _arrived(recipient, first[1]["document_id"]))
    await eventually(lambda: _states(sender, first[1]["id"], "01"))
    assert len(await _arrived(recipient, first[1]["document_id"])) == 1


async def test_nothing_lost_when_the_hub_is_down_and_the_node_is_killed(
    net: LocalNetwork,
) -> None:
    sender, recipient = net.agency(SENDER), net.agency(PHU_THO)
    net.kill("hub")
    answers = []
    large = {"ban-do.bin": os.urandom(600 * 1024)}  # its package in a file of its own
    for priority, files in ((0, {}), (3, large), (0, {}), (3, {})):
        code, answer, _ = await sender.send(metadata(SENDER, [PHU_THO], priority=priority), files)
        assert code == 202, answer  # the node keeps accepting while the hub is down
        answers.append(answer)
    net.kill("node H53")  # kill -9 with everything still in its outbox
    # what a node killed at another moment leaves: a package no row names yet, and a
    # download under way; the restart puts aside the one and deletes the other, and
    # keeps the large one's package
    node_dir = net.data_dir / "nodes" / "H53"
    kept = set((node_dir / "outgoing").iterdir())
    assert len(kept) >= 1  # the large one's, at least
    unnamed = node_dir / "outgoing" / f"{uuid.uuid4().hex}.edxml"
    unnamed.write_bytes(b"<edXML/>")
    (node_dir / "incoming" / f"{uuid.uuid4().hex}.edxml").write_bytes(b"<edXML/>")
    net.restart("node H53")
    assert list((node_dir / "incoming").iterdir()) == []
    assert set((node_dir / "outgoing").iterdir()) == kept
    assert (node_dir / "leftovers" / "outgoing" / unnamed.name).exists()  # put aside
    net.restart("hub")
    for answer in answers:
        items = await eventually(partial(_arrived, recipient, answer["document_id"]))
        assert len(items) == 1
    for answer in answers:
        await eventually(partial(_states, sender, answer["id"], "01"))


async def test_an_unknown_recipient_in_another_province_is_refused_at_once(
    net: LocalNetwork,
) -> None:
    """As one in the sender's own province is: the node holds the hub's address book."""
    sender = net.agency(SENDER)
    for unknown in ("000.00.99.H34", "000.00.99.H53"):
        status, answer, _ = await sender.send(metadata(SENDER, [KON_TUM, unknown]))
        assert (status, answer["error"]["code"]) == (422, "EDOC-HUB-001"), answer
        assert unknown in answer["error"]["message"]


async def _revoked(agency: Agency, document_id: str) -> bool:
    return any(
        d["business_type"] == 1 and d["summary"]["business"]["document_id"] == document_id
        for d in await agency.inbox()
    )


async def test_revoke_reaches_every_recipient_of_the_original(net: LocalNetwork) -> None:
    sender = net.agency(SENDER)
    _, original, _ = await sender.send(metadata(SENDER, [KON_TUM, LOCAL]))
    business = {"type": 1, "reason": "Ban hành nhầm", "document_id": original["document_id"]}
    code, revoke, _ = await sender.send(metadata(SENDER, [KON_TUM], business=business))
    assert code == 202, revoke
    assert sorted(revoke["recipients"]) == sorted([KON_TUM, LOCAL])
    for org in (KON_TUM, LOCAL):
        await eventually(partial(_revoked, net.agency(org), original["document_id"]))


async def _changed(agency: Agency, document_id: str) -> bool:
    return any(
        d["business_type"] == 2 and d["summary"]["business"]["document_id"] == document_id
        for d in await agency.inbox()
    )


async def _history(sender: Agency, outgoing_id: int) -> tuple[str, list[str]] | None:
    """The recipient's state and its history's statuses, once it shows a 15 or 16."""
    (recipient,) = (await sender.document(outgoing_id))["recipients"]
    history = [entry["state"] for entry in recipient["history"]]
    return (recipient["state"], history) if {"15", "16"} & set(history) else None


async def test_15_and_16_answer_a_change_received_and_only_one_of_them(
    net: LocalNetwork,
) -> None:
    """15 (agrees) and 16 (refuses) answer a revoke, update or replacement the agency
    received, about the document it changes; one of the two, and the sender goes on
    seeing where the processing stands."""
    sender, recipient = net.agency(SENDER), net.agency(KON_TUM)
    ((outgoing_id, item),) = await _received(net, 1)
    door = f"/api/v1/inbox/{item['id']}/status"
    for code in ("03", "04"):
        assert (await recipient.request("POST", door, json_body={"code": code}))[0] == 202
    both = {"statuses": [{"id": item["id"], "code": "15"}, {"id": item["id"], "code": "16"}]}
    for path, body in ((door, {"code": "16"}), (BATCH, both)):
        status, answer, _ = await recipient.request("POST", path, json_body=body)
        assert (status, answer["error"]["code"]) == (409, "EDOC-HUB-006"), answer
    status, answer, _ = await recipient.request("POST", door, json_body={"code": "15"})
    assert "received none of" in answer["error"]["message"]

    business = {"type": 2, "reason": "Sửa thời hạn", "document_id": item["document_id"]}
    assert (await sender.send(metadata(SENDER, [KON_TUM], business=business)))[0] == 202
    await eventually(partial(_changed, recipient, item["document_id"]))
    status, answer, _ = await recipient.request("POST", BATCH, json_body=both)
    assert (status, answer["error"]["code"]) == (409, "EDOC-HUB-006"), answer
    assert answer["error"]["message"].startswith("statuses[1]: 16 cannot follow")
    assert (await recipient.request("POST", door, json_body={"code": "16"}))[0] == 202
    status, answer, _ = await recipient.request("POST", door, json_body={"code": "15"})
    assert (status, answer["error"]["code"]) == (409, "EDOC-HUB-006"), answer
    assert (await recipient.inbox_item(item["id"]))["answers"] == ["01", "03", "04", "16"]
    shown = await eventually(partial(_history, sender, outgoing_id))
    assert shown is not None
    state, history = shown
    assert state == "04" and history[-3:] == ["03", "04", "16"], history  # 16 in it alone


async def test_a_change_with_a_document_id_of_its_own_is_answered_to_its_sender(
    net: LocalNetwork,
) -> None:
    """An update carrying a DocumentId of its own (its Bussiness names the original):
    the recipient node's 01 about it, and the agency's 03 and 15 on its inbox item, reach
    the sender as they do for any document; the original's answers stay the original's."""
    sender, recipient = net.agency(SENDER), net.agency(KON_TUM)
    _, original, _ = await sender.send(metadata(SENDER, [KON_TUM]))
    await eventually(partial(_states, sender, original["id"], "01"))
    business = {"type": 2, "reason": "Sửa thời hạn", "document_id": original["document_id"]}
    code, update, _ = await sender.send(metadata(SENDER, [KON_TUM], business=business))
    assert code == 202 and update["document_id"] != original["document_id"], update
    await eventually(partial(_states, sender, update["id"], "01"))
    (item,) = await eventually(partial(_arrived, recipient, update["document_id"]))
    door = f"/api/v1/inbox/{item['id']}/status"
    status, answer, _ = await recipient.request("POST", door, json_body={"code": "03"})
    assert status == 202, answer
    await eventually(partial(_states, sender, update["id"], "03"))
    assert await _states(sender, original["id"], "01")  # the 03 answered the update alone
    # a change of its own DocumentId is answered on its own item: 15 agrees to it
    status, answer, _ = await recipient.request("POST", door, json_body={"code": "15"})
    assert status == 202, answer
    shown = await eventually(partial(_history, sender, update["id"]))
    assert shown is not None and shown[0] == "03" and shown[1][-3:] == ["01", "03", "15"], shown


async def test_openapi_and_stats_cli(net: LocalNetwork) -> None:
    status, spec, _ = await net.agency(SENDER).request("GET", "/api/v1/openapi.json")
    assert status == 200 and spec["openapi"].startswith("3.")
    assert "/api/v1/inbox/{id}/attachments/{n}" in spec["paths"]
    code, _, _ = await net.agency(SENDER).send(metadata(SENDER, [KON_TUM]))  # (run alone too)
    assert code == 202
    url = net.spec["nodes"][0]["url"]
    table = subprocess.run(
        [*network.edoc_command(), "stats", "--node", url],
        capture_output=True,
        text=True,
        check=True,
    )
    assert SENDER in table.stdout and "000.00.00.H34" in table.stdout


async def test_key_rotation_under_way_fails_no_exchange(net: LocalNetwork) -> None:
    sender, recipient = net.agency(SENDER), net.agency(KON_TUM)
    assert net.net is not None
    keys = KeyStore(net.net.keys_dir)
    before = keys.identity(SENDER).record.serial
    sent = [(await sender.send(metadata(SENDER, [KON_TUM])))[1] for _ in range(3)]
    subprocess.run(
        [*network.edoc_command(), "keys", "rotate", SENDER, "--keys-dir", str(net.net.keys_dir)],
        check=True,
        capture_output=True,
    )
    after = keys.identity(SENDER).record.serial
    sent += [(await sender.send(metadata(SENDER, [KON_TUM])))[1] for _ in range(3)]
    serials = []
    for answer in sent:
        (item,) = await eventually(partial(_arrived, recipient, answer["document_id"]))
        serials.append(item["summary"]["signers"][0]["serial"])
        await eventually(partial(_states, sender, answer["id"], "01"))
    assert after != before and serials[-1] == after  # the running node signs with the new key
    assert set(serials) <= {before, after}


# --- the door, in-process ---------------------------------------------------------------------
REGISTERED, NEWCOMER = "000.00.05.H34", "000.00.06.H44"  # agencies of other provinces
DOCUMENTS = "/api/v1/documents"


@pytest.fixture
async def door(tmp_path: Any) -> AsyncIterator[Door]:
    async with node_support.door(tmp_path) as opened:
        yield opened


async def _registered(node: Node) -> None:
    async with asyncio.timeout(10):
        while not (await node.request("GET", "/healthz"))[1]["registered"]:
            await asyncio.sleep(0.02)


async def test_a_node_registers_the_agencies_of_its_store(door: Door) -> None:
    """Those of its province: one of another (added before `agency add` refused it) would
    have the hub refuse the whole registration, at each start."""
    await node_app.add_agency(door.config, "000.00.20.H34", "Kon Tum's", "another-token")
    async with door.node(with_book=False) as node:
        await _registered(node)
    (registration,) = door.hub.registrations
    assert [o["org_id"] for o in registration["organizations"]] == [SENDER]


async def test_a_name_the_hub_refuses_is_registered_empty(door: Door) -> None:
    """A name XML cannot carry, stored before `agency add` refused it: the hub refuses a
    registration naming it, so none of the node's agencies would be registered, at each
    start. The agency is registered without its name, and the log says why."""
    await node_app.add_agency(door.config, LOCAL, "Evil\u0001name", "another-token")
    with capture_logs() as logs:
        async with door.node(with_book=False) as node:
            await _registered(node)
    (registration,) = door.hub.registrations
    names = {o["org_id"]: o["name"] for o in registration["organizations"]}
    assert names == {SENDER: "Sở Thông tin và Truyền thông", LOCAL: ""}
    assert [line["agency"] for line in logs if line["log_level"] == "error"] == [LOCAL]


async def test_a_node_whose_store_serves_no_agency_leaves_the_book_as_it_is(
    tmp_path: Path,
) -> None:
    """A registration replaces the node's agencies in the book: one of none, from a node
    started on a new store (a mistaken --store), would take every agency of its province
    out of the book, and other provinces' nodes would refuse documents to them."""
    with capture_logs() as logs:
        async with (
            node_support.door(tmp_path, serving=False) as empty,
            empty.node(with_book=False) as node,
        ):
            await node.until(lambda: any("no agency" in line["event"] for line in logs))
            assert (await node.request("GET", "/healthz"))[1]["registered"] is False
    assert empty.hub.registrations == []


async def test_a_second_node_on_a_data_folder_in_use_is_refused_before_it_touches_it(
    door: Door,
) -> None:
    """A second start by mistake (on another port; on the same one the port taken
    refuses it first, tests/test_web_listen.py) tidied the running node's folder: its
    uploads under way, its package files, put aside as leftovers."""
    async with door.node(with_book=False):
        upload = door.config.data_dir / "incoming" / "an-upload-under-way"
        upload.mkdir()
        (upload / "part").write_bytes(b"%PDF")
        second = TestServer(node_app.create_app(door.config))
        with pytest.raises(errors.FolderInUse) as refused:
            await second.start_server()
        await second.close()
        assert str(door.config.data_dir) in refused.value.message
        assert (upload / "part").read_bytes() == b"%PDF"
    async with door.node(with_book=False):  # the first gone, the folder is free again
        pass


@pytest.mark.parametrize("mistake", ["--store", "--data-dir"])
def test_a_node_is_not_started_on_a_store_that_is_not_there(tmp_path: Path, mistake: str) -> None:
    """A mistyped path made an empty store (and its folders) and a node that served nobody;
    a node's store is made by `edoc agency add`."""
    KeyStore(tmp_path / "keys").init()
    typo = tmp_path / "nodes" / "H35"
    where = ["--data-dir", str(typo)]
    if mistake == "--store":
        where = [
            "--data-dir",
            str(tmp_path / "nodes" / "H53"),
            "--store",
            sqlite_url(typo / "node.sqlite"),
        ]
    result = CliRunner().invoke(
        main,
        ["serve", "node", "--province", "H53", *where, "--hub", "https://127.0.0.1:9"],
        env={"EDOC_HUB_TOKEN": "t", "EDOC_DATA_DIR": str(tmp_path)},
        catch_exceptions=False,
    )
    assert result.exit_code == 1, result.output
    (line,) = result.stderr.splitlines()
    assert line.startswith(f"error EDOC-STORE-002: no node store at {typo / 'node.sqlite'}")
    assert "edoc agency add" in line
    assert not typo.exists()


def test_an_agency_of_another_province_is_not_added_to_a_node(tmp_path: Path) -> None:
    """Kon Tum's agency at Tây Ninh's node: the hub refuses a registration naming it, so
    none of the node's agencies would be registered again, at each start."""
    KeyStore(tmp_path / "keys").init()
    node_dir = tmp_path / "nodes" / "H53"

    def add(org_id: str) -> Any:
        command = ["agency", "add", org_id, "--data-dir", str(node_dir)]
        keys = ["--keys-dir", str(tmp_path / "keys")]
        return CliRunner().invoke(main, [*command, *keys], catch_exceptions=False)

    assert add(SENDER).exit_code == 0
    refused = add("000.00.20.H34")
    assert refused.exit_code == 1, refused.output
    (line,) = refused.stderr.splitlines()
    assert line.startswith("error EDOC-ENV-002: 000.00.20.H34 is of province H34"), line
    assert [r.org_id for r in KeyStore(tmp_path / "keys").records()] == [SENDER]  # no seal
    assert add(LOCAL).exit_code == 0  # one of its own


def test_an_agency_name_xml_cannot_carry_is_not_added(tmp_path: Path) -> None:
    """The hub's address book is one signed XML document: a name with a control character
    failed it for every node (now refused there too, and the node's whole registration)."""
    KeyStore(tmp_path / "keys").init()
    command = ["agency", "add", LOCAL, "--name", "Evil\u0001name"]
    where = ["--data-dir", str(tmp_path / "node"), "--keys-dir", str(tmp_path / "keys")]
    refused = CliRunner().invoke(main, [*command, *where], catch_exceptions=False)
    assert refused.exit_code == 1, refused.output
    (line,) = refused.stderr.splitlines()
    assert line == f"error EDOC-ENV-002: {LOCAL}: name: U+0001 cannot be carried in XML", line
    assert list(KeyStore(tmp_path / "keys").records()) == []  # no seal issued
    assert not (tmp_path / "node" / "node.sqlite").exists()


async def test_a_reused_idempotency_key_with_other_content_is_refused(door: Door) -> None:
    """The same key and content is a retry (after a restart too); other content under the
    key is refused, not answered with the first document while the new one is lost."""
    door.hub.book = door.hub.signed_book()
    data = metadata(SENDER, [KON_TUM])
    files = [("a.txt", b"one"), ("b.txt", b"two")]
    other_content = {
        "another subject": ({**data, "subject": "Một văn bản khác"}, files),
        "another recipient": ({**data, "to": [PHU_THO]}, files),
        "other bytes in a file": (data, [("a.txt", b"ONE"), files[1]]),
        "another file name": (data, [("c.txt", b"one"), files[1]]),
        "the files in another order": (data, files[::-1]),
        "a file fewer": (data, files[:1]),
    }
    async with door.node() as node:
        first = await node.send(data, files, idempotency_key="k-1")
        assert first[0] == 202, first[1]
        reordered = dict(reversed(list(data.items())))  # the same metadata, other JSON text
        again = await node.send(reordered, files, idempotency_key="k-1")
        assert (again[0], again[1]["id"], again[2].get("X-Edoc-Retry")) == (
            202,
            first[1]["id"],
            "true",
        )
        for label, (changed, changed_files) in other_content.items():
            status, body, headers = await node.send(changed, changed_files, idempotency_key="k-1")
            assert (status, body["error"]["code"]) == (409, "EDOC-NODE-002"), label
            assert "other content" in body["error"]["message"]
            assert "X-Edoc-Retry" not in headers
        status, document, _ = await node.request("GET", f"{DOCUMENTS}/{first[1]['id']}")
        assert status == 200 and "content_sha256" not in document["summary"]
    async with door.node() as node:  # the fingerprint is kept with the document
        again = await node.send(data, files, idempotency_key="k-1")
        assert (again[0], again[1]["id"]) == (202, first[1]["id"])
        status, body, _ = await node.send(
            *other_content["other bytes in a file"], idempotency_key="k-1"
        )
        assert (status, body["error"]["code"]) == (409, "EDOC-NODE-002")


LATECOMER = "000.00.98.H34"  # an agency registered while the hub was down


async def _refused_as_unknown(node: Node, *recipients: str) -> None:
    status, body, _ = await node.send(metadata(SENDER, [KON_TUM, *recipients]))
    assert (status, body["error"]["code"]) == (422, "EDOC-HUB-001"), body
    assert all(org in body["error"]["message"] for org in recipients)


async def test_the_address_book_decides_at_the_door(
    door: Door, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(addressbook, "RECHECK_AFTER", 0.2)
    door.hub.book = door.hub.signed_book(REGISTERED)
    async with door.node() as node:
        await _refused_as_unknown(node, "000.00.99.H34")
        await _refused_as_unknown(node, "000.00.99.H53")  # this node's own: the same answer
        status, answer, _ = await node.send(metadata(SENDER, [KON_TUM, REGISTERED]))
        assert status == 202, answer

        # an agency registered since: the post naming it waits for a copy fetched after it
        door.hub.book = door.hub.signed_book(REGISTERED, NEWCOMER, version=2)
        asked = door.hub.directory_requests
        status, answer, _ = await node.send(metadata(SENDER, [NEWCOMER]))
        assert status == 202, answer
        copy = node.book.current()
        assert copy is not None and copy.version == 2
        _, health, _ = await node.request("GET", "/healthz")
        assert health["address_book"] == {"version": 2, "expires": copy.expires.isoformat()}
        assert door.hub.directory_requests == asked + 1

        # posts naming unknown ids together share one fetch: no signing by the hub for each;
        # the hub answers that the book held is still its own (304), which confirms it
        monkeypatch.setattr(addressbook, "RECHECK_AFTER", 3.0)
        asked, unchanged = door.hub.directory_requests, door.hub.directory_unchanged
        await asyncio.gather(*(_refused_as_unknown(node, f"000.00.9{n}.H34") for n in range(5)))
        assert door.hub.directory_requests == asked + 1
        assert door.hub.directory_unchanged == unchanged + 1
        assert node.book.current() == copy

    monkeypatch.setattr(addressbook, "RECHECK_AFTER", 0.2)
    door.hub.book = None  # restarted while the hub cannot give the book: the kept copy
    async with door.node() as node:
        assert (await node.send(metadata(SENDER, [NEWCOMER])))[0] == 202  # known: at once
        # an id the kept copy does not know may have registered since, and no fresh copy
        # can say otherwise while the hub is down: accepted, for the hub to judge
        status, answer, _ = await node.send(metadata(SENDER, [LATECOMER]))
        assert status == 202, answer


async def _failed(node: Node, outgoing_id: int) -> str:
    _, document, _ = await node.request("GET", f"{DOCUMENTS}/{outgoing_id}")
    return str(document["transfers"][0]["last_error"]) if document["status"] == "failed" else ""


@pytest.mark.parametrize("book", ["none", "expired", "not the hub's"])
async def test_without_a_valid_address_book_the_hub_judges(door: Door, book: str) -> None:
    """The node accepts what it cannot judge; the hub's refusal shows on the document."""
    door.hub.book = {
        "none": None,
        "expired": door.hub.signed_book(issued=dt.datetime.now(dt.UTC) - dt.timedelta(days=2)),
        "not the hub's": door.hub.signed_book(seal=SENDER),
    }[book]
    refusal = {"code": "EDOC-HUB-001", "message": "not in the address book: 000.00.99.H34"}
    door.hub.package_answer = (422, {"error": refusal})
    async with door.node(with_book=False) as node:
        await node.until(lambda: door.hub.directory_requests > 0)
        status, answer, _ = await node.send(metadata(SENDER, ["000.00.99.H34"]))
        assert status == 202, answer
        assert node.book.current() is None
        assert (await node.request("GET", "/healthz"))[1]["address_book"] is None
        assert "EDOC-HUB-001" in await eventually(lambda: _failed(node, answer["id"]))


async def test_a_book_the_hub_confirms_is_judged_again_against_the_trust_held(
    door: Door, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The hub's 304 says only that the book held is still the hub's: when the CA has
    revoked the seal that signed it since the node verified it, the node no longer holds
    it (as it refuses such a book sent on a 200), and the hub judges remote recipients.
    Here the background fetches find it, the book not used meanwhile (a use judges it)."""
    monkeypatch.setattr(addressbook, "REFRESH_EVERY", 0.1)
    door.hub.book = door.hub.signed_book(REGISTERED)
    async with door.node() as node:
        await node.until(lambda: door.hub.directory_unchanged > 0)  # 304s: still the hub's
        with capture_logs() as logs:
            door.hub.keys.revoke(HUB_ORG_ID, "keyCompromise")
            await node.until(lambda: node.book.current() is None)
        # a background fetch judged it: the hub's 304 (counted before the revocation when
        # it was under way then), the book held found revoked, and nothing used it
        refused = [line for line in logs if line["event"] == "address book not fetched"]
        assert refused and "revoked" in refused[0]["reason"]
        assert (await node.request("GET", "/healthz"))[1]["address_book"] is None
        status, answer, _ = await node.send(metadata(SENDER, ["000.00.99.H34"]))
        assert status == 202, answer  # no book: the hub judges


async def test_a_book_is_judged_again_at_each_use(door: Door) -> None:
    """A revocation of the hub's seal between two fetches (REFRESH_EVERY apart) stops the
    book it signed being trusted at its next use, not at the next fetch."""
    door.hub.book = door.hub.signed_book(REGISTERED)
    async with door.node() as node:
        _, health, _ = await node.request("GET", "/healthz")
        assert health["address_book"] is not None
        asked = door.hub.directory_requests
        with capture_logs() as logs:
            door.hub.keys.revoke(HUB_ORG_ID, "keyCompromise")
            _, health, _ = await node.request("GET", "/healthz")
        assert health["address_book"] is None
        assert door.hub.directory_requests == asked  # no fetch: judged where it was used
        (dropped,) = [
            line for line in logs if line["event"] == "the address book held no longer verifies"
        ]
        assert "revoked" in dropped["reason"]


async def test_a_book_held_is_judged_again_when_the_hubs_new_one_is_refused(
    door: Door, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A fetch that brings no book the node takes (here one that does not verify) leaves
    the book held; the node judges it again all the same."""
    monkeypatch.setattr(addressbook, "RECHECK_AFTER", 0.2)
    door.hub.book = door.hub.signed_book(REGISTERED)
    async with door.node() as node:
        await _refused_as_unknown(node, "000.00.99.H34")
        door.hub.book = b"<not-a-book/>"
        status, answer, _ = await node.send(metadata(SENDER, ["000.00.99.H34"]))
        assert status == 202, answer  # (no fresh book: the hub judges)
        assert node.book.current() is not None  # still trusted: its seal is good
        door.hub.keys.revoke(HUB_ORG_ID, "keyCompromise")
        with capture_logs() as logs:
            status, answer, _ = await node.send(metadata(SENDER, ["000.00.99.H34"]))
        assert status == 202, answer
        assert node.book.current() is None
        dropped = [
            line for line in logs if line["event"] == "the address book held no longer verifies"
        ]
        assert len(dropped) == 1 and "revoked" in dropped[0]["reason"]


@pytest.mark.parametrize("hub_answers", ["the same book (304)", "a book refused"])
async def test_trust_anchors_that_cannot_be_read_leave_the_book_held(
    door: Door, monkeypatch: pytest.MonkeyPatch, hub_answers: str
) -> None:
    """The book held cannot be judged again when the node cannot read its own trust
    anchors: it stays held, the fetch fails, and fetching goes on."""
    monkeypatch.setattr(addressbook, "RECHECK_AFTER", 0.2)
    door.hub.book = door.hub.signed_book(REGISTERED)
    async with door.node() as node:
        await _refused_as_unknown(node, "000.00.99.H34")
        if hub_answers == "a book refused":
            door.hub.book = b"<not-a-book/>"

        def unreadable(self: KeyStore) -> None:
            raise PermissionError("crl.pem: permission denied")

        monkeypatch.setattr(KeyStore, "trust", unreadable)
        with capture_logs() as logs:
            status, answer, _ = await node.send(metadata(SENDER, ["000.00.99.H34"]))
            assert node.book._fetching is not None
            await asyncio.wait({node.book._fetching})
        assert status == 202, answer  # no fresh book: the hub judges
        assert node.book._fetching.exception() is None  # (a task that died stopped fetching)
        assert node.book.current() is not None
        events = [line["event"] for line in logs]
        assert "address book not fetched" in events


async def test_a_post_that_is_not_multipart_is_refused_plainly(door: Door) -> None:
    async with door.node(with_book=False) as node:
        # curl -X POST: no body, no Content-Type
        status, body, _ = await node.raw("POST", DOCUMENTS, skip_auto_headers=["Content-Type"])
        assert (status, body["error"]["code"]) == (400, "EDOC-IN-003")
        assert "the body is empty" in body["error"]["message"]
        assert "'Content-Type'" not in body["error"]["message"]  # no KeyError's text
        status, body, _ = await node.raw("POST", DOCUMENTS, json={"subject": "x"})
        assert (status, body["error"]["code"]) == (415, "EDOC-NODE-003")
        assert "multipart/form-data" in body["error"]["message"]
        assert "application/json" in body["error"]["message"]


async def test_an_empty_file_is_refused(door: Door) -> None:
    async with door.node(with_book=False) as node:
        files = [("ke-hoach.pdf", b"%PDF"), ("phu-luc.pdf", b"")]
        status, body, _ = await node.send(metadata(SENDER, [KON_TUM]), files)
        assert (status, body["error"]["code"]) == (422, "EDOC-NODE-004")
        assert "phu-luc.pdf" in body["error"]["message"]


def test_the_api_reference_names_each_refusal_of_a_post() -> None:
    post = openapi.SPEC["paths"][DOCUMENTS]["post"]
    described = {status: answer["description"] for status, answer in post["responses"].items()}
    for status, code in [
        ("409", "EDOC-NODE-002"),
        ("415", "EDOC-NODE-003"),
        ("422", "EDOC-NODE-004"),
        ("422", "EDOC-HUB-001"),
        ("400", "EDOC-IN-003"),
    ]:
        assert code in described[status], status
    assert "X-Edoc-Retry" in post["responses"]["202"]["headers"]
    assert "empty file" in post["description"]
