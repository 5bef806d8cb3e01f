"""The measured runs on a live two-province network: throughput, latency under fixed
loads, and one large document."""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path
from typing import Any

from edoc.bench import meter
from edoc.bench.exchange import Exchange, Timeline, bounded
from edoc.sim.report import percentile

MB = 1024 * 1024


def _latencies(name: str, values: list[float]) -> dict[str, float | None]:
    figures = {p: percentile(values, p / 100) for p in (50, 95, 99)}
    return {f"{name}_ms_p{p}": None if v is None else round(v, 1) for p, v in figures.items()}


async def throughput(
    exchange: Exchange, pids: dict[str, int], count: int, concurrency: int, size: int
) -> dict[str, Any]:
    """``count`` documents posted by ``concurrency`` clients at once, until all are in the
    recipient's inbox: documents per second and each process's CPU per document."""
    timeline = Timeline()
    async with meter.measure(pids) as usage:
        started = time.time()
        sent = await bounded(concurrency, [exchange.post_small(size) for _ in range(count)])
        timeline.sent = sent
        await exchange.wait_arrivals(timeline, timeout=120 + count / 5)
        elapsed = max(timeline.arrived.values()) - started
        # the CPU is per document *and its 01*: the 01s still on their way count too
        await exchange.wait_answered(timeout=60 + count / 5)
    return {
        "documents": count,
        "concurrency": concurrency,
        "attachment_bytes": size,
        "seconds": round(elapsed, 2),
        "documents_per_s": round(count / elapsed, 1),
        "cpu_ms_per_document": {n: round(c * 1000 / count, 2) for n, c in usage.cpu.items()},
        "rss_mb_at_rest": {n: round(r / MB, 1) for n, r in usage.rest.items()},
        "rss_mb_under_load": {n: round(r / MB, 1) for n, r in usage.peak.items()},
    }


async def latency(exchange: Exchange, rate: float, seconds: float, size: int) -> dict[str, Any]:
    """An open-loop load of ``rate`` documents per second for ``seconds``: each document is
    posted at its own time whatever happened to the ones before."""
    timeline = Timeline()
    count = max(1, round(rate * seconds))
    started = time.monotonic()

    async def one(n: int) -> None:
        await asyncio.sleep(max(0.0, started + n / rate - time.monotonic()))
        timeline.sent.append(await exchange.post_small(size))

    await asyncio.gather(*(one(n) for n in range(count)))
    offered = time.monotonic() - started
    await exchange.wait_arrivals(timeline, timeout=120 + count / 5)
    await exchange.wait_answers(timeline, timeout=60)
    return {
        "offered_per_s": rate,
        "documents": count,
        "posted_per_s": round(count / offered, 1),
        **_latencies("arrival", timeline.arrival_ms()),
        **_latencies("status_01", timeline.answer_ms()),
        "status_01_missing": count - len(timeline.answered),
    }


def _large_file(path: Path, size: int) -> None:
    block = os.urandom(MB)  # incompressible, like a scanned PDF
    with path.open("wb") as out:
        for _ in range(size // MB):
            out.write(block)


async def large_document(
    exchange: Exchange, pids: dict[str, int], size_mb: int, folder: Path
) -> dict[str, Any]:
    """One document with a ``size_mb`` attachment end to end; each process's RSS growth."""
    path = folder / "large.pdf"
    await asyncio.to_thread(_large_file, path, size_mb * MB)
    timeline = Timeline()
    async with meter.measure(pids) as usage:
        with path.open("rb") as attachment:
            timeline.sent = [await exchange.post(attachment, "ban-scan.pdf")]
        await exchange.wait_arrivals(timeline, timeout=600)
    path.unlink()
    return {
        "attachment_mb": size_mb,
        "seconds": round(timeline.arrival_ms()[0] / 1000, 2),
        "rss_growth_mb": {n: round((usage.peak[n] - usage.rest[n]) / MB, 1) for n in usage.rest},
    }
