"""A service settles Python's garbage collector before it serves (edoc.web)."""

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
