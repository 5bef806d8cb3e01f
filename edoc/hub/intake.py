"""Accepting a package from a node: verify everything, apply the exchange's rules, store.

Nothing is answered 2xx before the package is verified, its rules hold, the file
(with the hub's TraceHeader hop) is on disk and fsynced, and the database row is
committed. Parsing and signature checks run through edoc.offload: on the event loop
for a package held in memory, in a thread for one streamed to a file.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import functools
import hashlib
import shutil
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import IO

import structlog
from lxml import etree

from edoc import atomic, envelope, errors, signing
from edoc.hub import stats
from edoc.hub.state import HubState
from edoc.model import (
    Attachment,
    BusinessDocType,
    Document,
    MessageKind,
    StatusCode,
    StatusUpdate,
    TraceHop,
    check_document_id,
    may_follow,
)
from edoc.offload import held_small
from edoc.orgid import parse_root_code, root_of
from edoc.store.hub import (
    NEW_ELSE_ANY,
    Addressee,
    Admission,
    NewPackage,
    PackageKey,
    PackageRecord,
)

log = structlog.get_logger()


Files = list[tuple[Attachment, Path | bytes]]  # each attachment: its file, or its bytes


@dataclass(frozen=True)
class Examined:
    verified: signing.Verified
    root: etree._Element
    files: Files
    digest: str  # of the seal's SignatureValue: same signed content, same digest
    # A package read from memory (small) as the hub relays it, made in the examining call,
    # to be kept in the store with its row: a file of its own cost a create, fsync and
    # rename per message, more of a document's wait under load than its signature checks.
    # None for a large one, written to a file once admitted.
    relayed: bytes | None


Attachments = dict[str, Path | envelope.KeptInMemory]  # content id → where its bytes went


def _read(body: bytes | Path, work: Path) -> tuple[envelope.Package, Attachments]:
    """Parse the package. The attachments of one in memory stay in memory; those of one
    streamed to a file are decoded into files under ``work``."""
    stored: Attachments = {}

    def sink(content_id: str, _name: str) -> envelope.Writable:
        if isinstance(body, bytes):
            stored[content_id] = kept = envelope.KeptInMemory()
            return kept
        work.mkdir(exist_ok=True)
        stored[content_id] = path = work / str(len(stored))
        return path.open("wb")

    return envelope.read_package(body, sink), stored


def _examine(
    state: HubState, body: bytes | Path, work: Path, read: list[envelope.Package]
) -> Examined:
    """Read and verify in one offload call: a second call per package would, under load,
    queue behind every other package's first. The package read goes into ``read`` too,
    so a refusal can be counted against the sender it claims."""
    package, stored = _read(body, work)
    read.append(package)
    verified = signing.verify_package(package, state.keys.trust(), dt.datetime.now(dt.UTC))
    value = package.root.findtext(
        "edXML:edXMLEnvelope/edXML:edXMLHeader/ds:Signature/ds:SignatureValue",
        namespaces={"edXML": envelope.NS, "ds": signing.DS},
    )
    files = [
        (item, _bytes_or_path(stored[item.content_id])) for item in verified.message.attachments
    ]
    digest = hashlib.sha256("".join((value or "").split()).encode()).hexdigest()
    relayed = None
    if isinstance(body, bytes):  # the bytes verified, passed on with the hub's hop
        relayed = envelope.relayed(body, package.root, files, _hop(state))
    return Examined(verified, package.root, files, digest, relayed)


def _bytes_or_path(where: Path | envelope.KeptInMemory) -> Path | bytes:
    return where.getvalue() if isinstance(where, envelope.KeptInMemory) else where


def _hop(state: HubState) -> TraceHop:
    return TraceHop(state.config.org_id, dt.datetime.now(dt.UTC))


def _relay(root: etree._Element, files: Files, hop: TraceHop, out: IO[bytes]) -> None:
    """The package as the hub relays it: the sender's bytes plus the hub's hop."""
    envelope.add_trace_hop(root, hop)
    envelope.write_package(root, files, out)


def _counted_sender(read: list[envelope.Package], node: str) -> str:
    """Whom a refused message is counted for in the statistics: the sender it claims, when
    that one is of the province of the node that posted it (which alone may send for it),
    else the node itself. The claim is unchecked: counted as it came, any node could make
    the hub keep, and show anyone, an organization per forged package."""
    own = str(parse_root_code(node))
    try:
        claimed = read[0].message.sender.org_id if read else ""
        return claimed if claimed and root_of(claimed).root_code == node else own
    except errors.EdocError:
        return own


def _refused(exc: errors.EdocError) -> bool:
    """A refusal the sender must mend, as opposed to "later, please" (a full queue, 429)
    or our own failure (5xx): only refusals count as rejected in the statistics."""
    return exc.status < 500 and not isinstance(exc, errors.QueueFull)


async def _count_refusal(
    state: HubState, node: str, exc: errors.EdocError, read: list[envelope.Package]
) -> None:
    if _refused(exc):
        state.rejected.labels(exc.code).inc()
        day = dt.datetime.now(dt.UTC).date()  # the day sent and received are counted on
        await state.store.count(stats.rejected(_counted_sender(read, node), exc.code, day))


async def accept(state: HubState, node: str, body: bytes | Path) -> tuple[PackageRecord, bool]:
    """Accept the package in ``body`` (its bytes, or the file a large one was streamed to)
    from ``node``; returns its record and whether it is a resend of one accepted before."""
    work = state.incoming_dir / f"{uuid.uuid4().hex}.parts"
    read: list[envelope.Package] = []
    try:
        examined = await state.offload.run_small_here(
            held_small(body), _examine, state, body, work, read
        )
        return await _admit(state, node, examined)
    except errors.EdocError as exc:
        await _count_refusal(state, node, exc, read)
        raise
    finally:
        if isinstance(body, Path):  # only a streamed package has attachment files
            shutil.rmtree(work, ignore_errors=True)


Outcome = tuple[PackageRecord, bool] | errors.EdocError  # accept's answer, or its refusal
EXAMINED_TOGETHER = 8  # a batch's packages examined between two turns of the loop


def _answer_of(exc: Exception) -> errors.EdocError:
    """What the single door answers for ``exc``, here for one package of a batch alone:
    an EdocError itself; anything else (a bug) logged with its traceback and answered 500
    EDOC-000, as edoc.web's middleware does."""
    if isinstance(exc, errors.EdocError):
        return exc
    log.exception("failed", exc_info=exc)
    return errors.EdocError("internal error")


