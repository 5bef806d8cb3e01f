"""A day's archive of containers, linked to the previous day's by a hash chain."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import IO

import pytest

from edoc import atomic, envelope, errors
from edoc.archive import day
from tests.archive import support
from tests.support.pki import Ca

DAY = dt.date(2026, 12, 1)
ORG = support.RECIPIENT


@pytest.fixture(scope="module")
def days(ca: Ca) -> tuple[bytes, bytes]:
    """Two days' archives: the first of two documents, the second of one, linked."""
    containers: list[tuple[str, bytes]] = []
    for number in range(3):
        document = support.document_package(ca, number=number)
        made = support.build(ca, document, support.status_package(ca, document))
        containers.append((envelope.read_package(document).message.about, made))
    stamp = support.stamper(ca)
    first = day.build(ORG, DAY, containers[:2], None, stamp, ca.clock())
    previous = day.Previous.of_bytes(day.file_name(ORG, DAY), first)
    second = day.build(ORG, DAY + dt.timedelta(days=1), containers[2:], previous, stamp, ca.clock())
    return first, second


def test_a_chain_of_days_verifies(ca: Ca, days: tuple[bytes, bytes]) -> None:
    first, second = days
    root = ca.keys.trust().root
    report = day.verify_day(first, root)
    assert (report.org_id, report.day, report.previous) == (ORG, "2026-12-01", "")
    assert len(report.containers) == 2
    linked = day.verify_day(second, root, day.Previous.of_bytes("first.zip", first))
    assert linked.previous == "first.zip"
    assert len(linked.containers) == 1
    assert day.is_day_archive(first)


def test_a_container_removed_from_the_archive_fails(ca: Ca, days: tuple[bytes, bytes]) -> None:
    first, _ = days
    changed = support.rewrite(first, lambda n, d: None if n == "containers/0002.asice" else d)
    with pytest.raises(
        errors.BrokenArchiveChain, match=r"0002\.asice, listed in linkinginfo, is not"
    ):
        day.verify_day(changed, ca.keys.trust().root)


def test_a_container_removed_with_its_line_fails_the_token(
    ca: Ca, days: tuple[bytes, bytes]
) -> None:
    first, _ = days

    def change(name: str, data: bytes) -> bytes | None:
        if name == "containers/0002.asice":
            return None
        if name == day.LINKING:
            linking = json.loads(data)
            linking["containers"] = linking["containers"][:1]
            return json.dumps(linking).encode()
        return data

    with pytest.raises(errors.BadTimestamp, match="other data"):
        day.verify_day(support.rewrite(first, change), ca.keys.trust().root)


def test_a_changed_previous_day_breaks_the_link(ca: Ca, days: tuple[bytes, bytes]) -> None:
    first, second = days
    shortened = support.rewrite(first, lambda n, d: None if n.endswith("0002.asice") else d)
    with pytest.raises(errors.BrokenArchiveChain, match="does not match the hash"):
        day.verify_day(second, ca.keys.trust().root, day.Previous.of_bytes("first.zip", shortened))
    with pytest.raises(errors.BrokenArchiveChain, match="links to no previous day"):
        day.verify_day(first, ca.keys.trust().root, day.Previous.of_bytes("x.zip", second))


def test_a_swapped_container_fails(ca: Ca, days: tuple[bytes, bytes]) -> None:
    first, second = days
    foreign = support.rewrite(second, lambda n, d: d)  # a whole other archive's bytes

    def change(name: str, data: bytes) -> bytes:
        return foreign if name == "containers/0001.asice" else data

    with pytest.raises(errors.BrokenArchiveChain, match=r"0001\.asice does not match"):
        day.verify_day(support.rewrite(first, change), ca.keys.trust().root)


def test_a_bad_container_inside_is_named(ca: Ca) -> None:
    document = support.document_package(ca)
    made = support.build(ca, document)
    broken = support.rewrite(made, lambda n, d: d + b" " if n.endswith(".edxml") else d)
    archive = day.build(ORG, DAY, [("d", broken)], None, support.stamper(ca), ca.clock())
    with pytest.raises(
        errors.EvidenceTampered, match=r"^EDOC-ARC-002: containers/0001\.asice: messages/01"
    ):
        day.verify_day(archive, ca.keys.trust().root)


def test_a_container_of_another_organization_or_document_fails(ca: Ca) -> None:
    document = support.document_package(ca)
    about = envelope.read_package(document).message.about
    made = support.build(ca, document)
    stamp = support.stamper(ca)
    for org, listed in (("000.00.00.G01", about), (ORG, "another document")):
        archive = day.build(org, DAY, [(listed, made)], None, stamp, ca.clock())
        with pytest.raises(errors.BrokenArchiveChain, match="not what linkinginfo says"):
            day.verify_day(archive, ca.keys.trust().root)


def test_a_day_that_fails_half_written_leaves_nothing(ca: Ca, tmp_path: Path) -> None:
    """Containers are copied into the day's file as they are made, so a failure (a
    package gone) comes after some are: the archive is still whole or not at all."""
    made = support.build(ca, support.document_package(ca))
    target = tmp_path / day.file_name(ORG, DAY)

    def gone(_: IO[bytes]) -> None:
        raise errors.StorageError("a kept package is gone")

    with (
        pytest.raises(errors.StorageError, match="gone"),
        atomic.replacing(target, mode=0o600) as out,
        day.Writer(out, ORG, DAY, None, support.stamper(ca), ca.clock(), tmp_path) as writer,
    ):
        writer.add("d", lambda into: into.write(made))
        writer.add("e", gone)
    assert list(tmp_path.iterdir()) == []
