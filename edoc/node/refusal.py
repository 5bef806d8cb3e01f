"""The hub refusing the node itself, not what it sends: its hub token (401) or its client
certificate (403). That is the node's configuration, not a document's fault: the
documents wait in the outbox (edoc.node.outbox) until an operator puts it right, and go at
once when the hub takes the node again.

What waits for that is remembered here by transfer (NodeState.waiting_on_credentials):
their own next tries, jittered up to the retry cap, could come minutes after the hub
takes the node. A request that the hub refused for the node's credentials and then
answered (a collect, the registration, a package) says it takes the node again; those
transfers fall due then, and only those (one waiting out a 429's Retry-After keeps its
wait).

The store keeps the reason with each transfer's retry (NodeStore.retry_transfer's
``for_credentials``), and a node starting takes what waited from it (``recall``): the
operator who puts the node's token right in its configuration restarts it, and the
transfers refused before go as soon as the hub answers the restarted node (its
registration, at start), not at their own next tries.
"""

from __future__ import annotations

import datetime as dt
from typing import TypeGuard

import structlog

from edoc import errors
from edoc.node.state import NodeConfig, NodeState
from edoc.retry import Backoff

log = structlog.get_logger()

# 403s that refuse the node's client certificate (a proxy's has no edoc error), not a package
NODE_FORBIDDEN = frozenset({errors.Forbidden.code, "EDOC-HTTP-403"})
# Seconds at most between a refused node's collects (and registrations): its documents'
# own tries wait up to the retry cap (60 s by default, often more), and these are what
# find out, soon after the operator lets the node in, that the hub takes it again. A
# refused request costs the hub a token look-up.
ASK_AGAIN_WITHIN = 5.0


def refuses_the_node(exc: errors.EdocError | OSError) -> TypeGuard[errors.RemoteError]:
    """Whether the hub (or a proxy before it) refused the node itself, not the package: its
    token (401, whatever the code) or its client certificate (403 EDOC-AUTH-002, or a 403
    with no edoc error). A 403 with another code (EDOC-HUB-002 impersonation, EDOC-SIG-006)
    is about the package. Every package would be refused alike until an operator gives
    the node its right token or certificate: they wait, as in an outage."""
    return isinstance(exc, errors.RemoteError) and (
        exc.status == 401 or (exc.status == 403 and exc.code in NODE_FORBIDDEN)
    )


def backoff(config: NodeConfig) -> Backoff:
    """The waits of a request the hub refuses for the node's credentials: as any retry's,
    up to ASK_AGAIN_WITHIN (the retry cap when that is less)."""
    return Backoff(config.retry_base, min(config.retry_cap, ASK_AGAIN_WITHIN))


def refused(state: NodeState, exc: errors.RemoteError, asked_at: dt.datetime | None = None) -> None:
    """The hub refused the node's credentials: said once, as an error, when it starts.
    Not for a request asked before the hub took the node again (``asked_at``): sent with
    the credentials the operator has since put right, its refusal is stale."""
    took_at = state.hub_took_node_at
    if asked_at is not None and took_at is not None and asked_at < took_at:
        return
    if not state.hub_refused_node:
        log.error(
            "the hub refused this node's credentials (its hub token or client certificate):"
            " documents wait in the outbox until they are put right",
            code=exc.code,
            reason=exc.message,
        )
    state.hub_refused_node = True


async def recall(state: NodeState) -> None:
    """At start, before anything asks the hub: the transfers that waited for the hub to
    take the node when it stopped wait for it again (``accepted`` makes them due)."""
    state.waiting_on_credentials = await state.store.waiting_on_credentials()
    if state.waiting_on_credentials:
        log.warning(
            "transfers refused for this node's credentials before it started wait for the"
            " hub to take it",
            transfers=len(state.waiting_on_credentials),
        )


async def transfer_waits(state: NodeState, transfer_id: int, for_credentials: bool) -> None:
    """Record why a transfer to the hub waits for its next try: for the hub to take the
    node again, or for anything else (then it keeps its own next try). One refused for
    the node's credentials when the hub takes the node already (it did while the retry
    was stored, or the refusal was stale) is due now."""
    if not for_credentials:
        state.waiting_on_credentials.discard(transfer_id)
    elif state.hub_refused_node:
        state.waiting_on_credentials.add(transfer_id)
    else:
        await _due_now(state, {transfer_id})


async def accepted(state: NodeState) -> None:
    """The hub answered a request it had refused for the node's credentials, or the first
    since the node started with transfers that waited for that (``recall``): those fall
    due now, and the outbox wakes."""
    if not state.hub_refused_node and not state.waiting_on_credentials:
        return
    log.info("the hub accepts this node's credentials again")
    # cleared first: a refusal while the store is asked is this one's to record again,
    # unless its request was sent before now (refused: then stale)
    state.hub_refused_node = False
    state.hub_took_node_at = dt.datetime.now(dt.UTC)
    waiting, state.waiting_on_credentials = state.waiting_on_credentials, set()
    await _due_now(state, waiting)


async def _due_now(state: NodeState, transfer_ids: set[int]) -> None:
    if transfer_ids:
        try:
            await state.store.due_now(transfer_ids, dt.datetime.now(dt.UTC))
        except errors.StorageError as exc:  # they go at their own next tries, as before
            log.error("the transfers that waited were not made due now", reason=exc.message)
    state.outbox_wakeup.set()
