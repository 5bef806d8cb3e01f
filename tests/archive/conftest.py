"""A CA with a time-stamping authority, shared by the archive tests of one module."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.pki import Ca


@pytest.fixture(scope="module")
def ca(tmp_path_factory: pytest.TempPathFactory) -> Ca:
    made = Ca.create(tmp_path_factory.mktemp("ca") / "keys")
    made.keys.issue_tsa()
    return made


@pytest.fixture(scope="module")
def root_pem(ca: Ca) -> Path:
    return ca.keys.root_path