def _examine_each(
    state: HubState, bodies: Sequence[bytes]
) -> list[tuple[Examined | errors.EdocError, list[envelope.Package]]]:
    """:func:`_examine` for each of ``bodies`` (in memory: no work folder is made), each
    refusal or failure kept as its result rather than raised."""
    examined: list[tuple[Examined | errors.EdocError, list[envelope.Package]]] = []
    for body in bodies:
        read: list[envelope.Package] = []
        try:
            examined.append((_examine(state, body, state.incoming_dir, read), read))
        except Exception as exc:
            examined.append((_answer_of(exc), read))
    return examined


async def accept_batch(state: HubState, node: str, bodies: Sequence[bytes]) -> list[Outcome]:
    """Accept each package in ``bodies`` from ``node`` as :func:`accept` would; the
    outcome of each, in order. They are examined here on the event loop, a batch being
    small (offload.run_small_here), a few at a time with other requests served between;
    then admitted side by side, so that the store commits them together (one after the
    other, each paid a commit of its own), except that a package about the same document
    as one before it (a revoke and its original) waits for that one to be judged."""
    limit = state.config.max_package_bytes
    fitting = [body for body in bodies if len(body) <= limit]  # the single door's bound
    results: list[tuple[Examined | errors.EdocError, list[envelope.Package]]] = []
    for start in range(0, len(fitting), EXAMINED_TOGETHER):
        results.extend(_examine_each(state, fitting[start : start + EXAMINED_TOGETHER]))
        await asyncio.sleep(0)
    examined_each = iter(results)
    judged: list[asyncio.Task[Outcome]] = []
    latest: dict[tuple[str, str], asyncio.Task[Outcome]] = {}  # of each document, the last
    for place, body in enumerate(bodies):
        if len(body) > limit:
            judged.append(asyncio.create_task(_oversize(place, limit)))
            continue
        examined, read = next(examined_each)
        about = None if isinstance(examined, errors.EdocError) else _about(examined)
        before = latest.get(about) if about else None
        task = asyncio.create_task(_judge(state, node, place, examined, read, before))
        judged.append(task)
        if about:
            latest[about] = task
    try:
        return list(await asyncio.gather(*judged))
    finally:  # _judge raises nothing, but none may go on admitting after the answer
        for task in judged:
            task.cancel()


def _about(examined: Examined) -> tuple[str, str]:
    """The document a package is about: a document's own (a revoke's, update's or
    replacement's: the original's), a status's answered one."""
    message = examined.verified.message
    if isinstance(message, Document):
        return (message.sender.org_id, message.business.document_id or message.document_id)
    answered = message.response_for
    return (answered.org_id, answered.document_id)


