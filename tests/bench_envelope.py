"""Benchmark: pack and read a package with one big attachment, watching resident memory.

Run as ``python -m tests.bench_envelope [--size-mb 200]`` (``make bench``). Not a pytest
module: it takes seconds and writes hundreds of megabytes to a temporary folder.

The attachment bytes must stream: packing and reading a 200 MB file may grow the
process's resident memory by less than 100 MB. Each phase runs in a fresh interpreter
(memory one phase freed cannot hide what the next one takes). Memory is read from
/proc/self/status (VmRSS, and the peak VmHWM, reset through /proc/self/clear_refs where
the kernel allows it); elsewhere ru_maxrss is the fallback, which cannot be reset.
"""

from __future__ import annotations

import argparse
import gc
import hashlib
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

from edoc import envelope, metadata
from tests.envelope_support import SENT_AT, load_sample_metadata

MB = 1024 * 1024
STATUS = Path("/proc/self/status")
CLEAR_REFS = Path("/proc/self/clear_refs")
REPO = Path(__file__).resolve().parent.parent
ATTACHMENT = "tai-lieu-lon.bin"
PACKAGE = "package.edxml"
RECEIVED = "received.bin"


def _status_kb(field: str) -> int | None:
    try:
        for line in STATUS.read_text().splitlines():
            if line.startswith(f"{field}:"):
                return int(line.split()[1])
    except OSError:
        return None
    return None


def _reset_peak() -> bool:
    """Make VmHWM start again from the current RSS (Linux ≥ 4.0, "5" to clear_refs)."""
    try:
        CLEAR_REFS.write_text("5")
    except OSError:
        return False
    return True


def _maxrss_kb() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # kilobytes on Linux


@dataclass(frozen=True)
class Phase:
    name: str
    seconds: float
    rss_growth_mb: float
    method: str


def measure(name: str, work: Callable[[], None]) -> Phase:
    gc.collect()
    reset = _reset_peak()
    rss_before = _status_kb("VmRSS")
    if reset and rss_before is not None:
        method = "VmHWM-VmRSS"
        before = rss_before
    else:
        method = "ru_maxrss"
        before = _maxrss_kb()
    started = time.perf_counter()
    work()
    seconds = time.perf_counter() - started
    after = _status_kb("VmHWM") if method == "VmHWM-VmRSS" else _maxrss_kb()
    assert after is not None
    return Phase(name, seconds, max(after - before, 0) / 1024, method)


def _random_file(path: Path, size: int) -> str:
    digest = hashlib.sha256()
    with path.open("wb") as out:
        left = size
        while left:
            chunk = os.urandom(min(MB, left))
            digest.update(chunk)
            out.write(chunk)
            left -= len(chunk)
    return digest.hexdigest()


def _pack(work: Path) -> None:
    attached = envelope.attachments_from_files([work / ATTACHMENT])
    document = metadata.to_document(
        metadata.check(load_sample_metadata()), tuple(item for item, _ in attached)
    )
    root = envelope.build_envelope(envelope.stamp_origin(document, SENT_AT))
    envelope.validate(root)
    with (work / PACKAGE).open("wb") as out:
        envelope.write_package(root, attached, out)


def _read(work: Path) -> None:
    def sink(_content_id: str, _name: str) -> envelope.Writable:
        return (work / RECEIVED).open("wb")

    with (work / PACKAGE).open("rb") as source:
        package = envelope.read_package(source, sink)  # checks size and sha256 too
    assert len(package.received) == 1


PHASES = {"pack": _pack, "read": _read}


def _run_phase(name: str, work: Path) -> Phase:
    """Run one phase in a fresh interpreter and collect its figures."""
    done = subprocess.run(
        [sys.executable, "-m", "tests.bench_envelope", "--phase", name, "--work", str(work)],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        raise SystemExit(f"{name} failed:\n{done.stderr}")
    return Phase(**json.loads(done.stdout.splitlines()[-1]))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.bench_envelope", description=__doc__)
    parser.add_argument("--size-mb", type=int, default=200, help="attachment size (200)")
    parser.add_argument(
        "--limit-mb", type=float, default=100, help="allowed RSS growth per phase (100)"
    )
    parser.add_argument("--dir", type=Path, default=None, help="where to make the temp folder")
    parser.add_argument("--phase", choices=sorted(PHASES), help=argparse.SUPPRESS)
    parser.add_argument("--work", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.phase:  # the child: one phase, figures as one JSON line
        work = args.work
        phase = measure(args.phase, lambda: PHASES[args.phase](work))
        print(json.dumps(asdict(phase)))
        return 0

    size = args.size_mb * MB
    with tempfile.TemporaryDirectory(prefix="edoc-bench-", dir=args.dir) as folder:
        work = Path(folder)
        print(f"writing {args.size_mb} MB of random bytes to {work / ATTACHMENT} ...", flush=True)
        want = _random_file(work / ATTACHMENT, size)
        packing = _run_phase("pack", work)
        wire_size = (work / PACKAGE).stat().st_size
        reading = _run_phase("read", work)
        received = work / RECEIVED
        intact = received.stat().st_size == size and _sha256(received) == want

    print(f"attachment {args.size_mb} MB, package on the wire {wire_size / MB:.1f} MB")
    ok = intact
    for phase in (packing, reading):
        passed = phase.rss_growth_mb < args.limit_mb
        ok = ok and passed
        print(
            f"{phase.name:<5} {size / MB / phase.seconds:8.1f} MB/s  {phase.seconds:6.2f} s  "
            f"RSS growth {phase.rss_growth_mb:6.1f} MB ({phase.method})  "
            f"{'PASS' if passed else 'FAIL'} (< {args.limit_mb:g} MB)"
        )
    print(f"attachment received intact (size and sha256): {'yes' if intact else 'NO'}")
    print("PASS" if ok else "FAIL")
    return 0 if ok else 1


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        while chunk := stream.read(MB):
            digest.update(chunk)
    return digest.hexdigest()


if __name__ == "__main__":
    sys.exit(main())
