"""Hostile XML and hostile packages: each case is refused with its own error class and code.

Every case starts from a good package (the sample document with two small attachments)
and breaks one thing, so a case that is accepted, or refused for another reason than the
one it is about, fails.
"""

from __future__ import annotations

import base64
import hashlib
import io
import re
from collections.abc import Callable
from dataclasses import dataclass

import pytest
from lxml import etree

from edoc import envelope, errors, xmlsafe
from tests.reliability import report
from tests.support.envelope import MemorySink, load_sample_metadata, pack

A = b"first attachment\n"  # 17 bytes: base64 ends in one "="
B = "tệp thứ hai".encode()  # 15 bytes: base64 without padding
PACKED = pack(load_sample_metadata(), {"a.txt": A, "b.txt": B})
GOOD = PACKED.wire
DECLARATION, _, BODY = GOOD.partition(b"\n")
SPLIT = GOOD.index(b"<edXML:AttachmentEncoded>")
ENVELOPE, ATTACHMENTS = GOOD[:SPLIT], GOOD[SPLIT:]
B64_A = base64.b64encode(A)
B64_B = base64.b64encode(B)
NS = envelope.NS.encode()
XSI = b'xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"'
SUBJECT = "<edXML:Subject>V/v triển khai chuyển đổi số năm 2027</edXML:Subject>".encode()

# Small limits keep the size cases fast; the good package fits in them (see the test below).
SMALL = envelope.PackageLimits(
    envelope=xmlsafe.Limits(max_bytes=20_000, max_depth=16), attachments_bytes=64 * 1024
)
DEFAULT = envelope.PackageLimits()
ATTACHMENTS_ONE_BYTE_SHORT = envelope.PackageLimits(attachments_bytes=len(A) + len(B) - 1)


def _once(data: bytes, old: bytes, new: bytes) -> bytes:
    assert data.count(old) == 1, old
    return data.replace(old, new)


def in_envelope(old: bytes, new: bytes) -> bytes:
    return _once(ENVELOPE, old, new) + ATTACHMENTS


def in_attachments(old: bytes, new: bytes) -> bytes:
    return ENVELOPE + _once(ATTACHMENTS, old, new)


def everywhere(old: bytes, new: bytes) -> bytes:
    assert old in GOOD, old
    return GOOD.replace(old, new)


def drop(tag: str, data: bytes = GOOD, count: int = 1) -> bytes:
    """Remove the first ``count`` (0: all) ``edXML:tag`` elements."""
    pattern = re.compile(
        rb"<edXML:%s(?: [^>]*)?>.*?</edXML:%s>" % (tag.encode(), tag.encode()), re.S
    )
    result, found = pattern.subn(b"", data, count=count)
    assert found, tag
    return result


def with_doctype(doctype: bytes, subject: bytes | None = None) -> bytes:
    body = BODY if subject is None else _once(BODY, SUBJECT, subject)
    return DECLARATION + b"\n" + doctype + b"\n" + body


def renamed(name: bytes) -> bytes:
    """Both the manifest and the attachment call a.txt ``name``: only the name is wrong."""
    return everywhere(b">a.txt<", b">" + name + b"<")


def root(inner: bytes, tag: bytes = b"edXML", ns: bytes = NS) -> bytes:
    return b'<?xml version="1.0"?><%s xmlns="%s">%s</%s>' % (tag, ns, inner, tag)


def attachment_element(content_id: bytes) -> bytes:
    start = ATTACHMENTS.index(b"<edXML:Attachment><edXML:ContentId>" + content_id + b"<")
    end = ATTACHMENTS.index(b"</edXML:Attachment>", start) + len(b"</edXML:Attachment>")
    return ATTACHMENTS[start:end]


def reference_element(content_id: bytes) -> bytes:
    start = ENVELOPE.index(b"<edXML:Reference><edXML:ContentId>" + content_id + b"<")
    end = ENVELOPE.index(b"</edXML:Reference>", start) + len(b"</edXML:Reference>")
    return ENVELOPE[start:end]


LAUGHS = b"".join(
    b'<!ENTITY lol%d "%s">' % (n, b"&lol%d;" % (n - 1) * 10 if n else b"lol") for n in range(10)
)
NESTED = b"<edXML:x>" * 40 + b"</edXML:x>" * 40


@dataclass(frozen=True)
class Case:
    id: str
    data: bytes
    error: type[errors.EdocError]
    limits: envelope.PackageLimits = DEFAULT


