"""The hub as a real process over real HTTP: delivery, rules, rejections, restart."""

from __future__ import annotations

import asyncio
import io
import os
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from edoc import envelope, errors, metadata, signing
from edoc.hub import directory, queues
from edoc.model import StatusCode
from tests.support.hub import HUB_ORG, HubProcess, NodeClient, document, hub_ca, status
from tests.support.pki import SENDER, Ca, sample_metadata, wire

H23, H41 = "000.00.00.H23", "000.00.00.H41"


@pytest.fixture(scope="module")
def ca(tmp_path_factory: pytest.TempPathFactory) -> Ca:
    return hub_ca(tmp_path_factory.mktemp("hubca") / "keys")


@pytest.fixture(scope="module")
def hub(ca: Ca, tmp_path_factory: pytest.TempPathFactory) -> Iterator[HubProcess]:
    process = HubProcess(tmp_path_factory.mktemp("hub"), ca.keys.path).start()
    yield process
    process.stop()


@pytest.fixture(scope="module")
def nodes(hub: HubProcess) -> dict[str, NodeClient]:
    return {root: NodeClient(hub, hub.add_node(root)) for root in ("H53", "H23", "H41")}


async def test_one_document_reaches_each_recipient_once(
    ca: Ca, hub: HubProcess, nodes: dict[str, NodeClient]
) -> None:
    files = {"to-trinh.pdf": b"%PDF-1.4 " + bytes(range(256)) * 100, "phu-luc.txt": b"x"}
    package = document(ca, to=[H23, "000.00.00.H53", H41], files=files)
    code, answer, _ = await nodes["H53"].post(package)
    assert code == 202, answer
    assert answer["recipients"] == [H23, H41]  # H53's own are its node's to deliver

    for root, org in (("H23", H23), ("H41", H41)):
        items = await nodes[root].collect(wait=2)
        assert [(i.recipient, i.hub_id) for i in items] == [(org, answer["id"])]
        relayed = await nodes[root].fetch(items[0].id)
        received = envelope.read_package(io.BytesIO(relayed))
        verified = signing.verify_package(received, ca.keys.trust(), ca.clock())
        assert verified.message.sender.org_id == SENDER  # the sender's signature survives
        assert [hop.org_id for hop in verified.relay_hops] == [HUB_ORG]  # the hub's hop
        assert {a.name: a.size for a in received.received} == {
            name: len(content) for name, content in files.items()
        }
        assert await nodes[root].ack(items[0].id) == [items[0].id]
        assert await nodes[root].collect() == []  # delivered once, not again


async def test_small_packages_come_inline_large_ones_are_fetched(
    ca: Ca, nodes: dict[str, NodeClient]
) -> None:
    await nodes["H41"].drain()
    small = document(ca, to=[H41])
    large = document(ca, to=[H41], files={"scan.pdf": os.urandom(800 * 1024)})  # > 1 MB in base64
    for package in (small, large):
        assert (await nodes["H53"].post(package))[0] == 202
    items = await nodes["H41"].collect(wait=2)
    assert [item.package is not None for item in items] == [True, False]
    for item, sent in zip(items, (small, large), strict=True):
        relayed = await nodes["H41"].fetch(item.id)
        if item.package is not None:
            assert item.package == relayed  # what a fetch gives
        about = envelope.read_package(io.BytesIO(relayed)).document.document_id
        assert about == envelope.read_package(io.BytesIO(sent)).document.document_id
    ids = [item.id for item in items]
    assert await nodes["H41"].ack(*ids) == ids  # one request for both
    assert await nodes["H41"].ack(*ids) == []  # an acknowledgement again changes nothing
    assert await nodes["H41"].collect() == []


async def test_resend_gets_the_original_answer_and_no_second_delivery(
    ca: Ca, nodes: dict[str, NodeClient]
) -> None:
    package = document(ca, to=[H23])
    first = await nodes["H53"].post(package)
    again = await nodes["H53"].post(package)
    assert first[0] == again[0] == 202
    assert first[1] == again[1]
    assert again[2].get("X-Edoc-Resend") == "true"
    assert len(await nodes["H23"].drain()) == 1

    number = envelope.read_package(io.BytesIO(package)).document.code.number
    changed = document(
        ca, to=[H23], subject="Nội dung khác", code={"number": number, "notation": "UBND-VP"}
    )
    code, body, _ = await nodes["H53"].post(changed)
    assert (code, body["error"]["code"]) == (409, "EDOC-HUB-003")


