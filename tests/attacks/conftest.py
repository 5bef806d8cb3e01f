"""One real network (hub + the nodes of Tây Ninh and Kon Tum) for the agency attacks and
the agency API fuzzing, started once for the session."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.network import LocalNetwork


@pytest.fixture(scope="session")
def network(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalNetwork]:
    started = LocalNetwork(tmp_path_factory.mktemp("net"), ["H53", "H34"]).start()
    yield started
    started.stop()
