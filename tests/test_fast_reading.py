"""Fast paths of issue 21 in reading, relaying and at the agency door, each against the
slow path it replaced: the same model, the same verdicts, the same bytes to a reader
(tests/test_fast_paths.py holds the signatures')."""

from __future__ import annotations

import copy
import datetime as dt
import functools
import io
import pathlib
import re
from collections.abc import Iterator
from typing import Any
from unittest import mock

import jsonschema
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from lxml import etree

from edoc import envelope, errors, metadata, model, signing, xmlsafe
from edoc.envelope import parse, read, relay
from edoc.model import TraceHop
from tests.support.pki import (
    SENDER,
    SIGNER,
    Ca,
    sample_metadata,
    signed_root,
    wire,
)

DS = signing.DS


@pytest.fixture(scope="module")
def ca(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Ca]:
    yield Ca.create(tmp_path_factory.mktemp("ca") / "keys")


# --- the model: fields read from an index of children, not by ElementPath ----------------
_NAMES = ["From", "Code", "CodeNumber", "Place"]


@st.composite
def _trees(draw: st.DrawFn, depth: int = 3) -> etree._Element:
    """Small trees of a few edXML names, repeated, nested and with comments between."""
    element = etree.Element(envelope.q(draw(st.sampled_from(_NAMES))))
    element.text = draw(st.sampled_from([None, "", "x"]))
    for _ in range(draw(st.integers(0, 4 if depth else 0))):
        if draw(st.integers(0, 5)) == 0:
            element.append(etree.Comment("c"))
        else:
            element.append(draw(_trees(depth - 1)))
    return element


def _prefixed(path: str) -> str:
    return "/".join(f"edXML:{name}" for name in path.split("/"))


@settings(deadline=None)  # a loaded machine is no failure
@given(tree=_trees())
def test_fields_find_what_elementpath_finds(tree: etree._Element) -> None:
    """The first element at each path (one name or two), every child of a name, and the
    text, as find, findall and the old reader's find-then-text have them."""
    children = parse._children(tree)
    for name in _NAMES:
        found = tree.find(_prefixed(name), envelope.NSMAP)
        assert parse._first(children.get(envelope.q(name))) is found
        assert parse._text(children.get(envelope.q(name))) == (
            "" if found is None or found.text is None else found.text
        )
        assert children.get(envelope.q(name), []) == tree.findall(f"edXML:{name}", envelope.NSMAP)
        texts = parse._texts(tree)
        assert (texts.get(envelope.q(name)) or "") == parse._text(children.get(envelope.q(name)))
        for inner in _NAMES:
            found = tree.find(_prefixed(f"{name}/{inner}"), envelope.NSMAP)
            assert parse._inner(children.get(envelope.q(name)), envelope.q(inner)) is found
            assert parse._inner_text(children.get(envelope.q(name)), envelope.q(inner)) == (
                "" if found is None or found.text is None else found.text
            )


# --- the model: the whole reader against find per field, on changed envelopes -----------
def _found_text(element: etree._Element | None, path: str) -> str:
    found = None if element is None else element.find(_prefixed(path), envelope.NSMAP)
    return "" if found is None or found.text is None else found.text


def _organization_by_find(element: etree._Element) -> model.Organization:
    def text(name: str) -> str:
        return _found_text(element, name)

    return model.Organization(
        text("OrganId"),
        text("OrganName"),
        text("OrganizationInCharge"),
        text("OrganAdd"),
        text("Email"),
        text("Telephone"),
        text("Fax"),
        text("Website"),
    )


def _response_for_by_find(element: etree._Element) -> model.ResponseFor:
    return model.ResponseFor(
        _found_text(element, "OrganId"),
        _found_text(element, "Code"),
        envelope.parse_date(_found_text(element, "PromulgationDate")),
        _found_text(element, "DocumentId"),
    )


def _required_by_find(element: etree._Element, name: str) -> etree._Element:
    found = element.find(_prefixed(name), envelope.NSMAP)
    if found is None:
        raise errors.MissingField(f"{name} is missing")
    return found


