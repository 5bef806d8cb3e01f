"""Hostile nodes against a real hub process: each case is refused with its status and code.

Status messages from someone who did not receive the document, backwards or replayed,
about nothing; a node speaking for another province; missing and forged node tokens;
another node's deliveries; broken query values and bodies. Every case starts from a
fresh document, so cases do not depend on each other's order.
"""

from __future__ import annotations

import asyncio
import hashlib
import io
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from typing import Any

import aiohttp
import pytest

from edoc import envelope, signing
from edoc.model import (
    Attachment,
    Business,
    BusinessDocType,
    Organization,
    ResponseFor,
    StatusCode,
    StatusUpdate,
)
from tests.attacks import cases
from tests.attacks.cases import Reply
from tests.reliability import report
from tests.support.hub import HubProcess, NodeClient, document, hub_ca, status
from tests.support.pki import SENDER, Ca, unsigned_root, wire

H23, H41 = "000.00.00.H23", "000.00.00.H41"
H23_AGENCY = "000.00.07.H23"  # an agency of H23's province that did not receive the document
# Every case is a few requests the hub should answer at once; longer is a hang.
PROMPT = 3.0


@dataclass
class Hub:
    ca: Ca
    process: HubProcess
    nodes: dict[str, NodeClient]

    async def sent(self, to: str = H23) -> bytes:
        """A fresh document from SENDER (province H53) to ``to``, accepted by the hub."""
        package = document(self.ca, to=[to])
        code, body, _ = await self.nodes["H53"].post(package)
        assert code == 202, body
        return package

    async def answered(self, package: bytes, *codes: StatusCode) -> None:
        """H23 answers ``package`` with ``codes``, each accepted."""
        for code in codes:
            reply = await self.nodes["H23"].post(status(self.ca, H23, package, code))
            assert reply[0] == 202, reply[1]

    async def status(
        self, package: bytes, code: StatusCode, responder: str = H23, node: str = "H23"
    ) -> Reply:
        return await self.nodes[node].post(status(self.ca, responder, package, code))

    def stranger(self, token: str) -> NodeClient:
        return NodeClient(self.process, token)


Attack = Callable[[Hub], Awaitable[Reply]]
Case = cases.Case[Hub]


# --- who may give a status --------------------------------------------------------------------
async def status_from_non_recipient(hub: Hub) -> Reply:
    return await hub.status(await hub.sent(), StatusCode.ARRIVED, responder=H41, node="H41")


async def status_from_the_sender_itself(hub: Hub) -> Reply:
    return await hub.status(await hub.sent(), StatusCode.ARRIVED, responder=SENDER, node="H53")


async def status_from_recipients_neighbour(hub: Hub) -> Reply:
    """Another agency of the recipient's own province, posted by the right node."""
    return await hub.status(await hub.sent(), StatusCode.ARRIVED, responder=H23_AGENCY)


async def status_posted_by_another_province(hub: Hub) -> Reply:
    """The recipient's genuine signed status, but posted by the node of H41."""
    return await hub.status(await hub.sent(), StatusCode.ARRIVED, node="H41")


async def status_sealed_by_another_organization(hub: Hub) -> Reply:
    package = await hub.sent()
    forged = status(hub.ca, H23, package, StatusCode.ARRIVED, seal=hub.ca.keys.identity(H41))
    return await hub.nodes["H23"].post(forged)


async def status_unsigned(hub: Hub) -> Reply:
    package = await hub.sent()
    signed = status(hub.ca, H23, package, StatusCode.ARRIVED)
    start = signed.index(b"<ds:Signature")
    end = signed.rindex(b"</ds:Signature>") + len(b"</ds:Signature>")
    return await hub.nodes["H23"].post(signed[:start] + signed[end:])


# --- what may follow what ---------------------------------------------------------------------
def after(given: tuple[StatusCode, ...], code: StatusCode) -> Attack:
    async def attack(hub: Hub) -> Reply:
        package = await hub.sent()
        await hub.answered(package, *given)
        hub.ca.clock.advance(seconds=2)  # a new message, not a byte-identical resend
        return await hub.status(package, code)

    return attack


