"""Celery round trips from the controller, as a client would: through the load balancer's
published AMQP port, with the operator-facing CLI (`python -m tasks_app`)."""

from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest
import requests
from conftest import PROJECT, controller_api, controller_env, lab_groups

WORKERS = sorted(h for h, groups in lab_groups().items() if "celery_workers" in groups)
LB = sorted(h for h, groups in lab_groups().items() if "haproxy" in groups)[0]


def cli(lab, *args: str, container: str = LB, timeout: int = 180) -> tuple[int, str]:
    env = dict(os.environ, **controller_env(lab, container))
    env.pop("TASKS_APP_CONFIG_FILE", None)
    result = subprocess.run(
        [sys.executable, "-m", "tasks_app", *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=PROJECT,
        timeout=timeout,
    )
    return result.returncode, result.stdout + result.stderr


def fields(line: str) -> dict[str, str]:
    return dict(pair.split("=", 1) for pair in line.split() if "=" in pair)


def test_add_through_the_load_balancer(lab):
    rc, out = cli(lab, "submit", "add", "4", "4")
    assert rc == 0, out
    assert fields(out.strip().splitlines()[-1])["result"] == "8"


def test_both_workers_answer_ping(lab):
    rc, out = cli(lab, "ping", "--expect", str(len(WORKERS)))
    assert rc == 0, out
    answered = set(re.findall(r"worker=\S+@(\S+) reply=pong", out))
    assert answered == set(WORKERS)


def test_200_tasks_with_every_result_checked(lab):
    rc, out = cli(lab, "roundtrip", "-n", "200", "--timeout", "120")
    assert rc == 0, out
    report = fields(next(line for line in out.splitlines() if line.startswith("target=")))
    assert report["ok"] == "200" and report["failed"] == "0", out


def test_chain_group_and_chunks(lab):
    rc, out = cli(lab, "canvas")
    assert rc == 0, out
    checks = {
        fields(line)["check"]: fields(line)["ok"] for line in out.splitlines() if "check=" in line
    }
    assert checks == {"chain": "true", "group": "true", "chunks": "true"}, out


@pytest.mark.parametrize("countdown", [5])
def test_countdown_task_runs_after_its_delay_and_not_before(lab, countdown):
    rc, out = cli(lab, "submit", "stamp", "--countdown", str(countdown))
    assert rc == 0, out
    result = fields(out.strip().splitlines()[-1])
    ran_at, sent_at = float(result["result"]), float(result["sent_at"])
    # Containers share the controller's clock; 0.2 s covers the stamps' own resolution.
    assert ran_at - sent_at >= countdown - 0.2, out
    assert ran_at - sent_at < countdown + 30, out


def test_countdown_uses_rabbitmq_native_delayed_delivery(lab):
    # Celery's native delayed delivery declares celery_delayed_0..27 on the vhost; without
    # them, workers would hold ETA tasks in memory instead (not possible with quorum queues).
    api, verify = controller_api(lab, LB)
    url = f"{api}/exchanges/{lab['rabbitmq_app_vhost']}"
    operator = (lab["rabbitmq_operator_user"], lab["rabbitmq_operator_password"])
    exchanges = requests.get(url, auth=operator, timeout=10, verify=verify).json()
    names = {exchange["name"] for exchange in exchanges}
    assert {"celery_delayed_0", "celery_delayed_27", "celery_delayed_delivery"} <= names, names


def test_management_ui_through_the_load_balancer(lab):
    api, verify = controller_api(lab, LB)
    url = f"{api}/overview"
    operator = (lab["rabbitmq_operator_user"], lab["rabbitmq_operator_password"])
    ok = requests.get(url, auth=operator, timeout=10, verify=verify)
    assert ok.status_code == 200
    assert ok.json()["cluster_name"]
    assert requests.get(url, auth=("guest", "guest"), timeout=10, verify=verify).status_code == 401