def _model_by_find(root: etree._Element) -> model.Message:
    """The reader before issue 21: ElementPath's find for every place and field."""
    header = "edXMLEnvelope/edXMLHeader"
    message = _required_by_find(root, f"{header}/MessageHeader")
    business = _required_by_find(root, f"{header}/TraceHeaderList/Bussiness")
    manifest = _required_by_find(root, "edXMLEnvelope/edXMLBody/edXMLManifest")
    trace = tuple(
        model.TraceHop(
            _found_text(hop, "OrganId"), envelope.parse_timestamp(_found_text(hop, "Timestamp"))
        )
        for hop in root.iterfind(_prefixed(f"{header}/TraceHeaderList/TraceHeader"), envelope.NSMAP)
    )
    text = functools.partial(_found_text, message)

    def deal() -> model.Business:
        return model.Business(
            model.BusinessDocType(int(_found_text(business, "BussinessDocType"))),
            _found_text(business, "BussinessDocReason"),
            _found_text(business, "DocumentId"),
        )

    if message.find(_prefixed("StatusCode"), envelope.NSMAP) is not None:
        if len(manifest) or deal() != model.Business():
            raise errors.InvalidField("a status message carries no attachments and no business")
        return model.StatusUpdate(
            sender=_organization_by_find(_required_by_find(message, "From")),
            response_for=_response_for_by_find(_required_by_find(message, "ResponseFor")),
            code=model.StatusCode(text("StatusCode")),
            timestamp=envelope.parse_timestamp(text("Timestamp")),
            description=text("Description"),
            staff=model.Staff(
                text("StaffInfo/Department"),
                text("StaffInfo/Staff"),
                text("StaffInfo/Email"),
                text("StaffInfo/Mobile"),
            ),
            trace=trace,
        )
    signer = message.find(_prefixed("SignerInfo"), envelope.NSMAP)
    answered = message.find(_prefixed("ResponseFor"), envelope.NSMAP)
    return model.Document(
        sender=_organization_by_find(_required_by_find(message, "From")),
        recipients=tuple(
            _organization_by_find(to) for to in message.findall(_prefixed("To"), envelope.NSMAP)
        ),
        document_id=text("DocumentId"),
        code=model.Code(text("Code/CodeNumber"), text("Code/CodeNotation")),
        promulgation=model.Promulgation(
            text("PromulgationInfo/Place"),
            envelope.parse_date(text("PromulgationInfo/PromulgationDate")),
        ),
        doc_type=model.DocumentType(
            int(text("DocumentType/Type")),
            text("DocumentType/TypeName"),
            int(detail) if (detail := text("DocumentType/TypeDetail")) else None,
        ),
        subject=text("Subject"),
        content=text("Content"),
        signer=None
        if signer is None
        else model.Signer(
            _found_text(signer, "FullName"),
            _found_text(signer, "Position"),
            _found_text(signer, "Competence"),
        ),
        due_date=envelope.parse_date(due) if (due := text("DueDate")) else None,
        to_places=tuple(
            place.text or ""
            for places in message.findall(_prefixed("ToPlaces"), envelope.NSMAP)
            for place in places.findall(_prefixed("Place"), envelope.NSMAP)
        ),
        priority=model.Priority(int(text("OtherInfo/Priority"))),
        steering_type=int(steering) if (steering := text("SteeringType")) else 0,
        response_for=None if answered is None else _response_for_by_find(answered),
        business=deal(),
        attachments=tuple(
            model.Attachment(
                content_id=_found_text(reference, "ContentId"),
                name=_found_text(reference, "AttachmentName"),
                content_type=_found_text(reference, "ContentType"),
                description=_found_text(reference, "Description"),
                size=int(_found_text(reference, "Size")),
                sha256=_found_text(reference, "Sha256"),
            )
            for reference in manifest.findall(_prefixed("Reference"), envelope.NSMAP)
        ),
        trace=trace,
    )


def _model_outcome(read: Any, root: etree._Element) -> object:
    try:
        return read(root)
    except (errors.EdocError, ValueError) as exc:
        return type(exc), str(exc)