async def replay_re_signed(hub: Hub) -> Reply:
    """The same code again, signed anew (other bytes): a second 03 is not a thing."""
    package = await hub.sent()
    await hub.answered(package, StatusCode.ARRIVED, StatusCode.ACCEPTED)
    hub.ca.clock.advance(seconds=2)  # another timestamp, so another signature
    return await hub.status(package, StatusCode.ACCEPTED)


# --- about nothing ------------------------------------------------------------------------------
async def status_for_unknown_document(hub: Hub) -> Reply:
    never_sent = document(hub.ca, to=[H23])
    return await hub.status(never_sent, StatusCode.ARRIVED)


async def status_naming_another_sender(hub: Hub) -> Reply:
    """A real DocumentId, but ResponseFor names another organization as its sender."""
    package = await hub.sent()
    about = envelope.read_package(io.BytesIO(package)).document.document_id
    pretend = document(hub.ca, to=[H23], sender="000.00.00.H53", document_id=about)
    return await hub.status(pretend, StatusCode.ARRIVED)


async def document_id_of_another_sender(hub: Hub) -> Reply:
    """H41 names its document to H23 as H53 named one: taken, H23's answers to H53's
    would be refused as given already (a status is keyed by responder and DocumentId)."""
    package = await hub.sent()
    about = envelope.read_package(io.BytesIO(package)).document.document_id
    return await hub.nodes["H41"].post(document(hub.ca, to=[H23], sender=H41, document_id=about))


async def revoke_of_unknown_document(hub: Hub) -> Reply:
    revoke = document(hub.ca, to=[H41], business={"type": 1, "document_id": "khong-co"})
    return await hub.nodes["H53"].post(revoke)


# --- documents ------------------------------------------------------------------------------
async def document_for_another_province(hub: Hub) -> Reply:
    """A genuine H53 document posted by the node of H23."""
    return await hub.nodes["H23"].post(document(hub.ca, to=[H41]))


async def document_for_unknown_recipient(hub: Hub) -> Reply:
    return await hub.nodes["H53"].post(document(hub.ca, to=["000.00.99.H23"]))


async def document_only_for_own_province(hub: Hub) -> Reply:
    return await hub.nodes["H53"].post(document(hub.ca, to=["000.00.07.H53"]))


async def document_unsigned(hub: Hub) -> Reply:
    return await hub.nodes["H53"].post(wire(unsigned_root(to=[H41])))


async def document_sealed_by_another_organization(hub: Hub) -> Reply:
    return await hub.nodes["H53"].post(document(hub.ca, to=[H41], seal=hub.ca.keys.identity(H23)))


async def document_with_empty_signature_value(hub: Hub) -> Reply:
    package = document(hub.ca, to=[H41])
    start = package.index(b"<ds:SignatureValue>") + len(b"<ds:SignatureValue>")
    end = package.index(b"</ds:SignatureValue>")
    return await hub.nodes["H53"].post(package[:start] + package[end:])


async def document_truncated(hub: Hub) -> Reply:
    return await hub.nodes["H53"].post(document(hub.ca, to=[H41])[:-20])


async def document_invalid_namespace(hub: Hub) -> Reply:
    package = document(hub.ca, to=[H41])
    subject = package.index(b"<edXML:Subject>")
    return await hub.nodes["H53"].post(
        package[:subject] + b'<x:Note xmlns:x="a b"/>' + package[subject:]
    )


async def document_oversize(hub: Hub) -> Reply:
    """Beyond the hub's --max-package-mb (1 here)."""
    big = document(hub.ca, to=[H41], files={"lon.bin": b"\0" * (1024 * 1024)})
    return await hub.nodes["H53"].post(big)


async def duplicate_document_id_other_content(hub: Hub) -> Reply:
    package = await hub.sent()
    first = envelope.read_package(io.BytesIO(package)).document
    changed = document(
        hub.ca,
        to=[H23],
        subject="Nội dung khác",
        code={"number": first.code.number, "notation": first.code.notation},
    )
    return await hub.nodes["H53"].post(changed)


# --- unsigned content riding inside a signed package -----------------------------------------
DS = b'xmlns:ds="http://www.w3.org/2000/09/xmldsig#"'
XINCLUDE = b'<xi:include xmlns:xi="http://www.w3.org/2001/XInclude" href="file:///etc/passwd"/>'


