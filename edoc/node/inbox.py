"""Receiving: every package that reaches an agency here is verified again, stored once,
and answered with status 01 (arrived); statuses about our documents update them.

Packages come from the hub (collected by long polling, acknowledged only once stored)
or straight from this node's outbox for recipients in the same province.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import functools
import shutil
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import structlog

from edoc import atomic, envelope, errors, signing, wire
from edoc.model import (
    Document,
    MessageKind,
    Organization,
    ResponseFor,
    Staff,
    StatusCode,
    StatusUpdate,
    kind_of,
)
from edoc.node import compose, hublink, progress, stats
from edoc.node.state import NodeState
from edoc.store.node import InboxAttachment, NewInboxItem, NewOutgoing, Received

log = structlog.get_logger()
IN_FLIGHT = 32  # deliveries being fetched, verified and stored at once
PACKAGE = "package.edxml"  # a received package's name in its inbox folder


@dataclass(frozen=True)
class Kept:
    """A verified package as this node keeps it: in the store when it came in memory
    (small: a file of its own cost a create, fsync and rename per message, most of a
    document's wait under load), else as files in its inbox folder."""

    verified: signing.Verified
    package: bytes | Path
    parts: list[bytes | Path]  # each attachment, in manifest order
    arrived: dict[str, NewOutgoing]  # for a document: each recipient's signed status 01

    def inbox_item(self, recipient: str) -> NewInboxItem:
        message = self.verified.message
        return NewInboxItem(
            recipient=recipient,
            sender=message.sender.org_id,
            kind=kind_of(message),
            document_id=message.about,
            business_type=int(message.business.doc_type),
            status_code="" if isinstance(message, Document) else message.code.value,
            path=_path(self.package),
            summary=_summary(self.verified),
            attachments=tuple(
                InboxAttachment(
                    n, a.name, a.content_type, a.size, a.sha256, _path(part), _body(part)
                )
                for n, (a, part) in enumerate(zip(message.attachments, self.parts, strict=True))
            ),
            body=_body(self.package),
        )


def _path(kept: bytes | Path) -> str:
    return "" if isinstance(kept, bytes) else str(kept)


def _body(kept: bytes | Path) -> bytes | None:
    return kept if isinstance(kept, bytes) else None


def _verify_and_keep(
    state: NodeState, source: bytes | Path, folder: Path, recipients: list[str]
) -> Kept:
    """Verify the package (its bytes, or the file ``source``), keep it (in memory for the
    store, or fsynced in ``folder`` with its attachments beside it) and, for a document,
    sign each of ``recipients``' status 01. Run off the loop, in one call: each step is a
    file system call or crypto, and under load a second call per package would queue
    behind every other package's first."""
    held: list[envelope.KeptInMemory] = []  # attachments of a package in memory
    files: list[Path] = []  # attachments of a package in a file

    def sink(_content_id: str, _name: str) -> envelope.Writable:
        if isinstance(source, bytes):
            held.append(body := envelope.KeptInMemory())
            return body
        (folder / "parts").mkdir(parents=True, exist_ok=True)
        files.append(path := folder / "parts" / str(len(files)))
        return path.open("wb")

    package = envelope.read_package(source, sink)
    verified = signing.verify_package(package, state.keys.trust(), dt.datetime.now(dt.UTC))
    message = verified.message
    arrived = {
        recipient: status_message(state, recipient, response_for(message), StatusCode.ARRIVED)
        for recipient in recipients
        if isinstance(message, Document)
    }
    if isinstance(source, bytes):
        return Kept(verified, source, [body.getvalue() for body in held], arrived)
    for path in files:  # on disk before the inbox row and the hub's ack
        atomic.sync(path)
    atomic.sync(source)
    folder.mkdir(parents=True, exist_ok=True)
    return Kept(verified, source.replace(folder / PACKAGE), list(files), arrived)


def _summary(verified: signing.Verified) -> dict[str, Any]:
    message = verified.message
    hops = [*message.trace, *verified.relay_hops]
    summary: dict[str, Any] = {
        "signed_at": verified.signed_at.isoformat(),
        "signers": [
            {"kind": s.kind.value, "org_id": s.org_id, "name": s.name, "serial": s.serial}
            for s in (verified.seal, verified.personal)
            if s is not None
        ],
        "trace": [{"org_id": h.org_id, "at": h.timestamp.isoformat()} for h in hops],
    }
    if isinstance(message, Document):
        summary |= {
            "from": message.sender.org_id,
            "from_name": message.sender.name,
            "to": [to.org_id for to in message.recipients],
            "code": str(message.code),
            "subject": message.subject,
            "type": {"code": message.doc_type.code, "name": message.doc_type.name},
            "priority": int(message.priority),
            "promulgation_date": message.promulgation.date.isoformat(),
            "due_date": message.due_date.isoformat() if message.due_date else None,
            "business": {
                "type": int(message.business.doc_type),
                "reason": message.business.reason,
                "document_id": message.business.document_id,
            },
            "signer": message.signer.full_name if message.signer else None,
        }
    else:
        summary |= {"code": message.code.value, "description": message.description}
    return summary


async def receive(state: NodeState, source: bytes | Path, recipients: list[str]) -> None:
    """Verify the package (its bytes, or the file ``source``) and hand it to each of
    ``recipients`` (ours)."""
    for recipient in recipients:
        if not state.serves(recipient):
            raise errors.Forbidden(f"{recipient} is not served by this node")
    folder = state.inbox_dir / uuid.uuid4().hex
    try:
        kept = await state.offload.run(_verify_and_keep, state, source, folder, recipients)
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)
        raise
    message = kept.verified.message
    structlog.contextvars.bind_contextvars(document_id=message.about)
    stored = False  # is this copy the one an inbox row points to?
    for recipient in recipients:
        if not (await _store(state, kept, recipient)).first:
            # a redelivery: it was stored (and answered) the first time
            continue
        stored = True
        state.outbox_wakeup.set()
        log.info("received", kind=type(message).__name__, recipient=recipient)
    if not stored and isinstance(kept.package, Path):
        # a redelivery: the copy stored the first time is kept; this one's folder was left
        # behind for every redelivery (43 % of an inbox's folders after lost acks)
        shutil.rmtree(folder, ignore_errors=True)


