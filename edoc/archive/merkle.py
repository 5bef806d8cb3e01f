"""A Merkle tree over SHA-256 digests, so one time-stamp token covers a batch of records
and each record keeps a short proof that it was in the batch (RFC 6962's hashing: a
leaf and an inner node are hashed with different prefixes, so neither passes for the
other; an odd node is carried up unchanged)."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from enum import StrEnum

from edoc import errors


class Side(StrEnum):
    LEFT = "left"  # the sibling is on the left
    RIGHT = "right"


Proof = tuple[tuple[Side, bytes], ...]


def leaf(digest: bytes) -> bytes:
    return hashlib.sha256(b"\x00" + digest).digest()


def _node(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(b"\x01" + left + right).digest()


def _levels(digests: Sequence[bytes]) -> list[list[bytes]]:
    if not digests:
        raise errors.BadTimestamp("a batch needs at least one record")
    level = [leaf(d) for d in digests]
    levels = [level]
    while len(level) > 1:
        level = [
            _node(level[i], level[i + 1]) if i + 1 < len(level) else level[i]
            for i in range(0, len(level), 2)
        ]
        levels.append(level)
    return levels


def root(digests: Sequence[bytes]) -> bytes:
    """The tree's root over the records' ``digests``, in their order."""
    return _levels(digests)[-1][0]


def proofs(digests: Sequence[bytes]) -> list[Proof]:
    """Every record's proof (the siblings from it up to the root), in order, from one
    building of the tree."""
    levels = _levels(digests)
    return [_path(levels, index) for index in range(len(digests))]


def _path(levels: list[list[bytes]], index: int) -> Proof:
    """The siblings from record ``index`` up to the root."""
    steps = []
    for level in levels[:-1]:
        sibling = index ^ 1
        if sibling < len(level):
            steps.append((Side.LEFT if sibling < index else Side.RIGHT, level[sibling]))
        index //= 2
    return tuple(steps)


def root_from(digest: bytes, steps: Proof) -> bytes:
    """The root a record's ``digest`` and its proof lead to."""
    value = leaf(digest)
    for side, sibling in steps:
        value = _node(sibling, value) if side is Side.LEFT else _node(value, sibling)
    return value
