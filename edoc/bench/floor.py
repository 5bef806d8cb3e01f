"""The floor under the network figures: the XML and crypto work of one document's journey,
done in this one process and nothing else.

A document is packed and signed (seal and personal signature) at the sender's node,
read and verified at the hub and relayed with its hop, read and verified at the
recipient's node, which packs and signs its status 01; the 01 goes back the same way.
Here each step calls the functions the services call, on the bench network's keys, without
HTTP, storage, event loop or thread hand-offs. What a service spends beyond this is its
own cost, and ``cpus × 1000 / total`` is the most documents per second this work allows
on this machine even if the rest cost nothing.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from edoc import envelope, signing
from edoc.bench.exchange import Agency, metadata
from edoc.keystore import KeyStore
from edoc.model import Attachment, Document, Organization, StatusCode, StatusUpdate, TraceHop
from edoc.node import answers, compose

HUB = "000.00.00.G22"  # only a name on the relay hop here


def _ms_per_call(work: Callable[[], object], seconds: float) -> float:
    """CPU ms of this process per call, after one call to warm caches."""
    work()
    calls = 0
    started = time.process_time()
    while (spent := time.process_time() - started) < seconds:
        work()
        calls += 1
    return round(spent / calls * 1000, 3)


def _read_and_verify(
    package: bytes, keys: KeyStore
) -> tuple[envelope.Package, list[tuple[Attachment, bytes]]]:
    """As a service reads a package in memory: attachments kept in memory, then verified.
    Returns the package and its attachments as write_package takes them."""
    kept: dict[str, envelope.KeptInMemory] = {}

    def sink(content_id: str, _name: str) -> envelope.Writable:
        kept[content_id] = envelope.KeptInMemory()
        return kept[content_id]

    read = envelope.read_package(package, sink)
    verified = signing.verify_package(read, keys.trust(), dt.datetime.now(dt.UTC))
    return read, [(item, kept[item.content_id].getvalue()) for item in verified.message.attachments]


def _relayed(package: bytes, keys: KeyStore) -> bytes:
    """The hub's work on a package in memory: read and verify, pass it on with its hop."""
    read, files = _read_and_verify(package, keys)
    return envelope.relayed(package, read.root, files, TraceHop(HUB, dt.datetime.now(dt.UTC)))


def _status_01(keys: KeyStore, document: Document, now: dt.datetime) -> bytes:
    """The recipient's status 01 about ``document``, packed and signed as its node does."""
    status = StatusUpdate(
        sender=Organization(document.recipients[0].org_id),
        response_for=answers.response_for(document),
        code=StatusCode.ARRIVED,
        timestamp=now.replace(microsecond=0),
    )
    return compose.message_package(keys, status, now)


def journey(
    keys_dir: Path, sender: Agency, recipient: Agency, attachment: Path, seconds: float, cpus: int
) -> dict[str, Any]:
    """CPU ms of each step of one document's journey and its 01's, each timed for
    ``seconds``; their sum; and the documents per second that sum allows on ``cpus``."""
    keys = KeyStore(keys_dir)
    now = dt.datetime.now(dt.UTC)
    data = metadata(sender, recipient, 0)
    document, _, packed = compose.document_package(
        keys, data, [attachment], attachment.with_suffix(".edxml"), now
    )
    assert packed is not None, "the bench's document is small enough to stay in memory"
    relayed = _relayed(packed, keys)
    status = _status_01(keys, document, now)
    relayed_status = _relayed(status, keys)
    steps = {
        "sender packs and signs the document": lambda: compose.document_package(
            keys, data, [attachment], attachment.with_suffix(".edxml"), now
        ),
        "hub verifies and relays it": lambda: _relayed(packed, keys),
        "recipient verifies it": lambda: _read_and_verify(relayed, keys),
        "recipient packs and signs the 01": lambda: _status_01(keys, document, now),
        "hub verifies and relays the 01": lambda: _relayed(status, keys),
        "sender verifies the 01": lambda: _read_and_verify(relayed_status, keys),
    }
    step_ms = {name: _ms_per_call(work, seconds) for name, work in steps.items()}
    total = round(sum(step_ms.values()), 3)
    return {
        "step_ms": step_ms,
        "total_ms": total,
        "ceiling_documents_per_s": round(cpus * 1000 / total, 1),
    }
