"""lab/process_lists.py: the sampler sees a command line on this machine, and the verdict names
each way the watch can fail or catch a leak."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "lab"))
import process_lists  # noqa: E402

SECRET = "planted-secret-4711"  # noqa: S105 - planted on purpose


class Fake:
    def __init__(self, host: str, sample: dict | None):
        self.host, self.sample = host, sample

    def stop(self) -> dict | None:
        return self.sample


def sample(*lines: str, sweeps: int = 500) -> dict:
    return {"sweeps": sweeps, "lines": list(lines)}


def test_the_sampler_catches_a_command_line_of_this_machine():
    """SAMPLER as the hosts run it, here on the controller: a process with a secret among its
    arguments is in what it prints when its standard input closes (it sweeps once before it
    first waits, and once more after)."""
    child = subprocess.Popen([sys.executable, "-c", "input()", SECRET], stdin=subprocess.PIPE)  # noqa: S603
    try:
        sampler = subprocess.run(  # noqa: S603
            [sys.executable, "-c", process_lists.SAMPLER],
            input="",
            capture_output=True,
            text=True,
            timeout=30,
            check=True,
        )
    finally:
        child.communicate(b"\n", timeout=30)
    seen = json.loads(sampler.stdout)
    assert seen["sweeps"] >= 1
    assert any(SECRET in line for line in seen["lines"]), seen["lines"][:20]


def test_a_clean_watch_has_no_problem():
    watch = [Fake("rabbit1", sample("rabbitmqctl -q list_users")), Fake("lb1", sample("haproxy"))]
    assert process_lists.problems(watch, {SECRET}) == []


def test_a_secret_on_any_host_is_a_leak():
    watch = [
        Fake("rabbit1", sample("rabbitmqctl -q list_users")),
        Fake("worker1", sample(f"python -m tasks_app --password {SECRET}")),
    ]
    assert process_lists.problems(watch, {SECRET}) == [
        "a password showed in the process list of worker1"
    ]


def test_a_failed_or_idle_sampler_or_a_blind_watch_is_a_problem():
    failed = process_lists.problems([Fake("rabbit1", None)], {SECRET})
    assert failed[0] == "the process sampler failed on rabbit1"
    few = process_lists.problems([Fake("rabbit1", sample("rabbitmqctl", sweeps=3))], {SECRET})
    assert len(few) == 1 and few[0].startswith("the process sampler swept fewer than 100 times")
    blind = process_lists.problems([Fake("rabbit1", sample("sleep 5"))], {SECRET})
    assert blind == ["no process list showed rabbitmqctl: the samplers saw nothing to judge"]


def test_an_empty_secret_matches_nothing():
    watch = [Fake("rabbit1", sample("rabbitmqctl -q list_users"))]
    assert process_lists.problems(watch, {"", SECRET}) == []
