"""Hostile agencies against a real node (and its hub): each case is refused with its code.

Malformed and truncated multipart bodies, dangerous attachment names, missing, forged
and borrowed tokens, SQL metacharacters and huge values in every metadata field. Where
SQL metacharacters are legal text (a subject may quote anything), the right answer is to
accept the document and deliver it verbatim: those cases check the value arrives
unchanged at both recipients (one across the hub, one in the same province), and that
the node's store still works afterwards.
"""

from __future__ import annotations

import asyncio
import copy
import io
import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from functools import partial
from typing import Any
from urllib.parse import quote

import pytest

from edoc import envelope
from edoc.model import Document
from tests.attacks import cases
from tests.attacks.cases import Reply
from tests.reliability import report
from tests.support.network import Agency, LocalNetwork, eventually, metadata

SENDER, LOCAL, KON_TUM = "000.00.12.H53", "000.00.07.H53", "000.00.00.H34"
BOUNDARY = "edoc-attack-boundary"
MULTIPART = f"multipart/form-data; boundary={BOUNDARY}"
DOCUMENTS = "/api/v1/documents"
SQL = "'; DROP TABLE documents;-- \" OR 1=1 -- %' UNION SELECT token FROM agencies; --"


# --- building request bodies byte by byte ---------------------------------------------------
Part = tuple[list[bytes], bytes]


def multipart(*parts: Part, boundary: str = BOUNDARY, end: bool = True) -> bytes:
    out = b""
    for headers, body in parts:
        out += b"--" + boundary.encode() + b"\r\n"
        out += b"".join(header + b"\r\n" for header in headers) + b"\r\n" + body + b"\r\n"
    return out + (b"--" + boundary.encode() + b"--\r\n" if end else b"")


def meta_part(data: Any) -> Part:
    """The metadata part; JSON escapes keep any string (even a lone surrogate) sendable."""
    raw = data if isinstance(data, bytes) else json.dumps(data).encode()
    return [
        b'Content-Disposition: form-data; name="metadata"',
        b"Content-Type: application/json",
    ], raw


def file_part(filename: bytes, content: bytes = b"noi dung") -> Part:
    disposition = b'Content-Disposition: form-data; name="file"; filename="' + filename + b'"'
    return [disposition, b"Content-Type: application/octet-stream"], content


def named(name: str) -> bytes:
    """A file name as clients send it: percent-encoded UTF-8 (RFC 7578 §4.2)."""
    return quote(name, safe="").encode()


# --- the network and what cases do with it -------------------------------------------------------
@dataclass
class Net:
    network: LocalNetwork
    _item: dict[str, Any] | None = None
    _lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    @property
    def sender(self) -> Agency:
        return self.network.agency(SENDER)

    def agency(self, org: str) -> Agency:
        return self.network.agency(org)

    def stranger(self, token: str) -> Agency:
        return Agency(self.sender.base_url, token, "")

    async def post(
        self,
        body: bytes,
        content_type: str = MULTIPART,
        agency: Agency | None = None,
        headers: dict[str, str] | None = None,
    ) -> Reply:
        return await (agency or self.sender).request(
            "POST",
            DOCUMENTS,
            data=io.BytesIO(body),
            headers={"Content-Type": content_type} | (headers or {}),
        )

    async def send(self, data: dict[str, Any], *files: Part, agency: Agency | None = None) -> Reply:
        return await self.post(multipart(meta_part(data), *files), agency=agency)

    async def local_item(self) -> dict[str, Any]:
        """One document SENDER sent to LOCAL, as LOCAL's inbox lists it (made once)."""
        if self._item is None:
            code, answer, _ = await self.send(metadata(SENDER, [LOCAL]), file_part(b"a.txt"))
            assert code == 202, answer
            (self._item,) = await eventually(
                partial(arrived, self.agency(LOCAL), answer["document_id"])
            )
        return self._item


async def arrived(agency: Agency, document_id: str) -> list[dict[str, Any]]:
    return [d for d in await agency.inbox() if d["document_id"] == document_id]


Attack = Callable[[Net], Awaitable[Reply]]
Case = cases.Case[Net]