def forged_header(package: bytes) -> bytes:
    """The package's own MessageHeader without its Id, to another recipient and subject."""
    start = package.index(b"<edXML:MessageHeader")
    end = package.index(b"</edXML:MessageHeader>") + len(b"</edXML:MessageHeader>")
    header = package[start:end].replace(b' Id="edoc-MessageHeader"', b"", 1)
    header = header.replace(H41.encode(), b"000.00.00.H23")
    subject = header.index(b"<edXML:Subject>") + len(b"<edXML:Subject>")
    return header[:subject] + "V/v chuyển toàn bộ kinh phí ".encode() + header[subject:]


def inserted(before: bytes, content: Callable[[bytes], bytes]) -> Attack:
    """A fresh signed document to H41 with ``content`` put before the first ``before``:
    the signatures stay valid, as nothing they cover changed."""

    async def attack(hub: Hub) -> Reply:
        package = document(hub.ca, to=[H41])
        at = package.index(before)
        return await hub.nodes["H53"].post(package[:at] + content(package) + package[at:])

    return attack


def replaced(old: bytes, new: bytes) -> Attack:
    async def attack(hub: Hub) -> Reply:
        return await hub.nodes["H53"].post(document(hub.ca, to=[H41]).replace(old, new, 1))

    return attack


def attachment_header_changed(old: bytes, new: bytes) -> Attack:
    """A signed document with one attachment whose (unsigned) Attachment header differs
    from its (signed) manifest entry."""

    async def attack(hub: Hub) -> Reply:
        package = document(hub.ca, to=[H41], files={"thu-moi.txt": "Thư mời họp".encode()})
        at = package.index(b"<edXML:AttachmentEncoded>")
        return await hub.nodes["H53"].post(package[:at] + package[at:].replace(old, new, 1))

    return attack


def ds_object(content: Callable[[bytes], bytes]) -> Callable[[bytes], bytes]:
    return lambda package: b"<ds:Object " + DS + b">" + content(package) + b"</ds:Object>"


async def status_with_forged_code_in_key_info(hub: Hub) -> Reply:
    signed = status(hub.ca, H23, await hub.sent(), StatusCode.ARRIVED)
    at = signed.index(b"</ds:KeyInfo>")
    forged = b"<edXML:StatusCode>06</edXML:StatusCode>"
    return await hub.nodes["H23"].post(signed[:at] + forged + signed[at:])


def relay_hop(content: bytes = b"", attributes: bytes = b"") -> Attack:
    """A hop as a hub adds it (unsigned), carrying ``content`` or ``attributes`` too."""
    hop = (
        b"<edXML:TraceHeader" + attributes + b"><edXML:OrganId>000.00.00.G22</edXML:OrganId>"
        b"<edXML:Timestamp>2026/11/23 08:30:15</edXML:Timestamp>"
        + content
        + b"</edXML:TraceHeader>"
    )
    return inserted(b"<edXML:Bussiness", lambda _: hop)


def status_carrying(**changes: Any) -> Attack:
    """H23's signed status 01 about a fresh document, with ``changes`` to the StatusUpdate
    (and an attachment written when it names one): signed, but not a status's form."""

    async def attack(hub: Hub) -> Reply:
        doc = envelope.read_package(await hub.sent()).document
        answer = ResponseFor(
            doc.sender.org_id, str(doc.code), doc.promulgation.date, doc.document_id
        )
        message = StatusUpdate(
            sender=Organization(H23),
            response_for=answer,
            code=StatusCode.ARRIVED,
            timestamp=hub.ca.clock().replace(microsecond=0),
            **changes,
        )
        root = envelope.build_envelope(envelope.stamp_origin(message, hub.ca.clock()))
        files = [(item, FORGED_ATTACHMENT) for item in message.attachments]
        signed = signing.sign(root, hub.ca.keys.identity(H23))
        out = io.BytesIO()
        envelope.write_package(signed, files, out)
        return await hub.nodes["H23"].post(out.getvalue())

    return attack


FORGED_ATTACHMENT = "Quyết định bổ nhiệm (giả)".encode()


# --- tokens and other nodes' things ---------------------------------------------------------
def with_token(token: str) -> Attack:
    async def attack(hub: Hub) -> Reply:
        return await hub.stranger(token).post(document(hub.ca, to=[H41]))

    return attack


