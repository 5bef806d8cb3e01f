"""Provincial nodes, hub and agencies as real processes over real HTTP (mutual TLS)."""

from __future__ import annotations

from collections.abc import Iterator
from functools import partial
from typing import Any

import pytest

from tests.network_support import Agency, LocalNetwork, eventually, metadata

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


async def test_document_to_two_provinces_and_a_local_agency(net: LocalNetwork) -> None:
    sender = net.agency(SENDER)
    files = {"Kế hoạch 2027.pdf": b"%PDF-1.4\n" + bytes(range(256)) * 64, "phu-luc.txt": b"x"}
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
        assert item["summary"]["signers"][0]["org_id"] == SENDER

    # every recipient answered 01 (arrived) by itself
    states = await eventually(lambda: _states(sender, answer["id"], "01"))
    assert states is not None and set(states) == {KON_TUM, PHU_THO, LOCAL}


async def test_statuses_flow_back_to_06_and_the_rules_hold(net: LocalNetwork) -> None:
    sender, recipient = net.agency(SENDER), net.agency(KON_TUM)
    _, answer, _ = await sender.send(metadata(SENDER, [KON_TUM]))
    (item,) = await eventually(lambda: _arrived(recipient, answer["document_id"]))
    path = f"/api/v1/inbox/{item['id']}/status"
    for code in ("03", "04", "05", "06"):
        status, body, _ = await recipient.request("POST", path, json_body={"code": code})
        assert status == 202, body
    await eventually(lambda: _states(sender, answer["id"], "06"))

    status, body, _ = await recipient.request("POST", path, json_body={"code": "04"})
    assert (status, body["error"]["code"]) == (409, "EDOC-HUB-006")
    other = net.agency(PHU_THO)
    status, body, _ = await other.request("POST", path, json_body={"code": "03"})
    assert status in (403, 404) and body["error"]["code"] in ("EDOC-AUTH-002", "EDOC-HTTP-404")


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


async def test_agencies_act_only_as_themselves(net: LocalNetwork) -> None:
    sender = net.agency(SENDER)
    status, body, _ = await sender.send(metadata(LOCAL, [KON_TUM]))  # as another agency
    assert (status, body["error"]["code"]) == (403, "EDOC-AUTH-002")
    status, body, _ = await sender.request("GET", f"/api/v1/inbox?org={LOCAL}")
    assert (status, body["error"]["code"]) == (403, "EDOC-AUTH-002")
    _, answer, _ = await sender.send(metadata(SENDER, [LOCAL]))
    status, body, _ = await net.agency(LOCAL).request("GET", f"/api/v1/documents/{answer['id']}")
    assert (status, body["error"]["code"]) == (403, "EDOC-AUTH-002")
    anonymous = Agency(sender.url, "", "")
    status, body, _ = await anonymous.request("GET", "/api/v1/inbox")
    assert (status, body["error"]["code"]) == (401, "EDOC-AUTH-001")
    forged = Agency(sender.url, "forged", "")
    assert (await forged.send(metadata(SENDER, [KON_TUM])))[0] == 401
    status, body, _ = await sender.send(metadata(SENDER, ["000.00.99.H53"]))
    assert (status, body["error"]["code"]) == (422, "EDOC-HUB-001")


async def test_idempotent_retry_sends_once(net: LocalNetwork) -> None:
    sender, recipient = net.agency(SENDER), net.agency(KON_TUM)
    data = metadata(SENDER, [KON_TUM])
    first = await sender.send(data, key="retry-1")
    again = await sender.send(data, key="retry-1")
    assert first[0] == again[0] == 202
    assert first[1]["id"] == again[1]["id"] and again[2].get("X-Edoc-Retry") == "true"
    await eventually(lambda: _arrived(recipient, first[1]["document_id"]))
    await eventually(lambda: _states(sender, first[1]["id"], "01"))
    assert len(await _arrived(recipient, first[1]["document_id"])) == 1


async def test_nothing_lost_when_the_hub_is_down_and_the_node_is_killed(
    net: LocalNetwork,
) -> None:
    sender, recipient = net.agency(SENDER), net.agency(PHU_THO)
    net.kill("hub")
    answers = []
    for priority in (0, 3, 0, 3):
        code, answer, _ = await sender.send(metadata(SENDER, [PHU_THO], priority=priority))
        assert code == 202, answer  # the node keeps accepting while the hub is down
        answers.append(answer)
    net.kill("node H53")  # kill -9 with everything still in its outbox
    net.restart("node H53")
    net.restart("hub")
    for answer in answers:
        items = await eventually(partial(_arrived, recipient, answer["document_id"]))
        assert len(items) == 1
    for answer in answers:
        await eventually(partial(_states, sender, answer["id"], "01"))
