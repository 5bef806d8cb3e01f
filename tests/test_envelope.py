"""edXML packages: model → wire bytes → model, attachments streamed both ways."""

from __future__ import annotations

import base64
import binascii
import dataclasses
import datetime as dt
import hashlib
import io
import os
import string
import unicodedata
from copy import deepcopy
from pathlib import Path
from typing import IO, Any, cast

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from lxml import etree

from edoc import envelope, errors
from edoc.envelope import read as envelope_read
from edoc.model import Document, TraceHop
from tests.support.envelope import SENT_AT, MemorySink, Packed, pack, read

ED = {"edXML": envelope.NS}
VIETNAMESE = "ăâđêôơưạảãáàẠĐỹ"
ALL_TONES = "Ủy ban nhân dân tỉnh Tây Ninh: hỏa tốc, thượng khẩn — ĐƯỜNG Ở Ấp Ẵ Ỵ ỹ ữ ự ằ ẫ"


def _round_trip(packed: Packed) -> tuple[envelope.Package, MemorySink]:
    sink = MemorySink()
    package = envelope.read_package(io.BytesIO(packed.wire), sink)
    return package, sink


# --- the sample ------------------------------------------------------------------------
def test_sample_round_trip(sample_package: Packed) -> None:
    package, sink = _round_trip(sample_package)
    assert package.document == sample_package.document
    content = "Kế hoạch chuyển đổi số.\n".encode()
    assert sink.files == {"cid:1": content}
    assert sink.names == {"cid:1": "ke-hoach.txt"}
    (received,) = package.received
    assert received == envelope.ReceivedAttachment(
        "cid:1", "ke-hoach.txt", "text/plain", "", len(content), hashlib.sha256(content).hexdigest()
    )


def test_packed_envelope_is_schema_valid(sample_package: Packed) -> None:
    envelope.validate(sample_package.root)
    package = read(sample_package.wire)
    envelope.validate(package.root)  # the tree read back, attachment headers included
    envelope.validate(envelope.envelope_only(package.root))


def test_validate_refuses_an_invalid_tree(sample_package: Packed) -> None:
    root = deepcopy(sample_package.root)
    subject = envelope.message_header(root).find("edXML:Subject", ED)
    assert subject is not None
    subject.getparent().remove(subject)
    with pytest.raises(errors.SchemaViolation) as info:
        envelope.validate(root)
    assert info.value.code == "EDOC-XML-007"


def test_wire_form_shape(sample_package: Packed) -> None:
    """The real axis form: one XML document, attachment bodies in base64 inside it."""
    root = etree.fromstring(sample_package.wire)
    assert root.tag == envelope.q("edXML")
    assert [child.tag for child in root] == [
        envelope.q("edXMLEnvelope"),
        envelope.q("AttachmentEncoded"),
    ]
    body = root.find("edXML:AttachmentEncoded/edXML:Attachment/edXML:ContentTransferEncoded", ED)
    assert body is not None
    assert body.text == base64.b64encode("Kế hoạch chuyển đổi số.\n".encode()).decode()


def test_package_root_holds_no_attachment_bodies(sample_package: Packed) -> None:
    package = read(sample_package.wire)
    body = package.root.find(
        "edXML:AttachmentEncoded/edXML:Attachment/edXML:ContentTransferEncoded", ED
    )
    assert body is not None
    assert not body.text


def test_envelope_only_drops_attachments(sample_package: Packed) -> None:
    package = read(sample_package.wire)
    only = envelope.envelope_only(package.root)
    assert [child.tag for child in only] == [envelope.q("edXMLEnvelope")]
    assert envelope.document_from_envelope(only) == sample_package.document


def test_no_attachments(sample_metadata: dict[str, Any]) -> None:
    packed = pack(sample_metadata)
    assert b"AttachmentEncoded" not in packed.wire
    package, sink = _round_trip(packed)
    assert package.document == packed.document
    assert package.received == ()
    assert sink.files == {}


@pytest.mark.parametrize(
    "size",
    [0, 1, 2, 3, 4, envelope.BASE64_LINE - 1, envelope.BASE64_LINE, envelope.BASE64_LINE + 1],
)
def test_attachment_sizes(sample_metadata: dict[str, Any], size: int) -> None:
    content = os.urandom(size)
    packed = pack(sample_metadata, {"data.bin": content})
    package, sink = _round_trip(packed)
    assert sink.files == {"cid:1": content}
    (attachment,) = package.document.attachments
    assert attachment.size == size
    assert attachment.sha256 == hashlib.sha256(content).hexdigest()
    assert attachment.content_type == "application/octet-stream"