async def basic_auth_scheme(hub: Hub) -> Reply:
    async with (
        aiohttp.ClientSession() as session,
        session.get(
            f"{hub.process.url}/api/v1/deliveries",
            headers={"Authorization": f"Basic {hub.nodes['H53'].token}"},
        ) as response,
    ):
        return response.status, await response.json(), dict(response.headers)


async def _delivery_for_h23(hub: Hub) -> int:
    await hub.sent()
    items = await hub.nodes["H23"].collect(limit=100)
    assert items
    return int(items[-1].id)


async def fetch_another_nodes_delivery(hub: Hub) -> Reply:
    delivery = await _delivery_for_h23(hub)
    return await hub.nodes["H41"].request("GET", f"/api/v1/deliveries/{delivery}/package")


async def ack_another_nodes_delivery(hub: Hub) -> Reply:
    delivery = await _delivery_for_h23(hub)
    await hub.sent(to=H41)
    own = [int(i.id) for i in await hub.nodes["H41"].collect(limit=100)]
    assert own
    # a batch with one of another node's is refused whole: the node's own stay undelivered
    reply = await hub.nodes["H41"].request("POST", ACK, json_body={"ids": [*own, delivery]})
    assert await hub.nodes["H41"].ack(*own) == own
    return reply


def request(method: str, path: str, node: str = "H41", **options: Any) -> Attack:
    async def attack(hub: Hub) -> Reply:
        return await hub.nodes[node].request(method, path, **options)

    return attack


SQL = "'; DROP TABLE packages;--"
REGISTER = "/api/v1/directory"
ACK = "/api/v1/deliveries/ack"
IDLE = "H44"  # a node nobody writes to: a poll that never ends steals nothing from the others

