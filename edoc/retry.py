"""Waiting between tries: one rule, exponential backoff with full jitter, for every loop
that retries a call to another service."""

from __future__ import annotations

import asyncio
import random


def full_jitter(base: float, cap: float, failures: int) -> float:
    """A wait uniform in [0, min(cap, base·2^failures)]: the tries of many clients after
    one outage spread out instead of arriving together."""
    return random.uniform(0, min(cap, base * 2**failures))  # noqa: S311 - jitter, not secrecy


class Backoff:
    """The waits of one retry loop: each failure waits longer (doubling, jittered, up to
    ``cap``); a success starts again from ``base``."""

    def __init__(self, base: float, cap: float) -> None:
        self.base = base
        self.cap = cap
        self.failures = 0

    def succeeded(self) -> None:
        self.failures = 0

    async def failed(self) -> None:
        """Wait before the next try."""
        await asyncio.sleep(full_jitter(self.base, self.cap, self.failures))
        self.failures += 1