async def _store(state: NodeState, kept: Kept, recipient: str) -> Received:
    """One recipient's copy into the inbox: a document with its status 01, or a status,
    which moves the recipient of our document it is about."""
    item = kept.inbox_item(recipient)
    message = kept.verified.message
    now = dt.datetime.now(dt.UTC)
    if isinstance(message, Document):
        return await state.store.add_received_document(
            item, kept.arrived[recipient], now, stats.received_tallies(item, now.date())
        )
    return await state.store.add_received_status(
        item, progress.status_event(message.code), now, progress.next_state
    )


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


class Acknowledgements:
    """Stored deliveries waiting to be acknowledged to the hub, many in one request: while
    one acknowledgement is on its way the next ones gather, so under load a request
    carries many and at rest none waits."""

    BATCH = 500

    def __init__(self) -> None:
        self._waiting: dict[int, None] = {}  # ordered, and a redelivery's id only once
        self._added = asyncio.Event()

    def add(self, delivery_id: int) -> None:
        self._waiting[delivery_id] = None
        self._added.set()

    def _batch(self) -> list[int]:
        batch = list(self._waiting)[: self.BATCH]
        for delivery_id in batch:
            del self._waiting[delivery_id]
        if not self._waiting:
            self._added.clear()
        return batch

    async def send_forever(self, state: NodeState) -> None:
        backoff = state.config.retry_base
        while True:
            await self._added.wait()
            batch = self._batch()
            try:
                await state.hub.acknowledge(batch)
                backoff = state.config.retry_base
            except errors.HubUnavailable as exc:
                # kept for the next try; if the lease runs out first, the hub offers them
                # again and the redelivery is recognised
                log.warning("acknowledgements not sent", reason=exc.message, count=len(batch))
                for delivery_id in batch:
                    self.add(delivery_id)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, state.config.retry_cap)
            except errors.RemoteError as exc:
                log.error("hub refused acknowledgements", code=exc.code, reason=exc.message)


async def collect_forever(state: NodeState) -> None:
    """Long-poll the hub for what waits for this province, keeping up to IN_FLIGHT
    deliveries being verified and stored at once; each is acknowledged once stored."""
    acks = Acknowledgements()
    async with asyncio.TaskGroup() as group:
        group.create_task(acks.send_forever(state), name="acks")
        await _collect_forever(state, acks)


StatusChain = tuple[str, str]  # (document id, responder)


def _chain(delivery: wire.DeliveryNotice) -> StatusChain | None:
    """Statuses about one document from one responder are stored in the order the hub
    relays them (it accepted them in the order given): 05 before 06, though both come in
    one answer and are verified side by side."""
    if delivery.kind != MessageKind.STATUS:
        return None
    return (delivery.document_id, delivery.sender)