CASES = [
    # statuses: who
    Case("status-from-non-recipient", status_from_non_recipient, 403, "EDOC-HUB-005"),
    Case("status-from-the-sender-itself", status_from_the_sender_itself, 403, "EDOC-HUB-005"),
    Case("status-from-recipients-neighbour", status_from_recipients_neighbour, 403, "EDOC-HUB-005"),
    Case(
        "status-posted-by-another-province", status_posted_by_another_province, 403, "EDOC-HUB-002"
    ),
    Case(
        "status-sealed-by-another-organization",
        status_sealed_by_another_organization,
        403,
        "EDOC-SIG-006",
    ),
    Case("status-unsigned", status_unsigned, 422, "EDOC-SIG-001"),
    # statuses: what may follow what (01 → 02|03 → 04 → 05 → 06)
    Case(
        "backwards-03-after-04",
        after((StatusCode.ARRIVED, StatusCode.ASSIGNED), StatusCode.ACCEPTED),
        409,
        "EDOC-HUB-006",
    ),
    Case(
        "backwards-01-after-03",
        after((StatusCode.ACCEPTED,), StatusCode.ARRIVED),
        409,
        "EDOC-HUB-006",
    ),
    Case(
        "backwards-04-after-05",
        after(
            (StatusCode.ARRIVED, StatusCode.ASSIGNED, StatusCode.PROCESSING), StatusCode.ASSIGNED
        ),
        409,
        "EDOC-HUB-006",
    ),
    Case(
        "anything-after-06",
        after((StatusCode.ARRIVED, StatusCode.COMPLETED), StatusCode.PROCESSING),
        409,
        "EDOC-HUB-006",
    ),
    Case(
        "anything-after-02-rejected",
        after((StatusCode.ARRIVED, StatusCode.REJECTED), StatusCode.ACCEPTED),
        409,
        "EDOC-HUB-006",
    ),
    Case(
        "02-after-03",
        after((StatusCode.ARRIVED, StatusCode.ACCEPTED), StatusCode.REJECTED),
        409,
        "EDOC-HUB-006",
    ),
    Case(
        "16-after-15",  # agreeing to a change of the document and refusing it: one only
        after((StatusCode.ARRIVED, StatusCode.AGREES_TO_CHANGE), StatusCode.REFUSES_CHANGE),
        409,
        "EDOC-HUB-006",
    ),
    Case("replayed-status-re-signed", replay_re_signed, 409, "EDOC-HUB-006"),
    # about nothing
    Case("status-for-unknown-document", status_for_unknown_document, 404, "EDOC-HUB-007"),
    Case("status-naming-another-sender", status_naming_another_sender, 404, "EDOC-HUB-007"),
    Case("revoke-of-unknown-document", revoke_of_unknown_document, 404, "EDOC-HUB-007"),
    # documents
    Case("document-for-another-province", document_for_another_province, 403, "EDOC-HUB-002"),
    Case("document-for-unknown-recipient", document_for_unknown_recipient, 422, "EDOC-HUB-001"),
    Case("document-only-for-own-province", document_only_for_own_province, 422, "EDOC-HUB-001"),
    Case("document-id-of-another-sender", document_id_of_another_sender, 400, "EDOC-ENV-002"),
    Case("document-unsigned", document_unsigned, 422, "EDOC-SIG-001"),
    Case(
        "document-sealed-by-another-organization",
        document_sealed_by_another_organization,
        403,
        "EDOC-SIG-006",
    ),
    Case(
        "document-with-empty-signature-value",
        document_with_empty_signature_value,
        422,
        "EDOC-SIG-002",
    ),
    Case("document-truncated", document_truncated, 400, "EDOC-XML-001"),
    Case(
        "document-invalid-namespace-name",
        document_invalid_namespace,
        400,
        "EDOC-XML-001",
    ),
    Case("document-oversize", document_oversize, 413, "EDOC-IN-001"),
    Case(
        "duplicate-document-id-other-content",
        duplicate_document_id_other_content,
        409,
        "EDOC-HUB-003",
    ),
    # unsigned content riding inside a signed package
    Case(
        "ds-object-with-forged-header-beside-signature",
        inserted(b"</edXML:edXMLHeader>", ds_object(forged_header)),
        400,
        "EDOC-XML-007",
    ),
    Case(
        "ds-object-with-xinclude-beside-signature",
        inserted(b"</edXML:edXMLHeader>", ds_object(lambda _: XINCLUDE)),
        400,
        "EDOC-XML-007",
    ),
    Case(
        "ds-object-with-xinclude-in-signature",
        inserted(b"</ds:Signature>", ds_object(lambda _: XINCLUDE)),
        422,
        "EDOC-SIG-007",
    ),
    Case(
        "forged-header-in-key-info",
        inserted(b"</ds:KeyInfo>", forged_header),
        422,
        "EDOC-SIG-010",
    ),
    Case(
        "xinclude-in-key-info", inserted(b"</ds:KeyInfo>", lambda _: XINCLUDE), 422, "EDOC-SIG-010"
    ),
    Case(
        "forged-header-after-signature-value-text",
        inserted(b"</ds:SignatureValue>", forged_header),
        422,
        "EDOC-SIG-010",
    ),
    Case(
        "element-after-certificate-text",
        inserted(b"</ds:X509Certificate>", lambda _: b"<edXML:Subject>x</edXML:Subject>"),
        422,
        "EDOC-SIG-010",
    ),
    Case(
        "attribute-on-signature-value",
        replaced(b"<ds:SignatureValue>", b'<ds:SignatureValue Id="forged">'),
        422,
        "EDOC-SIG-010",
    ),
    Case(
        "status-with-forged-code-in-key-info",
        status_with_forged_code_in_key_info,
        422,
        "EDOC-SIG-010",
    ),
    Case(
        "relay-hop-with-forged-header",
        relay_hop(content=b"<edXML:Subject>x</edXML:Subject>"),
        400,
        "EDOC-XML-007",
    ),
    Case("relay-hop-with-id", relay_hop(attributes=b' Id="hop"'), 422, "EDOC-SIG-010"),
    Case(
        "xsi-schema-location-on-unsigned-trace-list",
        replaced(
            b"<edXML:TraceHeaderList>",
            b'<edXML:TraceHeaderList xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"'
            b' xsi:schemaLocation="urn:x http://127.0.0.1:9/x.xsd">',
        ),
        400,
        "EDOC-XML-008",
    ),
    Case(
        "attachment-content-type-other-than-manifest",
        attachment_header_changed(b"text/plain", b"text/html"),
        400,
        "EDOC-ATT-002",
    ),
    # a status message is an answer: no attachments, no business of its own
    Case(
        "status-with-an-attachment",
        status_carrying(
            attachments=(
                Attachment(
                    "cid:1",
                    "quyet-dinh.pdf",
                    "application/pdf",
                    len(FORGED_ATTACHMENT),
                    hashlib.sha256(FORGED_ATTACHMENT).hexdigest(),
                ),
            )
        ),
        400,
        "EDOC-ENV-002",
    ),
    Case(
        "status-revoking-a-document",
        status_carrying(
            business=Business(BusinessDocType.REVOKE, "thu hồi", "000.00.12.H53,2026/11/23,1")
        ),
        400,
        "EDOC-ENV-002",
    ),
    # tokens
    Case("no-token", with_token(""), 401, "EDOC-AUTH-001"),
    Case("forged-token", with_token("forged-token"), 401, "EDOC-AUTH-001"),
    Case("token-with-sql", with_token(f"x{SQL}' OR '1'='1"), 401, "EDOC-AUTH-001"),
    Case("basic-auth-scheme", basic_auth_scheme, 401, "EDOC-AUTH-001"),
    # other nodes' things
    Case("fetch-another-nodes-delivery", fetch_another_nodes_delivery, 403, "EDOC-AUTH-002"),
    Case("ack-another-nodes-delivery", ack_another_nodes_delivery, 403, "EDOC-AUTH-002"),
    Case(
        "register-another-provinces-agency",
        request("POST", REGISTER, json_body={"organizations": [{"org_id": "000.00.07.H53"}]}),
        403,
        "EDOC-HUB-002",
    ),
    # broken values
    Case(
        "delivery-id-with-sql",
        request("GET", "/api/v1/deliveries/1%20OR%201=1/package"),
        404,
        "EDOC-HTTP-404",
    ),
    Case(
        "delivery-id-beyond-int64",
        request("GET", f"/api/v1/deliveries/{2**63}/package"),
        404,
        "EDOC-HTTP-404",
    ),
    Case("ack-unknown-id", request("POST", ACK, json_body={"ids": [2**62]}), 404, "EDOC-HTTP-404"),
    Case(
        "ack-id-beyond-int64", request("POST", ACK, json_body={"ids": [2**63]}), 400, "EDOC-ENV-002"
    ),
    Case("ack-not-json", request("POST", ACK, data=b"{not json"), 400, "EDOC-ENV-004"),
    # nested past Python's recursion limit: was a RecursionError, 500 and its traceback
    Case("ack-nested-deep", request("POST", ACK, data=b"[" * 200_000), 400, "EDOC-ENV-004"),
    Case(
        "ack-unknown-charset",
        request(
            "POST",
            ACK,
            data=b'{"ids": [1]}',
            headers={"Content-Type": "application/json; charset=no-such-charset"},
        ),
        400,
        "EDOC-ENV-004",
    ),
    Case("ack-ids-not-a-list", request("POST", ACK, json_body={"ids": SQL}), 400, "EDOC-ENV-002"),
    Case("ack-no-ids", request("POST", ACK, json_body={"ids": []}), 400, "EDOC-ENV-002"),
    Case(
        "ack-too-many-ids",
        request("POST", ACK, json_body={"ids": list(range(1, 1002))}),
        400,
        "EDOC-ENV-002",
    ),
    Case(
        "ack-ids-not-integers",
        request("POST", ACK, json_body={"ids": [1.0, True, "1"]}),
        400,
        "EDOC-ENV-002",
    ),
    Case(
        "wait-not-a-number",
        request("GET", "/api/v1/deliveries?wait=abc", node=IDLE),
        400,
        "EDOC-ENV-002",
    ),
    Case(
        "wait-nan",
        request("GET", "/api/v1/deliveries?wait=nan", node=IDLE),
        400,
        "EDOC-ENV-002",
    ),
    Case(
        "limit-nan",
        request("GET", "/api/v1/deliveries?limit=nan", node=IDLE),
        400,
        "EDOC-ENV-002",
    ),
    Case("register-not-json", request("POST", REGISTER, data=b"{not json"), 400, "EDOC-ENV-004"),
    Case(
        "register-nested-deep",
        request("POST", REGISTER, data=b'{"organizations": ' + b"[" * 200_000),
        400,
        "EDOC-ENV-004",
    ),
    Case(
        "register-not-a-list",
        request("POST", REGISTER, json_body={"organizations": SQL}),
        400,
        "EDOC-ENV-002",
    ),
    Case(
        "register-bad-org-id",
        request("POST", REGISTER, json_body={"organizations": [{"org_id": SQL}]}),
        400,
        "EDOC-ORG-001",
    ),
    Case(
        "register-huge-name",
        request(
            "POST",
            REGISTER,
            node="H23",
            json_body={"organizations": [{"org_id": H23_AGENCY, "name": "x" * 501}]},
        ),
        400,
        "EDOC-ENV-002",
    ),
]


