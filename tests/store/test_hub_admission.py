"""The hub's combined reads and changes (HubStore.admission, acknowledge_checked) give what
the separate queries they replace (tests/store/oracles.py) give, on every backend."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from edoc import errors
from edoc.store.hub import (
    NEW_ELSE_ANY,
    Addressee,
    Admission,
    Delivery,
    DirectoryEntry,
    HubStore,
    PackageKey,
    Receipt,
    Tally,
)
from edoc.store.sqlite.hub import SqliteHubStore
from tests.store import oracles
from tests.store.test_hub import DAY, H23, H34, LEASE, NOW, SENT, SMALL

BACK = Addressee(SMALL.sender, "H53")
STRANGER = "000.00.99.H99"


async def _separately(
    store: HubStore, key: PackageKey, original: PackageKey | None, addressees: Sequence[str]
) -> Admission:
    """What the intake read before, a call each."""
    found = await store.find_package(original) if original else None
    asked = list(dict.fromkeys([*addressees, *(found.recipients if found else ())]))
    given: list[str] = []
    if original is not None and key.kind == "status":
        given = await oracles.codes_given(store, key.sender, original.sender, original.about)
    unknown = await oracles.unknown(store, asked)
    return Admission(
        earlier=await store.find_package(key),
        original=found,
        codes_given=tuple(given),
        known=frozenset(a for a in asked if a not in unknown),
        queued={a: await oracles.queued_for(store, a) for a in asked},
    )


def _status(code: str, sender: str = H34.org_id) -> PackageKey:
    return PackageKey("status", sender, SMALL.about, 0, code)


async def _state(store: HubStore) -> None:
    """A document to H34 and H23, H34's 01 and 03 about it, one delivery acknowledged."""
    await store.register([DirectoryEntry(H34.org_id, "Thái Bình", "province", "H34")])
    await store.register([DirectoryEntry(SMALL.sender, "Sở", "agency", "H53")])
    await store.accept(replace(SMALL, recipients=(H34, H23)), NOW, SENT)
    for code in ("01", "03"):
        status = replace(
            SMALL,
            kind="status",
            sender=H34.org_id,
            status_code=code,
            digest=code,
            recipients=(BACK,),
        )
        await store.accept(status, NOW, Tally(DAY, H34.org_id, "status_sent", ""))
    (leased,) = await store.lease("H53", NOW, LEASE, 1, 0)
    await oracles.acknowledge(store, [Receipt(leased.id, SENT)], NOW)


ORIGINAL = SMALL.key
CASES = [
    # a new document: nothing before, no original
    (replace(SMALL, about="new").key, None, [H34.org_id, STRANGER]),
    # the same document again: the earlier one
    (SMALL.key, None, [H34.org_id, H23.org_id]),
    # a revoke of it: the original's recipients asked about too
    (replace(SMALL.key, business_type=2), ORIGINAL, [H34.org_id, H34.org_id]),
    # a revoke of an unknown one
    (replace(SMALL.key, about="x", business_type=2), replace(ORIGINAL, about="x"), [STRANGER]),
    # H34's 05 after its 01 and 03, its 01 again, H23's first status, a status about nothing
    (_status("05"), ORIGINAL, [SMALL.sender]),
    (_status("01"), ORIGINAL, [SMALL.sender]),
    (_status("01", H23.org_id), ORIGINAL, [SMALL.sender]),
    (_status("01"), replace(ORIGINAL, about="none"), [SMALL.sender]),
    # a status's answered document, whatever it does (the new one here)
    (_status("05"), replace(ORIGINAL, business_type=NEW_ELSE_ANY), [SMALL.sender]),
]


@pytest.mark.parametrize(("key", "original", "addressees"), CASES)
async def test_admission_reads_what_the_separate_reads_did(
    hub_store: HubStore, key: PackageKey, original: PackageKey | None, addressees: list[str]
) -> None:
    await _state(hub_store)
    combined = await hub_store.admission(key, original, addressees)
    separate = await _separately(hub_store, key, original, addressees)
    assert replace(combined, codes_given=tuple(sorted(combined.codes_given))) == replace(
        separate, codes_given=tuple(sorted(separate.codes_given))
    )
    assert dict(combined.queued) == dict(separate.queued)


def _received(deliveries: Sequence[Delivery]) -> list[Receipt]:
    return [Receipt(d.id, Tally(DAY, d.recipient, "received", "")) for d in deliveries]