async def test_urgent_documents_are_collected_first(ca: Ca, nodes: dict[str, NodeClient]) -> None:
    await nodes["H41"].drain()
    normal = (await nodes["H53"].post(document(ca, to=[H41], priority=0)))[1]["id"]
    express = (await nodes["H53"].post(document(ca, to=[H41], priority=3)))[1]["id"]
    order = [item.hub_id for item in await nodes["H41"].drain()]
    assert order == [express, normal]


async def test_status_relay_and_its_rules(ca: Ca, nodes: dict[str, NodeClient]) -> None:
    package = document(ca, to=[H23])
    assert (await nodes["H53"].post(package))[0] == 202
    await nodes["H23"].drain()
    for code in (StatusCode.ARRIVED, StatusCode.ACCEPTED, StatusCode.COMPLETED):
        reply = await nodes["H23"].post(status(ca, H23, package, code))
        assert reply[0] == 202, reply[1]
    relayed = await nodes["H53"].drain()
    assert [(i.kind, i.status_code, i.recipient) for i in relayed] == [
        ("status", "01", SENDER),
        ("status", "03", SENDER),
        ("status", "06", SENDER),
    ]
    # refusals (backwards, replayed, from a stranger…): tests/attacks/test_hub_attacks.py


async def test_two_final_statuses_posted_at_once_are_not_both_relayed(
    ca: Ca, nodes: dict[str, NodeClient]
) -> None:
    """A 02 and a 06 posted together were both judged to follow the 01 (the store was
    read for each before either was kept), and both went out: nothing may follow a 02
    or a 06. The one kept second is judged again, and refused."""
    await nodes["H53"].drain()
    for _ in range(4):
        package = document(ca, to=[H23])
        assert (await nodes["H53"].post(package))[0] == 202
        assert (await nodes["H23"].post(status(ca, H23, package, StatusCode.ARRIVED)))[0] == 202
        finals = [status(ca, H23, package, c) for c in (StatusCode.REJECTED, StatusCode.COMPLETED)]
        replies = await asyncio.gather(*(nodes["H23"].post(final) for final in finals))
        codes = sorted((code, body.get("error", {}).get("code", "")) for code, body, _ in replies)
        assert codes == [(202, ""), (409, "EDOC-HUB-006")], replies
    relayed = await nodes["H53"].drain()
    assert len(relayed) == 4 * 2  # each document's 01 and one final status