_ANSWERED = model.ResponseFor("000.00.00.H34", "12/UBND", dt.date(2026, 11, 2), "x,2026/11/02,12")
_STATUS = model.StatusUpdate(
    sender=model.Organization("000.00.00.H34", "UBND tỉnh Kon Tum"),
    response_for=_ANSWERED,
    code=model.StatusCode.ARRIVED,
    timestamp=dt.datetime(2026, 12, 1, 3, 4, 5, tzinfo=dt.UTC),
    description="đã nhận",
    staff=model.Staff("Văn thư", "Trần B", "b@x.vn", "0900"),
)


def _model_roots() -> list[etree._Element]:
    attachment = model.Attachment("cid:1", "a.pdf", "application/pdf", 12, "ab" * 32, "bản")
    document = metadata.to_document(
        metadata.check(
            sample_metadata(
                to_places=["Sở A", "Sở B"],
                content="nội dung",
                steering_type=2,
                response_for={
                    "org_id": "000.00.00.H34",
                    "code": "12/UBND",
                    "promulgation_date": "2026-11-02",
                    "document_id": "x,2026/11/02,12",
                },
            )
        ),
        (attachment,),
    )
    at = dt.datetime(2026, 12, 1, 3, 4, 5, tzinfo=dt.UTC)
    return [
        envelope.build_envelope(envelope.stamp_origin(message, at))
        for message in (document, _STATUS)
    ]


_MODEL_ROOTS = _model_roots()
_CHANGED_TEXTS = [None, "", "x", "7", "01", "2026/02/30", "2026/01/02", "2026/01/02 03:04:05"]


@settings(max_examples=400, deadline=None)
@given(data=st.data(), which=st.integers(0, 1))
def test_the_model_is_what_find_reads(data: st.DataObject, which: int) -> None:
    """On a document's and a status's envelope with elements removed, repeated, moved to
    the end and their texts changed: the same model, or the same error, as find reads."""
    root = copy.deepcopy(_MODEL_ROOTS[which])
    elements = [e for e in root.iter() if e is not root and e.getparent() is not root]
    for _ in range(data.draw(st.integers(0, 4))):
        element = data.draw(st.sampled_from(elements))
        parent = element.getparent()
        change = data.draw(st.sampled_from(["remove", "repeat", "last", "text"]))
        if parent is None:  # removed with its parent, or repeated and removed
            continue
        if change == "remove":
            parent.remove(element)
        elif change == "repeat":
            twin = copy.deepcopy(element)
            twin.text = data.draw(st.sampled_from(_CHANGED_TEXTS))
            parent.append(twin)
        elif change == "last":
            parent.append(element)
        else:
            element.text = data.draw(st.sampled_from(_CHANGED_TEXTS))
    assert _model_outcome(parse.message_from_envelope, root) == _model_outcome(_model_by_find, root)


def test_the_unchanged_envelopes_read_back() -> None:
    document, status = (parse.message_from_envelope(root) for root in _MODEL_ROOTS)
    assert isinstance(document, model.Document)
    assert document.to_places == ("Sở A", "Sở B") and document.response_for is not None
    assert status == envelope.stamp_origin(
        _STATUS, dt.datetime(2026, 12, 1, 3, 4, 5, tzinfo=dt.UTC)
    )


# --- reading: the envelope's size bounded in C before it is counted in Python -------------
_TEXTS = st.text(alphabet="aé\u1ec7 \t\r\n&<>\"'", max_size=12).map(
    lambda text: (
        text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace('"', "&quot;")
    )
)
_REFS = st.sampled_from(["&#x10FFFF;", "&#65;", "&lt;", "<![CDATA[xé]]>", "\r\n", ""])


