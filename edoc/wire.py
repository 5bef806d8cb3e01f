"""The hub↔node wire shapes: one definition of each answer, for the side that writes it
(the hub) and the side that reads it (the node, the CLI, the tests). Most are JSON; the
collect answer may also come as a frame body (edoc.framing), its packages as bytes.

Reading is strict: an answer of the wrong shape is a :class:`~edoc.errors.BadAnswer`, so a
confused or hostile peer never surfaces as a ``KeyError`` deep inside the caller.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any, TypeVar

from edoc import errors, framing, jsonsafe

T = TypeVar("T")

# A collect's header naming the node process that collects (at most COLLECTOR_CHARS): the
# hub hands it a status whose chain's earlier status it holds already (it orders them
# itself), and no other holder, a node restarted meanwhile say (HubStore.lease).
COLLECTOR = "X-Edoc-Collector"
COLLECTOR_CHARS = 64


def _field(body: object, name: str, kind: type[T], optional: bool = False) -> T:
    value = body.get(name) if isinstance(body, dict) else None
    if value is None and optional:
        return value  # type: ignore[return-value]
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise errors.BadAnswer(f"answer field {name!r} must be {kind.__name__}, not {value!r}")
    return value


def _ints(body: object, name: str) -> tuple[int, ...]:
    values = _field(body, name, list)
    if not all(type(v) is int for v in values):
        raise errors.BadAnswer(f"answer field {name!r} must be a list of integers")
    return tuple(values)


def _strings(body: object, name: str) -> tuple[str, ...]:
    values = _field(body, name, list)
    if not all(isinstance(v, str) for v in values):
        raise errors.BadAnswer(f"answer field {name!r} must be a list of strings")
    return tuple(values)


@dataclass(frozen=True)
class PackageAccepted:
    """The hub's 202 to ``POST /api/v1/packages``."""

    id: int
    kind: str
    document_id: str
    status_code: str | None
    recipients: tuple[str, ...]
    accepted_at: str  # ISO 8601

    def to_json(self) -> dict[str, Any]:
        # spelled out, not dataclasses.asdict (which deep-copies field by field): one a
        # package the hub accepts
        return {
            "id": self.id,
            "kind": self.kind,
            "document_id": self.document_id,
            "status_code": self.status_code,
            "recipients": list(self.recipients),
            "accepted_at": self.accepted_at,
        }

    @classmethod
    def from_json(cls, body: object) -> PackageAccepted:
        return cls(
            id=_field(body, "id", int),
            kind=_field(body, "kind", str),
            document_id=_field(body, "document_id", str),
            status_code=_field(body, "status_code", str, optional=True),
            recipients=_strings(body, "recipients"),
            accepted_at=_field(body, "accepted_at", str),
        )


# ``POST /api/v1/packages/batch`` carries at most this many packages, in a frame body of
# at most this many bytes (framing included); a larger package goes alone, streamed, to
# ``POST /api/v1/packages``.
BATCH_PACKAGES = 32
BATCH_BYTES = 1024 * 1024


@dataclass(frozen=True)
class PackageResult:
    """One package's answer inside the hub's answer to ``POST /api/v1/packages/batch``:
    the status ``POST /api/v1/packages`` would have given it, with its acceptance (202,
    ``resend`` as the single answer's X-Edoc-Resend) or its error (``retry_after`` as the
    single answer's Retry-After, seconds, on a 429)."""

    status: int
    accepted: PackageAccepted | None = None
    resend: bool = False
    code: str = ""
    message: str = ""
    retry_after: int | None = None

    def to_json(self) -> dict[str, Any]:
        if self.accepted is not None:
            return {
                "status": self.status,
                "accepted": self.accepted.to_json(),
                "resend": self.resend,
            }
        error = {"status": self.status, "error": {"code": self.code, "message": self.message}}
        return error if self.retry_after is None else error | {"retry_after": self.retry_after}

    @classmethod
    def from_json(cls, body: object) -> PackageResult:
        status = _field(body, "status", int)
        if status == 202:
            accepted = PackageAccepted.from_json(_field(body, "accepted", dict))
            return cls(status, accepted, resend=_field(body, "resend", bool))
        if not 400 <= status <= 599:
            raise errors.BadAnswer(f"a package's status must be 202 or an error, not {status}")
        error = _field(body, "error", dict)
        return cls(
            status,
            code=_field(error, "code", str),
            message=_field(error, "message", str),
            retry_after=_field(body, "retry_after", int, optional=True),
        )


def batch_answer_json(results: Sequence[PackageResult], others: int) -> dict[str, Any]:
    """The batch answer: a result for each package, in order, and how many other batches
    the hub was handling as it answered (whether it has room for more at once)."""
    return {"results": [r.to_json() for r in results], "batches_under_way": others}


def results_from_json(body: object, count: int) -> list[PackageResult]:
    """The batch answer's results, one for each of the ``count`` packages sent."""
    results = [PackageResult.from_json(item) for item in _field(body, "results", list)]
    if len(results) != count:
        raise errors.BadAnswer(f"{count} packages were sent, {len(results)} results came back")
    return results


def batches_under_way_from_json(body: object) -> int | None:
    """The other batches the hub was handling as it answered; None from a hub that does
    not say (an older one)."""
    others = _field(body, "batches_under_way", int, optional=True)
    if others is not None and others < 0:
        raise errors.BadAnswer(f"answer field 'batches_under_way' must be 0 or more, not {others}")
    return others


