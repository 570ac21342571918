"""tasks_app.tasks, run eagerly in this process (no broker)."""

import socket
import time
from pathlib import Path

import pytest
from celery import group

from tasks_app import app
from tasks_app.tasks import add, beat_tick, flaky, mul, sleepy, stamp, whoami, xsum


@pytest.fixture
def eager(monkeypatch):
    """Make apply_async() run in-process, for canvas primitives that have no .apply()."""
    monkeypatch.setitem(app.conf, "task_always_eager", True)
    monkeypatch.setitem(app.conf, "task_eager_propagates", True)


def test_arithmetic():
    assert add.apply((2, 3)).get() == 5
    assert mul.apply((4, 8)).get() == 32
    assert xsum.apply(([1, 2, 3, 4],)).get() == 10


def test_sleepy_returns_its_argument():
    assert sleepy.apply((0.01,)).get() == 0.01


def test_stamp_is_the_execution_time():
    before = time.time()
    assert before <= stamp.apply().get() <= time.time()


def test_whoami():
    assert whoami.apply().get() == socket.gethostname()


@pytest.mark.parametrize("fail_times", [0, 1, 3])
def test_flaky_retries_until_it_succeeds(fail_times):
    result = flaky.apply((fail_times,))
    assert result.successful()
    assert result.get() == fail_times


def test_beat_tick_writes_the_time(monkeypatch, tmp_path: Path):
    state_dir = tmp_path / "missing" / "state"
    monkeypatch.setitem(app.conf, "tasks_app_state_dir", str(state_dir))
    before = time.time()
    written = beat_tick.apply().get()
    tick_file = state_dir / "beat-tick"
    assert float(tick_file.read_text()) == written
    assert before - 1 <= written <= time.time() + 1  # written is rounded to ms
    assert tick_file.stat().st_mode & 0o777 == 0o644
    assert [p.name for p in state_dir.iterdir()] == ["beat-tick"]  # no temp file left behind


def test_chain():
    assert (add.s(2, 2) | mul.s(8)).apply().get() == 32


def test_group():
    assert group(add.s(i, i) for i in range(10)).apply().get() == [2 * i for i in range(10)]


def test_chunks(eager):
    result = add.chunks(zip(range(6), range(6), strict=True), 3).apply_async().get()
    assert result == [[0, 2, 4], [6, 8, 10]]
