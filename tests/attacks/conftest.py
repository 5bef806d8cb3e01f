"""One real network (hub + the nodes of Tây Ninh and Kon Tum) for the agency attacks and
the agency API fuzzing, started once for the session."""

from __future__ import annotations

import random
from collections.abc import Iterator

import pytest

from tests.network_support import LocalNetwork


@pytest.fixture(scope="session")
def network(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalNetwork]:
    # below the kernel's ephemeral range (32768-60999), where the outgoing connections of a
    # busy machine can hold a port the network means to listen on
    port = random.randrange(20000, 32700, 10)
    started = LocalNetwork(tmp_path_factory.mktemp("net"), ["H53", "H34"], port).start()
    yield started
    started.stop()
