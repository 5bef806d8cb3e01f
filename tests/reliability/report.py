"""Figures the reliability suite records, and the summary `make test-reliability` prints.

Tests call `record(...)`; when `EDOC_RELIABILITY_REPORT` names a file, each call appends one JSON
line to it (pytest workers and subprocesses can all append). Without the variable nothing is
written, so the fast suite in `make test` pays nothing. `python -m tests.reliability.report FILE`
adds the lines up and prints the table.
"""

from __future__ import annotations

import json
import os
import sys
from collections import Counter
from pathlib import Path
from typing import Any

ENV = "EDOC_RELIABILITY_REPORT"

# The counters the summary knows; anything else recorded is shown under its own name.
FIGURES = ("documents_sent", "crashes_injected", "lost", "duplicated", "fuzz_inputs")


def record(**figures: int) -> None:
    """Add counts, e.g. record(documents_sent=3000, crashes_injected=12, lost=0, duplicated=0)."""
    _append({"figures": figures})


def rejected(case: str, code: str) -> None:
    """One hostile input refused with its stable error code (or HTTP status when no code)."""
    _append({"rejected": {"case": case, "code": code}})


def _append(line: dict[str, Any]) -> None:
    target = os.environ.get(ENV)
    if target:
        with open(target, "a", encoding="utf-8") as out:
            out.write(json.dumps(line) + "\n")


def summarise(path: Path) -> tuple[Counter[str], Counter[str]]:
    figures: Counter[str] = Counter()
    codes: Counter[str] = Counter()
    if path.exists():
        for text in path.read_text(encoding="utf-8").splitlines():
            line = json.loads(text)
            figures.update(line.get("figures", {}))
            if "rejected" in line:
                codes[line["rejected"]["code"]] += 1
    return figures, codes


def main(argv: list[str]) -> int:
    from rich.console import Console
    from rich.table import Table

    figures, codes = summarise(Path(argv[0]))
    totals = Table(title="Reliability: faults and documents")
    totals.add_column("figure")
    totals.add_column("count", justify="right")
    for name in (*FIGURES, *sorted(set(figures) - set(FIGURES))):
        totals.add_row(name.replace("_", " "), str(figures.get(name, 0)))
    refused = Table(title=f"Hostile inputs rejected: {sum(codes.values())}")
    refused.add_column("code")
    refused.add_column("cases", justify="right")
    for code, count in sorted(codes.items()):
        refused.add_row(code, str(count))
    console = Console()
    console.print(totals)
    console.print(refused)
    return 1 if figures.get("lost") or figures.get("duplicated") else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
