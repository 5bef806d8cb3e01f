"""Python's garbage collector settled: by a service before it serves (edoc.web), by the
fork server the services are forked from (edoc.preloaded)."""

from __future__ import annotations

import json
import subprocess
import sys

from edoc import web

PROBE = """
import gc, json
from edoc import web
before = gc.get_freeze_count()
web.settle_the_collector()
print(json.dumps([before, gc.get_freeze_count(), gc.get_threshold()[0], gc.get_count()[0]]))
"""


def test_what_exists_before_serving_is_frozen_and_young_collections_are_rarer() -> None:
    # in a process of its own: the collector's settings are the whole process's
    done = subprocess.run(
        [sys.executable, "-c", PROBE], capture_output=True, text=True, check=True, timeout=60
    )
    before, frozen, young, pending = json.loads(done.stdout)
    assert before == 0 and frozen > 10_000  # the modules imported, at least
    assert young == web.YOUNG_COLLECTION > 700
    assert pending < 100  # collected just before freezing: no garbage kept for ever


def test_the_fork_server_freezes_what_it_preloaded_for_the_services_to_share() -> None:
    from edoc import launcher

    assert launcher.PRELOAD[-1] == "edoc.preloaded"  # after everything the others import
    probe = "import gc, edoc.cli.serve, edoc.preloaded; print(gc.get_freeze_count())"
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=60
    )
    assert int(done.stdout) > 10_000
