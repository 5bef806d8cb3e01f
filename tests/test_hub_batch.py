"""POST /api/v1/packages/batch against a real hub process: each package judged as the
single door judges it (the whole hostile corpus, a package to a batch), a batch mixing
good and refused packages, resends, hostile framing refused whole with nothing stored; and
the collect answer as a frame body against the JSON one."""

from __future__ import annotations

import asyncio
import base64
import io
import struct
from collections.abc import Iterator
from typing import Any

import pytest

from edoc import envelope, framing
from edoc.client import Answer
from tests.attacks.test_hub_attacks import CASES, H23_AGENCY, IDLE, PROMPT, Case, Hub
from tests.support.hub import HubProcess, NodeClient, document, hub_ca
from tests.support.pki import Ca

H23, H41 = "000.00.00.H23", "000.00.00.H41"
BATCH = "/api/v1/packages/batch"


class BatchNode(NodeClient):
    """A node that posts each package as a batch of one, read back as the single door's
    answer would be: what a package gets must not depend on the door it came through."""

    async def batch(self, packages: list[bytes], body: bytes | None = None) -> Answer:
        framed = framing.frame(packages) if body is None else body
        headers = {"Content-Type": framing.MEDIA_TYPE}
        return await self.request("POST", BATCH, data=io.BytesIO(framed), headers=headers)

    async def post(self, package: bytes) -> Answer:
        answer = await self.batch([package])
        if answer.status != 200:  # refused whole (framing, bounds, token)
            return answer
        (result,) = answer.body["results"]
        if result["status"] == 202:
            resend = {"X-Edoc-Resend": "true"} if result["resend"] else {}
            return Answer(202, result["accepted"], resend)
        return Answer(result["status"], {"error": result["error"]}, {})


@pytest.fixture(scope="module")
def hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Hub]:
    """As the hostile corpus's hub (tests/attacks/test_hub_attacks.py), its nodes batching."""
    ca = hub_ca(tmp_path_factory.mktemp("hubca") / "keys")
    ca.keys.issue(H23_AGENCY, org_name="Sở Nội vụ tỉnh Hà Nam")
    process = HubProcess(
        tmp_path_factory.mktemp("hub"),
        ca.keys.path,
        # packages over 256 KB are fetched, not inline, so a 1 MB hub has both
        options=("--max-package-mb", "1", "--inline-kb", "256"),
    ).start()
    try:
        nodes: dict[str, NodeClient] = {
            root: BatchNode(process, process.add_node(root)) for root in ("H53", "H23", "H41", IDLE)
        }
        yield Hub(ca, process, nodes)
    finally:
        process.stop()


def _node(hub: Hub, root: str) -> BatchNode:
    node = hub.nodes[root]
    assert isinstance(node, BatchNode)
    return node


@pytest.mark.parametrize("case", [pytest.param(case, id=case.id) for case in CASES])
async def test_a_hostile_package_in_a_batch_gets_the_single_doors_answer(
    hub: Hub, case: Case
) -> None:
    async with asyncio.timeout(PROMPT):
        code, body, _ = await case.attack(hub)
    assert isinstance(body, dict) and "error" in body, (code, body)
    assert (code, body["error"]["code"]) == (case.status, case.code), body


def _about(package: bytes) -> str:
    return envelope.read_package(package).document.document_id


def _outcomes(answer: Answer) -> list[tuple[int, Any]]:
    assert answer.status == 200, answer.body
    return [
        (r["status"], r["accepted"]["id"] if r["status"] == 202 else r["error"]["code"])
        for r in answer.body["results"]
    ]


async def test_a_mixed_batch_answers_each_package_and_delivers_the_good_ones_once(
    hub: Hub,
) -> None:
    ca: Ca = hub.ca
    for root in ("H23", "H41"):
        await hub.nodes[root].drain()
    first, second = document(ca, to=[H23]), document(ca, to=[H41])
    other_content = document(
        ca,
        to=[H23],
        subject="Nội dung khác",
        code=envelope.read_package(first).document.code.__dict__,
    )
    revoke = document(
        ca, to=[H41], business={"type": 1, "reason": "Ban hành nhầm", "document_id": _about(second)}
    )
    batch = [
        first,
        document(ca, to=[H41], seal=ca.keys.identity(H23)),  # sealed by someone else
        second,
        first,  # again, byte for byte: the first answer
        other_content,  # the same document id, other content
        document(ca, to=[H41], sender="000.00.07.H23", seal=ca.keys.identity(H23_AGENCY)),
        revoke,  # of a document earlier in the same batch
        b"<edXML",
    ]
    h53 = _node(hub, "H53")
    answer = await h53.batch(batch)
    got = _outcomes(answer)
    assert [code for code, _ in got] == [202, 403, 202, 202, 409, 403, 202, 400]
    assert got[3] == got[0] and answer.body["results"][3]["resend"] is True
    assert [r.get("resend") for r in answer.body["results"]] == [
        False, None, False, True, None, None, False, None
    ]  # fmt: skip
    # each refusal as the single door gives it, for the same bytes
    for package, (code, error) in zip(batch, got, strict=True):
        if code != 202:
            single = await NodeClient.post(h53, package)
            assert (single.status, single.body["error"]["code"]) == (code, error)
    assert answer.body["results"][6]["accepted"]["recipients"] == [H41]

    # the whole batch again: the same answers, nothing delivered twice
    assert _outcomes(await h53.batch(batch)) == got
    h23 = await hub.nodes["H23"].drain()
    h41 = await hub.nodes["H41"].drain()
    assert [i.hub_id for i in h23] == [got[0][1]]
    assert sorted(i.hub_id for i in h41) == [got[2][1], got[6][1]]