def post(body: bytes, content_type: str = MULTIPART) -> Attack:
    async def attack(net: Net) -> Reply:
        return await net.post(body, content_type)

    return attack


def good_meta() -> dict[str, Any]:
    return metadata(SENDER, [KON_TUM])


GOOD = multipart(meta_part(good_meta()), file_part(b"ke-hoach.txt", b"Ke hoach " * 50))


async def post_without_a_body(net: Net) -> Reply:
    """curl -X POST: no body at all."""
    return await net.sender.request("POST", DOCUMENTS)


def upload(*files: Part) -> Attack:
    async def attack(net: Net) -> Reply:
        return await net.send(good_meta(), *files)

    return attack


def send_as(data: Callable[[], dict[str, Any]]) -> Attack:
    async def attack(net: Net) -> Reply:
        return await net.send(data())

    return attack


# --- MIME ----------------------------------------------------------------------------------------
NESTED = (
    [b'Content-Disposition: form-data; name="file"', b"Content-Type: multipart/mixed; boundary=in"],
    b"--in\r\nContent-Type: text/plain\r\n\r\nx\r\n--in--",
)
NO_DISPOSITION: Part = ([b"Content-Type: text/plain"], b"x")
IN003, NODE003 = "EDOC-IN-003", "EDOC-NODE-003"


def nested(depth: int) -> bytes:
    """A JSON array ``depth`` deep."""
    return b"[" * depth + b"]" * depth


def good_meta_with(name: str, raw: bytes) -> bytes:
    """The good metadata as JSON, with field ``name`` written as ``raw``."""
    return json.dumps(good_meta())[:-1].encode() + f', "{name}": '.encode() + raw + b"}"


MIME_CASES = [
    Case("body-not-multipart", post(b"not multipart at all"), 400, IN003),
    Case("body-empty", post(b""), 400, IN003),
    Case("post-without-a-body", post_without_a_body, 400, IN003),
    Case("content-type-json", post(GOOD, "application/json"), 415, NODE003),
    Case("content-type-urlencoded", post(GOOD, "application/x-www-form-urlencoded"), 415, NODE003),
    Case("content-type-multipart-mixed", post(GOOD, "multipart/mixed; boundary=x"), 415, NODE003),
    Case("content-type-missing", post(GOOD, ""), 415, NODE003),
    Case("content-type-without-boundary", post(GOOD, "multipart/form-data"), 400, IN003),
    Case("boundary-mismatch", post(GOOD, "multipart/form-data; boundary=other"), 400, IN003),
    Case("nested-multipart", upload(NESTED), 400, IN003),
    Case(
        "truncated-in-file-headers",
        post(GOOD[: GOOD.index(b"ke-hoach.txt") + 4]),
        400,
        IN003,
    ),
    Case("truncated-in-metadata-headers", post(GOOD[:60]), 400, IN003),
    Case("part-without-content-disposition", upload(NO_DISPOSITION), 400, IN003),
    Case("file-name-bad-percent-encoding", upload(file_part(b"a%FFb.txt")), 400, IN003),
    # raw control characters break the part's header itself: malformed MIME (percent-encoded
    # ones reach the name check, see the name cases)
    Case("file-name-raw-newline", upload(file_part(b"a\nb.txt")), 400, IN003),
    Case("file-name-raw-nul", upload(file_part(b"a\x00b.txt")), 400, IN003),
    Case("part-header-without-colon", upload(([b"0"], b"x")), 400, IN003),
    Case("part-header-empty-name", upload(([b": x"], b"x")), 400, IN003),
    Case("missing-metadata-part", post(multipart(file_part(b"a.txt"))), 400, "EDOC-ENV-001"),
    Case("metadata-not-json", post(multipart(meta_part(b"{from: H53"))), 400, "EDOC-ENV-004"),
    Case(
        "metadata-not-utf8",
        post(multipart(meta_part(b'{"subject": "\xff\xfe"}'))),
        400,
        "EDOC-ENV-004",
    ),
    # nested past Python's recursion limit (in the parser, or in what walks it after):
    # was a RecursionError, 500 and its traceback
    Case("metadata-nested-deep", post(multipart(meta_part(nested(60_000)))), 400, "EDOC-ENV-004"),
    Case(  # JSON reads it; walking it after ran out of stack
        "metadata-field-nested-500-deep",
        post(multipart(meta_part(good_meta_with("content", nested(500))))),
        400,
        "EDOC-ENV-004",
    ),
    Case("metadata-json-array", post(multipart(meta_part([good_meta()]))), 400, "EDOC-ENV-002"),
    Case("metadata-json-null", post(multipart(meta_part(b"null"))), 400, "EDOC-ENV-002"),
    Case(
        "metadata-unknown-field",
        send_as(lambda: {**good_meta(), "extra": SQL}),
        400,
        "EDOC-ENV-003",
    ),
    Case(
        "metadata-over-1-mib",
        post(multipart(meta_part({**good_meta(), "content": "x" * (1024 * 1024)}))),
        413,
        "EDOC-IN-001",
    ),
]

