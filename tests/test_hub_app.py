"""The hub's start, in process: what it opened is closed whatever fails."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
from aiohttp import web

from edoc import errors
from edoc.hub.app import create_app
from edoc.hub.state import HubConfig


async def test_a_start_failing_after_the_store_opened_leaves_no_thread(tmp_path: Path) -> None:
    # plain HTTP, so the store opens before anything looks for the hub's keys
    config = HubConfig(data_dir=tmp_path / "hub", keys_dir=tmp_path / "no-keys", tls=False)
    runner = web.AppRunner(create_app(config))
    before = set(threading.enumerate())
    with pytest.raises(errors.EdocError) as failed:
        await runner.setup()
    await runner.cleanup()

    # while the error is reported, no thread of the store is left to keep the process alive
    started = [thread for thread in threading.enumerate() if thread not in before]
    for thread in started:
        thread.join(timeout=2)
    assert not [thread.name for thread in started if thread.is_alive()], failed.value
