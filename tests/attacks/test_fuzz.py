"""Property-based fuzzing: whatever comes in, only edoc's own errors come out.

* the hardened XML parser (``edoc.xmlsafe``) and the package reader
  (``edoc.envelope.read_package``), then the verifier, on random and mutated bytes:
  nothing but an :class:`edoc.errors.EdocError` may escape, and nothing may hang;
* the agency API of a real node (``POST /api/v1/documents`` with random and mutated
  multipart bodies and metadata JSON, statuses, query values): never a 5xx, never a
  hang, every refusal a 4xx with a JSON error body carrying an ``EDOC-…`` code.

``make test`` runs a few examples of each, derandomized (the same inputs every run);
``make test-reliability`` runs the ``reliability``-marked variants with many more.
"""

from __future__ import annotations

import contextlib
import http.client
import io
import json
import re
import signal
import string
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlsplit

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from lxml import etree

from edoc import envelope, errors, signing, xmlsafe
from tests.reliability import report
from tests.support.envelope import MemorySink, load_sample_metadata, pack
from tests.support.network import LocalNetwork, metadata
from tests.support.pki import SENDER, Ca, signed_root, wire

KON_TUM, LOCAL = "000.00.00.H34", "000.00.07.H53"
FAST, LONG = 40, 2000  # examples per property: make test, make test-reliability
HANG = 10.0  # seconds one input may take before it counts as a hang


def text(max_size: int = 60) -> st.SearchStrategy[str]:
    return st.text(max_size=max_size)


# --- running a property --------------------------------------------------------------------------
class Hang(Exception):
    pass


@contextlib.contextmanager
def deadline(seconds: float = HANG) -> Iterator[None]:
    """Raise Hang in the main thread if the block runs longer than ``seconds``."""

    def expired(_signum: int, _frame: object) -> None:
        raise Hang(f"no answer within {seconds} s")

    previous = signal.signal(signal.SIGALRM, expired)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def fuzz(examples: int, strategy: st.SearchStrategy[Any], check: Callable[[Any], None]) -> None:
    """Run ``check`` on ``examples`` inputs drawn from ``strategy``; record how many ran."""
    ran = 0

    @settings(
        max_examples=examples,
        derandomize=examples <= FAST,  # the fast run is the same every time
        deadline=None,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
        print_blob=True,
    )
    @given(strategy)
    def prop(value: Any) -> None:
        nonlocal ran
        ran += 1
        with deadline():
            check(value)

    try:
        prop()
    finally:
        report.record(fuzz_inputs=ran)


# --- byte-level mutations ----------------------------------------------------------------------
@st.composite
def mutated(draw: st.DrawFn, seed: bytes) -> bytes:
    """``seed`` with a few random edits: flips, insertions of bytes or markup, cuts, splices."""
    data = bytearray(seed)
    for _ in range(draw(st.integers(1, 4))):
        kind = draw(st.sampled_from(["flip", "insert", "markup", "delete", "cut", "duplicate"]))
        at = draw(st.integers(0, max(len(data) - 1, 0)))
        if kind == "flip" and data:
            data[at] ^= 1 << draw(st.integers(0, 7))
        elif kind == "insert":
            data[at:at] = draw(st.binary(min_size=1, max_size=8))
        elif kind == "markup":
            data[at:at] = draw(st.sampled_from(MARKUP))
        elif kind == "delete":
            del data[at : at + draw(st.integers(1, 64))]
        elif kind == "cut":
            del data[at:]
        elif data:
            end = min(len(data), at + draw(st.integers(1, 256)))
            data[at:at] = data[at:end]
    return bytes(data)


MARKUP = [
    b"<",
    b">",
    b"&",
    b"&amp;",
    b"&#0;",
    b"&#xD800;",
    b"]]>",
    b"<![CDATA[",
    b"<!--",
    b"-->",
    b"<?x?>",
    b"<!DOCTYPE x>",
    b'<!ENTITY e "x">',
    b"&e;",
    b'xmlns="urn:x"',
    b'xmlns:edXML="urn:other"',
    b' Id="edoc-MessageHeader"',
    b"</edXML:edXML>",
    b"<edXML:Attachment>",
    b"<ds:Signature/>",
    b"\xff\xfe",
    b"\x00",
    "\u202e".encode(),
    b"=",
    b"====",
]

