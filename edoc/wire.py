"""The hub↔node wire shapes: one definition of each JSON answer, for the side that writes
it (the hub) and the side that reads it (the node, the CLI, the tests).

Reading is strict: an answer of the wrong shape is a :class:`~edoc.errors.BadAnswer`, so a
confused or hostile peer never surfaces as a ``KeyError`` deep inside the caller.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, TypeVar

from edoc import errors

T = TypeVar("T")


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
        return asdict(self) | {"recipients": list(self.recipients)}

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


@dataclass(frozen=True)
class DeliveryNotice:
    """One delivery of a collect answer (``GET /api/v1/deliveries``); ``package`` is the
    package in base64 when it came inline, else the node fetches it by ``id``."""

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
    package: str | None = None

    def to_json(self) -> dict[str, Any]:
        described = asdict(self)
        if self.package is None:
            del described["package"]
        return described

    @classmethod
    def from_json(cls, body: object) -> DeliveryNotice:
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
            package=_field(body, "package", str, optional=True),
        )


def deliveries_from_json(body: object) -> list[DeliveryNotice]:
    return [DeliveryNotice.from_json(item) for item in _field(body, "deliveries", list)]


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
class Registered:
    """The hub's answer to ``POST /api/v1/directory``."""

    version: int
    registered: int

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, body: object) -> Registered:
        return cls(version=_field(body, "version", int), registered=_field(body, "registered", int))
