"""Coverage-guided fuzzing (atheris / libFuzzer) of the hardened parser and the package reader.

    python -m tests.reliability.fuzz_atheris [--runs N]

Starts from a good package (and a few small XML seeds), mutates under coverage guidance
for N runs, and exits non-zero, with the input that did it, when anything but an
``edoc.errors.EdocError`` comes out. Needs the ``fuzz`` extra: ``pip install -e '.[fuzz]'``.
"""

from __future__ import annotations

import argparse
import io
import sys
import tempfile
from pathlib import Path

import atheris

with atheris.instrument_imports(include=["edoc"]):
    from edoc import envelope, errors, xmlsafe

import contextlib

from tests.reliability import report
from tests.support.envelope import load_sample_metadata, pack

LIMITS = xmlsafe.Limits(max_bytes=64 * 1024, max_depth=12)
PACKAGE_LIMITS = envelope.PackageLimits(envelope=LIMITS, attachments_bytes=64 * 1024)
SEEDS = [
    pack(load_sample_metadata(), {"a.txt": b"first attachment\n", "b.txt": b"second"}).wire,
    b'<?xml version="1.0"?><a xmlns="urn:x"><b c="d">text</b><!-- c --><b/></a>',
    b"<a>" + b"<b>" * 10 + b"</b>" * 10 + b"</a>",
]


class Target:
    def __init__(self) -> None:
        self.runs = 0

    def __call__(self, data: bytes) -> None:
        self.runs += 1
        for read in (
            lambda: xmlsafe.parse(data, LIMITS),
            lambda: envelope.read_package(io.BytesIO(data), limits=PACKAGE_LIMITS),
        ):
            with contextlib.suppress(errors.EdocError):
                read()


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=20_000)
    parser.add_argument("--artifacts", default="data/atheris", help="where crashing inputs go")
    options = parser.parse_args(argv)
    target = Target()
    Path(options.artifacts).mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="edoc-atheris-") as folder:
        corpus = Path(folder)
        for n, seed in enumerate(SEEDS):
            (corpus / f"seed-{n}").write_bytes(seed)
        atheris.Setup(
            [
                sys.argv[0],
                f"-runs={options.runs}",
                "-max_len=65536",
                "-timeout=10",
                f"-artifact_prefix={options.artifacts}/",
                str(corpus),
            ],
            target,
        )
        try:
            atheris.Fuzz()
        except SystemExit as done:  # libFuzzer exits when the runs are done
            report.record(fuzz_inputs=target.runs)
            return int(done.code or 0)
    report.record(fuzz_inputs=target.runs)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
