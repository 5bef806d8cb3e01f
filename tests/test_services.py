"""Start-up waits that follow progress, not a fixed limit per service."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from edoc import errors, services
from edoc.cli.failures import EXIT_SYSTEM, exit_code
from tests.support.hub import free_port

# A stand-in service: works (CPU) or idles (sleep) for a while, then answers /healthz.
SERVICE = """
import http.server, sys, time
port, busy, idle = int(sys.argv[1]), float(sys.argv[2]), float(sys.argv[3])
print("starting", flush=True)
end = time.monotonic() + busy
while time.monotonic() < end:
    pass
time.sleep(idle)
class Health(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200)
        self.end_headers()
        self.wfile.write(b'{"status": "ok"}')
    def log_message(self, *args):
        pass
http.server.HTTPServer(("127.0.0.1", port), Health).serve_forever()
"""
# stalls of a second and a half: more than a busy machine leaves a runnable process idle
QUICK = services.Patience(stall=1.5, bound=60.0)


@pytest.fixture
def started() -> Iterator[list[services.Service]]:
    running: list[services.Service] = []
    yield running
    for service in running:
        service.process.kill()
        service.process.wait()


def _start(
    running: list[services.Service], tmp_path: Path, busy: float, idle: float
) -> services.Service:
    port = free_port()
    log = tmp_path / f"service-{port}.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-c", SERVICE, str(port), str(busy), str(idle)],
            stdout=out,
            stderr=out,
        )
    service = services.Service(f"service {port}", f"http://127.0.0.1:{port}", process, log)
    running.append(service)
    return service


def test_a_slow_start_that_works_is_waited_for(
    started: list[services.Service], tmp_path: Path
) -> None:
    # over twice the stall limit, all of it busy: progress, so no limit is reached
    service = _start(started, tmp_path, busy=3.5, idle=0)
    began = time.monotonic()
    services.wait_healthy([service], None, patience=QUICK)
    assert time.monotonic() - began > 3


def test_services_answering_one_after_another_are_progress(
    started: list[services.Service], tmp_path: Path
) -> None:
    # each idles less than the stall limit after the one before answered, all together more
    group = [_start(started, tmp_path, busy=0, idle=0.5 * n) for n in range(1, 7)]
    services.wait_healthy(group, None, patience=QUICK)


def test_a_stuck_service_fails_soon_naming_it_and_showing_its_log(
    started: list[services.Service], tmp_path: Path
) -> None:
    stuck = _start(started, tmp_path, busy=0, idle=600)
    began = time.monotonic()
    with pytest.raises(errors.EdocError) as failed:
        services.wait_healthy([stuck], None, patience=QUICK)
    assert time.monotonic() - began < 10
    message = failed.value.message
    assert stuck.name in message and "no progress in 2 s" in message
    assert "starting" in message  # its log's end


def test_a_service_that_exits_is_reported_with_its_log(
    started: list[services.Service], tmp_path: Path
) -> None:
    service = _start(started, tmp_path, busy=0, idle=0)
    service.process.kill()  # before it answers
    service.process.wait()
    with pytest.raises(errors.EdocError, match=f"{service.name} exited with -9"):
        services.wait_healthy([service], None, patience=QUICK)


# What `edoc serve hub` prints and exits with when its port is taken (edoc.cli.failures),
# after a line of an earlier run's refusal of another kind in the same log
REFUSED = """
import sys
print("error EDOC-SYS-002: an earlier run: permission denied")
print('{"event": "hub started", "level": "info"}')
print("error EDOC-SYS-003: error while attempting to bind on address ('127.0.0.1', 8750):"
      " address already in use; stop what listens there", file=sys.stderr)
sys.exit(4)
"""


def test_a_service_the_system_refused_is_reported_as_that_refusal(tmp_path: Path) -> None:
    log = tmp_path / "hub.log"
    with log.open("wb") as out:
        process = subprocess.Popen([sys.executable, "-c", REFUSED], stdout=out, stderr=out)
    process.wait()
    service = services.Service("hub", "http://127.0.0.1:1", process, log)
    with pytest.raises(errors.AddressInUse) as failed:  # not EDOC-000, a fault of edoc
        services.wait_healthy([service], None, patience=QUICK)
    assert exit_code(failed.value) == EXIT_SYSTEM
    message = failed.value.message
    assert message.startswith("hub exited: error while attempting to bind")
    assert "8750" in message and str(log) in message


def test_a_stop_signal_during_the_wait_is_a_stop_not_an_error(
    started: list[services.Service], tmp_path: Path
) -> None:
    service = _start(started, tmp_path, busy=0, idle=600)
    flag = services.StopFlag(requested=True)
    with pytest.raises(services.StopRequested):
        services.wait_healthy([service], None, flag=flag, patience=QUICK)


# what a service does first (edoc.cli.serve), then whether the variable is left to its own
TIED = (
    "import os\n"
    "from edoc import services\n"
    "services.tie_to_launcher()\n"
    "print(services.LAUNCHER_VARIABLE in os.environ)\n"
)


def _tied(launcher: int) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, services.LAUNCHER_VARIABLE: str(launcher)}
    return subprocess.run(
        [sys.executable, "-c", TIED], env=env, capture_output=True, text=True, timeout=60
    )


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="prctl: Linux")
def test_a_service_started_after_its_launcher_ended_ends_at_once() -> None:
    """A service given the pid of a launcher that is not its parent (nor its fork
    server's) was taken in by another: its launcher ended before the kernel was asked to
    signal that, and none would come."""
    assert _tied(os.getpid()).stdout == "False\n"  # the launcher is its parent: it runs
    with subprocess.Popen(["sleep", "60"]) as other:  # alive, but no parent of it
        try:
            ended = _tied(other.pid)
        finally:
            other.kill()
    assert ended.returncode == 1 and ended.stdout == ""
    assert ended.stderr == f"the launcher that started this service (pid {other.pid}) has ended\n"
