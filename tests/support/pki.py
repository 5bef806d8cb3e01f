"""Building signed packages for tests: a throwaway CA and a document signed by it."""

from __future__ import annotations

import datetime as dt
import io
import json
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from lxml import etree

from edoc import envelope, metadata, signing
from edoc.keyindex import SigningIdentity
from edoc.keystore import KeyStore

SAMPLE = Path(__file__).resolve().parents[2] / "seeds" / "samples" / "cong-van.json"
SENDER = "000.00.12.H53"
SIGNER = "Nguyễn Văn A"


class Clock:
    """A clock tests can move."""

    def __init__(self) -> None:
        self.now = dt.datetime.now(dt.UTC)

    def __call__(self) -> dt.datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += dt.timedelta(**delta)


@dataclass
class Ca:
    keys: KeyStore
    clock: Clock

    @classmethod
    def create(cls, path: Path) -> Ca:
        clock = Clock()
        keys = KeyStore(path, clock=clock)
        keys.init()
        keys.issue(SENDER, org_name="Sở Thông tin và Truyền thông tỉnh Tây Ninh")
        keys.issue(SENDER, full_name=SIGNER)
        keys.issue("000.00.00.H23", org_name="UBND tỉnh Hà Nam")
        return cls(keys, clock)


def sample_metadata(**changes: Any) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(SAMPLE.read_text(encoding="utf-8"))
    data.update(changes)
    return data


def unsigned_root(
    files: list[tuple[Any, Path]] | None = None,
    signed_at: dt.datetime | None = None,
    **changes: Any,
) -> etree._Element:
    """A document of the sample metadata with ``changes``; a ``document_id`` is taken as
    given, as a hostile node would write it (the agency door refuses another sender's)."""
    document_id = changes.pop("document_id", None)
    document = metadata.to_document(
        metadata.check(sample_metadata(**changes)), tuple(a for a, _ in files or [])
    )
    if document_id is not None:
        document = replace(document, document_id=document_id)
    document = envelope.stamp_origin(document, signed_at or dt.datetime.now(dt.UTC))
    return envelope.build_envelope(document)


def signed_root(
    ca: Ca,
    seal: SigningIdentity | None = None,
    personal: SigningIdentity | None = None,
    files: list[tuple[Any, Path]] | None = None,
    **changes: Any,
) -> etree._Element:
    root = unsigned_root(files, signed_at=ca.clock(), **changes)
    return signing.sign(root, seal or ca.keys.identity(SENDER), personal)


def wire(root: etree._Element, files: list[tuple[Any, Path]] | None = None) -> bytes:
    out = io.BytesIO()
    envelope.write_package(root, files or [], out)
    return out.getvalue()


def reparse(root: etree._Element) -> etree._Element:
    """What a receiver parses: the tree as it comes off the wire."""
    return envelope.read_package(io.BytesIO(wire(root))).root


def verify(ca: Ca, root: etree._Element) -> signing.Verified:
    return signing.verify(reparse(root), ca.keys.trust(), ca.clock())


Mutation = Callable[[etree._Element], None]
