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
  named by its ETag, and the node judges the one it holds again: since it last did, the
  CA may have revoked or rotated out the hub's seal or the seal expired; a book no longer
  trusted is no longer held. A fetch that fails, the hub down or its new book refused,
  has the book held judged again the same way);
- when a post names an id the copy does not know: an agency may have registered at
  another node since, so the post waits (``DOOR_WAIT`` at most) for a copy fetched after
  it arrived, and is refused only by such a copy. Such fetches begin at most every
  ``RECHECK_AFTER`` and the posts waiting together share one: an agency naming unknown
  ids cannot make the hub sign the book at every post. When none comes (the hub is down),
  the older copy cannot tell an unknown id from one registered since: the post is
  accepted and the hub judges, so a legitimate recipient is never refused for an outage.

The book held is also judged again at each use (a post naming a recipient of another
province, the health), so a revocation of the hub's seal in the node's keys folder stops
it being trusted at its next use, not at the next fetch, up to ``REFRESH_EVERY`` later
(the key store reads keys/ again as soon as its index changes, as `edoc keys revoke`
changes it). Judging again is not verifying again: what a verification established is
kept with the copy (the seal's certificate, the digest of the bytes it covered), so only
what can change since is judged (signing.check_seal: the seal's validity now, the CRL,
the chain to the CAs the key store holds now; and the book's expiry). That costs some
6 µs (a stat of the key store's index, and the certificate's checks, its chain
remembered; 0.3 ms the first time after the key store changed), where a verification
costs 3 ms for the seeded book and 130 ms for a national one (100 agencies a province):
cheap enough on the loop at every use, so nothing throttles it and a revoked seal's book
is not used again. The same bytes fetched again (a restarted node's first fetch, of a
book the hub has not signed anew since the node kept it) are only judged again too.

Without a valid copy (the hub unreachable since start and nothing kept, or the kept copy
expired) a post asks the hub for one, waiting at most ``WAIT_WITHOUT_BOOK`` (and not when
the last try began less than ``RECHECK_AFTER`` ago). If there is still none, the node cannot
judge a remote recipient: it accepts the document and the hub decides, as before there was
a book (a refusal then shows on the document as its recipients' failure).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import datetime as dt
import hashlib
import time
from dataclasses import dataclass, field
from pathlib import Path

import structlog
from cryptography import x509

from edoc import atomic, errors, offload, tasks
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
    """A verified address book: its version, expiry and the ids it knows, and what its
    verification established, for judging it again without verifying it again."""

    version: int
    expires: dt.datetime
    known: frozenset[str]
    etag: str  # the hub's name for the body it was read from ("": read from disk)
    seal: x509.Certificate = field(repr=False)  # the certificate whose signature verified
    digest: bytes = field(repr=False)  # SHA-256 of the bytes verified


def _digest(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


def _verified(data: bytes, digest: bytes, etag: str, state: NodeState, signer: str) -> Copy:
    """Runs off the loop: a signature check over the whole book."""
    book = directory.read_signed(data, state.keys.trust(), dt.datetime.now(dt.UTC), signer)
    known = frozenset(entry.org_id for entry in book.entries)
    return Copy(book.version, book.expires, known, etag, book.seal, digest)


# The node's own trust anchors could not be read (a damaged or half-copied key store):
# no judgement of the book, which is neither dropped nor blamed for it.
_UNREAD = (OSError, ValueError, errors.KeyStoreError)


def _judged_again(copy: Copy, state: NodeState, signer: str) -> None:
    """Raises why ``copy`` is no longer to be trusted, as the key store and the clock say
    now (directory.judge_again): a few microseconds, so on the loop."""
    now = dt.datetime.now(dt.UTC)
    directory.judge_again(copy.seal, copy.expires, state.keys.trust(), now, signer)


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

    def trusted(self, state: NodeState) -> Copy | None:
        """The copy held, judged again now (dropped if its seal is no longer trusted):
        what every use of the book reads."""
        held = self.current()
        if held is not None:
            self._still_trusted(state, held)
        return self.current()

    async def unknown(self, state: NodeState, org_ids: list[str]) -> list[str]:
        """Those of ``org_ids`` the book does not know; none when there is no valid book."""
        copy = self.trusted(state)
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
                self._judge(state, held)
        except (errors.EdocError, OSError, ValueError) as exc:
            log.warning("address book not fetched", reason=str(exc))
            if held is not None and self._copy is held and not judged:
                self._still_trusted(state, held)
            return False
        self._confirmed = self._fetch_started  # the start of this fetch
        return True

    def _still_trusted(self, state: NodeState, held: Copy) -> None:
        """``held`` judged again where nothing fetched replaces it: at a use, or after a
        fetch that failed (the hub down, or its new book refused: signed by a seal the CA
        revoked since), or a revoked seal's book would be trusted until it expires."""
        try:
            self._judge(state, held)
        except _UNREAD as exc:  # the trust anchors unread: it stays held
            log.error("the address book held cannot be judged again", reason=str(exc))
        except errors.EdocError as exc:
            log.warning("the address book held no longer verifies", reason=str(exc))

    async def _adopt(self, state: NodeState, data: bytes, keep: bool, etag: str = "") -> None:
        digest = await state.offload.run_small_here(offload.held_small(data), _digest, data)
        held = self._copy
        if held is not None and held.digest == digest:  # the bytes verified already
            self._judge(state, held)
            copy = dataclasses.replace(held, etag=etag)
        else:
            copy = await state.offload.run(_verified, data, digest, etag, state, self.signer)
        changed = held is None or held.version != copy.version
        # Kept on disk when it changed, and now and then for its later expiry: not at each
        # fetch for a post with an unknown id.
        if keep and (changed or time.monotonic() - self._kept_at > REFRESH_EVERY):
            await state.offload.run(atomic.write_bytes, self.path, data)
            self._kept_at = time.monotonic()
        self._copy = copy
        if changed:
            log.info("address book", version=copy.version, organizations=len(copy.known))

    def _judge(self, state: NodeState, held: Copy) -> None:
        """Judge ``held`` again (_judged_again). The hub's 304 vouches only that it is
        still the hub's book, not that the node may still trust it: its trust anchors (the
        CRL, the CA certificates) or the clock may have withdrawn the seal that signed it.
        One no longer trusted is dropped, as a refused book is not taken."""
        try:
            _judged_again(held, state, self.signer)
        except _UNREAD:
            raise
        except errors.EdocError:
            if self._copy is held:
                self._copy = None
            raise