@st.composite
def _envelopes(draw: st.DrawFn, depth: int = 3) -> str:
    """Markup of edXML and XML-signature elements, prefixed or not, with attributes,
    character references, CDATA and line ends, the way another sender might write them."""
    prefix, declaration = draw(
        st.sampled_from(
            [
                ("edXML:", f' xmlns:edXML="{envelope.NS}"'),
                ("", f' xmlns="{envelope.NS}"'),
                ("ds:", f' xmlns:ds="{DS}"'),
                ("e:", f' xmlns:e="{envelope.NS}"'),
            ]
        )
    )
    name = prefix + draw(st.sampled_from(["A", "Bussiness", "X509Certificate"]))
    attributes = "".join(
        f' {key}="{draw(_TEXTS)}{draw(_REFS).replace("<![CDATA[xé]]>", "")}"'
        for key in draw(st.lists(st.sampled_from(["Id", "URI", "Algorithm"]), unique=True))
    )
    inner = "".join(
        draw(st.one_of(_TEXTS, _REFS, _envelopes(depth - 1) if depth else _TEXTS))
        for _ in range(draw(st.integers(0, 4)))
    )
    return f"<{name}{declaration if draw(st.booleans()) or depth == 3 else ''}{attributes}>" + (
        f"{inner}</{name}>"
    )


@settings(max_examples=300, deadline=None)
@given(markup=_envelopes())
def test_the_bound_on_envelope_characters_holds(markup: str) -> None:
    """Where the bound in C says an envelope is within the limit, the exact count agrees:
    the bytes, plus a namespace per element and attribute, are never fewer than the
    characters _PackageReader counts."""
    data = f'<?xml version="1.0" encoding="utf-8"?>\n{markup}'.encode()
    root = xmlsafe.parse_whole(data)
    if root is None or read._FOREIGN(root):
        return  # unbalanced prefixes, or the exact count decides
    bound = len(data) + int(read._MARKUP(root)) * read._NAMESPACE_CHARS
    assert read._envelope_chars(root) <= bound
    assert read._MARKUP(root) <= len(data) // 4 + 1  # what spares counting the markup
    exact = read._envelope_chars(root)
    by_size = len(data) + (len(data) // 4 + 1) * read._NAMESPACE_CHARS
    for limit in (exact - 1, exact, bound - 1, bound, by_size - 1, by_size):
        assert read._envelope_within(root, len(data), limit) == (exact <= limit)


# --- relaying: the hop spliced into the bytes received -----------------------------------
HUB_HOP = TraceHop("000.00.00.G22", dt.datetime(2026, 12, 1, 3, 4, 5, tzinfo=dt.UTC))


def _read_with_files(data: bytes) -> tuple[envelope.Package, list[tuple[Any, bytes]]]:
    kept: dict[str, envelope.KeptInMemory] = {}

    def sink(content_id: str, _name: str) -> envelope.Writable:
        kept[content_id] = envelope.KeptInMemory()
        return kept[content_id]

    package = envelope.read_package(data, sink)
    return package, [(a, kept[a.content_id].getvalue()) for a in package.message.attachments]


def _written_anew(data: bytes) -> bytes:
    """The relay this replaced: the hop added to the tree, the package written from it."""
    package, files = _read_with_files(data)
    envelope.add_trace_hop(package.root, HUB_HOP)
    out = io.BytesIO()
    envelope.write_package(package.root, files, out)
    return out.getvalue()


def _meant(text: str | None) -> str | None:
    return text if text and text.strip() else None  # spacing between elements means nothing


def _what_a_reader_sees(data: bytes, ca: Ca) -> tuple[object, ...]:
    """Every element's name, attributes, text and tail (not its prefix, nor the spacing
    between elements), the bodies, and the verdict on the signatures."""
    package, files = _read_with_files(data)
    elements = [
        (e.tag, sorted(e.attrib.items()), _meant(e.text), _meant(e.tail))
        for e in package.root.iter()
    ]
    try:
        verdict: object = signing.verify_package(package, ca.keys.trust(), ca.clock())
    except errors.EdocError as exc:
        verdict = exc.code
    return elements, package.received, files, verdict


@pytest.fixture(scope="module")
def package_with_attachment(ca: Ca, tmp_path_factory: pytest.TempPathFactory) -> bytes:
    attachment = tmp_path_factory.mktemp("files") / "bao-cao.txt"
    attachment.write_bytes("Báo cáo tháng 11 & <phụ lục>".encode() * 40)
    files = envelope.attachments_from_files([attachment])
    return wire(signed_root(ca, personal=ca.keys.identity(SENDER, SIGNER), files=files), files)


_DECLARATIONS = [
    None,  # as written
    b"",
    b'<?xml version="1.0" encoding="UTF-8"?>',
    b"<?xml version='1.0'?>\n",
    b'<?xml version="1.0" encoding="utf-8" standalone="yes"?>\r\n',
    b'<?xml version="1.0" encoding="ISO-8859-1"?>',  # not spliced
]


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    declaration=st.sampled_from(_DECLARATIONS),
    prefix=st.sampled_from([b"edXML:", b"e:", b""]),
    spaced=st.booleans(),
    comment=st.booleans(),
)
def test_a_spliced_relay_reads_as_one_written_anew(
    ca: Ca,
    package_with_attachment: bytes,
    declaration: bytes | None,
    prefix: bytes,
    spaced: bool,
    comment: bool,
) -> None:
    """Whatever prefix, declaration and spacing the sender wrote, a reader of the hub's
    bytes sees what it saw when the hub wrote them from its tree; and the bytes are
    spliced exactly where that is certain."""
    data = package_with_attachment
    if declaration is not None:
        data = declaration + data[data.index(b"?>") + 2 :]
    if prefix != b"edXML:":
        declared = b"xmlns:" + prefix[:-1] + b"=" if prefix else b"xmlns="
        data = data.replace(b"xmlns:edXML=", declared).replace(b"edXML:", prefix)
    if spaced:
        data = re.sub(rb"><(?!/)", b">\n  <", data)
    if comment:
        data = data.replace(b"<ds:SignatureValue>", b"<!-- x --><ds:SignatureValue>", 1)
    package, files = _read_with_files(data)
    out = envelope.relayed(data, package.root, files, HUB_HOP)
    assert _what_a_reader_sees(out, ca) == _what_a_reader_sees(_written_anew(data), ca)
    latin1 = declaration is not None and b"ISO" in declaration
    spliced = relay._spliced(data, _read_with_files(data)[0].root, HUB_HOP)
    assert (spliced is not None) == (not comment and not latin1)
    assert spliced in (None, out)