async def test_acknowledge_checked_marks_what_its_receipts_name(hub_store: HubStore) -> None:
    await hub_store.accept(replace(SMALL, recipients=(H34, H23)), NOW, SENT)
    leased = await hub_store.lease("H34", NOW, LEASE, 10, 0)
    leased += await hub_store.lease("H23", NOW, LEASE, 10, 0)
    seen: list[Sequence[Delivery]] = []

    def receipts(found: Sequence[Delivery]) -> list[Receipt]:
        seen.append(found)
        return _received(found)

    ids = [d.id for d in leased]
    first = await hub_store.acknowledge_checked([*ids, 10_000], NOW, receipts)
    assert [d.id for d in first] == sorted(ids)
    assert {d.recipient for d in first} == {H34.org_id, H23.org_id}
    assert [d.body for d in seen[0]] == [None, None]  # an acknowledgement needs no bodies
    assert await hub_store.acknowledge_checked(ids, NOW, receipts) == []  # once only
    assert all(d.delivered for d in seen[1])
    received = sorted(c.org_id for c in await hub_store.counters() if c.metric == "received")
    assert received == sorted([H34.org_id, H23.org_id])


async def test_receipts_refusing_acknowledge_nothing(hub_store: HubStore) -> None:
    await hub_store.accept(SMALL, NOW, SENT)
    (leased,) = await hub_store.lease("H34", NOW, LEASE, 10, 0)

    def refuse(found: Sequence[Delivery]) -> list[Receipt]:
        raise errors.Forbidden("not yours")

    with pytest.raises(errors.Forbidden):
        await hub_store.acknowledge_checked([leased.id], NOW, refuse)
    assert await oracles.queued_for(hub_store, H34.org_id) == 1
    assert [d.id for d in await hub_store.acknowledge_checked([leased.id], NOW, _received)] == [
        leased.id
    ]


ORGS = [H34.org_id, H23.org_id, SMALL.sender, STRANGER]
_KEYS = st.builds(
    PackageKey,
    kind=st.sampled_from(["document", "status"]),
    sender=st.sampled_from(ORGS),
    about=st.sampled_from(["a", "b"]),
    business_type=st.sampled_from([0, 2]),
    status_code=st.sampled_from(["", "01", "03"]),
)
_PACKAGES = st.tuples(_KEYS, st.lists(st.sampled_from(ORGS), min_size=1, max_size=3, unique=True))


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    packages=st.lists(_PACKAGES, max_size=8),
    book=st.sets(st.sampled_from(ORGS)),
    acknowledged=st.integers(min_value=0, max_value=4),
    key=_KEYS | st.integers(min_value=0, max_value=7),
    original=st.none()
    | _KEYS
    | _KEYS.map(lambda key: replace(key, business_type=NEW_ELSE_ANY))
    | st.integers(min_value=0, max_value=7),
    addressees=st.lists(st.sampled_from(ORGS), max_size=4),
)
def test_admission_is_the_separate_reads_on_any_sqlite_store(
    tmp_path: Path,
    packages: list[tuple[PackageKey, list[str]]],
    book: set[str],
    acknowledged: int,
    key: PackageKey | int,
    original: PackageKey | int | None,
    addressees: list[str],
) -> None:
    """``key`` and ``original`` a key, or the place of a stored package whose key it is
    (random keys seldom meet a stored one)."""
    stored = [package_key for package_key, _ in packages] or [SMALL.key]
    if isinstance(key, int):
        key = stored[key % len(stored)]
    if isinstance(original, int):
        original = stored[original % len(stored)]

    async def compare() -> None:
        assert isinstance(key, PackageKey)
        store = SqliteHubStore(tmp_path / f"{uuid.uuid4().hex}.sqlite")
        await store.open()
        try:
            await store.register([DirectoryEntry(o, "x", "agency", o[-3:]) for o in sorted(book)])
            for n, (package_key, to) in enumerate(packages):
                package = replace(
                    SMALL,
                    kind=package_key.kind,
                    sender=package_key.sender,
                    about=package_key.about,
                    business_type=package_key.business_type,
                    status_code=package_key.status_code,
                    digest=str(n),
                    recipients=tuple(Addressee(o, o[-3:]) for o in to),
                )
                with contextlib.suppress(errors.DuplicateDocument):
                    await store.accept(package, NOW, SENT)
            leased = await store.lease("H34", NOW, LEASE, acknowledged, 0)
            await oracles.acknowledge(store, _received(leased), NOW)
            combined = await store.admission(key, original, addressees)
            separate = await _separately(store, key, original, addressees)
            assert sorted(combined.codes_given) == sorted(separate.codes_given)
            assert replace(combined, codes_given=(), queued={}) == replace(
                separate, codes_given=(), queued={}
            )
            assert dict(combined.queued) == dict(separate.queued)
        finally:
            await store.close()

    asyncio.run(compare())