SMALL = xmlsafe.Limits(max_bytes=64 * 1024, max_depth=12)
PACKAGE_LIMITS = envelope.PackageLimits(envelope=SMALL, attachments_bytes=64 * 1024)
PACKED = pack(
    load_sample_metadata(), {"a.txt": b"first attachment\n", "b.txt": "tệp thứ hai".encode()}
)


def only_edoc_errors(call: Callable[[], object]) -> None:
    try:
        call()
    except errors.EdocError as exc:
        assert re.fullmatch(r"EDOC-[A-Z]+-\d{3}", exc.code), exc.code


# --- the parser and the package reader -----------------------------------------------------------
XML_SEEDS = [
    PACKED.wire,
    b'<?xml version="1.0"?><a xmlns="urn:x"><b c="d">text</b><!-- c --><b/></a>',
    b'<!DOCTYPE a [<!ENTITY x "y">]><a>&x;</a>',
    b"<a>" * 20 + b"</a>" * 20,
]
xml_inputs = st.one_of(
    st.binary(max_size=2048),
    st.sampled_from(XML_SEEDS).flatmap(mutated),
    st.text(max_size=300).map(lambda t: t.encode("utf-8", "surrogatepass")),
)


def check_parse(data: bytes) -> None:
    only_edoc_errors(lambda: xmlsafe.parse(data, SMALL))
    only_edoc_errors(
        lambda: xmlsafe.parse_events(
            [data[i : i + 7] for i in range(0, len(data), 7)], etree.TreeBuilder(), SMALL
        )
    )


def _outcome(source: io.BytesIO | bytes) -> tuple[object, ...]:
    """What reading gives: the error's code, or the envelope and the attachments. The
    envelope as its names (namespace and local name), attributes and text: lxml's tree
    builder, under the event parser, may name a namespace by another prefix declared
    for it (the C parse keeps the one written), which says nothing."""
    sink = MemorySink()
    try:
        package = envelope.read_package(source, sink, limits=PACKAGE_LIMITS)
    except errors.EdocError as exc:
        assert re.fullmatch(r"EDOC-[A-Z]+-\d{3}", exc.code), exc.code
        return (exc.code,)
    envelope_content = [(e.tag, dict(e.attrib), e.text, e.tail) for e in package.root.iter()]
    return envelope_content, package.received, sink.files


def check_read_package(data: bytes) -> None:
    """The one parse in C of a package in memory accepts exactly what the event parser
    accepts, and reads the same from it."""
    assert _outcome(data) == _outcome(io.BytesIO(data))


def test_xmlsafe_parse_fuzz() -> None:
    fuzz(FAST * 5, xml_inputs, check_parse)


def test_read_package_fuzz() -> None:
    fuzz(FAST * 5, st.sampled_from([PACKED.wire]).flatmap(mutated), check_read_package)


@pytest.mark.reliability
def test_xmlsafe_parse_fuzz_long() -> None:
    fuzz(LONG * 5, xml_inputs, check_parse)


@pytest.mark.reliability
def test_read_package_fuzz_long() -> None:
    fuzz(LONG * 5, st.sampled_from([PACKED.wire]).flatmap(mutated), check_read_package)


# --- reading and verifying signed packages --------------------------------------------------------
@dataclass(frozen=True)
class Signed:
    ca: Ca
    wire: bytes


@pytest.fixture(scope="module")
def signed(tmp_path_factory: pytest.TempPathFactory) -> Signed:
    ca = Ca.create(tmp_path_factory.mktemp("ca") / "keys")
    root = signed_root(ca, personal=ca.keys.identity(SENDER, "Nguyễn Văn A"))
    return Signed(ca, wire(root))