# --- attachment names --------------------------------------------------------------------------
ATT003, NODE004 = "EDOC-ATT-003", "EDOC-NODE-004"
NAMES = {
    "parent-path": b"../etc/passwd",
    "deep-parent-path": b"../../../../../tmp/x",
    "absolute-path": b"/etc/passwd",
    "windows-parent-path": b"..\\..\\windows\\x.exe",
    "windows-drive": b"C:x.exe",
    "dot": b".",
    "dotdot": b"..",
    "hidden": b".bashrc",
    "percent-encoded-traversal": b"..%2F..%2Fetc%2Fpasswd",
    "percent-encoded-backslash": b"..%5Cx.exe",
    "newline": b"a%0Ab.txt",
    "carriage-return": b"a%0Db.txt",
    "tab": b"a%09b.txt",
    "nul": b"a%00b.txt",
    "escape": b"a%1B%5B31mb.txt",
    "delete": b"a%7Fb.txt",
    "bidi-override": named("\u202etxt.exe"),
    "zero-width": named("a\u200bb.txt"),
    "too-long": b"x" * 256,
    "too-long-utf8": named("ệ" * 90),
    "empty": b"",
}
NAME_CASES = [
    Case(f"attachment-name-{label}", upload(file_part(name)), 400, ATT003)
    for label, name in NAMES.items()
] + [
    Case(
        "attachment-name-rfc5987-traversal",
        upload(
            ([b"Content-Disposition: form-data; name=\"file\"; filename*=UTF-8''..%2F..%2Fx"], b"x")
        ),
        400,
        ATT003,
    ),
    Case("attachment-name-twice", upload(file_part(b"a.txt"), file_part(b"a.txt")), 400, ATT003),
    Case("attachment-empty", upload(file_part(b"a.txt"), file_part(b"b.txt", b"")), 422, NODE004),
]


# --- tokens --------------------------------------------------------------------------------------
def with_token(token: str) -> Attack:
    async def attack(net: Net) -> Reply:
        return await net.send(good_meta(), agency=net.stranger(token))

    return attack


async def token_of_another_node(net: Net) -> Reply:
    """Kon Tum's genuine agency token, at Tây Ninh's node."""
    return await net.send(good_meta(), agency=net.stranger(net.agency(KON_TUM).token))


async def hub_token_as_agency(net: Net) -> Reply:
    return await net.send(
        good_meta(), agency=net.stranger(net.network.spec["nodes"][0]["hub_token"])
    )


async def basic_scheme(net: Net) -> Reply:
    return await net.sender.request(
        "GET", "/api/v1/inbox", headers={"Authorization": f"Basic {net.sender.token}"}
    )


async def sending_as_another_agency(net: Net) -> Reply:
    return await net.send(metadata(LOCAL, [KON_TUM]))


async def sending_as_another_agency_object(net: Net) -> Reply:
    return await net.send(metadata({"id": LOCAL, "name": SQL}, [KON_TUM]))  # type: ignore[arg-type]


async def reading_another_inbox(net: Net) -> Reply:
    return await net.sender.request("GET", f"/api/v1/inbox?org={LOCAL}")


async def reading_another_agencys_document(net: Net) -> Reply:
    code, answer, _ = await net.send(good_meta())
    assert code == 202, answer
    return await net.agency(LOCAL).request("GET", f"{DOCUMENTS}/{answer['id']}")