@dataclass(frozen=True)
class DeliveryNotice:
    """One delivery of a collect answer (``GET /api/v1/deliveries``); ``package`` is the
    package when it came inline, else the node fetches it by ``id``. In a JSON answer an
    inline package is base64 (``package``); in a frame body it is a part of its own, its
    notice marked ``"inline": true``."""

    id: int
    hub_id: int
    recipient: str
    kind: str
    sender: str
    document_id: str  # a status: the answered document's
    status_code: str | None
    priority: int
    size: int
    attempts: int
    package: bytes | None = None

    def _described(self) -> dict[str, Any]:
        # spelled out, not dataclasses.asdict (which deep-copies field by field, the
        # package's bytes too): one a delivery the hub hands out
        return {
            "id": self.id,
            "hub_id": self.hub_id,
            "recipient": self.recipient,
            "kind": self.kind,
            "sender": self.sender,
            "document_id": self.document_id,
            "status_code": self.status_code,
            "priority": self.priority,
            "size": self.size,
            "attempts": self.attempts,
        }

    def to_json(self) -> dict[str, Any]:
        described = self._described()
        if self.package is not None:
            described["package"] = base64.b64encode(self.package).decode()
        return described

    @classmethod
    def from_json(cls, body: object) -> DeliveryNotice:
        package = _field(body, "package", str, optional=True)
        return cls._read(body, None if package is None else _base64(package))

    @classmethod
    def _read(cls, body: object, package: bytes | None) -> DeliveryNotice:
        return cls(
            id=_field(body, "id", int),
            hub_id=_field(body, "hub_id", int),
            recipient=_field(body, "recipient", str),
            kind=_field(body, "kind", str),
            sender=_field(body, "sender", str),
            document_id=_field(body, "document_id", str),
            status_code=_field(body, "status_code", str, optional=True),
            priority=_field(body, "priority", int),
            size=_field(body, "size", int),
            attempts=_field(body, "attempts", int),
            package=package,
        )


def _base64(text: str) -> bytes:
    try:
        return base64.b64decode(text, validate=True)
    except binascii.Error:
        raise errors.BadAnswer("answer field 'package' is not base64") from None


def deliveries_from_json(body: object) -> list[DeliveryNotice]:
    return [DeliveryNotice.from_json(item) for item in _field(body, "deliveries", list)]


def deliveries_to_frames(notices: Sequence[DeliveryNotice]) -> bytes:
    """A collect answer as a frame body: the notices as JSON, then each inline package."""
    described = [
        n._described() | ({"inline": True} if n.package is not None else {}) for n in notices
    ]
    packages = [n.package for n in notices if n.package is not None]
    return framing.frame([json.dumps({"deliveries": described}).encode(), *packages])


MOST_DELIVERIES = 1000  # notices a collect answer may carry, far above the hub's limit


def deliveries_from_frames(body: object) -> list[DeliveryNotice]:
    """Read :func:`deliveries_to_frames`' body strictly: each notice marked inline has
    its part, in order, and no part is left over."""
    if not isinstance(body, bytes):
        raise errors.BadAnswer("the collect answer is not a frame body")
    try:
        notices, *packages = framing.unframe(body, MOST_DELIVERIES + 1)
        described = _field(jsonsafe.read(notices, "the notices"), "deliveries", list)
    except (errors.InputError, ValueError) as exc:
        raise errors.BadAnswer(f"the collect answer cannot be read: {exc}") from None
    inline = [_field(item, "inline", bool, optional=True) is True for item in described]
    if sum(inline) != len(packages):
        raise errors.BadAnswer(f"{sum(inline)} notices are inline, {len(packages)} packages came")
    given = iter(packages)
    return [
        DeliveryNotice._read(item, next(given) if is_inline else None)
        for item, is_inline in zip(described, inline, strict=True)
    ]


@dataclass(frozen=True)
class Acknowledged:
    """The hub's answer to ``POST /api/v1/deliveries/ack``: ``first`` are those
    acknowledged for the first time."""

    delivered: tuple[int, ...]
    first: tuple[int, ...]

    def to_json(self) -> dict[str, Any]:
        return {"delivered": list(self.delivered), "first": list(self.first)}

    @classmethod
    def from_json(cls, body: object) -> Acknowledged:
        return cls(delivered=_ints(body, "delivered"), first=_ints(body, "first"))


@dataclass(frozen=True)
class Book:
    """The hub's answer to ``GET /api/v1/directory``: the signed address book, and the
    ETag that names it (a node that sends it back is answered 304 while it holds)."""

    body: bytes
    etag: str


@dataclass(frozen=True)
class Registered:
    """The hub's answer to ``POST /api/v1/directory``."""

    version: int
    registered: int

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, body: object) -> Registered:
        return cls(version=_field(body, "version", int), registered=_field(body, "registered", int))


# The statistics (``GET /api/v1/stats``) of a hub and of a node: one path, answered by
# either with figures of its own; what their readers (edoc stats, the simulator, the
# benchmark) index, checked, so that the one asked at the other's address is refused
# instead of read as a report of zeros.
HUB_STATS = {"totals": dict, "in_flight": int, "by_province": dict, "rejected_by_code": dict}
NODE_STATS = {
    "sent": int,
    "received": int,
    "by_agency": dict,
    "by_partner_province": dict,
    "status_breakdown": dict,
}


def hub_stats_from_json(body: object) -> dict[str, Any]:
    return _shaped_as(body, HUB_STATS)


def node_stats_from_json(body: object) -> dict[str, Any]:
    return _shaped_as(body, NODE_STATS)


def _shaped_as(body: object, fields: dict[str, type]) -> dict[str, Any]:
    for name, kind in fields.items():
        _field(body, name, kind)
    assert isinstance(body, dict)  # _field refuses anything else
    return body