def signature_mutations(seed: bytes) -> st.SearchStrategy[bytes]:
    """Mutations aimed at the signatures: edits inside ds:Signature, or anywhere."""
    start = seed.index(b"<ds:Signature")
    end = seed.rindex(b"</ds:Signature>") + len(b"</ds:Signature>")
    head, middle, tail = seed[:start], seed[start:end], seed[end:]
    inside = mutated(middle).map(lambda m: head + m + tail)
    return st.one_of(inside, mutated(seed))


def check_verify(signed: Signed, data: bytes) -> None:
    def receive() -> None:
        package = envelope.read_package(io.BytesIO(data), limits=PACKAGE_LIMITS)
        signing.verify_package(package, signed.ca.keys.trust(), signed.ca.clock())

    only_edoc_errors(receive)


def test_verify_fuzz(signed: Signed) -> None:
    fuzz(FAST, signature_mutations(signed.wire), lambda data: check_verify(signed, data))


@pytest.mark.reliability
def test_verify_fuzz_long(signed: Signed) -> None:
    fuzz(LONG, signature_mutations(signed.wire), lambda data: check_verify(signed, data))


# --- the agency API of a real node ---------------------------------------------------------------
BOUNDARY = "fuzz-boundary"


@dataclass(frozen=True)
class Node:
    host: str
    port: int
    token: str
    local_token: str
    items: tuple[str, ...] = ()  # inbox ids of the agency whose token this is


@pytest.fixture(scope="module")
def node(network: LocalNetwork) -> Node:
    url = urlsplit(network.agency(SENDER).base_url)
    assert url.hostname is not None and url.port is not None
    return Node(url.hostname, url.port, network.agency(SENDER).token, network.agency(LOCAL).token)


def call(
    node: Node, method: str, path: str, body: bytes = b"", headers: dict[str, str] | None = None
) -> tuple[int, bytes, str]:
    connection = http.client.HTTPConnection(node.host, node.port, timeout=HANG)
    try:
        connection.request(
            method,
            path,
            body=body,
            headers={"Authorization": f"Bearer {node.token}", **(headers or {})},
        )
        response = connection.getresponse()
        return response.status, response.read(), response.getheader("Content-Type") or ""
    finally:
        connection.close()


def check_answer(status: int, body: bytes, content_type: str) -> None:
    """Never a 5xx; a refusal is a 4xx with a JSON error body carrying its EDOC code."""
    assert status < 500, (status, body[:300])
    if status >= 400:
        assert content_type.startswith("application/json"), (status, content_type, body[:300])
        code = json.loads(body)["error"]["code"]
        assert re.fullmatch(r"EDOC-[A-Z]+-\d{3}", code), code


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | text(),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(text(12), children, max_size=4)
    ),
    max_leaves=12,
)
FIELDS = [
    "from",
    "to",
    "document_id",
    "code",
    "code.number",
    "promulgation",
    "promulgation.date",
    "type",
    "type.code",
    "subject",
    "content",
    "signer",
    "due_date",
    "to_places",
    "priority",
    "steering_type",
    "response_for",
    "business",
    "business.type",
    "extra",
]


@st.composite
def metadata_json(draw: st.DrawFn) -> bytes:
    """Good metadata with a few fields replaced by random JSON, dropped, or left alone."""
    number = str(draw(st.integers(1, 10**9)))
    data: dict[str, Any] = metadata(
        SENDER,
        draw(st.sampled_from([[KON_TUM], [LOCAL]])),
        code={"number": number, "notation": "FUZZ"},
        subject=f"V/v thử nghiệm {number}",
    )
    for path in draw(st.lists(st.sampled_from(FIELDS), max_size=3)):
        *parents, last = path.split(".")
        target: Any = data
        for key in parents:
            target = target.get(key) if isinstance(target, dict) else None
        if isinstance(target, dict):
            if draw(st.booleans()):
                target[last] = draw(json_values)
            else:
                target.pop(last, None)
    raw = json.dumps(data, ensure_ascii=draw(st.booleans())).encode("utf-8", "surrogatepass")
    return draw(st.one_of(st.just(raw), mutated(raw)))


