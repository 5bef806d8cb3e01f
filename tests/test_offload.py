"""Work over small input runs on the event loop; a file's work in a thread."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
import structlog

from edoc.offload import SMALL_BYTES, Offload, held_small


def _where(tag: str) -> tuple[int, str, object]:
    """The thread it ran on, its argument, and the request's log context there."""
    return threading.get_ident(), tag, structlog.contextvars.get_contextvars().get("request")


@pytest.mark.parametrize("small", [True, False])
async def test_small_work_stays_on_the_loop_and_large_goes_to_a_thread(small: bool) -> None:
    offload = Offload()
    structlog.contextvars.bind_contextvars(request="r-1")
    try:
        thread, tag, request = await offload.run_small_here(small, _where, "package")
    finally:
        structlog.contextvars.clear_contextvars()
        offload.close()
    assert (thread == threading.get_ident()) is small
    assert (tag, request) == ("package", "r-1")  # arguments and log context either way


async def test_a_failure_comes_out_the_same_either_way() -> None:
    offload = Offload()

    def refuse() -> None:
        raise ValueError("bad package")

    try:
        for small in (True, False):
            with pytest.raises(ValueError, match="bad package"):
                await offload.run_small_here(small, refuse)
    finally:
        offload.close()


def test_small_work_is_over_bytes_in_memory_of_at_most_small_bytes(tmp_path: Path) -> None:
    assert held_small(b"x" * SMALL_BYTES)
    assert not held_small(b"x" * (SMALL_BYTES + 1))
    assert not held_small(tmp_path / "package.edxml")  # a file: streamed, large
