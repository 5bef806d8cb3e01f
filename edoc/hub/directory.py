"""The hub's address book: who can receive, and which node serves them.

Loaded from ``seeds/organizations.csv`` (every province's and ministry's level-1
identifier) and from what nodes register. Nodes get it as a signed XML document with
a version and an expiry, so they can cache it and trust it offline. A name registered
must be text XML can carry (one that is not failed the book for every node); one stored
before that rule goes out with U+FFFD for each such character. The hub signs a
book once per change (of its version or its signer) and again each RESIGN, not on each
request: every node fetches it at start, every few minutes and on unknown recipients,
and a node that holds the book signed last is answered 304 (its ETag).
"""

from __future__ import annotations

import csv
import datetime as dt
import functools
import hashlib
import io
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from importlib.resources.abc import Traversable

import structlog
from cryptography import x509
from lxml import etree

from edoc import errors, resources, signing, xmlsafe
from edoc.certcheck import Trust
from edoc.keyindex import SigningIdentity
from edoc.orgid import OrgId, parse_root_code
from edoc.store.hub import Directory, DirectoryEntry

log = structlog.get_logger()
SEEDS = resources.seed("organizations.csv")
NS = "urn:edoc:directory:1"
VALIDITY = dt.timedelta(hours=24)
# a served book is signed again after this, so a node always gets one valid for >= 23 h
RESIGN = dt.timedelta(hours=1)
SKEW = dt.timedelta(minutes=1)  # a book issued this much after a request's "now" serves it
MAX_NAME = 500  # characters of an organization's name


def seed_entries(path: Traversable = SEEDS) -> list[DirectoryEntry]:
    with io.StringIO(path.read_text(encoding="utf-8"), newline="") as handle:
        return [
            DirectoryEntry(
                row["org_id"], row["name"], row["kind"], OrgId.parse(row["org_id"]).root_code
            )
            for row in csv.DictReader(handle)
        ]


@functools.cache
def _seeded_roots() -> frozenset[str]:
    return frozenset(
        OrgId.parse(entry.org_id).root_code
        for entry in seed_entries()
        if OrgId.parse(entry.org_id).level == 1
    )


def known_root(code: str) -> OrgId:
    """The province or ministry ``code`` names (``H53`` or ``000.00.00.H53``, as
    parse_root_code reads it) if it is one of the seeds', every level-1 body of Decision
    20/2020; else InvalidOrgId. Where a node is planned or added for it: a node for a
    mistyped code (H99) served a province that does not exist, its agencies' documents
    addressed under a root no one else knows."""
    root = parse_root_code(code)
    if root.root_code not in _seeded_roots():
        raise errors.InvalidOrgId(
            f"{code!r} is no province or ministry (e.g. H53, G01; seeds/organizations.csv"
            " lists every one)"
        )
    return root


def registration(node: str, items: object) -> list[DirectoryEntry]:
    """Organizations a node registers: each must belong to the node's own root."""
    if not isinstance(items, list) or len(items) > 10_000:
        raise errors.InvalidField("organizations must be a list of at most 10000 items")
    entries = []
    for item in items:
        if not isinstance(item, dict) or not isinstance(item.get("org_id"), str):
            raise errors.InvalidField("each organization needs an org_id")
        org = OrgId.parse(item["org_id"])
        if org.root_code != node:
            raise errors.Impersonation(f"{org} does not belong to node {node}")
        name = organization_name(str(org), item.get("name", ""))
        entries.append(
            DirectoryEntry(str(org), name, "agency" if org.level > 1 else org.kind, node)
        )
    return entries


def organization_name(org: str, name: object) -> str:
    """``name`` if the address book can carry it as ``org``'s: text of at most MAX_NAME
    characters that XML can carry; else InvalidField naming ``org``. The book is one
    signed XML document: one name it cannot carry failed it for every node. The hub's
    registration holds names to it; so do `edoc agency add` and a node registering."""
    if not isinstance(name, str) or len(name) > MAX_NAME:
        raise errors.InvalidField(f"{org}: name must be text of at most {MAX_NAME} characters")
    try:
        return xmlsafe.carried(name)
    except errors.InvalidField as exc:
        raise errors.InvalidField(f"{org}: name: {exc.message}") from None


def to_xml(version: int, entries: Sequence[DirectoryEntry], now: dt.datetime) -> etree._Element:
    root = etree.Element(
        f"{{{NS}}}Directory",
        nsmap={None: NS},
        version=str(version),
        issued=now.isoformat(timespec="seconds"),
        expires=(now + VALIDITY).isoformat(timespec="seconds"),
    )
    for entry in entries:
        etree.SubElement(
            root,
            f"{{{NS}}}Organization",
            id=entry.org_id,
            name=_carried_name(entry),
            kind=entry.kind,
            node=entry.node,
        )
    return root