async def _judge(
    state: HubState,
    node: str,
    place: int,
    examined: Examined | errors.EdocError,
    read: list[envelope.Package],
    after: asyncio.Task[Outcome] | None,
) -> Outcome:
    """One package of a batch admitted, or its refusal counted, once ``after`` is over;
    whatever fails is this package's answer (as the single door's would be), never raised
    to fail the batch."""
    if after is not None:
        await asyncio.wait([after])
    if not isinstance(examined, errors.EdocError):
        try:
            return await _admit(state, node, examined)
        except Exception as exc:
            examined = _answer_of(exc)
    # the single door's refusals are logged by the middleware; these answer 200
    log.info("refused", place=place, code=examined.code, reason=examined.message)
    try:
        await _count_refusal(state, node, examined, read)
    except Exception as exc:  # the store failing to count it: the single door's answer
        return _answer_of(exc)
    return examined


async def _oversize(place: int, limit: int) -> Outcome:
    """A package over the hub's bound, refused as the single door refuses its body
    (unread, so uncounted)."""
    log.info("refused", place=place, code=errors.TooLarge.code, reason="too large")
    return errors.TooLarge(f"the package is over {limit} bytes")


# times a status is judged when each time another of its chain was kept meanwhile
JUDGED_AT_MOST = 3


async def _admit(state: HubState, node: str, examined: Examined) -> tuple[PackageRecord, bool]:
    message = examined.verified.message
    structlog.contextvars.bind_contextvars(document_id=message.about, sender=message.sender.org_id)
    if root_of(message.sender.org_id).root_code != node:
        raise errors.Impersonation(f"{message.sender.org_id} is not served by node {node}")
    for _ in range(JUDGED_AT_MOST - 1):
        try:
            return await _judge_and_keep(state, node, examined)
        except errors.ChainMoved:
            # another status of its chain was kept between our read and our write
            log.info("judged again", reason="another status of the chain came first")
    return await _judge_and_keep(state, node, examined)  # (ChainMoved now: 409 HUB-006)


async def _judge_and_keep(
    state: HubState, node: str, examined: Examined
) -> tuple[PackageRecord, bool]:
    """Judge the package on what the store holds now, and keep it if it passes."""
    message = examined.verified.message
    # all the store knows that the rules below judge by, in one read (a read each was a
    # trip each to the store, most of what the hub still paid it per package)
    key, original, addressees = _asked(message)
    seen = await state.store.admission(key, original, addressees)
    if seen.earlier is not None:
        # judged by its first answer alone: its recipient may have left the address book
        # since (a resend whose first answer was lost: the hub relays it all the same)
        return _resend(seen.earlier, key, examined.digest), True
    new = (
        _document(message, examined, node, seen)
        if isinstance(message, Document)
        else _status(message, examined, seen)
    )
    if isinstance(message, Document):
        # after the resend: a document kept before this rule is answered as it was
        check_document_id(message)
    for recipient in new.recipients:
        if seen.queued.get(recipient.org_id, 0) >= state.config.queue_bound:
            raise errors.QueueFull(
                f"{recipient.org_id} has {state.config.queue_bound} messages waiting"
            )
    if examined.relayed is None:  # a file of its own (a package in memory needs no name)
        target = state.packages_dir / f"{new.digest}.edxml"
        relay = functools.partial(_relay, examined.root, examined.files, _hop(state))
        await state.offload.run(atomic.write_file, target, relay)
        new = replace(new, path=str(target), size=target.stat().st_size)
    else:
        new = replace(new, body=examined.relayed, size=len(examined.relayed))
    now = dt.datetime.now(dt.UTC)
    try:
        record = await state.store.accept(new, now, stats.sent(new.kind, new.sender, now.date()))
    except (errors.DuplicateDocument, errors.ChainMoved):
        # kept meanwhile: the same message (a resend that raced the first copy, the node
        # having given up waiting for our answer: it gets the first one's answer, like
        # any resend; SQLite may name the chain's index for it), or another status of
        # its chain (then ChainMoved goes on: judged again)
        earlier = await state.store.find_package(new.key)
        if new.path and earlier is not None and earlier.digest != new.digest:
            # ours alone: the stored one has another name. (With none stored, a copy of
            # ours may be being kept right now under the same name: the file stays.)
            Path(new.path).unlink(missing_ok=True)
        if earlier is None:
            raise
        return _resend(earlier, new.key, new.digest), True
    state.accepted.labels(new.kind).inc()
    state.wake({r.node for r in new.recipients})
    log.info("accepted", kind=new.kind, hub_id=record.id, recipients=len(new.recipients))
    return record, False


