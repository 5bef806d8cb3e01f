"""How the recipients of an outgoing message move, as the node's store records it.

The rules live in :mod:`edoc.model`; the store applies them inside the transaction that
records what happened (so a transfer finishing late and a status arriving at once cannot
both win), through the functions here.
"""

from __future__ import annotations

from collections.abc import Sequence

from edoc import errors
from edoc.model import StatusCode, may_follow, recipient_state, state_after
from edoc.store.node import AnswerCheck, Event


def next_state(shown: str, event: str) -> str:
    """The state a recipient shows after ``event`` when it showed ``shown``
    (:data:`edoc.store.node.StateRule`)."""
    return str(state_after(recipient_state(shown), recipient_state(event)))


def status_event(code: StatusCode) -> Event:
    """A recipient's status about our document, as it joins the recipient's history."""
    return Event(code.value, f"status {code.value}")


def may_answer(code: StatusCode) -> AnswerCheck:
    """The check an agency's answer ``code`` passes against the codes it gave before."""

    def check(given: Sequence[str]) -> None:
        if not may_follow([StatusCode(c) for c in given], code):
            raise errors.StatusOutOfOrder(f"{code.value} cannot follow {', '.join(given)}")

    return check