CASES = [
    # --- DTDs, entities, XXE: no DOCTYPE is ever accepted ----------------------------------------
    Case(
        "xxe-system-file",
        with_doctype(
            b'<!DOCTYPE edXML:edXML [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>',
            b"<edXML:Subject>&xxe;</edXML:Subject>",
        ),
        errors.ForbiddenDtd,
    ),
    Case(
        "xxe-parameter-entity",
        with_doctype(b'<!DOCTYPE x [<!ENTITY % p SYSTEM "file:///etc/passwd"> %p;]>'),
        errors.ForbiddenDtd,
    ),
    Case(
        "xxe-parameter-entity-out-of-band",
        with_doctype(
            b'<!DOCTYPE x [<!ENTITY % d SYSTEM "http://127.0.0.1:9/evil.dtd"> %d; %send;]>'
        ),
        errors.ForbiddenDtd,
    ),
    Case(
        "external-dtd-system",
        with_doctype(b'<!DOCTYPE edXML:edXML SYSTEM "http://127.0.0.1:9/edxml.dtd">'),
        errors.ForbiddenDtd,
    ),
    Case(
        "external-dtd-public",
        with_doctype(b'<!DOCTYPE edXML:edXML PUBLIC "-//EVIL//DTD//EN" "file:///etc/passwd">'),
        errors.ForbiddenDtd,
    ),
    Case(
        "billion-laughs",
        with_doctype(
            b"<!DOCTYPE edXML:edXML [" + LAUGHS + b"]>", b"<edXML:Subject>&lol9;</edXML:Subject>"
        ),
        errors.ForbiddenDtd,
    ),
    Case(
        "quadratic-blowup",
        with_doctype(
            b'<!DOCTYPE edXML:edXML [<!ENTITY a "' + b"a" * 10_000 + b'">]>',
            b"<edXML:Subject>" + b"&a;" * 1000 + b"</edXML:Subject>",
        ),
        errors.ForbiddenDtd,
    ),
    Case("doctype-bare", with_doctype(b"<!DOCTYPE edXML:edXML>"), errors.ForbiddenDtd),
    Case(
        "doctype-default-attribute",
        with_doctype(b'<!DOCTYPE x [<!ATTLIST edXML:MessageHeader Id CDATA "forged">]>'),
        errors.ForbiddenDtd,
    ),
    Case(
        "undeclared-entity",
        in_envelope(SUBJECT, b"<edXML:Subject>&xxe;</edXML:Subject>"),
        errors.ForbiddenEntity,
    ),
    Case(
        "html-entity",
        in_envelope(SUBJECT, b"<edXML:Subject>a&nbsp;b</edXML:Subject>"),
        errors.ForbiddenEntity,
    ),
    Case("undeclared-entity-in-attachment-name", renamed(b"&name;"), errors.ForbiddenEntity),
    # --- processing instructions -----------------------------------------------------------------
    Case(
        "pi-stylesheet-before-root",
        DECLARATION + b'\n<?xml-stylesheet href="http://127.0.0.1:9/x.xsl"?>' + BODY,
        errors.ForbiddenXmlConstruct,
    ),
    Case(
        "pi-in-header",
        in_envelope(SUBJECT, b"<?php system('id'); ?>" + SUBJECT),
        errors.ForbiddenXmlConstruct,
    ),
    Case("pi-after-root", GOOD + b"<?evil?>", errors.ForbiddenXmlConstruct),
    Case(
        "pi-inside-base64",
        in_attachments(B64_A, B64_A[:8] + b"<?x?>" + B64_A[8:]),
        errors.ForbiddenXmlConstruct,
    ),
    # --- XML Schema instance attributes: instructions to a validator, never edXML content -----
    Case(
        "xsi-schema-location-on-trace-list",
        in_envelope(
            b"<edXML:TraceHeaderList>",
            b"<edXML:TraceHeaderList "
            + XSI
            + b' xsi:schemaLocation="urn:x http://127.0.0.1:9/x.xsd">',
        ),
        errors.ForbiddenXmlConstruct,
    ),
    Case(
        "xsi-no-namespace-location-on-header",
        in_envelope(
            b"<edXML:edXMLHeader>",
            b"<edXML:edXMLHeader " + XSI + b' xsi:noNamespaceSchemaLocation="file:///etc/passwd">',
        ),
        errors.ForbiddenXmlConstruct,
    ),
    Case(
        "xsi-type-on-organ-id",
        in_envelope(
            b"<edXML:From><edXML:OrganId>",
            b"<edXML:From><edXML:OrganId " + XSI + b' xsi:type="edXML:OrgId">',
        ),
        errors.ForbiddenXmlConstruct,
    ),
    Case(
        "xsi-nil-on-attachment",
        in_attachments(
            b"<edXML:Attachment><edXML:ContentId>cid:1<",
            b"<edXML:Attachment " + XSI + b' xsi:nil="false"><edXML:ContentId>cid:1<',
        ),
        errors.ForbiddenXmlConstruct,
    ),
    Case(
        "xsi-declared-on-root",
        _once(GOOD, b"<edXML:edXML ", b"<edXML:edXML " + XSI + b" ").replace(
            b"<edXML:AttachmentEncoded>", b'<edXML:AttachmentEncoded xsi:schemaLocation="a b">'
        ),
        errors.ForbiddenXmlConstruct,
    ),
    # --- size and depth --------------------------------------------------------------------------
    Case(
        "envelope-text-oversize",
        in_envelope(SUBJECT, b"<edXML:Subject>" + b"x" * 30_000 + b"</edXML:Subject>"),
        errors.XmlTooLarge,
        SMALL,
    ),
    Case(
        "envelope-element-flood",
        in_envelope(SUBJECT, SUBJECT + b"<edXML:x/>" * 2000),
        errors.XmlTooLarge,
        SMALL,
    ),
    Case(
        "envelope-attribute-oversize",
        in_envelope(b"<edXML:Subject>", b'<edXML:Subject a="' + b"x" * 30_000 + b'">'),
        errors.XmlTooLarge,
        SMALL,
    ),
    Case(
        "attachment-header-oversize",
        in_attachments(
            b"<edXML:ContentType>text/plain</edXML:ContentType><edXML:ContentTransferEncoded>"
            + B64_A,
            b"<edXML:ContentType>text/plain</edXML:ContentType><edXML:Description>"
            + b"d" * 30_000
            + b"</edXML:Description><edXML:ContentTransferEncoded>"
            + B64_A,
        ),
        errors.XmlTooLarge,
        SMALL,
    ),
    Case(
        "wire-oversize-whitespace-in-base64",
        in_attachments(B64_A, B64_A[:4] + b" " * 1_200_000 + B64_A[4:]),
        errors.XmlTooLarge,
        SMALL,
    ),
    Case("attachments-oversize", GOOD, errors.TooLarge, ATTACHMENTS_ONE_BYTE_SHORT),
    Case("deep-nesting-envelope", in_envelope(SUBJECT, NESTED + SUBJECT), errors.XmlTooDeep),
    Case(
        "deep-nesting-attachments",
        in_attachments(
            b"<edXML:Attachment><edXML:ContentId>cid:2<",
            NESTED + b"<edXML:Attachment><edXML:ContentId>cid:2<",
        ),
        errors.XmlTooDeep,
    ),
    # --- the root --------------------------------------------------------------------------------
    Case(
        "wrong-root-namespace", everywhere(NS, b"http://evil.example/edXML"), errors.WrongNamespace
    ),
    Case("no-namespace", root(b"<edXMLEnvelope/>", ns=b""), errors.WrongNamespace),
    Case("wrong-root-element", root(b"", tag=b"edXMLEnvelope"), errors.WrongNamespace),
    Case(
        "soap-wrapped",
        b'<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/"><s:Body>'
        + BODY
        + b"</s:Body></s:Envelope>",
        errors.WrongNamespace,
    ),
    Case("html", "<html><body><p>xin chào</p></body></html>".encode(), errors.WrongNamespace),
    # --- schema: missing, extra or ill-formed elements -------------------------------------------
    Case("missing-subject", in_envelope(SUBJECT, b""), errors.SchemaViolation),
    Case("missing-from", drop("From"), errors.SchemaViolation),
    Case("missing-to", drop("To", count=0), errors.SchemaViolation),
    Case("missing-document-id", drop("DocumentId"), errors.SchemaViolation),
    Case("missing-message-header", drop("MessageHeader"), errors.SchemaViolation),
    Case("missing-bussiness", drop("Bussiness"), errors.SchemaViolation),
    Case("missing-manifest", drop("edXMLBody"), errors.SchemaViolation),
    Case("missing-envelope", drop("edXMLEnvelope"), errors.SchemaViolation),
    Case(
        "two-envelopes",
        _once(GOOD, ENVELOPE, ENVELOPE + ENVELOPE[ENVELOPE.index(b"<edXML:edXMLEnvelope") :]),
        errors.SchemaViolation,
    ),
    Case(
        "org-id-lowercase-letter",
        in_envelope(
            b"<edXML:From><edXML:OrganId>000.00.12.H53<",
            b"<edXML:From><edXML:OrganId>000.00.12.h53<",
        ),
        errors.SchemaViolation,
    ),
    Case(
        "org-id-short-code",
        in_envelope(b"<edXML:OrganId>000.00.00.H23<", b"<edXML:OrganId>H23<"),
        errors.SchemaViolation,
    ),
    Case(
        "org-id-number-00",
        in_envelope(b"<edXML:OrganId>000.00.00.H23<", b"<edXML:OrganId>000.00.00.H00<"),
        errors.SchemaViolation,
    ),
    Case(
        "org-id-level-gap",
        in_envelope(b"<edXML:OrganId>000.00.07.H53<", b"<edXML:OrganId>001.00.07.H53<"),
        errors.SchemaViolation,
    ),
    Case(
        "org-id-unicode-digits",
        in_envelope(
            b"<edXML:From><edXML:OrganId>000.00.12.H53<",
            "<edXML:From><edXML:OrganId>٠٠٠.٠٠.١٢.H٥٣<".encode(),
        ),
        errors.SchemaViolation,
    ),
    Case(
        "org-id-trailing-newline",
        in_envelope(
            b"<edXML:From><edXML:OrganId>000.00.12.H53<",
            b"<edXML:From><edXML:OrganId>000.00.12.H53\n<",
        ),
        errors.SchemaViolation,
    ),
    Case(
        "trace-org-id-bad",
        in_envelope(
            b'<edXML:TraceHeader Id="edoc-Origin"><edXML:OrganId>000.00.12.H53<',
            b'<edXML:TraceHeader Id="edoc-Origin"><edXML:OrganId>hub<',
        ),
        errors.SchemaViolation,
    ),
    Case(
        "date-iso-form",
        in_envelope(
            b">2026/11/23</edXML:PromulgationDate>", b">2026-11-23</edXML:PromulgationDate>"
        ),
        errors.SchemaViolation,
    ),
    Case(
        "timestamp-iso-form",
        in_envelope(b">2026/11/23 08:30:15<", b">2026-11-23T08:30:15+07:00<"),
        errors.SchemaViolation,
    ),
    Case(
        "priority-9",
        in_envelope(b"<edXML:Priority>1<", b"<edXML:Priority>9<"),
        errors.SchemaViolation,
    ),
    Case(
        "priority-not-a-number",
        in_envelope(b"<edXML:Priority>1<", "<edXML:Priority>khẩn<".encode()),
        errors.SchemaViolation,
    ),
    Case(
        "business-type-7",
        in_envelope(b"<edXML:BussinessDocType>0<", b"<edXML:BussinessDocType>7<"),
        errors.SchemaViolation,
    ),
    Case(
        "subject-too-long",
        in_envelope(SUBJECT, b"<edXML:Subject>" + b"s" * 2001 + b"</edXML:Subject>"),
        errors.SchemaViolation,
    ),
    Case(
        "unknown-element-in-header",
        in_envelope(SUBJECT, SUBJECT + b"<edXML:Secret>x</edXML:Secret>"),
        errors.SchemaViolation,
    ),
    Case(
        "xinclude",
        in_envelope(
            b"<edXML:edXMLBody>",
            b'<xi:include xmlns:xi="http://www.w3.org/2001/XInclude" href="/etc/passwd"/>'
            b"<edXML:edXMLBody>",
        ),
        errors.SchemaViolation,
    ),
    Case(
        "unknown-attribute",
        in_envelope(b"<edXML:Subject>", b'<edXML:Subject onload="x">'),
        errors.SchemaViolation,
    ),
    Case(
        "element-inside-base64",
        in_attachments(B64_A, B64_A[:8] + b"<edXML:x/>" + B64_A[8:]),
        errors.SchemaViolation,
    ),
    Case(
        "element-wrapping-base64",
        in_attachments(B64_A, b"<edXML:Data>" + B64_A + b"</edXML:Data>"),
        errors.SchemaViolation,
    ),
    Case(
        "element-after-base64",
        in_attachments(B64_A, B64_A + b"<edXML:MessageHeader/>"),
        errors.SchemaViolation,
    ),
    Case(
        "element-before-base64",
        in_attachments(B64_A, b"<edXML:MessageHeader/>" + B64_A),
        errors.SchemaViolation,
    ),
    Case(
        "element-after-attachment-body",
        in_attachments(
            B64_A + b"</edXML:ContentTransferEncoded>",
            B64_A + b"</edXML:ContentTransferEncoded><edXML:MessageHeader/>",
        ),
        errors.SchemaViolation,
    ),
    Case(
        "element-in-attachment-encoded",
        in_attachments(b"<edXML:AttachmentEncoded>", b"<edXML:AttachmentEncoded><edXML:To/>"),
        errors.SchemaViolation,
    ),
    Case(
        "attribute-on-attachment",
        in_attachments(
            b"<edXML:Attachment><edXML:ContentId>cid:1<",
            b'<edXML:Attachment Note="x"><edXML:ContentId>cid:1<',
        ),
        errors.SchemaViolation,
    ),
    Case(
        "attribute-on-attachment-body",
        in_attachments(
            b"<edXML:ContentTransferEncoded>" + B64_A,
            b'<edXML:ContentTransferEncoded Note="x">' + B64_A,
        ),
        errors.SchemaViolation,
    ),
    Case(
        "text-between-attachments",
        in_attachments(
            b"</edXML:Attachment><edXML:Attachment>", b"</edXML:Attachment>junk<edXML:Attachment>"
        ),
        errors.SchemaViolation,
    ),
    Case(
        "manifest-sha256-uppercase",
        in_envelope(
            hashlib.sha256(A).hexdigest().encode(), hashlib.sha256(A).hexdigest().upper().encode()
        ),
        errors.SchemaViolation,
    ),
    Case(
        "manifest-size-negative",
        in_envelope(b"<edXML:Size>17<", b"<edXML:Size>-17<"),
        errors.SchemaViolation,
    ),
    Case("content-id-without-cid", everywhere(b">cid:1<", b">1<"), errors.SchemaViolation),
    # --- base64 ----------------------------------------------------------------------------------
    Case(
        "base64-invalid-character",
        in_attachments(B64_A, B64_A[:5] + b"*" + B64_A[6:]),
        errors.BadAttachmentEncoding,
    ),
    Case(
        "base64-urlsafe-alphabet",
        in_attachments(B64_A, b"-_" + B64_A[2:]),
        errors.BadAttachmentEncoding,
    ),
    Case(
        "base64-non-ascii",
        in_attachments(B64_A, B64_A[:4] + "ạạạạ".encode() + B64_A[4:]),
        errors.BadAttachmentEncoding,
    ),
    Case("base64-truncated", in_attachments(B64_A, B64_A[:-1]), errors.BadAttachmentEncoding),
    Case(
        "base64-extra-padding",
        in_attachments(B64_A, B64_A + b"="),
        errors.BadAttachmentEncoding,
    ),
    Case(
        "base64-padding-in-the-middle",
        in_attachments(B64_B, B64_B[:2] + b"==" + B64_B[4:]),
        errors.BadAttachmentEncoding,
    ),
    Case(
        "base64-data-after-padding",
        in_attachments(B64_A, B64_A + b"QUJD"),
        errors.BadAttachmentEncoding,
    ),
    Case(
        "base64-data-after-padding-next-event",
        in_attachments(B64_A, B64_A + b"<!-- split -->QUJD"),
        errors.BadAttachmentEncoding,
    ),
    # --- attachments against the manifest --------------------------------------------------------
    Case(
        "bytes-differ-from-digest",
        in_attachments(B64_A, base64.b64encode(b"FIRST attachment\n")),
        errors.AttachmentMismatch,
    ),
    Case(
        "body-shorter-by-three-bytes",
        in_attachments(B64_A, B64_A[4:]),
        errors.AttachmentMismatch,
    ),
    Case("body-empty", in_attachments(B64_A, b""), errors.AttachmentMismatch),
    Case(
        "manifest-size-differs",
        in_envelope(b"<edXML:Size>17<", b"<edXML:Size>18<"),
        errors.AttachmentMismatch,
    ),
    Case(
        "manifest-digest-differs",
        in_envelope(hashlib.sha256(A).hexdigest().encode(), hashlib.sha256(B).hexdigest().encode()),
        errors.AttachmentMismatch,
    ),
    Case(
        "attachment-not-in-manifest",
        in_envelope(reference_element(b"cid:2"), b""),
        errors.AttachmentMismatch,
    ),
    Case(
        "manifest-entry-without-attachment",
        in_attachments(attachment_element(b"cid:2"), b""),
        errors.AttachmentMismatch,
    ),
    Case(
        "manifest-entry-and-no-attachments-at-all",
        drop("AttachmentEncoded"),
        errors.AttachmentMismatch,
    ),
    Case(
        "duplicate-content-id-in-attachments",
        in_attachments(
            b"<edXML:ContentId>cid:2</edXML:ContentId><edXML:AttachmentName>b.txt<",
            b"<edXML:ContentId>cid:1</edXML:ContentId><edXML:AttachmentName>b.txt<",
        ),
        errors.AttachmentMismatch,
    ),
    Case(
        "duplicate-content-id-in-manifest",
        in_envelope(
            b"<edXML:ContentId>cid:2</edXML:ContentId><edXML:AttachmentName>b.txt<",
            b"<edXML:ContentId>cid:1</edXML:ContentId><edXML:AttachmentName>b.txt<",
        ),
        errors.AttachmentMismatch,
    ),
    Case(
        "attachment-sent-twice",
        in_attachments(attachment_element(b"cid:1"), attachment_element(b"cid:1") * 2),
        errors.AttachmentMismatch,
    ),
    Case(
        "attachment-content-type-differs-from-manifest",
        in_attachments(
            b"<edXML:ContentType>text/plain</edXML:ContentType><edXML:ContentTransferEncoded>"
            + B64_A,
            b"<edXML:ContentType>text/html</edXML:ContentType><edXML:ContentTransferEncoded>"
            + B64_A,
        ),
        errors.AttachmentMismatch,
    ),
    Case(
        "attachment-description-not-in-manifest",
        in_attachments(
            b"<edXML:ContentType>text/plain</edXML:ContentType><edXML:ContentTransferEncoded>"
            + B64_A,
            "<edXML:ContentType>text/plain</edXML:ContentType><edXML:Description>Quyết định"
            " bổ nhiệm</edXML:Description><edXML:ContentTransferEncoded>".encode()
            + B64_A,
        ),
        errors.AttachmentMismatch,
    ),
    Case(
        "attachment-name-differs-from-manifest",
        in_attachments(b">b.txt<", b">c.txt<"),
        errors.AttachmentMismatch,
    ),
    Case(
        "bodies-swapped",
        in_attachments(B64_B, B64_A).replace(B64_A, B64_B, 1),
        errors.AttachmentMismatch,
    ),
    Case(
        "body-before-its-name",
        in_attachments(
            b"<edXML:Attachment><edXML:ContentId>cid:1</edXML:ContentId>",
            b"<edXML:Attachment><edXML:ContentTransferEncoded>"
            + B64_A
            + b"</edXML:ContentTransferEncoded><edXML:ContentId>cid:1</edXML:ContentId>",
        ),
        errors.MissingField,
    ),
    Case(
        "attachment-name-empty",
        in_attachments(b">a.txt<", b"><"),
        errors.MissingField,
    ),
    # --- attachment names that would escape the folder they are written to -----------------------
    Case("name-parent-path", renamed(b"../x"), errors.UnsafeAttachmentName),
    Case("name-deep-parent-path", renamed(b"../../../../tmp/x"), errors.UnsafeAttachmentName),
    Case("name-absolute", renamed(b"/etc/passwd"), errors.UnsafeAttachmentName),
    Case("name-subfolder", renamed(b"a/b"), errors.UnsafeAttachmentName),
    Case("name-dotdot", renamed(b".."), errors.UnsafeAttachmentName),
    Case("name-dot", renamed(b"."), errors.UnsafeAttachmentName),
    Case("name-hidden", renamed(b".bashrc"), errors.UnsafeAttachmentName),
    Case("name-backslash", renamed(b"..\\..\\x.exe"), errors.UnsafeAttachmentName),
    Case("name-drive", renamed(b"C:x.exe"), errors.UnsafeAttachmentName),
    Case("name-newline", renamed(b"a\nb"), errors.UnsafeAttachmentName),
    Case("name-newline-charref", renamed(b"a&#10;b"), errors.UnsafeAttachmentName),
    Case("name-tab", renamed(b"a\tb"), errors.UnsafeAttachmentName),
    Case("name-delete-char", renamed(b"a&#x7f;b"), errors.UnsafeAttachmentName),
    Case("name-bidi-override", renamed("\u202etxt.exe".encode()), errors.UnsafeAttachmentName),
    Case("name-slash-charref", renamed(b"..&#47;x"), errors.UnsafeAttachmentName),
    Case("name-split-by-comment", renamed(b"..<!-- -->/x"), errors.UnsafeAttachmentName),
    Case("name-in-cdata", renamed(b"<![CDATA[../x]]>"), errors.UnsafeAttachmentName),
    Case("name-too-long", renamed(b"x" * 256), errors.UnsafeAttachmentName),
    Case("name-nul-byte", renamed(b"a\x00b"), errors.MalformedXml),  # XML cannot carry NUL
    Case("name-nul-charref", renamed(b"a&#0;b"), errors.MalformedXml),
    Case("name-escape-byte", renamed(b"a\x1bb"), errors.MalformedXml),
    # --- not XML, or not all of it ---------------------------------------------------------------
    Case("empty", b"", errors.MalformedXml),
    Case("whitespace-only", b" \n\t ", errors.MalformedXml),
    Case("declaration-only", DECLARATION, errors.MalformedXml),
    Case("garbage", bytes(range(256)) * 4, errors.MalformedXml),
    Case("json", b'{"from": "000.00.12.H53"}', errors.MalformedXml),
    Case("truncated-in-the-middle", GOOD[: len(GOOD) // 2], errors.MalformedXml),
    Case("truncated-after-envelope", ENVELOPE, errors.MalformedXml),
    Case(
        "truncated-in-base64",
        GOOD[: GOOD.index(B64_A) + len(B64_A) // 2],
        errors.MalformedXml,
    ),
    Case("truncated-last-byte", GOOD[:-1], errors.MalformedXml),
    Case(
        "mismatched-tags",
        in_envelope(b"</edXML:Subject>", b"</edXML:Subjekt>"),
        errors.MalformedXml,
    ),
    Case("second-root", GOOD + root(b""), errors.MalformedXml),
    Case("text-after-root", GOOD + b"trailing", errors.MalformedXml),
    Case(
        "invalid-utf8",
        in_envelope(SUBJECT, b"<edXML:Subject>T\xc3y Ninh</edXML:Subject>"),
        errors.MalformedXml,
    ),
    Case(
        "nul-byte-in-text",
        in_envelope(SUBJECT, b"<edXML:Subject>a\x00b</edXML:Subject>"),
        errors.MalformedXml,
    ),
    Case(
        "unclosed-comment",
        in_envelope(SUBJECT, b"<!-- " + SUBJECT),
        errors.MalformedXml,
    ),
    Case(
        "unquoted-attribute",
        in_envelope(b'Id="edoc-Manifest"', b"Id=edoc-Manifest"),
        errors.MalformedXml,
    ),
    # libxml2 drops an undeclared prefix (the element arrives without a namespace) instead
    # of failing, so it is the schema that refuses this one.
    Case(
        "undeclared-prefix",
        in_envelope(SUBJECT, b"<evil:Subject>x</evil:Subject>"),
        errors.SchemaViolation,
    ),
]


def test_good_package_reads_under_the_limits_the_cases_use() -> None:
    """The control: only what a case changes can make it fail."""
    for limits in (envelope.PackageLimits(), SMALL):
        assert envelope.read_package(io.BytesIO(GOOD), limits=limits).document == PACKED.document
    enough = envelope.PackageLimits(attachments_bytes=len(A) + len(B))
    assert len(envelope.read_package(io.BytesIO(GOOD), limits=enough).received) == 2


def test_corpus_is_large_and_ids_unique() -> None:
    ids = [case.id for case in CASES]
    assert len(ids) == len(set(ids))
    assert len(ids) >= 40


# A package is read from a stream by the event parser, or from bytes in memory by one
# parse in C that hands anything out of the ordinary to the event parser: both must refuse.
@pytest.mark.parametrize("in_memory", [False, True], ids=["streamed", "in-memory"])
@pytest.mark.parametrize("case", CASES, ids=[case.id for case in CASES])
def test_hostile_package_is_refused(case: Case, in_memory: bool) -> None:
    assert case.data != GOOD or case.limits != DEFAULT
    with pytest.raises(errors.EdocError) as info:
        source = case.data if in_memory else io.BytesIO(case.data)
        envelope.read_package(source, limits=case.limits)
    assert type(info.value) is case.error, str(info.value)
    assert info.value.code == case.error.code
    assert info.value.code.startswith("EDOC-")
    if not in_memory:  # one hostile input, counted once in the report
        report.rejected(f"package/{case.id}", info.value.code)


def test_package_in_memory_is_read_without_the_event_parser(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    streamed = envelope.read_package(io.BytesIO(GOOD), MemorySink())
    monkeypatch.setattr(xmlsafe, "parse_events", _not_called)
    sink = MemorySink()
    whole = envelope.read_package(GOOD, sink)
    assert etree.tostring(whole.root, method="c14n") == etree.tostring(streamed.root, method="c14n")
    assert whole.received == streamed.received
    assert sorted(sink.files.values()) == sorted([A, B])


def _not_called(*_: object) -> None:
    raise AssertionError("the event parser was used")


# --- the hardened parser on its own --------------------------------------------------------------
XMLSAFE_CASES = [
    pytest.param(
        b'<!DOCTYPE a [<!ENTITY x SYSTEM "file:///etc/passwd">]><a>&x;</a>',
        errors.ForbiddenDtd,
        id="xxe",
    ),
    pytest.param(
        b"<!DOCTYPE a [" + LAUGHS + b"]><a>&lol9;</a>", errors.ForbiddenDtd, id="billion-laughs"
    ),
    pytest.param(
        b'<!DOCTYPE a SYSTEM "http://127.0.0.1:9/a.dtd"><a/>', errors.ForbiddenDtd, id="dtd"
    ),
    pytest.param(b"<a>&x;</a>", errors.ForbiddenEntity, id="undeclared-entity"),
    pytest.param(b"<a><?pi x?></a>", errors.ForbiddenXmlConstruct, id="pi"),
    pytest.param(b"<a>" * 6 + b"</a>" * 6, errors.XmlTooDeep, id="deep"),
    pytest.param(b"<a>" + b"x" * 2000 + b"</a>", errors.XmlTooLarge, id="oversize"),
    pytest.param(b"<a><b></a>", errors.MalformedXml, id="malformed"),
    pytest.param(b"", errors.MalformedXml, id="empty"),
    pytest.param(b"<a/><b/>", errors.MalformedXml, id="two-roots"),
]


@pytest.mark.parametrize(("data", "error"), XMLSAFE_CASES)
def test_xmlsafe_parse_refuses(data: bytes, error: type[errors.EdocError]) -> None:
    with pytest.raises(errors.EdocError) as info:
        xmlsafe.parse(data, xmlsafe.Limits(max_bytes=2000, max_depth=5))
    assert type(info.value) is error
    assert info.value.code == error.code


@pytest.mark.parametrize(("data", "_error"), XMLSAFE_CASES)
def test_xmlsafe_parse_whole_leaves_the_judging_to_the_event_parser(
    data: bytes, _error: type[errors.EdocError]
) -> None:
    assert xmlsafe.parse_whole(data, xmlsafe.Limits(max_bytes=1000, max_depth=5)) is None


def test_xmlsafe_parse_whole_takes_elements_and_text() -> None:
    data = b'<a xmlns="urn:x"><b c="d">text</b><!-- c --><b/></a>'
    root = xmlsafe.parse_whole(data, xmlsafe.Limits(max_bytes=len(data), max_depth=2))
    assert root is not None
    assert etree.tostring(root) == etree.tostring(xmlsafe.parse(data))
    assert xmlsafe.parse_whole(data, xmlsafe.Limits(max_bytes=len(data) - 1)) is None
    assert xmlsafe.parse_whole(data, xmlsafe.Limits(max_depth=1)) is None


def test_xmlsafe_parse_limits_are_inclusive() -> None:
    xml = b"<a>" * 5 + b"</a>" * 5
    assert xmlsafe.parse(xml, xmlsafe.Limits(max_bytes=len(xml), max_depth=5)).tag == "a"


def test_xmlsafe_parse_drops_comments_and_keeps_default_namespace() -> None:
    parsed = xmlsafe.parse(b'<a xmlns="urn:x"><!-- c --><b>t</b></a>')
    assert parsed.tag == "{urn:x}a"
    assert parsed.nsmap == {None: "urn:x"}
    assert [child.tag for child in parsed] == ["{urn:x}b"]


def test_xmlsafe_parse_keeps_every_prefix_where_it_was_declared() -> None:
    """The signed parts' C14N names their prefixes: a parser that renamed them (lxml 6.2.0's
    target parser made every one ns0) breaks every digest."""
    data = b'<e:a xmlns:e="urn:e"><e:b xmlns="urn:d" xmlns:f="urn:f"><c f:x="1"/></e:b><e:c/></e:a>'
    parsed = xmlsafe.parse(data)
    assert etree.tostring(parsed) == data
    assert parsed[0].nsmap == {"e": "urn:e", None: "urn:d", "f": "urn:f"}


def test_xmlsafe_parse_reads_escaped_ampersands_in_attributes() -> None:
    """libxml2, not told to replace entities, hands an attribute's &amp; (or &#38;) over
    as the five characters &#38;: a name such as "Sở TT&TT" in the signed address book
    then differed from what was signed, and no node could verify the book."""
    data = b'<a n="TT&amp;TT &#38; &#x26; &amp;#38; &lt;&gt;&quot;">T&amp;T</a>'
    parsed = xmlsafe.parse(data)
    assert parsed.get("n") == 'TT&TT & & &#38; <>"'
    assert parsed.text == "T&T"


def test_xmlsafe_parse_events_in_chunks() -> None:
    parsed = xmlsafe.parse_events([b"<a><b>x", b"y</b>", b"</a>"], _tree_builder())
    assert parsed.findtext("b") == "xy"


def _tree_builder() -> xmlsafe.Handler:
    builder: xmlsafe.Handler = etree.TreeBuilder()
    return builder


# --- what a sink sees when a package is refused --------------------------------------------------
def test_unsafe_name_never_reaches_the_sink() -> None:
    sink = MemorySink()
    with pytest.raises(errors.UnsafeAttachmentName):
        envelope.read_package(io.BytesIO(renamed(b"../x")), sink)
    assert sink.names == {}


def test_sink_is_closed_when_a_body_breaks() -> None:
    sink = MemorySink()
    with pytest.raises(errors.BadAttachmentEncoding):
        envelope.read_package(io.BytesIO(in_attachments(B64_B, B64_B[:3] + b"*" + B64_B[4:])), sink)
    assert sink.closed == ["cid:1", "cid:2"]  # the good one, then the broken one


def test_sink_is_closed_when_the_package_is_cut() -> None:
    sink = MemorySink()
    with pytest.raises(errors.MalformedXml):
        envelope.read_package(io.BytesIO(GOOD[: GOOD.index(B64_A) + 8]), sink)
    assert sink.closed == ["cid:1"]


def test_unicode_digits_are_refused_by_the_schema() -> None:
    data = in_envelope(
        b">2026/11/23</edXML:PromulgationDate>",
        ">٢٠٢٦/١١/٢٣</edXML:PromulgationDate>".encode(),
    )
    with pytest.raises(errors.SchemaViolation):
        envelope.read_package(io.BytesIO(data))


# --- values the schema's patterns let through, refused when the model is built ------------------
@pytest.mark.parametrize(
    "data",
    [
        pytest.param(
            in_envelope(
                b">2026/11/23</edXML:PromulgationDate>", b">2026/02/30</edXML:PromulgationDate>"
            ),
            id="impossible-date",
        ),
        pytest.param(
            in_envelope(b">2026/11/23 08:30:15<", b">2026/11/23 25:61:00<"),
            id="impossible-timestamp",
        ),
        pytest.param(
            in_envelope(b">2026/12/15</edXML:DueDate>", b">2026/00/15</edXML:DueDate>"),
            id="impossible-due-date",
        ),
    ],
)
def test_bad_values_refused_when_the_model_is_built(data: bytes) -> None:
    with pytest.raises(errors.InvalidField) as info:
        envelope.read_package(io.BytesIO(data))  # builds the model before it answers
    assert info.value.code == "EDOC-ENV-002"


# --- names lxml refuses to build a tree with -------------------------------------------
@pytest.mark.parametrize(
    "read",
    [
        pytest.param(lambda: xmlsafe.parse(b'<a xmlns="a b"/>'), id="xmlsafe-default-namespace"),
        pytest.param(lambda: xmlsafe.parse(b"<a><b:c:d/></a>"), id="xmlsafe-two-colons"),
        pytest.param(lambda: xmlsafe.parse(b'<a b:c:d="x"/>'), id="xmlsafe-attribute-two-colons"),
        pytest.param(
            lambda: envelope.read_package(
                io.BytesIO(in_envelope(SUBJECT, b'<x:Subject xmlns:x="&lt;">V/v</x:Subject>'))
            ),
            id="package-element-namespace",
        ),
    ],
)
def test_names_lxml_refuses_are_malformed(read: Callable[[], object]) -> None:
    with pytest.raises(errors.EdocError) as info:
        read()
    assert type(info.value) is errors.MalformedXml, str(info.value)
    report.rejected("package/name-lxml-refuses", info.value.code)