async def test_a_status_sent_twice_at_once_is_kept_once_and_its_file_stays(
    ca: Ca, nodes: dict[str, NodeClient]
) -> None:
    """A node that gave up waiting sends the same status again while the first copy is
    being kept. Sent in chunks, each copy is written to the same file (named by its
    digest) before it is kept; the copy that loses is answered as a resend, and must not
    take the file of the one kept with it (SQLite may name the chain's index for it)."""

    async def chunked(data: bytes) -> AsyncIterator[bytes]:
        yield data[: len(data) // 2]
        yield data[len(data) // 2 :]

    await nodes["H53"].drain()
    package = document(ca, to=[H23])
    assert (await nodes["H53"].post(package))[0] == 202
    arrived = status(ca, H23, package, StatusCode.ARRIVED)
    replies = await asyncio.gather(
        *(nodes["H23"].request("POST", "/api/v1/packages", data=chunked(arrived)) for _ in "ab")
    )
    assert [code for code, _, _ in replies] == [202, 202], replies
    assert sorted(h.get("X-Edoc-Resend", "false") for _, _, h in replies) == ["false", "true"]
    (delivered,) = await nodes["H53"].drain()  # fetched: its file is there
    assert delivered.status_code == "01"


async def test_a_status_waits_for_the_earlier_one_leased_and_comes_once_it_is_acknowledged(
    ca: Ca, hub: HubProcess, nodes: dict[str, NodeClient]
) -> None:
    """The 03 leased and not acknowledged by the node's process before it restarted
    holds the 04 back from the restarted one (which would store the 04 first); the
    acknowledgement wakes the held collect at once, not at its next look at the store
    (queues.RECHECK, 5 s). The process that holds the 03 gets the 04 at once: it orders
    what it holds itself (edoc.node.collector)."""
    before_restart = nodes["H53"]
    restarted = NodeClient(hub, before_restart.token)
    await before_restart.drain()
    package = document(ca, to=[H23])
    assert (await nodes["H53"].post(package))[0] == 202
    await nodes["H23"].drain()
    for code in (StatusCode.ARRIVED, StatusCode.ACCEPTED):
        assert (await nodes["H23"].post(status(ca, H23, package, code)))[0] == 202
    first = await before_restart.collect(wait=2)
    assert [i.status_code for i in first] == ["01", "03"]
    await before_restart.ack(first[0].id)  # the 01 only
    assert (await nodes["H23"].post(status(ca, H23, package, StatusCode.ASSIGNED)))[0] == 202
    assert await restarted.collect() == []  # the 04 waits for the 03
    held = asyncio.create_task(restarted.collect(wait=20))
    await asyncio.sleep(0.5)
    started = time.monotonic()
    await restarted.ack(first[1].id)
    assert [i.status_code for i in await held] == ["04"]
    # the held collect's own look would come 4.5 s after the acknowledgement
    assert time.monotonic() - started < queues.RECHECK / 2
    await restarted.ack(*[i.id for i in held.result()])
    # the holder of the earlier status gets the next one at once
    for code in (StatusCode.PROCESSING, StatusCode.COMPLETED):
        assert (await nodes["H23"].post(status(ca, H23, package, code)))[0] == 202
        if code is StatusCode.PROCESSING:
            (processing,) = await restarted.collect(wait=2)
    assert [i.status_code for i in await restarted.collect(wait=2)] == ["06"]
    assert [i.status_code for i in await before_restart.collect()] == []
    await restarted.ack(processing.id)
    await restarted.drain()


def _revoke(ca: Ca, original: bytes, to: str) -> bytes:
    """A revoke of the document package ``original``, addressed to ``to``."""
    document_id = envelope.read_package(io.BytesIO(original)).document.document_id
    reason = {"type": 1, "reason": "Ban hành nhầm", "document_id": document_id}
    return document(ca, to=[to], business=reason)


async def test_revoke_reaches_every_recipient_of_the_original(
    ca: Ca, nodes: dict[str, NodeClient]
) -> None:
    await nodes["H23"].drain()
    await nodes["H41"].drain()
    original = document(ca, to=[H23, H41])
    assert (await nodes["H53"].post(original))[0] == 202
    code, answer, _ = await nodes["H53"].post(_revoke(ca, original, to=H23))
    assert code == 202, answer
    assert sorted(answer["recipients"]) == [H23, H41]
    for root in ("H23", "H41"):
        assert sorted(i.hub_id for i in await nodes[root].drain()) == sorted(
            [answer["id"], answer["id"] - 1]
        )


async def test_a_status_about_a_changes_own_document_id_answers_the_change(
    ca: Ca, nodes: dict[str, NodeClient]
) -> None:
    """A revoke may carry a DocumentId of its own (its Bussiness names the original): a
    status about that one answers the revoke, from its recipients only. One that reuses
    the original's DocumentId leaves a status about it answering the original, whose
    recipients alone may answer it."""
    for root in ("H23", "H41", "H53"):
        await nodes[root].drain()
    original = document(ca, to=[H41])
    assert (await nodes["H53"].post(original))[0] == 202
    revoke = _revoke(ca, original, to=H41)
    assert (await nodes["H53"].post(revoke))[0] == 202
    assert (await nodes["H41"].post(status(ca, H41, revoke, StatusCode.ARRIVED)))[0] == 202
    code, body, _ = await nodes["H23"].post(status(ca, H23, revoke, StatusCode.ARRIVED))
    assert (code, body["error"]["code"]) == (403, "EDOC-HUB-005"), body
    relayed = await nodes["H53"].drain()
    assert [(i.kind, i.status_code, i.recipient) for i in relayed] == [("status", "01", SENDER)]

    original = document(ca, to=[H41])
    assert (await nodes["H53"].post(original))[0] == 202
    reused = envelope.read_package(io.BytesIO(original)).document.document_id
    revoke = document(ca, to=[H23], business={"type": 1, "reason": "x"}, document_id=reused)
    assert (await nodes["H53"].post(revoke))[0] == 202
    code, body, _ = await nodes["H23"].post(status(ca, H23, revoke, StatusCode.ARRIVED))
    assert (code, body["error"]["code"]) == (403, "EDOC-HUB-005"), body  # not the original's
    assert (await nodes["H41"].post(status(ca, H41, original, StatusCode.ARRIVED)))[0] == 202
    for root in ("H23", "H41", "H53"):  # nothing left for the tests after this one
        await nodes[root].drain()


async def test_a_revoke_reaches_a_recipient_that_left_the_address_book(
    ca: Ca, nodes: dict[str, NodeClient]
) -> None:
    """A node's registration replaces its agencies: one it no longer serves leaves the
    book, but what it was sent can still be revoked (its delivery goes to its node)."""
    leaving = "000.00.31.H41"
    one = {"organizations": [{"org_id": leaving, "name": "Sở sáp nhập"}]}
    assert (await nodes["H41"].request("POST", "/api/v1/directory", json_body=one))[0] == 200
    await nodes["H41"].drain()
    original = document(ca, to=[leaving])
    assert (await nodes["H53"].post(original))[0] == 202
    none: dict[str, list[object]] = {"organizations": []}
    assert (await nodes["H41"].request("POST", "/api/v1/directory", json_body=none))[0] == 200
    assert (await nodes["H53"].post(document(ca, to=[leaving])))[0] == 422  # unknown now
    code, answer, _ = await nodes["H53"].post(_revoke(ca, original, to=H41))
    assert code == 202, answer
    assert sorted(answer["recipients"]) == [H41, leaving]
    delivered = await nodes["H41"].drain()
    assert sorted((i.hub_id, i.recipient) for i in delivered if i.hub_id == answer["id"]) == [
        (answer["id"], H41),
        (answer["id"], leaving),
    ]


async def test_a_resend_is_answered_as_at_first_after_its_recipient_left_the_book(
    ca: Ca, nodes: dict[str, NodeClient]
) -> None:
    """The hub kept a document but its answer was lost (the instance killed after its
    commit, or down for a while): the node sends it again, and gets the first answer,
    though the recipient's node no longer registers that agency. It is delivered: a
    refusal now would show its sender a document failed that its recipient gets."""
    leaving = "000.00.32.H41"
    one = {"organizations": [{"org_id": leaving, "name": "Sở sáp nhập"}]}
    assert (await nodes["H41"].request("POST", "/api/v1/directory", json_body=one))[0] == 200
    await nodes["H41"].drain()
    package = document(ca, to=[leaving])
    first = await nodes["H53"].post(package)
    assert first[0] == 202, first[1]
    none: dict[str, list[object]] = {"organizations": []}
    assert (await nodes["H41"].request("POST", "/api/v1/directory", json_body=none))[0] == 200
    again = await nodes["H53"].post(package)
    assert (again[0], again[1]) == (202, first[1])
    assert again[2].get("X-Edoc-Resend") == "true"
    assert [i.hub_id for i in await nodes["H41"].drain()] == [first[1]["id"]]


async def test_untrusted_expired_and_revoked_signers(
    ca: Ca, nodes: dict[str, NodeClient], tmp_path: Path
) -> None:
    foreign = Ca.create(tmp_path / "foreign")
    code, body, _ = await nodes["H53"].post(
        document(ca, to=[H41], seal=foreign.keys.identity(SENDER))
    )
    assert (code, body["error"]["code"]) == (422, "EDOC-SIG-003")

    expired_org = "000.00.21.H53"
    ca.clock.advance(days=-30)
    ca.keys.issue(expired_org, days=10)  # valid from 30 to 20 days ago
    expired = document(ca, to=[H41], sender=expired_org)
    ca.clock.advance(days=30)
    code, body, _ = await nodes["H53"].post(expired)
    assert (code, body["error"]["code"]) == (422, "EDOC-SIG-004")

    revoked_org = "000.00.22.H53"
    ca.keys.issue(revoked_org)
    seal = ca.keys.identity(revoked_org)
    ca.keys.revoke(revoked_org, "keyCompromise")
    code, body, _ = await nodes["H53"].post(document(ca, to=[H41], sender=revoked_org, seal=seal))
    assert (code, body["error"]["code"]) == (422, "EDOC-SIG-005")


async def test_a_recipient_named_twice_is_refused(ca: Ca, nodes: dict[str, NodeClient]) -> None:
    """The node's door refuses such metadata; a package made elsewhere is refused at the
    hub too, as a field of the envelope (before: the store's one delivery per recipient
    turned it into 409 EDOC-HUB-003, "a duplicate")."""
    single = metadata.to_document(metadata.check(sample_metadata(to=[H41])), ())
    twice = replace(single, recipients=single.recipients * 2)
    root = envelope.build_envelope(envelope.stamp_origin(twice, ca.clock()))
    code, body, _ = await nodes["H53"].post(wire(signing.sign(root, ca.keys.identity(SENDER))))
    assert (code, body["error"]["code"]) == (400, "EDOC-ENV-002"), body
    assert await nodes["H41"].collect() == []


async def test_signed_directory_and_registration(ca: Ca, nodes: dict[str, NodeClient]) -> None:
    code, raw, _ = await nodes["H53"].request("GET", "/api/v1/directory")
    assert code == 200
    book = directory.read_signed(raw, ca.keys.trust(), ca.clock(), HUB_ORG)
    version, entries = book.version, book.entries
    assert {"000.00.00.H53", "000.00.00.G12", "000.00.00.G22"} <= {e.org_id for e in entries}
    assert len([e for e in entries if e.kind == "province"]) == 63
    code, body, _ = await nodes["H53"].request(
        "POST",
        "/api/v1/directory",
        json_body={"organizations": [{"org_id": "000.00.07.H53", "name": "Sở Nội vụ"}]},
    )
    assert code == 200 and body["version"] > version
    # a registration is all the node serves: the one it no longer names leaves the book
    renamed = {"organizations": [{"org_id": "000.00.12.H53", "name": "Sở TT&TT"}]}
    code, body, _ = await nodes["H53"].request("POST", "/api/v1/directory", json_body=renamed)
    assert code == 200, body
    code, raw, _ = await nodes["H53"].request("GET", "/api/v1/directory")
    entries = directory.read_signed(raw, ca.keys.trust(), ca.clock(), HUB_ORG).entries
    of_h53 = {e.org_id for e in entries if e.node == "H53"}
    assert of_h53 == {"000.00.00.H53", "000.00.12.H53"}
    code, body, _ = await nodes["H53"].request(
        "POST", "/api/v1/directory", json_body={"organizations": [{"org_id": "000.00.07.H23"}]}
    )
    assert (code, body["error"]["code"]) == (403, "EDOC-HUB-002")
    tampered = raw.replace("Tây Ninh".encode(), "Tây Nguyên".encode())
    with pytest.raises(errors.TamperedSignature):
        directory.read_signed(tampered, ca.keys.trust(), ca.clock(), HUB_ORG)


async def _counts(node: NodeClient) -> tuple[int, int, int]:
    """H53's documents sent, H23's received, and refusals of a foreign signer, so far."""
    code, report, _ = await node.request("GET", "/api/v1/stats")
    assert code == 200
    provinces = report["by_province"]
    return (
        provinces.get("000.00.00.H53", {}).get("sent", 0),
        provinces.get("000.00.00.H23", {}).get("received", 0),
        report["rejected_by_code"].get("EDOC-SIG-003", 0),
    )


async def test_stats_count_both_sides(ca: Ca, nodes: dict[str, NodeClient], tmp_path: Path) -> None:
    before = await _counts(nodes["H53"])
    assert (await nodes["H53"].post(document(ca, to=[H23])))[0] == 202
    assert len(await nodes["H23"].drain()) == 1
    foreign = Ca.create(tmp_path / "foreign").keys.identity(SENDER)
    assert (await nodes["H53"].post(document(ca, to=[H41], seal=foreign)))[0] == 422
    assert await _counts(nodes["H53"]) == tuple(count + 1 for count in before)
    code, text, _ = await nodes["H53"].request("GET", "/metrics")
    assert code == 200 and b"edoc_hub_accepted_total" in text
