"""The node's start and stop, in process: what it opened is closed whatever fails."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
from aiohttp import web

from edoc.node.app import create_app
from edoc.node.state import NodeConfig


async def test_a_start_failing_after_the_store_opened_leaves_no_thread(tmp_path: Path) -> None:
    config = NodeConfig(
        province="H53",
        data_dir=tmp_path / "node",
        keys_dir=tmp_path / "no-keys",  # the store opens, then the hub link has no certificate
        hub_url="https://127.0.0.1:9",
        hub_token="t",
    )
    runner = web.AppRunner(create_app(config))
    before = set(threading.enumerate())
    with pytest.raises(OSError) as failed:
        await runner.setup()
    await runner.cleanup()

    # While the error is reported (the CLI prints it, then exits), no thread of the store
    # may be left: it is no daemon, and the process would wait for it for ever.
    started = [thread for thread in threading.enumerate() if thread not in before]
    for thread in started:
        thread.join(timeout=2)
    assert not [thread.name for thread in started if thread.is_alive()], failed.value