def header_text() -> st.SearchStrategy[str]:
    alphabet = st.characters(
        min_codepoint=1,
        max_codepoint=0x2FF,
        blacklist_characters='"',
    )
    return st.text(alphabet, max_size=40)


HOSTILE_NAMES = ["../x", "..%2Fx", "/etc/passwd", "a%00b", ".", "", "C:x", "x" * 300, "%FF"]


@st.composite
def file_part(draw: st.DrawFn) -> bytes:
    name = draw(
        st.one_of(
            st.sampled_from(HOSTILE_NAMES),
            header_text(),
            text(30).map(lambda t: quote(t, safe="")),
        )
    )
    headers = [f'Content-Disposition: form-data; name="file"; filename="{name}"']
    if draw(st.booleans()):
        headers.append(f"Content-Type: {draw(header_text())}")
    if draw(st.booleans()):  # one random header line instead
        line = draw(header_text())
        headers = [line]
    body = draw(st.binary(max_size=512))
    return "\r\n".join(headers).encode("utf-8", "surrogatepass") + b"\r\n\r\n" + body


@st.composite
def multipart_body(draw: st.DrawFn) -> tuple[bytes, str]:
    parts = []
    if draw(st.integers(0, 9)):  # mostly with a metadata part
        meta = draw(metadata_json())
        parts.append(
            b'Content-Disposition: form-data; name="metadata"\r\n'
            b"Content-Type: application/json\r\n\r\n" + meta
        )
    parts += draw(st.lists(file_part(), max_size=3))
    parts = draw(st.permutations(parts))
    boundary = BOUNDARY.encode()
    body = b"".join(b"--" + boundary + b"\r\n" + part + b"\r\n" for part in parts)
    body += b"--" + boundary + b"--\r\n"
    content_type = draw(
        st.sampled_from(
            [
                f"multipart/form-data; boundary={BOUNDARY}",
                f"multipart/form-data; boundary={BOUNDARY}",
                f"multipart/form-data; boundary={BOUNDARY}",
                "multipart/form-data; boundary=other",
                "multipart/form-data",
                "multipart/mixed; boundary=" + BOUNDARY,
                "application/json",
                "text/plain",
            ]
        )
    )
    if draw(st.integers(0, 3)) == 0:
        body = draw(mutated(body))
    return body, content_type


def check_upload(node: Node, request: tuple[bytes, str]) -> None:
    body, content_type = request
    status, answer, kind = call(
        node, "POST", "/api/v1/documents", body, {"Content-Type": content_type}
    )
    check_answer(status, answer, kind)


def test_agency_upload_fuzz(node: Node) -> None:
    fuzz(FAST, multipart_body(), lambda request: check_upload(node, request))


@pytest.mark.reliability
def test_agency_upload_fuzz_long(node: Node) -> None:
    fuzz(LONG, multipart_body(), lambda request: check_upload(node, request))


# --- statuses, queries and headers ---------------------------------------------------------------
def status_code_values() -> st.SearchStrategy[Any]:
    scalars = st.sampled_from(["01", "02", "03", "04", "05", "06", "07", "15", "3"]) | json_values
    return scalars


status_bodies = st.one_of(
    st.fixed_dictionaries(
        {"code": status_code_values()},
        optional={"description": json_values, "staff": json_values},
    ).map(lambda d: json.dumps(d).encode()),
    json_values.map(lambda v: json.dumps(v).encode()),
    st.binary(max_size=200),
)


def batch_bodies(items: tuple[str, ...]) -> st.SearchStrategy[bytes]:
    """Bodies for the batch door: entries aimed at the node's inbox items or at nothing,
    the list itself malformed, or no JSON at all."""
    ids = st.sampled_from([int(i) for i in items]) | st.integers(-5, 2**64) | json_values
    entry = st.fixed_dictionaries(
        {"id": ids, "code": status_code_values()},
        optional={"description": json_values, "staff": json_values},
    )
    return st.one_of(
        st.lists(entry, max_size=6).map(lambda e: json.dumps({"statuses": e}).encode()),
        json_values.map(lambda v: json.dumps({"statuses": v}).encode()),
        status_bodies,
    )


