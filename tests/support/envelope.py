"""Building unsigned packages for envelope tests: metadata + file bytes → wire bytes."""

from __future__ import annotations

import datetime as dt
import io
import json
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lxml import etree

from edoc import envelope, metadata
from edoc.model import Document

ROOT = Path(__file__).resolve().parents[2]
SAMPLE_METADATA = ROOT / "seeds" / "samples" / "cong-van.json"
SAMPLE_ATTACHMENT = ROOT / "seeds" / "samples" / "ke-hoach.txt"

# When the sample's sender "signed": a fixed time so packages are reproducible.
SENT_AT = dt.datetime(2026, 11, 23, 8, 30, 15, tzinfo=envelope.VIETNAM)


def load_sample_metadata() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(SAMPLE_METADATA.read_text(encoding="utf-8"))
    return data


@dataclass(frozen=True)
class Packed:
    """A package as the sender built it: the model, the envelope tree and the wire bytes."""

    document: Document
    root: etree._Element
    wire: bytes


def pack(
    data: Mapping[str, Any],
    files: Mapping[str, bytes] | None = None,
    sent_at: dt.datetime | None = SENT_AT,
) -> Packed:
    """What ``edoc pack`` does (unsigned): check metadata, attach files, stamp, write."""
    with tempfile.TemporaryDirectory(prefix="edoc-test-") as folder:
        paths = []
        for name, content in (files or {}).items():
            path = Path(folder) / name
            path.write_bytes(content)
            paths.append(path)
        attached = envelope.attachments_from_files(paths)
        document = metadata.to_document(
            metadata.check(dict(data)), tuple(item for item, _ in attached)
        )
        if sent_at is not None:
            document = envelope.stamp_origin(document, sent_at)
        root = envelope.build_envelope(document)
        envelope.validate(root)
        out = io.BytesIO()
        envelope.write_package(root, attached, out)
    return Packed(document, root, out.getvalue())


class _Buffer:
    def __init__(self, owner: MemorySink, content_id: str) -> None:
        self._owner = owner
        self._content_id = content_id
        self._data = bytearray()

    def write(self, data: bytes, /) -> int:
        self._data += data
        return len(data)

    def close(self) -> None:
        self._owner.files[self._content_id] = bytes(self._data)
        self._owner.closed.append(self._content_id)


@dataclass
class MemorySink:
    """An attachment sink that keeps the bytes, by content id, for a test to look at."""

    files: dict[str, bytes] = field(default_factory=dict)
    names: dict[str, str] = field(default_factory=dict)
    closed: list[str] = field(default_factory=list)

    def __call__(self, content_id: str, name: str) -> envelope.Writable:
        self.names[content_id] = name
        return _Buffer(self, content_id)


def read(wire: bytes, limits: envelope.PackageLimits | None = None) -> envelope.Package:
    """Read wire bytes with the attachments discarded."""
    if limits is None:
        return envelope.read_package(io.BytesIO(wire))
    return envelope.read_package(io.BytesIO(wire), limits=limits)
