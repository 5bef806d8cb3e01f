"""The independent verifiers the archive tests check against: skipped on a developer's
machine without them, never in CI (.ci/run installs both)."""

from __future__ import annotations

import os
import shutil

import pytest

needs_xmlsec1 = pytest.mark.skipif(
    shutil.which("xmlsec1") is None and not os.environ.get("CI"),
    reason="xmlsec1 not installed (apt-get install xmlsec1; CI installs it)",
)
needs_openssl = pytest.mark.skipif(
    shutil.which("openssl") is None and not os.environ.get("CI"),
    reason="openssl not installed (apt-get install openssl; CI installs it)",
)
