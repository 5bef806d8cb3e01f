"""CPU time and resident memory of the network's processes, read from /proc (Linux)."""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

from edoc import tasks

TICKS = os.sysconf("SC_CLK_TCK")
PAGE = os.sysconf("SC_PAGE_SIZE")


def cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat", encoding="ascii") as stat:
        fields = stat.read().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / TICKS  # utime + stime


def machine_cpu_seconds() -> float:
    """CPU seconds the whole machine has been busy since it booted, all CPUs together. A
    stretch's difference counts every process of a run, those it started and forked
    included, and whatever else ran on the machine meanwhile."""
    with open("/proc/stat", encoding="ascii") as stat:
        return busy_seconds(stat.readline())


def busy_seconds(line: str) -> float:
    """The busy seconds in /proc/stat's ``cpu`` line: user (guests' time is in it),
    nice, system, irq and softirq. Not idle or waiting for I/O, and not steal: CPU the
    host of a VM took for others is no work of this machine's."""
    user, nice, system, _idle, _iowait, irq, softirq = (int(n) for n in line.split()[1:8])
    return (user + nice + system + irq + softirq) / TICKS


def rss_bytes(pid: int) -> int:
    with open(f"/proc/{pid}/statm", encoding="ascii") as statm:
        return int(statm.read().split()[1]) * PAGE


def reset_peak(pid: int) -> bool:
    """Start the kernel's peak RSS (VmHWM) of ``pid`` afresh; whether it could be."""
    try:
        with open(f"/proc/{pid}/clear_refs", "w", encoding="ascii") as clear:
            clear.write("5")
    except OSError:
        return False
    return True


def peak_bytes(pid: int) -> int:
    """The kernel's peak RSS of ``pid`` (VmHWM): a spike between two samples counts too."""
    with open(f"/proc/{pid}/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    return 0


@dataclass
class Usage:
    """What each process spent during a measured stretch: CPU seconds, RSS before and peak."""

    cpu: dict[str, float] = field(default_factory=dict)
    rest: dict[str, int] = field(default_factory=dict)
    peak: dict[str, int] = field(default_factory=dict)


@contextlib.asynccontextmanager
async def measure(pids: dict[str, int], interval: float = 0.05) -> AsyncIterator[Usage]:
    """Sample the processes' RSS while the block runs; CPU is the difference across it."""
    usage = Usage(rest={n: rss_bytes(p) for n, p in pids.items()})
    usage.peak = dict(usage.rest)
    # a short spike can fall between two samples; the kernel's own peak cannot miss it
    kernel_peak = {n: p for n, p in pids.items() if reset_peak(p)}
    before = {n: cpu_seconds(p) for n, p in pids.items()}

    async def sample() -> None:
        while True:
            for name, pid in pids.items():
                usage.peak[name] = max(usage.peak[name], rss_bytes(pid))
            await asyncio.sleep(interval)

    sampler = asyncio.create_task(sample())
    try:
        yield usage
    finally:
        await tasks.stop(sampler)
        usage.cpu = {n: cpu_seconds(p) - before[n] for n, p in pids.items()}
        for name, pid in kernel_peak.items():
            usage.peak[name] = max(usage.peak[name], peak_bytes(pid))