@pytest.fixture(scope="module")
def hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Hub]:
    ca = hub_ca(tmp_path_factory.mktemp("hubca") / "keys")
    ca.keys.issue(H23_AGENCY, org_name="Sở Nội vụ tỉnh Hà Nam")
    process = HubProcess(
        tmp_path_factory.mktemp("hub"), ca.keys.path, options=("--max-package-mb", "1")
    ).start()
    try:
        nodes = {
            root: NodeClient(process, process.add_node(root))
            for root in ("H53", "H23", "H41", IDLE)
        }
        yield Hub(ca, process, nodes)
    finally:
        process.stop()


def params(cases: list[Case]) -> list[Any]:
    return [pytest.param(case, id=case.id) for case in cases]


def test_corpus_ids_unique() -> None:
    ids = [case.id for case in CASES]
    assert len(ids) == len(set(ids))


@pytest.mark.parametrize("case", params(CASES))
async def test_hostile_node_is_refused(hub: Hub, case: Case) -> None:
    try:
        async with asyncio.timeout(PROMPT):
            code, body, _ = await case.attack(hub)
    except TimeoutError:
        raise AssertionError(f"{case.id}: no answer within {PROMPT} s") from None
    assert isinstance(body, dict) and "error" in body, (code, body)
    assert (code, body["error"]["code"]) == (case.status, case.code), body
    report.rejected(f"hub/{case.id}", case.code)


