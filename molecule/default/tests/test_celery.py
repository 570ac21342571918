"""Celery workers, beat and Flower: units, users, file modes, pings, beat ticks, round trips.

Every expected value comes from the inventory as Ansible renders it, or from the role's
defaults where the inventory leaves a variable to its role (conftest.lab_settings): the checks
follow the configuration instead of repeating it.
"""

from __future__ import annotations

import functools
import json
import os
import re
import shlex
import time

import pytest
import testinfra
from conftest import expand_node_name, lab_settings

testinfra_hosts = ["ansible://celery_workers"]

ENV_FILE = "/etc/tasks_app/tasks_app.env"
FLOWER_ENV_FILE = "/etc/flower/flower.env"


@functools.cache
def lab_host(name: str, inventory: str | None):
    return testinfra.get_host(f"ansible://{name}", ansible_inventory=inventory)


@pytest.fixture(scope="module")
def inventory(request) -> str | None:
    return request.config.option.ansible_inventory or os.environ.get("MOLECULE_INVENTORY_FILE")


@pytest.fixture(scope="module")
def groups(inventory) -> dict[str, list[str]]:
    workers = testinfra.get_hosts(["ansible://celery_workers"], ansible_inventory=inventory)
    return workers[0].ansible.get_variables()["groups"]


def as_user(user: str, command: str, cwd: str = "/") -> str:
    """A shell command line that runs ``command`` as ``user`` (no login shell needed)."""
    return f"cd {shlex.quote(cwd)} && runuser -u {shlex.quote(user)} -- {command}"


@pytest.fixture(scope="module")
def worker_nodes(groups, inventory) -> set[str]:
    """Node names every worker of the group should answer as."""
    nodes = set()
    for name in groups["celery_workers"]:
        worker = lab_host(name, inventory)
        template = lab_settings()["celery_worker_node_name"]
        nodes.add(expand_node_name(template, worker.check_output("hostname")))
    return nodes


def service_pids(host, unit: str) -> list[str]:
    main = host.check_output(f"systemctl show --property MainPID --value {unit}")
    assert main not in ("", "0"), f"{unit} has no main process"
    children = host.run(f"pgrep --parent {main}").stdout.split()
    return [main, *children]


# --- Workers ----------------------------------------------------------------------------------


def test_worker_unit_is_active_and_enabled(host):
    service = host.service("celery-worker")
    assert service.is_running
    assert service.is_enabled


def test_worker_is_supervised_by_the_systemd_watchdog(host):
    """Type=notify: systemd saw READY=1 (the unit is active only after the worker consumes) and
    the watchdog is armed; the worker's heartbeat has fed it (else it would have restarted)."""
    watchdog = int(lab_settings()["celery_worker_watchdog_seconds"])
    props = dict(
        line.split("=", 1)
        for line in host.check_output(
            "systemctl show celery-worker -p Type -p WatchdogUSec -p NotifyAccess "
            "-p ActiveEnterTimestampMonotonic -p WatchdogTimestampMonotonic -p NRestarts"
        ).splitlines()
    )
    assert props["Type"] == "notify"
    assert props["NotifyAccess"] == "main"
    assert props["WatchdogUSec"] == f"{watchdog}s"
    # The last watchdog ping is recent: within the heartbeat interval (2 s) plus slack.
    uptime_us = float(host.check_output("cut -d' ' -f1 /proc/uptime")) * 1e6
    assert uptime_us - int(props["WatchdogTimestampMonotonic"]) < 10e6, props


# systemd-analyze security rates a unit's exposure from 0 (locked down) to 10; the units were
# 8.8 ("EXPOSED") with NoNewPrivileges alone and are 1.5 ("OK") sandboxed (sandboxing.j2).
EXPOSURE_LIMIT = 2.0


def exposure(host, unit: str) -> float:
    last = host.check_output(f"systemd-analyze security --no-pager {unit}").splitlines()[-1]
    return float(re.search(r"exposure level for \S+: ([0-9.]+)", last).group(1))


@pytest.mark.parametrize("unit", ["celery-worker", "celery-beat", "flower"])
def test_units_are_sandboxed(host, groups, unit):
    if unit == "celery-beat" and host.backend.host not in groups["celery_beat"]:
        pytest.skip("beat runs on the celery_beat host only")
    if unit == "flower" and host.backend.host not in groups["flower"]:
        pytest.skip("Flower runs on the flower host only")
    props = dict(
        line.split("=", 1)
        for line in host.check_output(
            f"systemctl show {unit} -p ProtectSystem -p CapabilityBoundingSet -p PrivateTmp "
            "-p ProtectHome -p PrivateDevices -p SystemCallFilter"
        ).splitlines()
    )
    assert props["ProtectSystem"] == "strict"
    assert props["CapabilityBoundingSet"] == ""
    assert (props["PrivateTmp"], props["ProtectHome"], props["PrivateDevices"]) == (
        "yes",
        "yes",
        "yes",
    )
    assert props["SystemCallFilter"], props
    assert exposure(host, unit) <= EXPOSURE_LIMIT
    assert host.service(unit).is_running