def _header(*lengths: int) -> bytes:
    return framing.MAGIC + struct.pack(f">{1 + len(lengths)}I", len(lengths), *lengths)


async def test_hostile_framing_is_refused_whole_and_stores_nothing(hub: Hub) -> None:
    await hub.nodes["H23"].drain()
    good = document(hub.ca, to=[H23])
    h53 = _node(hub, "H53")
    framed = framing.frame([good, good])
    hostile = {
        "truncated": (framed[:-1], 400, "EDOC-IN-004"),
        "a byte left over": (framed + b"\n", 400, "EDOC-IN-004"),
        "lengths that do not add up": (_header(len(good), 5) + good + b"x" * 6, 400, "EDOC-IN-004"),
        "a length past the body": (_header(2**32 - 1) + good, 400, "EDOC-IN-004"),
        "another magic": (b"EDOCFRM0" + framed[8:], 400, "EDOC-IN-004"),
        "no part": (_header(), 400, "EDOC-IN-004"),
        "not framed at all": (good, 400, "EDOC-IN-004"),
        "too many": (framing.frame([good] * 33), 413, "EDOC-IN-001"),
        "a huge count": (framing.MAGIC + struct.pack(">I", 2**32 - 1), 413, "EDOC-IN-001"),
        "over the byte bound": (framing.frame([good, b"\0" * (1024 * 1024)]), 413, "EDOC-IN-001"),
    }  # fmt: skip
    for name, (body, status, code) in hostile.items():
        answer = await h53.batch([], body=body)
        assert (answer.status, answer.body["error"]["code"]) == (status, code), name
    assert await hub.nodes["H23"].drain() == []
    accepted = await NodeClient.post(h53, good)  # first accepted now: nothing was stored
    assert accepted.status == 202 and "X-Edoc-Resend" not in accepted.headers


async def test_a_batch_needs_the_nodes_token(hub: Hub) -> None:
    stranger = BatchNode(hub.process, "not-a-token")
    answer = await stranger.batch([document(hub.ca, to=[H23])])
    assert (answer.status, answer.body["error"]["code"]) == (401, "EDOC-AUTH-001")


async def test_collect_answers_frames_when_asked_and_json_otherwise(hub: Hub) -> None:
    h41 = hub.nodes["H41"]
    await h41.drain()
    small = document(hub.ca, to=[H41])
    large = document(hub.ca, to=[H41], files={"scan.pdf": b"\1" * (300 * 1024)})  # > inline
    for package in (small, large):
        assert (await NodeClient.post(hub.nodes["H53"], package)).status == 202
    params = {"wait": "2", "limit": "1"}
    as_json = await h41.request("GET", "/api/v1/deliveries", params=params)
    assert as_json.headers["Content-Type"].startswith("application/json")
    (notice,) = as_json.body["deliveries"]
    assert notice["document_id"] == _about(small)
    assert base64.b64decode(notice["package"]) == await h41.fetch(notice["id"])
    items = await h41.collect(wait=2)  # the typed client asks for frames
    assert [(i.document_id, i.package) for i in items] == [(_about(large), None)]
    await h41.ack(notice["id"], items[0].id)
    framed = await h41.request(
        "GET", "/api/v1/deliveries", params={"wait": "0"}, headers={"Accept": framing.MEDIA_TYPE}
    )
    assert framed.headers["Content-Type"] == framing.MEDIA_TYPE
    assert framing.unframe(framed.body, 1) == [b'{"deliveries": []}']


async def test_a_revoke_waits_for_its_original_in_the_same_batch(hub: Hub) -> None:
    """Packages of a batch are admitted side by side, except one about a document an
    earlier one of the batch is about: a revoke right after its original finds it."""
    originals = [document(hub.ca, to=[H41]) for _ in range(6)]
    revokes = [
        document(hub.ca, to=[H41], business={"type": 1, "reason": "Nhầm", "document_id": _about(o)})
        for o in originals
    ]
    batch = [package for pair in zip(originals, revokes, strict=True) for package in pair]
    got = _outcomes(await _node(hub, "H53").batch(batch))
    assert [code for code, _ in got] == [202] * len(batch), got
    await hub.nodes["H41"].drain()


async def test_a_batch_answer_says_how_many_other_batches_the_hub_was_handling(
    hub: Hub,
) -> None:
    """Alone, none; several at once, the hub counts the others (how a node knows that the
    hub has room for more requests at once: edoc.node.outbox)."""
    h53 = _node(hub, "H53")
    alone = await h53.batch([document(hub.ca, to=[H23])])
    assert alone.status == 200 and alone.body["batches_under_way"] == 0
    seen: list[int] = []
    for _ in range(5):  # (a paused test process may send them one after the other)
        together = await asyncio.gather(
            *(h53.batch([document(hub.ca, to=[H41]) for _ in range(4)]) for _ in range(6))
        )
        assert all(answer.status == 200 for answer in together)
        seen = [answer.body["batches_under_way"] for answer in together]
        if max(seen) > 0:
            break
    assert 0 < max(seen) <= 5  # six at once: up to five others, never itself
    await hub.nodes["H23"].drain()
    await hub.nodes["H41"].drain()