def on_local_item(method: str, suffix: str, by: str = SENDER, **options: Any) -> Attack:
    """An agency (SENDER unless ``by``) reaching for something in LOCAL's inbox."""

    async def attack(net: Net) -> Reply:
        item = await net.local_item()
        path = f"/api/v1/inbox/{item['id']}{suffix}"
        return await net.agency(by).request(method, path, **options)

    return attack


AUTH001, AUTH002 = "EDOC-AUTH-001", "EDOC-AUTH-002"
TOKEN_CASES = [
    Case("no-token", with_token(""), 401, AUTH001),
    Case("empty-bearer", with_token(" "), 401, AUTH001),
    Case("forged-token", with_token("forged-token"), 401, AUTH001),
    Case("token-with-sql", with_token(SQL.replace('"', "")), 401, AUTH001),
    Case("huge-token", with_token("t" * 6000), 401, AUTH001),
    Case("basic-scheme", basic_scheme, 401, AUTH001),
    Case("token-of-another-node", token_of_another_node, 401, AUTH001),
    Case("hub-token-as-agency-token", hub_token_as_agency, 401, AUTH001),
    Case("sending-as-another-agency", sending_as_another_agency, 403, AUTH002),
    Case("sending-as-another-agency-object", sending_as_another_agency_object, 403, AUTH002),
    Case(
        "unknown-agency-of-this-province",
        send_as(lambda: metadata(SENDER, ["000.00.99.H53"])),
        422,
        "EDOC-HUB-001",
    ),
    Case(
        "unknown-agency-of-another-province",
        send_as(lambda: metadata(SENDER, [KON_TUM, "000.00.99.H34"])),
        422,
        "EDOC-HUB-001",
    ),
    Case(
        "unknown-province",
        send_as(lambda: metadata(SENDER, ["000.00.00.H99"])),
        422,
        "EDOC-HUB-001",
    ),
    Case("reading-another-inbox", reading_another_inbox, 403, AUTH002),
    Case("reading-another-agencys-document", reading_another_agencys_document, 403, AUTH002),
    Case("reading-another-agencys-inbox-item", on_local_item("GET", ""), 403, AUTH002),
    Case("reading-another-agencys-package", on_local_item("GET", "/package"), 403, AUTH002),
    Case(
        "reading-another-agencys-attachment", on_local_item("GET", "/attachments/0"), 403, AUTH002
    ),
    Case(
        "answering-for-another-agency",
        on_local_item("POST", "/status", json_body={"code": "03"}),
        403,
        AUTH002,
    ),
]


# --- statuses and query values at the node -------------------------------------------------------
def on_own_item(body: Any = None, raw: bytes | None = None, before: tuple[str, ...] = ()) -> Attack:
    """LOCAL answering a document it received; ``before`` are answers given first."""

    async def attack(net: Net) -> Reply:
        local = net.agency(LOCAL)
        code, answer, _ = await net.send(metadata(SENDER, [LOCAL]))
        assert code == 202, answer
        (item,) = await eventually(partial(arrived, local, answer["document_id"]))
        path = f"/api/v1/inbox/{item['id']}/status"
        for given in before:
            reply = await local.request("POST", path, json_body={"code": given})
            assert reply[0] == 202, reply[1]
        if raw is not None:
            return await local.request(
                "POST", path, data=raw, headers={"Content-Type": "application/json"}
            )
        return await local.request("POST", path, json_body=body)

    return attack


def post_statuses(raw: bytes) -> Attack:
    """LOCAL posting ``raw`` as the body of several statuses at once."""

    async def attack(net: Net) -> Reply:
        headers = {"Content-Type": "application/json"}
        path = "/api/v1/inbox/statuses"
        return await net.agency(LOCAL).request("POST", path, data=raw, headers=headers)

    return attack


def get(path: str) -> Attack:
    async def attack(net: Net) -> Reply:
        return await net.sender.request("GET", path)

    return attack


async def status_for_unknown_item(net: Net) -> Reply:
    return await net.sender.request("POST", "/api/v1/inbox/999999/status", json_body={"code": "03"})


