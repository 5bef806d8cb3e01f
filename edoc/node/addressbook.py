"""The hub's signed address book as a node keeps it: who can receive, anywhere.

With it the node refuses at its door a document naming a recipient in another province
that nobody registered (EDOC-HUB-001, as for an unknown agency of its own province),
instead of answering 202 for a document the hub will refuse later.

The hub signs the book with its seal and gives it a version and an expiry. The node
verifies the signature against its trust anchors, keeps the copy in memory and in
``DATA/addressbook.xml`` (a node restarted while the hub is down still has it, until it
expires), and fetches it again:

- at start-up, retried until the hub answers;
- every ``REFRESH_EVERY`` in the background (a copy of the same version only extends the
  expiry; the hub answers 304 while the book the node holds is the one it signed last,
  named by its ETag, and the node verifies the one it holds again: since it last did, the
  CA may have revoked or rotated out the hub's seal or the seal expired; a book that no
  longer verifies is no longer held. A fetch that fails, the hub down or its new book
  refused, has the book held judged again the same way);
- when a post names an id the copy does not know: an agency may have registered at
  another node since, so the post waits (``DOOR_WAIT`` at most) for a copy fetched after
  it arrived, and is refused only by such a copy. Such fetches begin at most every
  ``RECHECK_AFTER`` and the posts waiting together share one: an agency naming unknown
  ids cannot make the hub sign the book at every post. When none comes (the hub is down),
  the older copy cannot tell an unknown id from one registered since: the post is
  accepted and the hub judges, so a legitimate recipient is never refused for an outage.

Without a valid copy (the hub unreachable since start and nothing kept, or the kept copy
expired) a post asks the hub for one, waiting at most ``WAIT_WITHOUT_BOOK`` (and not when
the last try began less than ``RECHECK_AFTER`` ago). If there is still none, the node cannot
judge a remote recipient: it accepts the document and the hub decides, as before there was
a book (a refusal then shows on the document as its recipients' failure).
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import time
from dataclasses import dataclass, field
from pathlib import Path

import structlog

from edoc import atomic, errors, tasks
from edoc.hub import directory
from edoc.hub.state import HUB_ORG_ID
from edoc.node import hublink
from edoc.node.state import NodeState
from edoc.retry import Backoff

log = structlog.get_logger()
REFRESH_EVERY = 300.0  # seconds between background fetches
RECHECK_AFTER = 2.0  # seconds between the beginnings of fetches for posts with unknown ids
DOOR_WAIT = 5.0  # how long such a post waits for a fresh copy before judging with what it has
# Without a book, a post waits less: the hub is down or slow, and the hub will judge anyway.
WAIT_WITHOUT_BOOK = 1.0


@dataclass(frozen=True)
class Copy:
    """A verified address book: its version, expiry and the ids it knows."""

    version: int
    expires: dt.datetime
    known: frozenset[str]
    etag: str  # the hub's name for the body it was read from ("": read from disk)
    body: bytes = field(repr=False)  # the signed book, verified again on each 304


def _verified(
    data: bytes, state: NodeState, signer: str
) -> tuple[int, dt.datetime, frozenset[str]]:
    """Runs off the loop: a signature check over the whole book."""
    version, expires, entries = directory.read_signed(
        data, state.keys.trust(), dt.datetime.now(dt.UTC), signer
    )
    return version, expires, frozenset(entry.org_id for entry in entries)


class AddressBook:
    def __init__(self, path: Path, signer: str = HUB_ORG_ID) -> None:
        self.path = path
        self.signer = signer  # the hub's organization, whose seal signs the book
        self._copy: Copy | None = None
        self._fetching: asyncio.Task[bool] | None = None
        self._fetch_started = float("-inf")  # time.monotonic() when the last fetch began
        self._confirmed = float("-inf")  # when the last fetch that got or confirmed one began
        self._kept_at = float("-inf")  # time.monotonic() when a fetched copy was last kept

    def current(self) -> Copy | None:
        """The copy held, unless it has expired."""
        copy = self._copy
        if copy is None or copy.expires <= dt.datetime.now(dt.UTC):
            return None
        return copy

    async def unknown(self, state: NodeState, org_ids: list[str]) -> list[str]:
        """Those of ``org_ids`` the book does not know; none when there is no valid book."""
        copy = self.current()
        if copy is not None and all(org in copy.known for org in org_ids):
            return []
        arrived = time.monotonic()
        if copy is not None:
            await self._fetched_since(state, arrived)
        else:
            await self._any_fetch(state)
        copy = self.current()
        if copy is None or self._confirmed < arrived:
            log.info("no fresh address book: the hub will judge the recipients", to=org_ids)
            return []
        return [org for org in org_ids if org not in copy.known]

    async def _fetched_since(self, state: NodeState, arrived: float) -> None:
        """Wait (DOOR_WAIT at most) for a fetch begun after ``arrived``, so that an agency
        registered before the post is known: one under way, or the next, begun as soon as
        RECHECK_AFTER has passed since the last began (posts waiting together share it)."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(DOOR_WAIT):
                while True:
                    fetching = self._fetching
                    if fetching is not None and not fetching.done():
                        await asyncio.wait({fetching})  # a timeout leaves the fetch running
                    elif self._fetch_started >= arrived:
                        return
                    elif (pause := self._fetch_started + RECHECK_AFTER - time.monotonic()) > 0:
                        await asyncio.sleep(pause)
                    else:
                        self._refresh(state)

    async def _any_fetch(self, state: NodeState) -> None:
        """Without a copy: wait (WAIT_WITHOUT_BOOK at most) for the fetch under way, or a new
        one unless the last began less than RECHECK_AFTER ago (the hub is down or slow: not
        asked at every post, and it will judge anyway)."""
        if self._fetching is None or self._fetching.done():
            if time.monotonic() - self._fetch_started < RECHECK_AFTER:
                return
            self._refresh(state)
        assert self._fetching is not None
        await asyncio.wait({self._fetching}, timeout=WAIT_WITHOUT_BOOK)

    async def load_kept(self, state: NodeState) -> None:
        """Take the copy kept on disk, if it is still valid."""
        try:
            data = await state.offload.run(self.path.read_bytes)
            await self._adopt(state, data, keep=False)
        except FileNotFoundError:
            return
        except (OSError, ValueError, errors.EdocError) as exc:
            log.warning("the kept address book is not used", reason=str(exc))

    async def keep_fresh(self, state: NodeState) -> None:
        """Fetch the book now (retried with backoff until the hub answers), then every
        REFRESH_EVERY."""
        await self.load_kept(state)
        backoff = Backoff(state.config.retry_base, state.config.retry_cap)
        while True:
            if await asyncio.shield(self._refresh(state)):
                backoff.succeeded()
                await asyncio.sleep(REFRESH_EVERY)
            else:
                await backoff.failed()

    async def close(self) -> None:
        await tasks.stop(self._fetching)

    def _refresh(self, state: NodeState) -> asyncio.Task[bool]:
        """One fetch at a time: callers that come while one is under way share it."""
        if self._fetching is None or self._fetching.done():
            self._fetch_started = time.monotonic()
            self._fetching = asyncio.create_task(self._fetch(state), name="address book")
        return self._fetching

    async def _fetch(self, state: NodeState) -> bool:
        """Whether a copy came, or the hub confirmed the one held (304)."""
        held = self.current()
        judged = False  # whether the book held was verified again by this fetch
        try:
            book = await hublink.directory(state, held.etag if held is not None else "")
            if book is not None:
                await self._adopt(state, book.body, keep=True, etag=book.etag)
            elif held is None or self._copy is not held:  # (replaced meanwhile: not it)
                raise errors.HubUnavailable("the hub's 304 names no book the node holds")
            else:
                judged = True
                await self._verify_held(state, held)
        except (errors.EdocError, OSError, ValueError) as exc:
            log.warning("address book not fetched", reason=str(exc))
            if held is not None and self._copy is held and not judged:
                await self._still_trusted(state, held)
            return False
        self._confirmed = self._fetch_started  # the start of this fetch
        return True

    async def _still_trusted(self, state: NodeState, held: Copy) -> None:
        """A fetch that failed (the hub down, or its new book refused: signed by a seal
        the CA revoked since) leaves the book held as it was; it is judged again all the
        same, or a revoked seal's book would be trusted until it expires."""
        try:
            await self._verify_held(state, held)
        except errors.EdocError as exc:
            log.warning("the address book held no longer verifies", reason=str(exc))
        except (OSError, ValueError) as exc:  # the trust anchors unread: it stays held
            log.error("the address book held cannot be judged again", reason=str(exc))

    async def _adopt(self, state: NodeState, data: bytes, keep: bool, etag: str = "") -> None:
        version, expires, known = await state.offload.run(_verified, data, state, self.signer)
        changed = self._copy is None or self._copy.version != version
        # Kept on disk when it changed, and now and then for its later expiry: not at each
        # fetch for a post with an unknown id.
        if keep and (changed or time.monotonic() - self._kept_at > REFRESH_EVERY):
            await state.offload.run(atomic.write_bytes, self.path, data)
            self._kept_at = time.monotonic()
        self._copy = Copy(version, expires, known, etag, data)
        if changed:
            log.info("address book", version=version, organizations=len(known))

    async def _verify_held(self, state: NodeState, held: Copy) -> None:
        """The hub's 304 vouches only that ``held`` is still its book, not that the node
        may still trust it: its trust anchors (the CRL, the CA certificates) or the clock
        may have withdrawn the seal that signed it. Verified again, off the loop (some
        3 ms for the seeded book, 15-20 ms per 1,000 entries); one that fails is dropped,
        as a refused book is not taken."""
        try:
            await state.offload.run(_verified, held.body, state, self.signer)
        except errors.EdocError:
            if self._copy is held:
                self._copy = None
            raise
