"""Small tasks used to prove that the cluster, the workers and beat work."""

from __future__ import annotations

import os
import socket
import tempfile
import time
from pathlib import Path

from .celery import app
from .config import DEFAULT_STATE_DIR


@app.task
def add(x, y):
    return x + y


@app.task
def mul(x, y):
    return x * y


@app.task
def xsum(numbers):
    return sum(numbers)


@app.task
def sleepy(seconds):
    time.sleep(seconds)
    return seconds


@app.task
def stamp():
    """Return when the task ran, so a caller can prove a countdown task did not run early."""
    return time.time()


@app.task(bind=True)
def flaky(self, fail_times):
    """Fail ``fail_times`` times, retrying each time; then return the number of retries."""
    if self.request.retries < fail_times:
        # countdown=1 sends the retry through RabbitMQ's native delayed delivery as well.
        raise self.retry(
            exc=RuntimeError(f"flaky failure {self.request.retries + 1} of {fail_times}"),
            countdown=1,
            max_retries=fail_times + 1,
        )
    return self.request.retries


@app.task(bind=True)
def beat_tick(self):
    """Write the current unix time to <state dir>/beat-tick: proof that beat is scheduling."""
    state_dir = Path(self.app.conf.get("tasks_app_state_dir") or DEFAULT_STATE_DIR)
    state_dir.mkdir(parents=True, exist_ok=True)
    now = round(time.time(), 3)
    # Write then rename, so a reader never sees a half-written file.
    fd, tmp = tempfile.mkstemp(dir=state_dir, prefix=".beat-tick.")
    os.fchmod(fd, 0o644)  # mkstemp creates 0600; let checks running as another user read it
    with os.fdopen(fd, "w") as handle:
        handle.write(f"{now}\n")
    os.replace(tmp, state_dir / "beat-tick")
    return now


RUNS_LOG = "runs.log"


@app.task(bind=True)
def record(self, token, seconds=0.0):
    """Sleep ``seconds``, then append "task id, token, host" to <state dir>/runs.log.

    The fault runs (lab/chaos.py) count these lines to tell a task that never ran from one that
    ran twice. The line is written last and synced, so a run killed mid-task leaves none.
    """
    if seconds:
        time.sleep(float(seconds))
    host = socket.gethostname()
    state_dir = Path(self.app.conf.get("tasks_app_state_dir") or DEFAULT_STATE_DIR)
    line = f"{self.request.id} {token} {host}\n".encode()
    fd = os.open(state_dir / RUNS_LOG, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, line)  # one write of a short line with O_APPEND: never interleaved
        os.fsync(fd)
    finally:
        os.close(fd)
    return {"token": token, "host": host}


@app.task
def whoami():
    return socket.gethostname()
