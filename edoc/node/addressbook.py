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
  expiry);
- when a post names an id the copy does not know and the copy is older than
  ``RECHECK_AFTER``: an agency may have registered at another node since.

Without a valid copy (the hub unreachable since start and nothing kept, or the kept copy
expired) a post asks the hub for one, waiting at most ``WAIT_WITHOUT_BOOK`` (and not when
the last try ended less than ``RECHECK_AFTER`` ago). If there is still none, the node cannot
judge a remote recipient: it accepts the document and the hub decides, as before there was
a book (a refusal then shows on the document as its recipients' failure).
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import time
from dataclasses import dataclass
from pathlib import Path

import structlog

from edoc import atomic, errors
from edoc.hub import directory
from edoc.hub.state import HUB_ORG_ID
from edoc.node import hublink
from edoc.node.state import NodeState

log = structlog.get_logger()
REFRESH_EVERY = 300.0  # seconds between background fetches
RECHECK_AFTER = 2.0  # an unknown id fetches the book again if the copy is older than this
DOOR_WAIT = 5.0  # how long a post waits for such a fetch before judging with what it has
# Without a book, a post waits less: the hub is down or slow, and the hub will judge anyway.
WAIT_WITHOUT_BOOK = 1.0


@dataclass(frozen=True)
class Copy:
    """A verified address book: its version, expiry and the ids it knows."""

    version: int
    expires: dt.datetime
    known: frozenset[str]
    fetched_at: float  # time.monotonic() when it was fetched or loaded


def _verified(
    data: bytes, state: NodeState, signer: str
) -> tuple[int, dt.datetime, frozenset[str]]:
    """Runs off the loop: a signature check over the whole book."""
    version, expires, entries = directory.read_signed(
        data, state.keys.trust(), dt.datetime.now(dt.UTC), signer
    )
    return version, expires, frozenset(entry.org_id for entry in entries)


def _age(monotonic: float) -> float:
    return time.monotonic() - monotonic


class AddressBook:
    def __init__(self, path: Path, signer: str = HUB_ORG_ID) -> None:
        self.path = path
        self.signer = signer  # the hub's organization, whose seal signs the book
        self._copy: Copy | None = None
        self._fetching: asyncio.Task[None] | None = None
        self._attempted_at = float("-inf")  # when the last fetch ended (monotonic)

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
        if copy is None or _age(copy.fetched_at) > RECHECK_AFTER:
            await self._wait_for_fetch(state, DOOR_WAIT if copy else WAIT_WITHOUT_BOOK)
            copy = self.current()
        if copy is None:
            log.info("no address book: the hub will judge the recipients", recipients=org_ids)
            return []
        return [org for org in org_ids if org not in copy.known]

    async def _wait_for_fetch(self, state: NodeState, timeout: float) -> None:
        """Wait for the fetch under way, or for a new one unless the last ended less than
        RECHECK_AFTER ago (a hub that cannot be reached is not asked at every post)."""
        under_way = self._fetching is not None and not self._fetching.done()
        if under_way or _age(self._attempted_at) > RECHECK_AFTER:
            await asyncio.wait({self._refresh(state)}, timeout=timeout)

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
        delay = state.config.retry_base
        while True:
            before = self._copy
            await asyncio.shield(self._refresh(state))
            if self._copy is not before:
                delay = state.config.retry_base
                await asyncio.sleep(REFRESH_EVERY)
            else:
                await asyncio.sleep(delay)
                delay = min(delay * 2, state.config.retry_cap)

    async def close(self) -> None:
        if self._fetching is not None:
            self._fetching.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._fetching

    def _refresh(self, state: NodeState) -> asyncio.Task[None]:
        """One fetch at a time: callers that come while one is under way share it."""
        if self._fetching is None or self._fetching.done():
            self._fetching = asyncio.create_task(self._fetch(state), name="address book")
        return self._fetching

    async def _fetch(self, state: NodeState) -> None:
        try:
            await self._adopt(state, await hublink.directory(state), keep=True)
        except (errors.EdocError, hublink.HubRefused, OSError, ValueError) as exc:
            log.warning("address book not fetched", reason=str(exc))
        finally:
            self._attempted_at = time.monotonic()

    async def _adopt(self, state: NodeState, data: bytes, keep: bool) -> None:
        version, expires, known = await state.offload.run(_verified, data, state, self.signer)
        held = self._copy
        if keep:
            await state.offload.run(atomic.write_bytes, self.path, data)
        self._copy = Copy(version, expires, known, time.monotonic())
        if held is None or held.version != version:
            log.info("address book", version=version, organizations=len(known))
