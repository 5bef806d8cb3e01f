"""`edoc bench --store postgresql://… --hubs 2`: the same figures, the hub as two
instances on one PostgreSQL, said in the results (its store's kind, never its URL)."""

from __future__ import annotations

from pathlib import Path

from click.testing import CliRunner

from edoc import network
from edoc.bench import command
from edoc.cli import main
from edoc.cli.failures import EXIT_REFUSED
from tests.test_bench import TINY


def test_a_tiny_bench_on_two_hub_instances(fresh: str) -> None:
    results = command.run(TINY, lambda _: None, network.HubPlan(2, fresh))
    assert results["hub"] == {"instances": 2, "store": "postgresql"}
    throughput = results["throughput"]
    assert throughput["documents"] == 12 and throughput["documents_per_s"] > 0
    assert set(throughput["cpu_ms_per_document"]) == {"hub 1", "hub 2", "node H53", "node H34"}
    (load,) = results["latency"]
    assert load["documents"] == 10 and load["status_01_missing"] == 0
    summary = command.markdown(results)
    assert "mutual TLS, 2 hub instances on PostgreSQL)" in summary
    assert fresh not in summary


def test_several_hubs_need_a_shared_store(tmp_path: Path) -> None:
    refused = CliRunner().invoke(
        main, ["bench", "--hubs", "2", "--output", str(tmp_path)], catch_exceptions=False
    )
    assert refused.exit_code == EXIT_REFUSED, refused.output
    assert "shared store" in refused.stderr