def _document_key(
    sender: str, document_id: str, business_type: int = BusinessDocType.NEW
) -> PackageKey:
    """The key of ``sender``'s document ``document_id`` of ``business_type``: unless
    told, a new one (not a revoke, update or replace of one)."""
    return PackageKey(MessageKind.DOCUMENT, sender, document_id, business_type, "")


def _asked(message: Document | StatusUpdate) -> tuple[PackageKey, PackageKey | None, list[str]]:
    """What to ask the store about ``message``: its key (the same as its NewPackage's),
    the document it concerns (a revoke's, update's or replacement's original, a status's
    answered one; None for a new document) and the organizations it is addressed to."""
    if isinstance(message, Document):
        doc_type = message.business.doc_type
        key = _document_key(message.sender.org_id, message.document_id, int(doc_type))
        original = None
        if doc_type is not BusinessDocType.NEW:
            original_id = message.business.document_id or message.document_id
            original = _document_key(message.sender.org_id, original_id)
        return key, original, [to.org_id for to in message.recipients]
    answered = message.response_for
    key = PackageKey(
        MessageKind.STATUS,
        message.sender.org_id,
        answered.document_id,
        int(message.business.doc_type),
        message.code.value,
    )
    # a status names a DocumentId alone: a change that carries it as its own (its
    # Bussiness naming the original) is answered like any document; where a change
    # reuses its original's DocumentId, the original stays the one answered
    answered_key = _document_key(answered.org_id, answered.document_id, NEW_ELSE_ANY)
    return key, answered_key, [answered.org_id]


def _resend(earlier: PackageRecord, key: PackageKey, digest: str) -> PackageRecord:
    """The answer to a package of ``key`` whose ``digest`` came when ``earlier`` was kept."""
    if earlier.digest == digest:
        return earlier  # the same message again: the original's answer, no second delivery
    if key.kind == MessageKind.STATUS:
        raise errors.StatusOutOfOrder(f"status {key.status_code} for {key.about} was given already")
    raise errors.DuplicateDocument(f"{key.about} from {key.sender} was accepted with other content")


def _document(doc: Document, examined: Examined, node: str, seen: Admission) -> NewPackage:
    """Recipients in the sender's own province are the sending node's to deliver."""
    named = [to.org_id for to in doc.recipients]
    if len(set(named)) != len(named):  # (one delivery per recipient: the store's key)
        raise errors.InvalidField("To: a recipient is named twice")
    recipients = list(named)
    if doc.business.doc_type is not BusinessDocType.NEW:
        # revoke / update / replace reach every recipient of the original
        if seen.original is None:
            original_id = doc.business.document_id or doc.document_id
            raise errors.UnknownDocument(f"no document {original_id} from {doc.sender.org_id}")
        recipients += [r for r in seen.original.recipients if r not in recipients]
    recipients = [r for r in recipients if root_of(r).root_code != node]
    if not recipients:
        raise errors.UnknownRecipient("every recipient is in the sender's own province")
    # the original's recipients were in the book when it came: one its node no longer
    # registers still gets the revoke, update or replacement of what it was sent
    unknown = [r for r in recipients if r in named and r not in seen.known]
    if unknown:
        raise errors.UnknownRecipient(f"not in the address book: {', '.join(unknown)}")
    return NewPackage(
        kind=MessageKind.DOCUMENT,
        sender=doc.sender.org_id,
        about=doc.document_id,
        status_code="",
        business_type=int(doc.business.doc_type),
        priority=int(doc.priority),
        digest=examined.digest,
        path="",
        size=0,
        recipients=tuple(Addressee(r, root_of(r).root_code) for r in recipients),
    )


def _status(status: StatusUpdate, examined: Examined, seen: Admission) -> NewPackage:
    answered = status.response_for
    original = seen.original
    if original is None:
        raise errors.UnknownDocument(f"no document {answered.document_id} from {answered.org_id}")
    if status.sender.org_id not in original.recipients:
        raise errors.NotARecipient(f"{status.sender.org_id} did not receive {answered.document_id}")
    given = seen.codes_given
    resend = status.code.value in given
    if not resend and not may_follow([StatusCode(code) for code in given], status.code):
        raise errors.StatusOutOfOrder(
            f"status {status.code.value} cannot follow {', '.join(sorted(given))}"
        )
    return NewPackage(
        kind=MessageKind.STATUS,
        sender=status.sender.org_id,
        about=answered.document_id,
        status_code=status.code.value,
        business_type=int(status.business.doc_type),
        priority=0,
        digest=examined.digest,
        path="",
        size=0,
        recipients=(Addressee(answered.org_id, root_of(answered.org_id).root_code),),
        follows=len(given),
    )
