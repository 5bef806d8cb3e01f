"""One shape for the corpora that attack a running service over HTTP."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

Reply = tuple[int, Any, dict[str, str]]  # HTTP status, JSON body, headers
Target = TypeVar("Target")


@dataclass(frozen=True)
class Case(Generic[Target]):
    """A hostile request against ``Target`` and the refusal it must get."""

    id: str
    attack: Callable[[Target], Awaitable[Reply]]
    status: int
    code: str