def _forget(
    latest: dict[StatusChain, asyncio.Task[bool]], key: StatusChain, done: asyncio.Task[bool]
) -> None:
    if latest.get(key) is done:
        del latest[key]


async def _collect_forever(state: NodeState, acks: Acknowledgements) -> None:
    backoff = state.config.retry_base
    taking: set[asyncio.Task[bool]] = set()
    latest: dict[StatusChain, asyncio.Task[bool]] = {}  # the last delivery taken of each chain
    while True:
        while len(taking) > IN_FLIGHT // 2:  # then ask for half a window at a time, not one
            await asyncio.wait(taking, return_when=asyncio.FIRST_COMPLETED)
        try:
            # a long poll returns as soon as anything waits; those under way go on meanwhile
            deliveries = await state.hub.collect(state.config.poll_wait, IN_FLIGHT - len(taking))
            backoff = state.config.retry_base
        except errors.HubUnavailable as exc:
            log.warning("hub unavailable for collection", reason=exc.message)
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, state.config.retry_cap)
            continue
        except errors.RemoteError as exc:
            log.error("hub refused collection", code=exc.code, reason=exc.message)
            await asyncio.sleep(state.config.retry_cap)
            continue
        for delivery in deliveries:
            chain = _chain(delivery)
            before = latest.get(chain) if chain is not None else None
            task = asyncio.create_task(_take(state, delivery, acks, before))
            taking.add(task)
            task.add_done_callback(taking.discard)
            if chain is not None:
                latest[chain] = task
                task.add_done_callback(functools.partial(_forget, latest, chain))


def _claimed_document(source: bytes | Path) -> Document | None:
    """The document a package says it is, unverified: only to address a refusal."""
    message = envelope.read_package(source).message
    return message if isinstance(message, Document) else None


async def _refuse(
    state: NodeState, source: bytes | Path, recipient: str, exc: errors.EdocError
) -> None:
    """Answer a document we refused with status 02 (từ chối tiếp nhận) and the reason.

    The hub accepted it, so without an answer the sender would wait at 'sent' for ever.
    The claimed sender is not trusted here: the hub relays a status only to the sender of
    a document the responder received, and this one it did relay to us."""
    reason = f"{exc.code}: {exc.message}"
    try:
        document = await state.offload.run(_claimed_document, source)
        if document is None:
            return
        answer = await state.offload.run(
            status_message, state, recipient, response_for(document), StatusCode.REJECTED, reason
        )
        await state.store.add_outgoing(answer, dt.datetime.now(dt.UTC), tallies=())
    except errors.EdocError as failed:  # unreadable, or we cannot sign: the log must do
        log.error("could not answer a refused package", code=failed.code, reason=failed.message)
        return
    state.outbox_wakeup.set()


async def _taken(task: asyncio.Task[bool]) -> bool:
    """Once ``task`` is over: whether it took its delivery (its failure is its own)."""
    await asyncio.wait([task])
    return not task.cancelled() and task.exception() is None and task.result()


async def _take(
    state: NodeState,
    delivery: wire.DeliveryNotice,
    acks: Acknowledgements,
    after: asyncio.Task[bool] | None,
) -> bool:
    """Fetch, verify and store a delivery, then have it acknowledged; whether it was taken.
    One with ``after`` (the status before it in its chain) waits for it, and is left
    for the hub to offer again, after it, if that one was not taken."""
    target = state.incoming_dir / f"{uuid.uuid4().hex}.edxml"
    structlog.contextvars.bind_contextvars(hub_delivery=delivery.id)
    try:
        package = await hublink.fetch(state, delivery, target)
        if after is not None and not await _taken(after):
            log.warning("delivery not taken: the status before it was not; the hub offers both")
            return False
        try:
            await receive(state, package, [delivery.recipient])
        except errors.InputError as exc:
            # The hub relayed something we cannot accept (it verified it, so this is a
            # revocation or clock edge): keep it out, tell the sender, do not ask again.
            log.error("refused relayed package", code=exc.code, reason=exc.message)
            await _refuse(state, package, delivery.recipient, exc)
        acks.add(delivery.id)
        return True
    except errors.EdocError as exc:
        # not acknowledged: the hub offers it again when its lease runs out
        log.warning("delivery not taken, the hub will offer it again", reason=exc.message)
        return False
    finally:
        target.unlink(missing_ok=True)
