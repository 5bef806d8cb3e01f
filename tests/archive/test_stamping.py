"""Batched time stamps as a service's background task (edoc.archive.stamping): off the
loop, under the retention policy, quiet without an authority, stopped cleanly."""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from edoc import errors, logs
from edoc.archive import merkle
from edoc.archive.batches import Batch, BatchLog, Retention
from edoc.archive.stamping import Stamping, stamp_forever, stamp_pass
from edoc.archive.stored import Mark, PackageRef
from edoc.cli import main
from edoc.hub import app as hub_app
from edoc.hub.state import HubConfig
from edoc.node import app as node_app
from edoc.node.state import NodeConfig
from edoc.offload import Offload
from tests.archive import support
from tests.support.pki import Ca


class FakeKept:
    """Packages kept after a mark (one per row id), and whether the reader was closed."""

    def __init__(self, refs: list[PackageRef], failures: int = 0) -> None:
        self.refs = refs
        self.failures = failures
        self.closed = False

    async def kept_after(self, mark: Mark, limit: int) -> tuple[list[PackageRef], Mark]:
        if self.failures:
            self.failures -= 1
            raise errors.StorageError("the store is not there this time")
        new = self.refs[mark.outgoing : mark.outgoing + limit]
        return new, Mark(mark.outgoing + len(new), 0)

    async def close(self) -> None:
        self.closed = True


@pytest.fixture
def offload() -> Iterator[Offload]:
    made = Offload(1)
    yield made
    made.close()


async def test_a_pass_stamps_rows_and_files_and_removes_old_batches(
    ca: Ca, offload: Offload, tmp_path: Path
) -> None:
    large = tmp_path / "1.edxml"
    large.write_bytes(b"a package kept in a file")
    kept = FakeKept([PackageRef(b"a package kept in its row", ""), PackageRef(None, str(large))])
    stamping = Stamping(tmp_path / "evidence", keep_days=30)
    log = BatchLog(stamping.folder)
    now = ca.clock()
    old = hashlib.sha256(b"old").digest()
    token = support.stamper(ca)(merkle.root([old]))
    log.add(Batch((old,), token), Mark(0, 0), now - dt.timedelta(days=40))
    retention = Retention(stamping.keep_days)
    assert await stamp_pass(kept, stamping, ca.keys, offload, now, retention) == 2
    (batch,) = log.batches()  # the old one is past the retention
    assert batch.digests == (
        hashlib.sha256(b"a package kept in its row").digest(),
        hashlib.sha256(large.read_bytes()).digest(),
    )
    assert set(log.proofs_of((*batch.digests, old))) == set(batch.digests)
    assert log.mark() == Mark(2, 0)
    assert await stamp_pass(kept, stamping, ca.keys, offload, now, retention) == 0


async def test_without_an_authority_nothing_is_stamped(offload: Offload, tmp_path: Path) -> None:
    bare = Ca.create(tmp_path / "keys")  # no `edoc keys tsa`

    async def never() -> FakeKept:
        raise AssertionError("the store is opened only to stamp")

    stamping = Stamping(tmp_path / "evidence")
    await asyncio.wait_for(stamp_forever(never, stamping, bare.keys, offload), 5)
    assert not stamping.folder.exists()


async def test_a_failed_pass_is_tried_again_and_stopping_closes_the_reader(
    ca: Ca, offload: Offload, tmp_path: Path
) -> None:
    kept = FakeKept([PackageRef(b"one", "")], failures=2)

    async def opened() -> FakeKept:
        return kept

    stamping = Stamping(tmp_path / "evidence", every=0.05)
    task = asyncio.create_task(stamp_forever(opened, stamping, ca.keys, offload))
    log = BatchLog(stamping.folder)
    for _ in range(100):
        if log.mark() == Mark(1, 0):
            break
        await asyncio.sleep(0.05)
    assert log.mark() == Mark(1, 0) and kept.failures == 0
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert kept.closed


NODE = ["--province", "H53", "--hub", "https://127.0.0.1:8700", "--hub-token", "t"]
SERVICES = {"hub": (hub_app, []), "node": (node_app, NODE)}


@pytest.mark.parametrize("service", SERVICES)
@pytest.mark.parametrize(("given", "kept"), [([], None), (["--evidence-days", "30"], 30)])
def test_the_retention_is_an_option_of_serve(
    service: str,
    given: list[str],
    kept: int | None,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    ca: Ca,
) -> None:
    app, required = SERVICES[service]
    started: list[HubConfig | NodeConfig] = []
    monkeypatch.setattr(app, "run", started.append)
    monkeypatch.setattr(logs, "configure", lambda: None)
    arguments = ["serve", service, "--data-dir", str(tmp_path / service), *required, *given]
    arguments += ["--keys-dir", str(ca.keys.path)]  # a service starts only with its network's
    result = CliRunner().invoke(main, arguments)
    assert result.exit_code == 0, result.output
    (config,) = started
    assert config.evidence_days == kept
