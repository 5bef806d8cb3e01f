"""Answering a received document: status messages signed by the responding agency and
put in the outbox, the node's own 01 (arrived) and an agency's 02–06, 15, 16."""

from __future__ import annotations

import datetime as dt

from edoc.model import (
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
from edoc.store.node import NewOutgoing


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
    Signing: run it off the loop."""
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


async def answer(
    state: NodeState,
    inbox_id: int,
    responder: str,
    answered: ResponseFor,
    code: StatusCode,
    description: str = "",
    staff: Staff | None = None,
) -> int:
    """An agency's own status (02–06) about a document it received, into the outbox."""
    new = await state.offload.run(
        status_message, state, responder, answered, code, description, staff
    )
    outgoing_id = await state.store.add_answer(
        inbox_id, new, dt.datetime.now(dt.UTC), progress.may_answer(code)
    )
    state.outbox_wakeup.set()
    return outgoing_id