async def test_replayed_status_gets_the_first_answer_and_is_relayed_once(hub: Hub) -> None:
    """Byte-identical replays (also of an earlier code after a later one) are absorbed:
    the first answer again, flagged as a resend, and the sender is told only once."""
    await hub.nodes["H53"].drain()
    package = await hub.sent()
    arrived = status(hub.ca, H23, package, StatusCode.ARRIVED)
    first = await hub.nodes["H23"].post(arrived)
    await hub.answered(package, StatusCode.ACCEPTED)
    for _ in range(3):
        again = await hub.nodes["H23"].post(arrived)
        assert (again[0], again[1]) == (first[0], first[1])
        assert again[2].get("X-Edoc-Resend") == "true"
    relayed = await hub.nodes["H53"].drain()
    assert [(i.kind, i.status_code) for i in relayed] == [("status", "01"), ("status", "03")]
    report.rejected("hub/replayed-status-identical", "absorbed as a resend")


async def test_a_comment_in_a_signature_is_not_relayed(hub: Hub) -> None:
    """Comments are not signed and the parser drops them (the one thing beyond the signed
    shape that is not refused): the package the recipient collects holds none."""
    package = document(hub.ca, to=[H41])
    at = package.index(b"</ds:KeyInfo>")
    code, body, _ = await hub.nodes["H53"].post(
        package[:at] + "<!-- V/v chuyển toàn bộ kinh phí -->".encode() + package[at:]
    )
    assert code == 202, body
    about = envelope.read_package(package).document.document_id
    items = [i for i in await hub.nodes["H41"].collect(limit=100) if i.document_id == about]
    assert len(items) == 1
    relayed = await hub.nodes["H41"].fetch(items[0].id)
    await hub.nodes["H41"].ack(items[0].id)
    assert b"<!--" not in relayed and "kinh phí".encode() not in relayed
    assert envelope.read_package(relayed).document.document_id == about


async def test_hub_still_serves_after_the_corpus(hub: Hub) -> None:
    """After all of the above, an honest exchange still goes through."""
    package = await hub.sent(to=H41)
    delivered = await hub.nodes["H41"].drain()
    assert envelope.read_package(io.BytesIO(package)).document.document_id in {
        i.document_id for i in delivered
    }
    code, stats, _ = await hub.nodes["H53"].request("GET", "/api/v1/stats")
    assert code == 200 and stats["rejected_by_code"]["EDOC-HUB-005"] >= 3
