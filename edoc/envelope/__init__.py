"""edXML packages (QCVN 102:2016): model → bytes and bytes → model.

The wire form is the one the national axis carries: a single XML document whose
``edXMLEnvelope`` holds the header and the manifest, followed by ``AttachmentEncoded``
with each file's bytes in base64. Attachments are streamed both ways, so a package of
any size passes through a few hundred kilobytes of memory; the tree edoc keeps holds
everything except the attachment bodies.

This package is the public face; callers use ``envelope.X``. One job per module:
``names`` (namespace, signed ids), ``dates``, ``build`` (model → tree), ``parse``
(tree → model), ``schema``, ``write`` (tree → wire), ``read`` (wire → package,
streamed) and ``attachments`` (names, sinks, base64, the manifest check) and ``relay`` (the bytes
received, passed on with a relay's hop) and ``canonical`` (model → bytes with no tree: the
sender's envelope, each signed part beside it in exclusive C14N).
"""

from edoc.envelope.attachments import (
    MAX_ATTACHMENTS,
    AttachmentSink,
    KeptInMemory,
    ReceivedAttachment,
    Writable,
    attachments_from_files,
    check_attachments,
    discard_sink,
    hash_file,
    safe_attachment_name,
    strict_b64decode,
)
from edoc.envelope.build import (
    add_trace_hop,
    build_envelope,
    envelope_only,
    stamp_origin,
)
from edoc.envelope.canonical import PACKAGE_CLOSE, Written, written
from edoc.envelope.dates import (
    DATE_FORMAT,
    TIMESTAMP_FORMAT,
    VIETNAM,
    format_date,
    format_timestamp,
    parse_date,
    parse_timestamp,
)
from edoc.envelope.names import BUSINESS_ID, HEADER_ID, MANIFEST_ID, NS, NSMAP, ORIGIN_ID, q
from edoc.envelope.parse import (
    as_document,
    business_element,
    business_from,
    document_from_envelope,
    manifest_element,
    manifest_from,
    message_from_envelope,
    message_from_parts,
    message_header,
    trace_from,
    trace_hop,
)
from edoc.envelope.read import Package, PackageLimits, read_package
from edoc.envelope.relay import relayed
from edoc.envelope.schema import validate
from edoc.envelope.write import BASE64_LINE, SignedEnvelope, to_bytes, write_package
from edoc.model import MessageT

__all__ = [
    "BASE64_LINE",
    "BUSINESS_ID",
    "DATE_FORMAT",
    "HEADER_ID",
    "MANIFEST_ID",
    "MAX_ATTACHMENTS",
    "NS",
    "NSMAP",
    "ORIGIN_ID",
    "PACKAGE_CLOSE",
    "TIMESTAMP_FORMAT",
    "VIETNAM",
    "AttachmentSink",
    "KeptInMemory",
    "MessageT",
    "Package",
    "PackageLimits",
    "ReceivedAttachment",
    "SignedEnvelope",
    "Writable",
    "Written",
    "add_trace_hop",
    "as_document",
    "attachments_from_files",
    "build_envelope",
    "business_element",
    "business_from",
    "check_attachments",
    "discard_sink",
    "document_from_envelope",
    "envelope_only",
    "format_date",
    "format_timestamp",
    "hash_file",
    "manifest_element",
    "manifest_from",
    "message_from_envelope",
    "message_from_parts",
    "message_header",
    "parse_date",
    "parse_timestamp",
    "q",
    "read_package",
    "relayed",
    "safe_attachment_name",
    "stamp_origin",
    "strict_b64decode",
    "to_bytes",
    "trace_from",
    "trace_hop",
    "validate",
    "write_package",
    "written",
]