def test_the_worker_runs_with_task_time_limits_and_a_memory_bound(host):
    """What the running worker uses (celery inspect conf), not what a file says."""
    settings = lab_settings()
    user, venv = settings["celery_worker_user"], settings["celery_worker_venv_dir"]
    node = expand_node_name(settings["celery_worker_node_name"], host.check_output("hostname"))
    out = host.check_output(
        as_user(
            user,
            f"{venv}/bin/celery -A tasks_app inspect conf --json --timeout 5 --destination {node}",
            settings["celery_worker_state_dir"],
        )
    )
    conf = json.loads(out)[node]
    assert conf["task_soft_time_limit"] == settings["celery_worker_task_soft_time_limit"]
    assert conf["task_time_limit"] == settings["celery_worker_task_time_limit"]
    assert conf["worker_max_memory_per_child"] == settings["celery_worker_max_memory_per_child"]


def test_beat_is_supervised_by_the_systemd_watchdog(host, groups):
    if host.backend.host not in groups["celery_beat"]:
        pytest.skip("beat runs on the celery_beat host only")
    watchdog = int(lab_settings()["celery_worker_watchdog_seconds"])
    out = host.check_output("systemctl show celery-beat -p Type -p WatchdogUSec")
    assert "Type=notify" in out
    assert f"WatchdogUSec={watchdog}s" in out


def test_worker_runs_as_the_service_user(host):
    user = lab_settings()["celery_worker_user"]
    pids = service_pids(host, "celery-worker")
    # The main process and its prefork pool children.
    concurrency = int(lab_settings()["celery_worker_concurrency"])
    assert len(pids) >= 1 + concurrency
    for pid in pids:
        assert host.check_output(f"ps -o user= -p {pid}") == user


def test_env_file_is_readable_by_the_service_group_only(host):
    group = lab_settings()["celery_worker_group"]
    env = host.file(ENV_FILE)
    assert env.is_file
    assert env.user == "root"
    assert env.group == group
    assert env.mode == 0o640
    assert re.search(r"^TASKS_APP_BROKER_URL=amqps?://", env.content_string, re.MULTILINE)


def test_every_worker_answers_a_ping_from_this_host(host, worker_nodes):
    user = lab_settings()["celery_worker_user"]
    venv = lab_settings()["celery_worker_venv_dir"]
    state_dir = lab_settings()["celery_worker_state_dir"]
    # Addressed to the workers expected: the broadcast stops at their last reply (kombu sets
    # the reply limit to the number of destinations) instead of waiting out the timeout.
    destinations = ",".join(sorted(worker_nodes))
    result = host.run(
        as_user(
            user,
            f"{venv}/bin/celery -A tasks_app inspect ping -d {destinations} --timeout 10 --json",
            state_dir,
        )
    )
    assert result.rc == 0, result.stdout + result.stderr
    replies = json.loads(result.stdout.strip().splitlines()[-1])
    assert set(replies) == worker_nodes
    assert all(reply == {"ok": "pong"} for reply in replies.values())


def test_beat_runs_only_on_the_beat_host(host, groups):
    beat_group = lab_settings()["celery_worker_beat_group"]
    assert len(groups[beat_group]) == 1
    service = host.service("celery-beat")
    if host.backend.host in groups[beat_group]:
        assert service.is_running
        assert service.is_enabled
        user = lab_settings()["celery_worker_user"]
        assert host.check_output(f"ps -o user= -p {service_pids(host, 'celery-beat')[0]}") == user
    else:
        assert host.run("systemctl is-active celery-beat").stdout.strip() != "active"
        assert not host.file("/etc/systemd/system/celery-beat.service").exists


def test_submit_add_round_trip_from_this_host(host):
    user = lab_settings()["celery_worker_user"]
    venv = lab_settings()["celery_worker_venv_dir"]
    state_dir = lab_settings()["celery_worker_state_dir"]
    result = host.run(as_user(user, f"{venv}/bin/python -m tasks_app submit add 4 4", state_dir))
    assert result.rc == 0, result.stdout + result.stderr
    assert "status=ok" in result.stdout
    assert "result=8" in result.stdout.split()


# --- Beat and throughput: once for the group, not once per host --------------------------------


def test_beat_tick_is_recent_on_a_worker(groups, inventory):
    """beat_tick writes <state dir>/beat-tick on whichever worker ran it: one must be recent."""
    workers = [lab_host(name, inventory) for name in groups["celery_workers"]]
    interval = float(lab_settings()["celery_worker_beat_interval"])
    allowed = 3 * interval
    deadline = time.monotonic() + max(60.0, allowed)
    ages: dict[str, float] = {}
    while True:
        for worker in workers:
            state_dir = lab_settings()["celery_worker_state_dir"]
            # The tick and the host's clock, read together on the host.
            out = worker.run(f"cat {state_dir}/beat-tick && date +%s.%N").stdout.split()
            if len(out) == 2:
                ages[worker.backend.host] = float(out[1]) - float(out[0])
        if ages and min(ages.values()) <= allowed:
            return
        if time.monotonic() >= deadline:
            break
        time.sleep(min(interval, 5.0))
    pytest.fail(f"no beat tick within {allowed:.0f} s (3 beat intervals); ages in s: {ages}")