PATH_SEGMENT = st.one_of(
    st.integers(-5, 10**20).map(str),
    st.text(string.printable, max_size=20).map(lambda t: quote(t, safe="")),
)


@st.composite
def agency_request(
    draw: st.DrawFn, items: tuple[str, ...]
) -> tuple[str, str, bytes, dict[str, str]]:
    segment = draw(st.sampled_from(items) | PATH_SEGMENT)
    choice = draw(st.integers(0, 6))
    query = quote(draw(st.text(string.printable, max_size=30)), safe="")
    if choice == 0:
        return "POST", f"/api/v1/inbox/{segment}/status", draw(status_bodies), {}
    if choice == 6:
        return "POST", "/api/v1/inbox/statuses", draw(batch_bodies(items)), {}
    if choice == 1:
        return "GET", f"/api/v1/inbox?since={query}&limit={segment}", b"", {}
    if choice == 2:
        return "GET", f"/api/v1/inbox?org={query}", b"", {}
    if choice == 3:
        return "GET", f"/api/v1/documents/{segment}", b"", {}
    if choice == 4:
        path = f"/api/v1/inbox/{segment}/attachments/{draw(PATH_SEGMENT)}"
        return "GET", path, b"", {}
    token = draw(st.text(string.ascii_letters + string.punctuation + " ", max_size=60))
    return "GET", "/api/v1/inbox", b"", {"Authorization": f"Bearer {token}"}


def check_request(node: Node, request: tuple[str, str, bytes, dict[str, str]]) -> None:
    method, path, body, headers = request
    status, answer, kind = call(node, method, path, body, headers)
    check_answer(status, answer, kind)


@pytest.fixture(scope="module")
def answered_node(node: Node) -> Node:
    """The node, with something in LOCAL's inbox for the status fuzzing to aim at."""
    body = json.dumps(metadata(SENDER, [LOCAL])).encode()
    form = (
        f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="metadata"\r\n\r\n'.encode()
        + body
        + f"\r\n--{BOUNDARY}--\r\n".encode()
    )
    status, answer, _ = call(
        node,
        "POST",
        "/api/v1/documents",
        form,
        {"Content-Type": f"multipart/form-data; boundary={BOUNDARY}"},
    )
    assert status == 202, answer
    local = Node(node.host, node.port, node.local_token, node.local_token)
    document_id = json.loads(answer)["document_id"]
    for _ in range(100):
        status, raw, _ = call(local, "GET", "/api/v1/inbox")
        items = [
            str(d["id"]) for d in json.loads(raw)["documents"] if d["document_id"] == document_id
        ]
        if items:
            return Node(local.host, local.port, local.token, local.token, tuple(items))
        time.sleep(0.1)
    raise AssertionError("the document did not reach LOCAL's inbox")


def test_agency_requests_fuzz(answered_node: Node) -> None:
    fuzz(
        FAST,
        agency_request(answered_node.items),
        lambda request: check_request(answered_node, request),
    )


@pytest.mark.reliability
def test_agency_requests_fuzz_long(answered_node: Node) -> None:
    fuzz(
        LONG,
        agency_request(answered_node.items),
        lambda request: check_request(answered_node, request),
    )


def test_fuzz_checks_catch_what_they_should() -> None:
    """The oracles themselves: a 500, a non-JSON refusal and a foreign exception fail."""
    with pytest.raises(AssertionError):
        check_answer(500, b'{"error": {"code": "EDOC-000"}}', "application/json")
    with pytest.raises(AssertionError):
        check_answer(413, b"Maximum request body size exceeded", "text/plain")
    check_answer(400, b'{"error": {"code": "EDOC-IN-003", "message": ""}}', "application/json")
    with pytest.raises(ZeroDivisionError):
        only_edoc_errors(lambda: 1 / 0)
    with pytest.raises(Hang), deadline(0.2):
        signal.pause()
