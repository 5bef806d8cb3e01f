"""Organization identifiers (mã định danh, Decision 20/2020/QĐ-TTg).

Form ``AAA.BB.CC.DNN``: ``DNN`` names the level-1 body (``H53`` a province, ``G12`` a
ministry), ``CC`` its level-2 agency, ``BB`` the level-3 unit under that agency and
``AAA`` the level-4 unit. A group of zeros means "this level is not used", and a
deeper level needs every shallower one: ``000.46.24.H44`` is valid, ``000.46.00.H44``
is not.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from typing import Self

from edoc.errors import InvalidOrgId

# ASCII digits only, and the whole text: \d alone matches any Unicode digit and $ matches
# before a trailing newline.
_PATTERN = re.compile(r"(\d{3})\.(\d{2})\.(\d{2})\.([A-Z])(\d{2})", re.ASCII)

# Letters of level-1 bodies whose kind we know; other capital letters are valid too.
KIND_BY_LETTER = {"H": "province", "G": "ministry"}


@dataclass(frozen=True, order=True)
class OrgId:
    level4: int
    level3: int
    level2: int
    letter: str
    number: int

    @classmethod
    def parse(cls, text: str) -> Self:
        match = _PATTERN.fullmatch(text) if isinstance(text, str) else None
        if match is None:
            raise InvalidOrgId(f"not an organization identifier (AAA.BB.CC.DNN): {text!r}")
        a, b, c, letter, number = match.groups()
        org = cls(int(a), int(b), int(c), letter, int(number))
        if org.number == 0:
            raise InvalidOrgId(f"level-1 number 00 is not assigned: {text!r}")
        if (org.level3 and not org.level2) or (org.level4 and not org.level3):
            raise InvalidOrgId(f"a deeper level is set while a shallower one is 0: {text!r}")
        return org

    def __str__(self) -> str:
        return (
            f"{self.level4:03d}.{self.level3:02d}.{self.level2:02d}.{self.letter}{self.number:02d}"
        )

    @property
    def level(self) -> int:
        """1 for a province or ministry, up to 4 for a commune-level unit."""
        return 1 + sum(1 for group in (self.level2, self.level3, self.level4) if group)

    @property
    def root(self) -> OrgId:
        """The level-1 body (province or ministry) this organization belongs to."""
        return OrgId(0, 0, 0, self.letter, self.number)

    @property
    def root_code(self) -> str:
        """Short code of the level-1 body, e.g. ``H53``: how nodes name their province."""
        return f"{self.letter}{self.number:02d}"

    @property
    def kind(self) -> str:
        return KIND_BY_LETTER.get(self.letter, "other")

    def parent(self) -> OrgId | None:
        if self.level4:
            return OrgId(0, self.level3, self.level2, self.letter, self.number)
        if self.level3:
            return OrgId(0, 0, self.level2, self.letter, self.number)
        if self.level2:
            return self.root
        return None

    def is_under(self, other: OrgId) -> bool:
        """True when ``other`` is this organization or one of its ancestors."""
        node: OrgId | None = self
        while node is not None:
            if node == other:
                return True
            node = node.parent()
        return False


@functools.lru_cache(maxsize=4096)
def root_of(org_id: str) -> OrgId:
    """The province or ministry ``org_id`` belongs to, remembered: the hub and the nodes
    ask it several times a message, of the few thousand organizations there are (an
    invalid id raises every time: lru_cache keeps no exception)."""
    return OrgId.parse(org_id).root


def parse_root_code(code: str) -> OrgId:
    """``H53`` or ``000.00.00.H53`` → the level-1 identifier. A short code refused is said
    as given, not as the identifier made of it (``--province BAD`` said '000.00.00.BAD')."""
    if "." not in code:
        try:
            return OrgId.parse(f"000.00.00.{code}")
        except InvalidOrgId:
            raise InvalidOrgId(
                f"{code!r} is not a province or ministry code (e.g. H53, G01)"
            ) from None
    org = OrgId.parse(code)
    if org.level != 1:
        raise InvalidOrgId(f"not a province or ministry identifier: {code!r}")
    return org
