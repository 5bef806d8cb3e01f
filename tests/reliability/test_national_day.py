"""`edoc simulate` on a national network: 85 nodes as real processes and the hub.

In `make test-reliability`, not `make test`: issuing some 430 certificates and starting 86
services took 4.5 minutes of a loaded 2-core machine, and what it proves beyond the
four-province simulation in tests/test_simulate.py is that start-up and routing hold at
national scale.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.network import simulate


@pytest.mark.reliability
def test_a_small_national_day(tmp_path: Path) -> None:
    report = simulate(
        "national", "--days", "1", "--scale", "0.02", "--data-dir", str(tmp_path / "national")
    )
    assert report["documents"] > 40
    assert report["sent"] == report["arrived"] == report["documents"]
    assert report["refused"] == {}
    assert sum(report["statuses"].get(code, 0) for code in ("02", "06")) == report["arrived"]
    assert len(report["rows"]) == 85
    for log in (tmp_path / "national" / "logs").iterdir():  # and 86 services stopped cleanly
        assert "Traceback" not in log.read_text(), log