async def idempotency_key_reused_with_other_content(net: Net) -> Reply:
    """The key of an accepted document, with other metadata: refused, not a "retry"."""
    first = metadata(SENDER, [KON_TUM])
    code, answer, _ = await net.sender.send(first, idempotency_key="reused-key")
    assert code == 202, answer
    return await net.sender.send(
        {**first, "subject": "Nội dung khác"}, idempotency_key="reused-key"
    )


async def idempotency_key_reused_with_other_file(net: Net) -> Reply:
    data = metadata(SENDER, [KON_TUM])
    for content in (b"ban dau", b"da sua"):
        code, answer, headers = await net.post(
            multipart(meta_part(data), file_part(b"a.txt", content)),
            headers={"Idempotency-Key": "reused-key-2"},
        )
    return code, answer, headers


async def idempotency_key_too_long(net: Net) -> Reply:
    return await net.sender.request(
        "POST",
        DOCUMENTS,
        data=multipart(meta_part(good_meta())),
        headers={"Content-Type": MULTIPART, "Idempotency-Key": "k" * 201},
    )


ENV002 = "EDOC-ENV-002"
STATUS_CASES = [
    Case("status-01-is-the-nodes-own", on_own_item({"code": "01"}), 400, ENV002),
    Case("status-unknown-code", on_own_item({"code": "07"}), 400, ENV002),
    Case("status-code-with-sql", on_own_item({"code": SQL}), 400, ENV002),
    Case("status-code-a-list", on_own_item({"code": ["03"]}), 400, ENV002),
    Case("status-code-an-object", on_own_item({"code": {"03": 1}}), 400, ENV002),
    Case("status-body-not-json", on_own_item(raw=b"{code: 03"), 400, "EDOC-ENV-004"),
    Case("status-body-nested-deep", on_own_item(raw=nested(200_000)), 400, "EDOC-ENV-004"),
    Case("statuses-body-nested-deep", post_statuses(nested(200_000)), 400, "EDOC-ENV-004"),
    Case("status-body-a-list", on_own_item(["03"]), 400, ENV002),
    Case(
        "status-description-huge",
        on_own_item({"code": "03", "description": "x" * 20001}),
        400,
        ENV002,
    ),
    Case("status-staff-not-an-object", on_own_item({"code": "03", "staff": SQL}), 400, ENV002),
    Case(
        "status-backwards-03-after-04",
        on_own_item({"code": "03"}, before=("04",)),
        409,
        "EDOC-HUB-006",
    ),
    Case(
        "status-replayed-at-the-node",
        on_own_item({"code": "03"}, before=("03",)),
        409,
        "EDOC-HUB-006",
    ),
    Case("status-after-06", on_own_item({"code": "05"}, before=("06",)), 409, "EDOC-HUB-006"),
    Case("status-for-unknown-item", status_for_unknown_item, 404, "EDOC-HTTP-404"),
    Case("inbox-since-with-sql", get(f"/api/v1/inbox?since={quote(SQL)}"), 400, ENV002),
    Case(
        "inbox-limit-with-sql",
        get(f"/api/v1/inbox?limit={quote('1; DROP TABLE inbox')}"),
        400,
        ENV002,
    ),
    Case("document-id-with-sql", get(f"{DOCUMENTS}/{quote('1 OR 1=1')}"), 404, "EDOC-HTTP-404"),
    Case("inbox-id-with-sql", get(f"/api/v1/inbox/{quote(SQL)}"), 404, "EDOC-HTTP-404"),
    Case("document-id-beyond-int64", get(f"{DOCUMENTS}/{2**63}"), 404, "EDOC-HTTP-404"),
    Case("inbox-id-beyond-int64", get(f"/api/v1/inbox/{2**63}"), 404, "EDOC-HTTP-404"),
    Case(
        "attachment-number-beyond-int64",
        on_local_item("GET", f"/attachments/{2**64}", by=LOCAL),
        404,
        "EDOC-HTTP-404",
    ),
    Case(
        "attachment-number-with-sql",
        on_local_item("GET", "/attachments/0%20OR%201=1", by=LOCAL),
        404,
        "EDOC-HTTP-404",
    ),
    Case("idempotency-key-too-long", idempotency_key_too_long, 400, ENV002),
    Case(
        "idempotency-key-reused-with-other-metadata",
        idempotency_key_reused_with_other_content,
        409,
        "EDOC-NODE-002",
    ),
    Case(
        "idempotency-key-reused-with-other-file",
        idempotency_key_reused_with_other_file,
        409,
        "EDOC-NODE-002",
    ),
    Case("unknown-route", get("/api/v1/inbox//status"), 404, "EDOC-HTTP-404"),
]