def test_roundtrip_of_200_tasks_fails_none(groups, inventory):
    worker = lab_host(groups["celery_workers"][0], inventory)
    user = lab_settings()["celery_worker_user"]
    venv = lab_settings()["celery_worker_venv_dir"]
    state_dir = lab_settings()["celery_worker_state_dir"]
    result = worker.run(
        as_user(user, f"{venv}/bin/python -m tasks_app roundtrip -n 200 --timeout 120", state_dir)
    )
    report = dict(pair.split("=", 1) for pair in result.stdout.split() if "=" in pair)
    print(result.stdout.strip())
    assert result.rc == 0, result.stdout + result.stderr
    assert report.get("tasks") == "200"
    assert report.get("ok") == "200"
    assert report.get("failed") == "0"


# --- Flower: on the hosts of the flower group ----------------------------------------------------


@pytest.fixture(scope="module")
def flower_hosts(groups, inventory) -> list:
    hosts = [lab_host(name, inventory) for name in groups.get("flower", [])]
    assert hosts, "the inventory has no host in group 'flower'"
    return hosts


def flower_get(flower, path: str, auth: str | None) -> tuple[int, str]:
    """GET Flower's URL on the Flower host itself, with or without basic auth."""
    port = lab_settings()["flower_port"]
    # Over TLS by the host's name, which its certificate carries, against the installed CA.
    tls = bool(lab_settings()["tls_enabled"])
    base = f"https://{flower.backend.host}:{port}" if tls else f"http://127.0.0.1:{port}"
    context = "ssl.create_default_context(cafile='/etc/flower/tls/ca.pem')" if tls else "None"
    script = (
        "import base64, os, ssl, sys, urllib.error, urllib.request\n"
        f"req = urllib.request.Request('{base}{path}')\n"
        "auth = os.environ.get('FLOWER_CHECK_AUTH')\n"
        "if auth:\n"
        "    req.add_header('Authorization', 'Basic ' + base64.b64encode(auth.encode()).decode())\n"
        "try:\n"
        f"    with urllib.request.urlopen(req, timeout=10, context={context}) as resp:\n"
        "        print(resp.status); print(resp.read().decode())\n"
        "except urllib.error.HTTPError as exc:\n"
        "    print(exc.code)\n"
    )
    env = f"FLOWER_CHECK_AUTH={shlex.quote(auth)} " if auth else ""
    result = flower.run(f"{env}python3 -c {shlex.quote(script)}")
    assert result.rc == 0, f"request to Flower failed: {result.stderr}"
    status, _, body = result.stdout.partition("\n")
    return int(status), body


def flower_auth(flower) -> str:
    user = lab_settings()["flower_basic_auth_user"]
    password = lab_settings()["flower_basic_auth_password"]
    assert password, "flower_basic_auth_password is not set in the inventory"
    return f"{user}:{password}"


def test_flower_unit_is_active_enabled_and_runs_as_its_user(flower_hosts):
    for flower in flower_hosts:
        service = flower.service("flower")
        assert service.is_running
        assert service.is_enabled
        user = lab_settings()["flower_user"]
        assert flower.check_output(f"ps -o user= -p {service_pids(flower, 'flower')[0]}") == user


def test_flower_secrets_are_only_in_its_env_file(flower_hosts):
    for flower in flower_hosts:
        group = lab_settings()["flower_group"]
        env = flower.file(FLOWER_ENV_FILE)
        assert (env.user, env.group, env.mode) == ("root", group, 0o640)
        password = lab_settings()["flower_basic_auth_password"]
        pid = service_pids(flower, "flower")[0]
        assert password not in flower.check_output(f"tr '\\0' ' ' < /proc/{pid}/cmdline")


def test_flower_api_lists_every_worker_with_auth(flower_hosts, worker_nodes):
    for flower in flower_hosts:
        auth = flower_auth(flower)
        deadline = time.monotonic() + 60
        while True:
            status, body = flower_get(flower, "/api/workers?refresh=1", auth)
            seen = set(json.loads(body)) if status == 200 else set()
            if worker_nodes <= seen or time.monotonic() >= deadline:
                break
            time.sleep(3)
        assert status == 200
        assert worker_nodes <= seen, f"Flower lists {sorted(seen)}, expected {sorted(worker_nodes)}"


def test_flower_api_refuses_requests_without_auth(flower_hosts):
    for flower in flower_hosts:
        status, _ = flower_get(flower, "/api/workers", None)
        assert status == 401
