"""A changed worker setting reaches every worker host at once and restarts them one at a time.

playbooks/celery.yml configures every worker host in one play, where a change only marks the
worker for a restart (a fact, and a file on the host); a second play, serial: 1, updates the
virtualenv, restarts what is marked and waits for that host's worker to answer a ping before
the next host. A mark left by a run that stopped before its restart is honoured by the next
run. Runs the playbook from the controller and leaves the lab as it found it, with the whole
system answering."""

from __future__ import annotations

import re
import subprocess
from pathlib import PurePosixPath

import pytest
import yaml
from conftest import (
    LAB_INVENTORY,
    PROJECT,
    assert_whole_system_answers,
    behaviour,
    lab_groups,
    lab_settings,
    run_playbook,
)

WORKERS = sorted(h for h, groups in lab_groups().items() if "celery_workers" in groups)
BEAT_HOST = next(h for h, groups in sorted(lab_groups().items()) if "celery_beat" in groups)
WRITE_UNIT = "celery_worker : Write the worker unit"
RESTART = "celery_worker : Restart the worker (its settings, unit or virtualenv changed)"
RESTART_BEAT = "celery_worker : Restart beat (its settings, unit or virtualenv changed)"
PING = "celery_worker : Wait until the worker answers a ping through the broker"
# The worker's restart mark, named where the role names it.
MARK_NAME = PurePosixPath(
    yaml.safe_load((PROJECT / "roles/celery_worker/vars/main.yml").read_text())[
        "_celery_worker_restart_marks"
    ]["worker"]
).name


def task_blocks(output: str) -> list[tuple[str, str]]:
    """(task name, its result lines) in the order the run printed them."""
    blocks = []
    for block in re.split(r"\n(?:TASK|RUNNING HANDLER) \[", output)[1:]:
        name, _, rest = block.partition("]")
        blocks.append((name, rest))
    return blocks


def hosts_with(status: str, body: str) -> list[str]:
    return sorted(re.findall(rf"^{status}: \[([^\]]+)\]", body, re.MULTILINE))


def hosts_of(output: str, task: str, status: str) -> list[str]:
    """The hosts a task of the run reported with ``status`` ("ok", "changed"), in run order."""
    return [
        host
        for name, body in task_blocks(output)
        if name == task
        for host in hosts_with(status, body)
    ]


def assert_rolled_out_one_host_at_a_time(output: str) -> None:
    blocks = task_blocks(output)
    # The unit is written on every host in one task: the deploy play runs them together.
    writes = [hosts_with("changed", body) for name, body in blocks if name == WRITE_UNIT]
    assert WORKERS in writes, writes
    # Then, per host in turn: its restart, then its ping, before the next host's restart.
    order = [
        (name, host)
        for name, body in blocks
        if name in (RESTART, PING)
        for host in hosts_with("changed" if name == RESTART else "ok", body)
    ]
    assert order == [step for host in WORKERS for step in ((RESTART, host), (PING, host))], order


@behaviour
def test_a_changed_setting_restarts_the_workers_one_at_a_time():
    rc, output, changed = run_playbook(
        LAB_INVENTORY, "playbooks/celery.yml", "-e", "celery_worker_loglevel=DEBUG"
    )
    try:
        assert rc == 0, output[-4000:]
        assert_rolled_out_one_host_at_a_time(output)
    finally:
        rc, output, changed = run_playbook(LAB_INVENTORY, "playbooks/celery.yml")
    assert rc == 0, output[-4000:]
    assert_rolled_out_one_host_at_a_time(output)
    # That a run with nothing changed restarts nothing: the next test's unmarked host.
    assert_whole_system_answers()


def unit_property(host: str, prop: str, unit: str = "celery-worker") -> str:
    return subprocess.run(
        ["docker", "exec", host, "systemctl", "show", "-p", prop, "--value", unit],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()


def main_pid(host: str) -> str:
    return unit_property(host, "MainPID")


@behaviour
def test_a_restart_mark_left_by_a_stopped_run_is_honoured_by_the_next_run():
    """As if a run had rewritten a worker's settings, then stopped before restarting it: the
    mark on that host makes the next run restart exactly that worker, wait for its ping, then
    remove the mark. The other host, with nothing changed, is neither restarted nor waited for."""
    marked, other = WORKERS[-1], WORKERS[0]
    mark = f"{lab_settings()['celery_worker_state_dir']}/{MARK_NAME}"
    before = {host: main_pid(host) for host in WORKERS}
    subprocess.run(["docker", "exec", marked, "touch", mark], check=True)
    rc, output, changed = run_playbook(LAB_INVENTORY, "playbooks/celery.yml")
    assert rc == 0, output[-4000:]
    assert changed[other] == 0, changed
    restarted = hosts_of(output, RESTART, "changed")
    assert restarted == [marked], (restarted, output[-3000:])
    # The rolling restart waits for the worker it restarted, not for one it left running.
    pinged = hosts_of(output, PING, "ok")
    assert pinged == [marked], (pinged, output[-3000:])
    after = {host: main_pid(host) for host in WORKERS}
    assert after[marked] != before[marked] and after[other] == before[other], (before, after)
    gone = subprocess.run(["docker", "exec", marked, "test", "-e", mark], check=False)
    assert gone.returncode == 1, "the mark is still there after the restart"
    assert_whole_system_answers()


@behaviour
@pytest.mark.parametrize("unit", ["celery-worker", "celery-beat"])
def test_a_unit_changed_on_disk_without_a_mark_is_reloaded_and_restarted(unit):
    """As if a run had rewritten a unit (the worker's, or beat's), then stopped before its
    handlers left the mark: systemd reports the unit as changed on disk (NeedDaemonReload), and
    the next run restarts exactly that unit on that host as if it were marked (systemd
    reloaded), and waits for the worker's ping only when the worker was the one restarted.
    Nothing else is restarted or waited for."""
    host, restart = (WORKERS[-1], RESTART) if unit == "celery-worker" else (BEAT_HOST, RESTART_BEAT)
    units = [
        (h, u)
        for h in WORKERS
        for u in ["celery-worker"] + (["celery-beat"] if h == BEAT_HOST else [])
    ]
    before = {(h, u): unit_property(h, "MainPID", u) for h, u in units}
    # A new modification time is a change of the unit to systemd (its content is the role's).
    path = f"/etc/systemd/system/{unit}.service"
    subprocess.run(["docker", "exec", host, "touch", "-d", "+1 minute", path], check=True)
    rc, output, changed = run_playbook(LAB_INVENTORY, "playbooks/celery.yml")
    assert rc == 0, output[-4000:]
    assert all(count == 0 for h, count in changed.items() if h != host), changed
    reloaded = hosts_of(output, restart, "changed")
    pinged = hosts_of(output, PING, "ok")
    assert (reloaded, pinged) == ([host], [host] if unit == "celery-worker" else []), output[-3000:]
    after = {(h, u): unit_property(h, "MainPID", u) for h, u in units}
    assert [key for key in units if after[key] != before[key]] == [(host, unit)], (before, after)
    assert unit_property(host, "NeedDaemonReload", unit) == "no"
    assert_whole_system_answers()