def test_the_relayed_package_verifies_with_the_hop_where_it_was(
    ca: Ca, package_with_attachment: bytes
) -> None:
    package, files = _read_with_files(package_with_attachment)
    out = envelope.relayed(package_with_attachment, package.root, files, HUB_HOP)
    assert out.startswith(package_with_attachment[: package_with_attachment.index(b"<edXML:Buss")])
    verified = signing.verify_package(envelope.read_package(out), ca.keys.trust(), ca.clock())
    assert verified.relay_hops == (HUB_HOP.__class__(HUB_HOP.org_id, HUB_HOP.timestamp),)


def test_xmlsec1_verifies_a_spliced_relay(
    ca: Ca, package_with_attachment: bytes, tmp_path: pathlib.Path
) -> None:
    from tests.test_xmlsec1 import XMLSEC1, xmlsec1_verify

    if XMLSEC1 is None:
        pytest.skip("xmlsec1 not installed")
    package, files = _read_with_files(package_with_attachment)
    path = tmp_path / "relayed.edxml"
    path.write_bytes(envelope.relayed(package_with_attachment, package.root, files, HUB_HOP))
    for number in (1, 2):
        result = xmlsec1_verify(ca, path, number)
        assert result.returncode == 0, result.stderr


def test_a_prefix_declared_on_bussiness_itself_is_written_anew(
    ca: Ca, package_with_attachment: bytes
) -> None:
    """The hop goes before Bussiness, where Bussiness's own prefix is not yet declared."""
    data = package_with_attachment.replace(
        b"<edXML:Bussiness ", f'<b:Bussiness xmlns:b="{envelope.NS}" '.encode()
    ).replace(b"</edXML:Bussiness>", b"</b:Bussiness>")
    package, files = _read_with_files(data)
    assert relay._spliced(data, package.root, HUB_HOP) is None
    out = envelope.relayed(data, package.root, files, HUB_HOP)
    assert _what_a_reader_sees(out, ca) == _what_a_reader_sees(_written_anew(data), ca)


