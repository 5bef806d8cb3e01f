"""Shared fixtures. Envelope fixtures first; helpers live in tests/support/envelope.py."""

from __future__ import annotations

from typing import Any

import pytest

from tests.support.envelope import Packed, load_sample_metadata, pack


# --- envelope ------------------------------------------------------------------------
@pytest.fixture
def sample_metadata() -> dict[str, Any]:
    """seeds/samples/cong-van.json as a fresh dict a test may change."""
    return load_sample_metadata()


@pytest.fixture(scope="session")
def sample_package() -> Packed:
    """The sample document with one small text attachment, packed (unsigned)."""
    return pack(load_sample_metadata(), {"ke-hoach.txt": "Kế hoạch chuyển đổi số.\n".encode()})