# --- metadata fields: SQL metacharacters and huge values -----------------------------------------
def full_metadata(number: int) -> dict[str, Any]:
    """Every metadata field present, with a good value."""
    data = metadata(SENDER, [KON_TUM, LOCAL])
    data.update(
        {
            "from": {
                "id": SENDER,
                "name": "Sở Thông tin và Truyền thông tỉnh Tây Ninh",
                "in_charge": "Giám đốc",
                "address": "Số 1, đường 30/4, Tây Ninh",
                "email": "stttt@tayninh.gov.vn",
                "telephone": "0276 3822 000",
                "fax": "0276 3822 001",
                "website": "https://stttt.tayninh.gov.vn",
            },
            "to": [{"id": KON_TUM, "name": "UBND tỉnh Kon Tum", "address": "Kon Tum"}, LOCAL],
            "document_id": f"{SENDER},2026/11/23,{number}/attack",
            "type": {"code": 1, "detail": 2, "name": "Công văn"},
            "content": "Nội dung tóm tắt",
            "signer": {
                "full_name": "Nguyễn Văn A",
                "position": "Phó Giám đốc",
                "competence": "KT. GIÁM ĐỐC",
            },
            "to_places": ["Lưu: VT"],
            "priority": 1,
            "steering_type": 1,
            "response_for": {
                "org_id": KON_TUM,
                "code": "45/UBND-VP",
                "promulgation_date": "2026-11-20",
                "document_id": f"{KON_TUM},2026/11/20,45/UBND-VP",
            },
            "business": {"type": 0, "reason": "Ban hành mới", "document_id": f"ref-{number}"},
        }
    )
    return data