def _carried_name(entry: DirectoryEntry) -> str:
    """The entry's name, each character XML cannot carry as U+FFFD: a row stored before
    registrations were held to them (or written by hand) failed the whole book, for every
    node and after a restart, until its node registered again. Its routing (id, node) is
    sound, so the entry stays: the name is only what people read."""
    if xmlsafe.NOT_XML_CHAR.search(entry.name) is None:
        return entry.name
    log.warning("a name in the address book XML cannot carry: U+FFFD instead", org_id=entry.org_id)
    return xmlsafe.NOT_XML_CHAR.sub("\ufffd", entry.name)


@dataclass(frozen=True)
class SignedBook:
    """The address book at ``version`` as signed by ``seal`` at ``issued``, and the ETag
    that names this body (a node that holds it is answered 304)."""

    version: int
    seal: x509.Certificate
    issued: dt.datetime
    body: bytes
    etag: str

    @classmethod
    def of(cls, book: Directory, now: dt.datetime, seal: SigningIdentity) -> SignedBook:
        body = signed_xml(book.version, book.entries, now, seal)
        etag = f'"{book.version}-{hashlib.sha256(body).hexdigest()[:32]}"'
        return cls(book.version, seal.cert, now, body, etag)

    def serves(self, seal: x509.Certificate, now: dt.datetime) -> bool:
        """Whether it may be served at ``now`` for ``seal``: signed by it at most RESIGN
        before ``now``, and not after it (SKEW apart: another request's clock reading)."""
        return self.seal == seal and self.issued - SKEW <= now < self.issued + RESIGN


class SignedBooks:
    """A hub's address book signed last: every node fetches it at start, every few minutes
    and on each unknown recipient, and signing it (XMLDSig over every entry) costs far
    more than reading its version, which grows with every change of an entry in the
    transaction that changes it (one per hub: hubs sharing a process have their own
    stores, whose versions say nothing of each other's). Thread-safe: the hub signs in
    its offload threads."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._last: SignedBook | None = None

    def fresh(self, version: int, seal: x509.Certificate, now: dt.datetime) -> SignedBook | None:
        """The book signed last, if it is of ``version`` and serves ``seal`` at ``now``."""
        last = self._last
        return (
            last
            if last is not None and last.version == version and last.serves(seal, now)
            else None
        )

    def sign(self, book: Directory, now: dt.datetime, seal: SigningIdentity) -> SignedBook:
        """``book`` signed by ``seal`` at ``now``, unless a request signed it (or a later
        version) meanwhile: concurrent requests wait for one signature."""
        with self._lock:
            last = self._last
            if last is None or last.version < book.version or not last.serves(seal.cert, now):
                last = self._last = SignedBook.of(book, now, seal)
            return last


def signed_xml(
    version: int, entries: Sequence[DirectoryEntry], now: dt.datetime, seal: SigningIdentity
) -> bytes:
    """The address book at ``version`` signed by ``seal``, issued at ``now``."""
    signed = signing.sign_enveloped(to_xml(version, entries, now), seal)
    data: bytes = etree.tostring(signed, xml_declaration=True, encoding="utf-8")
    return data


@dataclass(frozen=True)
class ReadBook:
    """An address book a node verified, and the seal's certificate that signed it."""

    version: int
    expires: dt.datetime
    entries: list[DirectoryEntry]
    seal: x509.Certificate


def read_signed(data: bytes, trust: Trust, now: dt.datetime, hub_org: str) -> ReadBook:
    """What a node does with the hub's address book: verify, check expiry, read."""
    root, seal = signing.verify_enveloped(
        xmlsafe.parse(data, xmlsafe.Limits(max_bytes=64 * 1024 * 1024)), trust, now, hub_org
    )
    expires = dt.datetime.fromisoformat(root.get("expires", ""))
    _check_expiry(expires, now)
    entries = [
        DirectoryEntry(item.get("id"), item.get("name"), item.get("kind"), item.get("node"))
        for item in root.iterfind(f"{{{NS}}}Organization")
    ]
    return ReadBook(int(root.get("version", "0")), expires, entries, seal)


def judge_again(
    seal: x509.Certificate, expires: dt.datetime, trust: Trust, now: dt.datetime, hub_org: str
) -> None:
    """A book read_signed read once, judged at ``now`` by what can have changed since: its
    expiry and its ``seal`` (signing.check_seal), not its signature over bytes unchanged."""
    _check_expiry(expires, now)
    signing.check_seal(seal, trust, now, hub_org)


def _check_expiry(expires: dt.datetime, now: dt.datetime) -> None:
    if expires < now:
        raise errors.ExpiredCertificate(f"address book expired {expires:%Y-%m-%d %H:%M}")