class _RecordingOut(io.RawIOBase):
    """An output stream that remembers the size of every write it is handed."""

    def __init__(self) -> None:
        super().__init__()
        self.sizes: list[int] = []

    def writable(self) -> bool:
        return True

    def write(self, data: Any, /) -> int:
        size = len(data)
        self.sizes.append(size)
        return size


def test_write_package_streams_to_out(tmp_path: Path, sample_metadata: dict[str, Any]) -> None:
    """Attachment bytes are handed on as they are encoded, not gathered in memory first."""
    big = tmp_path / "big.bin"
    big.write_bytes(os.urandom(8 * 1024 * 1024))
    attached = envelope.attachments_from_files([big])
    document = pack(sample_metadata).document
    root = envelope.build_envelope(dataclasses.replace(document, attachments=(attached[0][0],)))
    out = _RecordingOut()
    envelope.write_package(root, attached, cast(IO[bytes], out))
    assert sum(out.sizes) > 8 * 1024 * 1024 * 4 // 3
    assert max(out.sizes) <= 256 * 1024


def test_read_package_streams_to_the_sink(sample_metadata: dict[str, Any]) -> None:
    content = os.urandom(4 * 1024 * 1024)
    packed = pack(sample_metadata, {"big.bin": content})
    sizes: list[int] = []
    digest = hashlib.sha256()

    class Out:
        def write(self, data: bytes, /) -> None:
            sizes.append(len(data))
            digest.update(data)

        def close(self) -> None:
            pass

    envelope.read_package(io.BytesIO(packed.wire), lambda _cid, _name: Out())
    assert digest.hexdigest() == hashlib.sha256(content).hexdigest()
    assert len(sizes) > 10
    assert max(sizes) <= 256 * 1024


