"""Answering a received document: status messages signed by the responding agency and
put in the outbox, the node's own 01 (arrived) and an agency's 02–06, 15, 16."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

from edoc import errors
from edoc.model import (
    AGENCY_CODES,
    BusinessDocType,
    Document,
    MessageKind,
    Organization,
    ResponseFor,
    Staff,
    StatusCode,
    StatusUpdate,
)
from edoc.node import compose, progress
from edoc.node.state import NodeState
from edoc.store.node import InboxItem, NewAnswer, NewOutgoing


def response_for(document: Document) -> ResponseFor:
    return ResponseFor(
        document.sender.org_id,
        str(document.code),
        document.promulgation.date,
        document.document_id,
    )


def status_message(
    state: NodeState,
    responder: str,
    answered: ResponseFor,
    code: StatusCode,
    description: str = "",
    staff: Staff | None = None,
) -> NewOutgoing:
    """``responder``'s signed status about a document, packed and ready for the outbox.
    Signing: through offload.run_small_here (a status is small)."""
    now = dt.datetime.now(dt.UTC)
    status = StatusUpdate(
        sender=Organization(responder),
        response_for=answered,
        code=code,
        timestamp=now.replace(microsecond=0),
        description=description,
        staff=staff or Staff(),
    )
    return NewOutgoing(
        kind=MessageKind.STATUS,
        sender=responder,
        document_id=answered.document_id,
        status_code=code.value,
        idempotency_key=None,
        priority=0,
        path="",
        summary={"code": code.value, "description": description},
        recipients=(answered.org_id,),
        local=(answered.org_id,) if state.serves(answered.org_id) else (),
        body=compose.message_package(state.keys, status, now),
    )


MAX_DESCRIPTION = 20000  # characters
MAX_STATUSES = 100  # in one request of the batch door


@dataclass(frozen=True)
class AgencyStatus:
    """What an agency posted about an item of its inbox."""

    item: InboxItem
    code: StatusCode
    description: str = ""
    staff: Staff = field(default_factory=Staff)
    entry: int | None = None  # its place in a request of the batch door, named in errors

    @property
    def answered(self) -> ResponseFor:
        summary = self.item.summary
        return ResponseFor(
            self.item.sender,
            summary["code"],
            dt.date.fromisoformat(summary["promulgation_date"]),
            self.item.document_id,
        )


def agency_status(item: InboxItem, body: object, entry: int | None = None) -> AgencyStatus:
    """The status an agency posted about ``item`` (a JSON object: code, description,
    staff; ``entry`` of a batch), or InvalidField."""
    fields = body if isinstance(body, dict) else {}
    code = fields.get("code")
    if not isinstance(code, str) or code not in AGENCY_CODES:
        raise errors.InvalidField(f"code must be one of {', '.join(sorted(AGENCY_CODES))}")
    description = fields.get("description", "")
    if not isinstance(description, str) or len(description) > MAX_DESCRIPTION:
        raise errors.InvalidField(
            f"description must be text of at most {MAX_DESCRIPTION} characters"
        )
    return AgencyStatus(
        item, StatusCode(code), description, staff_of(fields.get("staff", {})), entry
    )


STAFF_FIELDS = ("department", "name", "email", "mobile")
MAX_STAFF_FIELD = 500  # characters, as the metadata's short texts (a signer's position)


def staff_of(given: object) -> Staff:
    """The officer a status names, refused as the document metadata refuses its fields:
    an unknown field (EDOC-ENV-003), a value not text or longer than MAX_STAFF_FIELD
    (EDOC-ENV-002), each error naming the field (``staff.foo``). Silently dropping or
    cutting them sent a status that said less than the agency believed."""
    if not isinstance(given, dict):
        raise errors.InvalidField("staff must be an object")
    unknown = sorted(set(given) - set(STAFF_FIELDS))
    if unknown:
        raise errors.UnknownField(
            f"staff.{unknown[0]}: unknown field (staff has {', '.join(STAFF_FIELDS)})"
        )
    for key, value in given.items():
        if not isinstance(value, str) or len(value) > MAX_STAFF_FIELD:
            raise errors.InvalidField(
                f"staff.{key}: must be text of at most {MAX_STAFF_FIELD} characters"
            )
    return Staff(**given)


@contextlib.contextmanager
def naming(entry: int | None) -> Iterator[None]:
    """Errors about entry ``entry`` of a batch say which it is (a single post's: as
    they are)."""
    try:
        yield
    except errors.EdocError as exc:
        if entry is None:
            raise
        raise type(exc)(f"statuses[{entry}]: {exc.message}") from None


def check_order(statuses: Sequence[AgencyStatus]) -> None:
    """Refuse, before anything is signed, a status that may not follow what its item was
    answered before, the statuses ahead of it in ``statuses`` included (the store judges
    again as it queues them: another post may come between)."""
    given: dict[int, list[str]] = {}
    for status in statuses:
        earlier = given.setdefault(status.item.id, list(status.item.answers))
        with naming(status.entry):
            progress.may_answer(status.code)(earlier)
        earlier.append(status.code.value)


async def check_changes_received(state: NodeState, statuses: Sequence[AgencyStatus]) -> None:
    """Refuse a 15 or 16 about a document of which no revoke, update or replacement
    reached the agency: they answer one, posted on the change's own item (its own
    DocumentId, or the original's it shares) or on the original's. Judged here, where
    what the agency received is known: the hub keeps no link from a change to the
    document it changes."""
    for status in statuses:
        item = status.item
        if (
            status.code.answers_change
            and item.business_type == BusinessDocType.NEW
            and not await state.store.received_change(item.recipient, item.sender, item.document_id)
        ):
            with naming(status.entry):
                raise errors.StatusOutOfOrder(
                    f"{status.code.value} answers a revoke, update or replacement of the"
                    f" document, and {item.recipient} received none of {item.document_id}"
                )


def _signed(state: NodeState, status: AgencyStatus) -> NewOutgoing:
    with naming(status.entry):  # e.g. a description XML cannot carry
        return status_message(
            state,
            status.item.recipient,
            status.answered,
            status.code,
            status.description,
            status.staff,
        )


async def answer(state: NodeState, statuses: Sequence[AgencyStatus]) -> list[int]:
    """Agencies' own statuses (02–06, 15, 16) about documents they received (15 and 16
    about one a change of which reached them), signed and into the outbox in one
    transaction, in order: all or none. Their outgoing ids, in order. Signed here on the
    event loop, a status being small (offload.run_small_here), with other requests
    served between two."""
    await check_changes_received(state, statuses)
    messages = []
    for status in statuses:
        messages.append(_signed(state, status))
        await asyncio.sleep(0)
    queued = [
        NewAnswer(s.item.id, message, progress.may_answer(s.code))
        for s, message in zip(statuses, messages, strict=True)
    ]
    outgoing_ids = await state.store.add_answers(queued, dt.datetime.now(dt.UTC))
    state.outbox_wakeup.set()
    return outgoing_ids