def put(data: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    changed = copy.deepcopy(data)
    *parents, last = (int(key) if key.isdigit() else key for key in path.split("."))
    target: Any = changed
    for key in parents:
        target = target[key]
    target[last] = value
    return changed


# text fields where SQL metacharacters are legal: (path, what the received document says)
LEGAL: dict[str, Callable[[Document], str]] = {
    "document_id": lambda d: d.document_id,
    "code.number": lambda d: d.code.number,
    "code.notation": lambda d: d.code.notation,
    "promulgation.place": lambda d: d.promulgation.place,
    "type.name": lambda d: d.doc_type.name,
    "subject": lambda d: d.subject,
    "content": lambda d: d.content,
    "signer.full_name": lambda d: d.signer.full_name if d.signer else "",
    "signer.position": lambda d: d.signer.position if d.signer else "",
    "signer.competence": lambda d: d.signer.competence if d.signer else "",
    "to_places.0": lambda d: d.to_places[0],
    "response_for.code": lambda d: d.response_for.code if d.response_for else "",
    "response_for.document_id": lambda d: d.response_for.document_id if d.response_for else "",
    "business.reason": lambda d: d.business.reason,
    "business.document_id": lambda d: d.business.document_id,
    "from.name": lambda d: d.sender.name,
    "from.in_charge": lambda d: d.sender.in_charge,
    "from.address": lambda d: d.sender.address,
    "from.email": lambda d: d.sender.email,
    "from.telephone": lambda d: d.sender.telephone,
    "from.fax": lambda d: d.sender.fax,
    "from.website": lambda d: d.sender.website,
    "to.0.name": lambda d: d.recipients[0].name,
    "to.0.address": lambda d: d.recipients[0].address,
}
SQL_NAME = "'; DROP TABLE attachments;-- \" OR 1=1 (1).pdf"

# fields with a format: SQL metacharacters are refused with the field's code
FORMATTED = {
    "from": "EDOC-ORG-001",
    "from.id": "EDOC-ORG-001",
    "to.1": "EDOC-ORG-001",
    "to.0.id": "EDOC-ORG-001",
    "response_for.org_id": "EDOC-ORG-001",
    "promulgation.date": ENV002,
    "due_date": ENV002,
    "response_for.promulgation_date": ENV002,
    "type.code": ENV002,
    "type.detail": ENV002,
    "priority": ENV002,
    "steering_type": ENV002,
    "business.type": ENV002,
}
NUMBERS = ("type.code", "type.detail", "priority", "steering_type", "business.type")
HUGE_TEXT = "x" * 100_000
ORG_FIELDS = ("from", "from.id", "to.1", "to.0.id", "response_for.org_id")


def metadata_case(case_id: str, path: str, value: Any, code: str) -> Case:
    async def attack(net: Net) -> Reply:
        return await net.send(put(full_metadata(0), path, value))

    return Case(case_id, attack, 400, code)


FIELD_CASES = (
    [metadata_case(f"sql-in-{path}", path, SQL, code) for path, code in FORMATTED.items()]
    + [
        metadata_case(
            f"huge-{path}",
            path,
            10**40 if path in NUMBERS else HUGE_TEXT,
            "EDOC-ORG-001" if path in ORG_FIELDS else ENV002,
        )
        for path in (*LEGAL, *FORMATTED)
    ]
    + [
        metadata_case(
            "huge-to-list", "to", [f"000.00.{n % 90 + 10:02d}.H34" for n in range(1001)], ENV002
        ),
        metadata_case("huge-to-places-list", "to_places", ["Lưu: VT"] * 1001, ENV002),
        metadata_case("negative-priority", "priority", -1, ENV002),
        metadata_case("float-priority", "priority", 1.5, ENV002),
        metadata_case("boolean-priority", "priority", True, ENV002),
        metadata_case("subject-empty", "subject", "", ENV002),
        metadata_case("impossible-date", "promulgation.date", "2026-02-30", ENV002),
        # text edXML cannot carry: refused at the door, not a crash when packing
        Case(
            "subject-control-character",
            send_as(lambda: put(full_metadata(0), "subject", "a\u0001b")),
            400,
            ENV002,
        ),
        Case(
            "subject-nul",
            send_as(lambda: put(full_metadata(0), "subject", "a\u0000b")),
            400,
            ENV002,
        ),
        Case(
            "subject-lone-surrogate",
            send_as(lambda: put(full_metadata(0), "subject", "a\ud800b")),
            400,
            ENV002,
        ),
        Case(
            "subject-noncharacter",
            send_as(lambda: put(full_metadata(0), "subject", "a\uffffb")),
            400,
            ENV002,
        ),
        Case(
            "signer-name-control-character",
            send_as(lambda: put(full_metadata(0), "signer.full_name", "A\u0002")),
            400,
            ENV002,
        ),
        Case(
            "from-name-control-character",
            send_as(lambda: put(full_metadata(0), "from.name", "\u001b[31m")),
            400,
            ENV002,
        ),
    ]
)

CASES = MIME_CASES + NAME_CASES + TOKEN_CASES + STATUS_CASES + FIELD_CASES


# --- fixtures and tests ---------------------------------------------------------------------------
@pytest.fixture
def net(network: LocalNetwork) -> Net:
    return Net(network)


@dataclass(frozen=True)
class Sent:
    code: int
    answer: Any
    value: str


@pytest.fixture(scope="module")
def legal_sent(network: LocalNetwork) -> dict[str, Sent]:
    """One document per legal text field carrying SQL metacharacters, all posted up front
    (they travel side by side), plus one whose attachment name carries them."""

    async def send_all() -> dict[str, Sent]:
        net = Net(network)

        async def one(number: int, path: str) -> tuple[str, Sent]:
            value = f"{SQL} #{number}"
            if path == "document_id":  # after its sender's OrganId, as every DocumentId
                value = f"{SENDER},{value}"
            data = full_metadata(number)
            if path != "attachment":
                data = put(data, path, value)
            files = [file_part(named(SQL_NAME), SQL.encode())] if path == "attachment" else []
            code, answer, _ = await net.send(data, *files)
            return path, Sent(code, answer, SQL_NAME if path == "attachment" else value)

        sent = await asyncio.gather(
            *(one(n, path) for n, path in enumerate([*LEGAL, "attachment"], 1))
        )
        return dict(sent)

    return asyncio.run(send_all())


def params(cases: list[Case]) -> list[Any]:
    return [pytest.param(case, id=case.id) for case in cases]


def test_corpus_is_large_and_ids_unique() -> None:
    ids = [case.id for case in CASES]
    assert len(ids) == len(set(ids))
    assert len(ids) >= 100


@pytest.mark.parametrize("case", params(CASES))
async def test_hostile_upload_is_refused(net: Net, case: Case) -> None:
    try:
        async with asyncio.timeout(20):
            code, body, _ = await case.attack(net)
    except TimeoutError:
        raise AssertionError(f"{case.id}: no answer within 20 s") from None
    assert isinstance(body, dict) and "error" in body, (code, body)
    assert (code, body["error"]["code"]) == (case.status, case.code), body
    report.rejected(f"agency/{case.id}", case.code)


async def _received(agency: Agency, document_id: str) -> Document:
    (item,) = await eventually(partial(arrived, agency, document_id))
    status, package, _ = await agency.request("GET", f"/api/v1/inbox/{item['id']}/package")
    assert status == 200
    return envelope.read_package(io.BytesIO(package)).document


@pytest.mark.parametrize("path", list(LEGAL))
async def test_sql_metacharacters_in_text_arrive_verbatim(
    net: Net, legal_sent: dict[str, Sent], path: str
) -> None:
    sent = legal_sent[path]
    assert sent.code == 202, sent.answer
    for org in (KON_TUM, LOCAL):  # across the hub, and delivered in the province
        document = await _received(net.agency(org), sent.answer["document_id"])
        assert LEGAL[path](document) == sent.value
    assert (await net.sender.document(sent.answer["id"]))["document_id"] == sent.answer[
        "document_id"
    ]
    report.record(hostile_text_delivered_verbatim=1)


async def test_sql_metacharacters_in_attachment_name_arrive_verbatim(
    net: Net, legal_sent: dict[str, Sent]
) -> None:
    sent = legal_sent["attachment"]
    assert sent.code == 202, sent.answer
    recipient = net.agency(KON_TUM)
    (item,) = await eventually(partial(arrived, recipient, sent.answer["document_id"]))
    assert [a["name"] for a in item["attachments"]] == [SQL_NAME]
    status, content, headers = await recipient.request(
        "GET", f"/api/v1/inbox/{item['id']}/attachments/0"
    )
    assert (status, content) == (200, SQL.encode())
    assert quote(SQL_NAME) in headers["Content-Disposition"]
    report.record(hostile_text_delivered_verbatim=1)


async def test_idempotency_key_with_sql_is_just_a_key(net: Net) -> None:
    data = metadata(SENDER, [KON_TUM])
    first = await net.sender.send(data, idempotency_key=SQL)
    again = await net.sender.send(data, idempotency_key=SQL)
    assert first[0] == again[0] == 202, first[1]
    assert first[1]["id"] == again[1]["id"] and again[2].get("X-Edoc-Retry") == "true"


async def test_the_node_still_works_after_the_corpus(net: Net, legal_sent: dict[str, Sent]) -> None:
    """After every case above: an honest document goes through, answers come back, the
    inbox lists what arrived and the statistics add up."""
    code, answer, _ = await net.send(
        metadata(SENDER, [KON_TUM, LOCAL]), file_part(b"ok.txt", b"ok")
    )
    assert code == 202, answer
    for org in (KON_TUM, LOCAL):
        await eventually(partial(arrived, net.agency(org), answer["document_id"]))

    async def answered() -> bool:
        states = {r["state"] for r in (await net.sender.document(answer["id"]))["recipients"]}
        return states == {"01"}

    await eventually(answered)
    inbox = await net.agency(KON_TUM).inbox()
    assert {s.answer["document_id"] for s in legal_sent.values()} <= {
        d["document_id"] for d in inbox
    }
    status, stats, _ = await net.sender.request("GET", "/api/v1/stats")
    assert status == 200 and stats["sent"] >= len(legal_sent)
    status, health, _ = await net.sender.request("GET", "/healthz")
    assert (status, health["status"]) == (200, "ok")