def test_a_package_file_reads_as_its_bytes_do_and_a_large_one_streams(
    tmp_path: Path, sample_metadata: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A package file up to WHOLE_FROM_FILE is read whole (one parse in C), a larger one
    streamed in chunks: the same package either way, and a broken file refused alike."""
    content = os.urandom(300_000)  # too large to come inside a collect answer
    packed = pack(sample_metadata, {"scan.pdf": content})
    path = tmp_path / "package.edxml"
    path.write_bytes(packed.wire)

    def read_from(source: Path | bytes) -> tuple[object, ...]:
        kept: dict[str, envelope.KeptInMemory] = {}

        def sink(content_id: str, _name: str) -> envelope.Writable:
            kept[content_id] = envelope.KeptInMemory()
            return kept[content_id]

        package = envelope.read_package(source, sink)
        return package.message, package.received, {k: v.getvalue() for k, v in kept.items()}

    parsed_whole: list[bytes] = []
    one_parse = envelope_read._read_whole

    def counted(data: bytes, *rest: Any) -> Any:
        parsed_whole.append(data)
        return one_parse(data, *rest)

    monkeypatch.setattr(envelope_read, "_read_whole", counted)
    whole = read_from(path)
    assert parsed_whole == [packed.wire]  # the file, read whole
    assert whole == read_from(packed.wire)
    monkeypatch.setattr(envelope_read, "WHOLE_FROM_FILE", 1024)
    assert read_from(path) == whole
    assert len(parsed_whole) == 2  # streamed: no whole parse for the file this time
    path.write_bytes(packed.wire[:-100])  # cut short
    codes = set()
    for threshold in (1024, 1024 * 1024):
        monkeypatch.setattr(envelope_read, "WHOLE_FROM_FILE", threshold)
        with pytest.raises(errors.EdocError) as refused:
            read_from(path)
        codes.add(refused.value.code)
    assert len(codes) == 1


def test_several_attachments_bytes_identical(sample_metadata: dict[str, Any]) -> None:
    files = {
        "quyết-định.pdf": os.urandom(300_000),  # several base64 writes and parser chunks
        "phụ lục.docx": os.urandom(1000),
        "danh sách.txt": "Danh sách đơn vị: Sở Tư pháp, Sở Nội vụ\n".encode(),
    }
    packed = pack(sample_metadata, files)
    package, sink = _round_trip(packed)
    assert package.document == packed.document
    by_name = {a.name: a for a in package.document.attachments}
    assert set(by_name) == set(files)
    for name, content in files.items():
        attachment = by_name[name]
        assert sink.files[attachment.content_id] == content
        assert sink.names[attachment.content_id] == name
        assert attachment.size == len(content)
        assert attachment.sha256 == hashlib.sha256(content).hexdigest()
    assert sorted(sink.closed) == sorted(sink.files)  # every sink was closed
    assert by_name["quyết-định.pdf"].content_type == "application/pdf"
    assert [r.content_id for r in package.received] == ["cid:1", "cid:2", "cid:3"]


def test_attachment_name_nfc(sample_metadata: dict[str, Any]) -> None:
    decomposed = unicodedata.normalize("NFD", "báo cáo.txt")
    packed = pack(sample_metadata, {decomposed: b"x"})
    package, sink = _round_trip(packed)
    (attachment,) = package.document.attachments
    assert attachment.name == "báo cáo.txt"
    assert sink.names == {"cid:1": "báo cáo.txt"}


@pytest.mark.parametrize(
    "name",
    [
        pytest.param(".hidden", id="dot-first"),
        pytest.param("a\nb", id="newline"),
        pytest.param("a\tb", id="tab"),
        pytest.param("a\\b", id="backslash"),
        pytest.param("c:x", id="colon"),
        pytest.param("\u202etxt.exe", id="bidi-override"),
    ],
)
def test_attaching_an_unsafe_file_name_is_refused(
    sample_metadata: dict[str, Any], name: str
) -> None:
    with pytest.raises(errors.UnsafeAttachmentName) as info:
        pack(sample_metadata, {name: b"x"})
    assert info.value.code == "EDOC-ATT-003"


@pytest.mark.parametrize(
    ("name", "safe"),
    [
        ("x" * 255, True),
        ("x" * 256, False),
        ("ạ" * 85, True),  # 255 bytes of UTF-8
        ("ạ" * 85 + "x", False),
        ("quyết định số 12.pdf", True),
        ("", False),
        (".", False),
        ("..", False),
        ("a/b", False),
        ("a\x00b", False),
        ("a\u200bb", False),  # zero-width space: a format character
    ],
)
def test_safe_attachment_name(name: str, safe: bool) -> None:
    if safe:
        assert envelope.safe_attachment_name(name) == name
    else:
        with pytest.raises(errors.UnsafeAttachmentName):
            envelope.safe_attachment_name(name)


def test_attaching_two_files_with_one_nfc_name_is_refused(
    sample_metadata: dict[str, Any],
) -> None:
    composed = "tờ trình.txt"
    with pytest.raises(errors.UnsafeAttachmentName):
        pack(sample_metadata, {composed: b"a", unicodedata.normalize("NFD", composed): b"b"})


def test_attaching_a_missing_file(tmp_path: Path) -> None:
    with pytest.raises(errors.FileMissing):
        envelope.attachments_from_files([tmp_path / "không-có.pdf"])


# --- Vietnamese text, NFC, document id ---------------------------------------------------
def test_vietnamese_text_preserved_exactly(sample_metadata: dict[str, Any]) -> None:
    sample_metadata["subject"] = ALL_TONES
    sample_metadata["content"] = f"  {ALL_TONES}\n\n{VIETNAMESE}  "
    sample_metadata["to_places"] = ["Lưu: VT, TTĐT.", "Như trên;"]
    sample_metadata["from"]["address"] = "Số 01, đường Trần Hưng Đạo, P. 2, TP. Tây Ninh"
    packed = pack(sample_metadata)
    document = read(packed.wire).document
    assert document.subject == ALL_TONES
    assert document.content == f"  {ALL_TONES}\n\n{VIETNAMESE}  "
    assert document.to_places == ("Lưu: VT, TTĐT.", "Như trên;")
    assert document.sender.address == "Số 01, đường Trần Hưng Đạo, P. 2, TP. Tây Ninh"
    assert ALL_TONES.encode("utf-8") in packed.wire  # UTF-8 on the wire, not char refs


def test_nfd_metadata_comes_out_nfc(sample_metadata: dict[str, Any]) -> None:
    subject = "Về việc hỏa tốc triển khai Đề án"
    sample_metadata["subject"] = unicodedata.normalize("NFD", subject)
    sample_metadata["signer"]["full_name"] = unicodedata.normalize("NFD", "Nguyễn Thị Ánh")
    packed = pack(sample_metadata)
    document = read(packed.wire).document
    assert document.subject == subject
    assert document.signer is not None
    assert document.signer.full_name == "Nguyễn Thị Ánh"
    assert subject.encode() in packed.wire
    assert unicodedata.normalize("NFD", subject).encode() not in packed.wire


def test_document_id_generated_when_absent(sample_metadata: dict[str, Any]) -> None:
    sample_metadata.pop("document_id", None)
    sample_metadata["code"] = {"number": "7816", "notation": "VPCP-TTĐT"}
    sample_metadata["promulgation"]["date"] = "2015-09-30"
    document = read(pack(sample_metadata).wire).document
    assert document.document_id == "000.00.12.H53,2015/09/30,7816/VPCP-TTĐT"


def test_document_id_given_is_kept(sample_metadata: dict[str, Any]) -> None:
    sample_metadata["document_id"] = "000.00.12.H53,2026/11/01,1/KH-STTTT"
    document = read(pack(sample_metadata).wire).document
    assert document.document_id == "000.00.12.H53,2026/11/01,1/KH-STTTT"


def test_dates_on_the_wire(sample_package: Packed) -> None:
    text = sample_package.wire.decode()
    assert "<edXML:PromulgationDate>2026/11/23</edXML:PromulgationDate>" in text
    assert "<edXML:DueDate>2026/12/15</edXML:DueDate>" in text
    assert "<edXML:Timestamp>2026/11/23 08:30:15</edXML:Timestamp>" in text


def test_year_before_1000_keeps_four_digits(sample_metadata: dict[str, Any]) -> None:
    sample_metadata["promulgation"]["date"] = "0999-01-02"
    sample_metadata.pop("document_id", None)
    packed = pack(sample_metadata, sent_at=dt.datetime(999, 1, 2, 3, 4, 5, tzinfo=dt.UTC))
    assert packed.document.document_id.startswith("000.00.12.H53,0999/01/02,")
    assert b"<edXML:PromulgationDate>0999/01/02<" in packed.wire
    assert b"<edXML:Timestamp>0999/01/02 10:04:05<" in packed.wire
    assert read(packed.wire).document == packed.document


_DATE_LIKE = st.text(alphabet="0123456789/: ٢", min_size=6, max_size=21)


def _strptime_or_error(text: str, form: str) -> dt.datetime | str:
    try:
        return dt.datetime.strptime(text, form)
    except ValueError:
        return "refused"


def _parsed_or_error(parse: Any, text: str) -> object:
    try:
        return parse(text)
    except errors.InvalidField:
        return "refused"


@settings(max_examples=400)
@given(
    text=st.one_of(
        _DATE_LIKE,
        st.datetimes(min_value=dt.datetime(1, 1, 1)).map(lambda t: f"{t:%Y/%m/%d %H:%M:%S}"),
        st.dates().map(lambda d: f"{d.year:04d}/{d.month:02d}/{d.day:02d}"),
    )
)
def test_dates_read_as_strptime_reads_them(text: str) -> None:
    """The fast path for the usual form accepts and refuses exactly what strptime does."""
    day = _strptime_or_error(text, envelope.DATE_FORMAT)
    moment = _strptime_or_error(text, envelope.TIMESTAMP_FORMAT)
    assert _parsed_or_error(envelope.parse_date, text) == (
        day if isinstance(day, str) else day.date()
    )
    assert _parsed_or_error(envelope.parse_timestamp, text) == (
        moment if isinstance(moment, str) else moment.replace(tzinfo=envelope.VIETNAM)
    )


def test_default_namespace_package_reads(sample_package: Packed) -> None:
    """Real axis files declare the edXML namespace as the default one, with no prefix."""
    wire = sample_package.wire.replace(b"edXML:", b"").replace(b"xmlns:edXML=", b"xmlns=")
    assert b"edXML:" not in wire
    package, sink = _round_trip(dataclasses.replace(sample_package, wire=wire))
    assert package.document == sample_package.document
    assert sink.files["cid:1"] == "Kế hoạch chuyển đổi số.\n".encode()


def _binascii_strict(text: str) -> bytes | str:
    try:
        return binascii.a2b_base64(text, strict_mode=True)
    except (binascii.Error, ValueError):
        return "refused"


def _ours(text: str) -> bytes | str:
    try:
        return envelope.strict_b64decode(text)
    except (binascii.Error, ValueError):
        return "refused"


@settings(max_examples=1000)
@given(
    text=st.one_of(
        st.text(alphabet=string.ascii_letters + string.digits + "+/=", max_size=24),
        st.text(alphabet="QUFB=-_ \n\x00é", max_size=12),
        st.tuples(st.binary(max_size=30), st.text(alphabet="=A", max_size=5)).map(
            lambda parts: base64.b64encode(parts[0]).decode() + parts[1]
        ),
    )
)
@example(text="AAAA====")  # binascii accepts padding after a whole quantum; pybase64 does not
def test_base64_decodes_as_binascii_strict_does(text: str) -> None:
    """pybase64 answers first; it must accept nothing binascii's strict mode refuses, and
    give the same bytes for what it accepts."""
    assert _ours(text) == _binascii_strict(text)


def test_whitespace_inside_base64_is_accepted(sample_package: Packed) -> None:
    wire = sample_package.wire.replace(b"S+G6vyBob", b"S+G6\r\n  vyBob\t")
    package, sink = _round_trip(dataclasses.replace(sample_package, wire=wire))
    assert sink.files["cid:1"] == "Kế hoạch chuyển đổi số.\n".encode()
    assert package.received[0].size == len(sink.files["cid:1"])


# --- trace ---------------------------------------------------------------------------------
def test_origin_hop_round_trip(sample_package: Packed) -> None:
    document = read(sample_package.wire).document
    assert document.trace == (TraceHop("000.00.12.H53", SENT_AT),)
    assert document.trace[0].timestamp.utcoffset() == dt.timedelta(hours=7)


def test_add_trace_hop(sample_metadata: dict[str, Any]) -> None:
    sample_package = pack(sample_metadata)
    root = deepcopy(sample_package.root)
    node = TraceHop("000.00.00.H53", dt.datetime(2026, 11, 23, 1, 31, 0, tzinfo=dt.UTC))
    hub = TraceHop("000.00.00.G22", dt.datetime(2026, 11, 23, 8, 32, 0, tzinfo=envelope.VIETNAM))
    envelope.add_trace_hop(root, node)
    envelope.add_trace_hop(root, hub)
    envelope.validate(root)
    trace = root.find("edXML:edXMLEnvelope/edXML:edXMLHeader/edXML:TraceHeaderList", ED)
    assert trace is not None
    assert [etree.QName(child).localname for child in trace] == [
        "TraceHeader",
        "TraceHeader",
        "TraceHeader",
        "Bussiness",
    ]
    out = io.BytesIO()
    envelope.write_package(root, [], out)
    document = read(out.getvalue()).document
    assert document.trace == (sample_package.document.trace[0], node, hub)
    assert b"2026/11/23 08:31:00" in out.getvalue()  # UTC shown in Vietnam time
    # the signed parts did not change
    assert etree.tostring(envelope.message_header(root)) == etree.tostring(
        envelope.message_header(sample_package.root)
    )


def test_add_trace_hop_needs_a_trace_list(sample_package: Packed) -> None:
    root = deepcopy(sample_package.root)
    header = root.find("edXML:edXMLEnvelope/edXML:edXMLHeader", ED)
    assert header is not None
    trace = header.find("edXML:TraceHeaderList", ED)
    assert trace is not None
    header.remove(trace)
    with pytest.raises(errors.MissingField):
        envelope.add_trace_hop(root, TraceHop("000.00.00.G22", SENT_AT))


def test_no_trace(sample_metadata: dict[str, Any]) -> None:
    packed = pack(sample_metadata, sent_at=None)
    assert read(packed.wire).document.trace == ()


# --- property: any metadata and attachments survive the wire --------------------------------
def _xml_char(char: str) -> bool:
    return unicodedata.category(char)[0] != "C"


_CHARS = st.one_of(
    st.sampled_from(VIETNAMESE),
    st.sampled_from(string.ascii_letters + string.digits + string.punctuation + " "),
    st.characters(codec="utf-8").filter(_xml_char),
)


def _text(min_size: int = 0, max_size: int = 40) -> st.SearchStrategy[str]:
    return st.text(_CHARS, min_size=min_size, max_size=max_size)


@st.composite
def _org_ids(draw: st.DrawFn) -> str:
    letter = draw(st.sampled_from(string.ascii_uppercase))
    number = draw(st.integers(1, 99))
    level2 = draw(st.integers(0, 99))
    level3 = draw(st.integers(0, 99)) if level2 else 0
    level4 = draw(st.integers(0, 999)) if level3 else 0
    return f"{level4:03d}.{level3:02d}.{level2:02d}.{letter}{number:02d}"


def _iso(day: dt.date) -> str:
    return f"{day.year:04d}-{day.month:02d}-{day.day:02d}"


_DATES = st.dates(dt.date(1, 1, 1), dt.date(9999, 12, 31)).map(_iso)


@st.composite
def _organization(draw: st.DrawFn, org_id: str) -> str | dict[str, str]:
    if draw(st.booleans()):
        return org_id
    fields = ("name", "in_charge", "address", "email", "telephone", "fax", "website")
    extra = draw(st.dictionaries(st.sampled_from(fields), _text(), max_size=len(fields)))
    return {"id": org_id} | extra


def _optional(
    draw: st.DrawFn, data: dict[str, Any], key: str, value: st.SearchStrategy[Any]
) -> None:
    if draw(st.booleans()):
        data[key] = draw(value)


@st.composite
def _metadata(draw: st.DrawFn) -> dict[str, Any]:
    ids = draw(st.lists(_org_ids(), min_size=2, max_size=6, unique=True))
    data: dict[str, Any] = {
        "from": draw(_organization(ids[0])),
        "to": [draw(_organization(org_id)) for org_id in ids[1:]],
        "code": {"number": draw(_text(1)), "notation": draw(_text(1))},
        "promulgation": {"place": draw(_text(1)), "date": draw(_DATES)},
        "type": {"code": draw(st.integers(0, 2**31 - 1)), "name": draw(_text(1))},
        "subject": draw(_text(1, 200)),
        "priority": draw(st.integers(0, 4)),
    }
    # a DocumentId given begins with its sender's OrganId
    _optional(draw, data, "document_id", _text(0).map(f"{ids[0]},".__add__))
    _optional(draw, data["type"], "detail", st.integers(0, 2**31 - 1))
    _optional(draw, data, "content", _text(0, 500))
    _optional(draw, data, "due_date", _DATES)
    _optional(draw, data, "to_places", st.lists(_text(1), max_size=3))
    _optional(draw, data, "steering_type", st.integers(0, 3))
    if draw(st.booleans()):
        signer = {"full_name": draw(_text(1))}
        _optional(draw, signer, "position", _text())
        _optional(draw, signer, "competence", _text())
        data["signer"] = signer
    if draw(st.booleans()):
        data["response_for"] = {
            "org_id": draw(_org_ids()),
            "code": draw(_text(1)),
            "promulgation_date": draw(_DATES),
            "document_id": draw(_text(1)),
        }
    if draw(st.booleans()):
        business: dict[str, Any] = {"type": draw(st.integers(0, 3))}
        _optional(draw, business, "reason", _text())
        _optional(draw, business, "document_id", _text(1))
        data["business"] = business
    return data


_NAME_CHARS = st.sampled_from(VIETNAMESE + string.ascii_letters + string.digits + " -_()")
_FILE_NAMES = st.builds(
    lambda stem, ext: stem + ext,
    st.text(_NAME_CHARS, min_size=1, max_size=30).filter(lambda s: s[0] != " "),
    st.sampled_from(["", ".pdf", ".docx", ".txt", ".bin", ".tar.gz"]),
)
_FILES = st.dictionaries(
    _FILE_NAMES.map(lambda name: unicodedata.normalize("NFC", name)),
    st.binary(max_size=2000),
    max_size=3,
)
_SENT_AT = st.datetimes(
    dt.datetime(1900, 1, 1), dt.datetime(2100, 1, 1), timezones=st.sampled_from([dt.UTC])
).map(lambda moment: moment.replace(microsecond=0))


@settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=_metadata(), files=_FILES, sent_at=_SENT_AT)
def test_property_round_trip(
    data: dict[str, Any], files: dict[str, bytes], sent_at: dt.datetime
) -> None:
    packed = pack(data, files, sent_at)
    sink = MemorySink()
    package = envelope.read_package(io.BytesIO(packed.wire), sink)
    assert package.document == packed.document
    assert isinstance(package.document, Document)
    received = {a.name: sink.files[a.content_id] for a in package.document.attachments}
    assert received == files