@pytest.mark.parametrize(
    ("data", "markup_only"),
    [
        (b"<a>x?y!</a>", True),
        (b" \n<a/>", True),
        (b"<?xml version='1.0'?><a>?</a>", True),
        (b'<?xml version="1.0" encoding="UTF-8" standalone="no"?>\r\n<a/>', True),
        (b"<a><!-- c --></a>", False),
        (b"<a><?pi?></a>", False),
        (b"<?xml version='1.0'?><a/><?x?>", False),
        (b"<a><![CDATA[x]]></a>", False),
        (b"<!DOCTYPE a><a/>", False),
        (b"<?xml version='1.0' encoding='utf-16'?><a/>", False),
        (b"\xef\xbb\xbf<a/>", False),
    ],
)
def test_what_is_spliced_is_markup_only(data: bytes, markup_only: bool) -> None:
    assert relay._utf8_markup_only(data) is markup_only


# --- metadata at the agency door: the schema's references inlined once -------------------
_EDGES = ["", "000.00.12.H53", "000.00.00.H53", "000.00.12.h53", "2026-11-23", "2026-1-2"]
_JSON_VALUES = st.recursive(
    st.one_of(
        st.none(),
        st.booleans(),
        st.sampled_from([-1, 0, 1, 4, 5, 2**31 - 1, 2**31, 1.5]),
        st.sampled_from([*_EDGES, "x" * 500, "x" * 501, "x" * 2001, "é"]),
    ),
    lambda inner: st.one_of(
        st.lists(inner, max_size=3),
        st.dictionaries(st.sampled_from(["id", "name", "x", "full_name", "type"]), inner),
    ),
    max_leaves=6,
)
_NEAR_THE_RULES = [*_EDGES, "x" * 500, "x" * 501, "x" * 2000, "x" * 2001, -1, 4, 5, 2**31]
_FIELD_VALUES = st.one_of(st.sampled_from(_NEAR_THE_RULES), _JSON_VALUES)


def _places(value: Any) -> list[tuple[Any, Any]]:
    """Every (holder, key) in a JSON value, the value itself's fields first."""
    keys = list(value) if isinstance(value, dict) else list(range(len(value)))
    places = [(value, key) for key in keys]
    for key in keys:
        if isinstance(value[key], dict | list):
            places += _places(value[key])
    return places


def _verdict(check: Any, data: Any) -> object:
    try:
        return check(data)
    except errors.EdocError as exc:
        return exc.code, str(exc)


@settings(max_examples=500, deadline=None)
@given(data=st.data())
def test_metadata_verdicts_are_the_referencing_schemas(data: st.DataObject) -> None:
    """Fields dropped, replaced or added anywhere: the same metadata accepted, or the same
    error (code and message, so the same best match) as with the schema's own references."""
    value: Any = copy.deepcopy(sample_metadata())
    for _ in range(data.draw(st.integers(1, 3))):
        holder, key = data.draw(st.sampled_from(_places(value) or [(value, "extra")]))
        change = data.draw(st.sampled_from(["replace", "drop", "add"]))
        if change == "drop" and isinstance(holder, dict):
            del holder[key]
        elif change == "add" and isinstance(holder, dict):
            holder[data.draw(st.sampled_from(["extra", "to", "signer", "response_for", "id"]))] = (
                data.draw(_FIELD_VALUES)
            )
        else:
            holder[key] = data.draw(_FIELD_VALUES)
    referencing = jsonschema.Draft202012Validator(metadata._schema())
    with mock.patch.object(metadata, "_validator", return_value=referencing):
        expected = _verdict(metadata.check, copy.deepcopy(value))
    assert _verdict(metadata.check, copy.deepcopy(value)) == expected


def test_a_padded_timestamp_reads_and_is_not_remembered() -> None:
    from edoc.envelope import dates

    held = dates._remembered_timestamp.cache_info().currsize
    padded = envelope.parse_timestamp("2026/12/01" + " " * 1000 + "10:11:12")
    assert dates._remembered_timestamp.cache_info().currsize == held
    assert padded == envelope.parse_timestamp("2026/12/01 10:11:12")
    with pytest.raises(errors.InvalidField):
        envelope.parse_timestamp("2026/13/01 10:11:12")
