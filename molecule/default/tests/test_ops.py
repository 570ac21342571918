"""Operator playbooks against the lab: the status report, rabbitmqctl through Ansible, the
definitions backup and restore, and the upgrade playbook's no-op and failure paths.

The status report exits 0 on the healthy lab, non-zero naming the node whose RabbitMQ is
stopped, and 0 again once it is back. A changing rabbitmqctl command without confirm=yes is
refused on the controller and changes nothing; a read-only one runs and prints the answer.
A vhost exported, deleted and imported again comes back with the same queues, exchanges,
bindings, policies and permissions; the backup file is 0600."""

from __future__ import annotations

import json
import re
import stat
import subprocess
import sys
import time
from pathlib import Path

import process_lists  # lab/, which conftest (loaded first by pytest) puts on sys.path
import requests
from conftest import (
    LAB_INVENTORY,
    PROJECT,
    assert_whole_system_answers,
    behaviour,
    controller_api,
    lab_groups,
    lab_settings,
    long,
    run_playbook,
)

NODES = sorted(h for h, groups in lab_groups().items() if "rabbitmq" in groups)
LAST = NODES[-1]
LB = sorted(h for h, groups in lab_groups().items() if "haproxy" in groups)[0]
DRILL_VHOST = "ops-drill"


def docker_exec(container: str, *command: str, check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["docker", "exec", container, *command], check=check, capture_output=True, text=True
    )


def vhosts() -> set[str]:
    out = docker_exec(NODES[0], "rabbitmqctl", "-q", "list_vhosts", "name", "--formatter", "json")
    return {v["name"] for v in json.loads(out.stdout)}


def status(*args: str) -> tuple[int, str]:
    rc, output, _ = run_playbook(LAB_INVENTORY, "playbooks/ops/status.yml", *args)
    return rc, output


def hosts_of(output: str, task: str) -> list[str]:
    """The hosts a task of a run's output ran on (ok or changed; not skipped)."""
    block = output.partition(f"TASK [{task}]")[2].partition("\nTASK [")[0]
    return re.findall(r"^(?:ok|changed): \[([^\]]+)\]", block, re.MULTILINE)


def wait_for_running(node: str, limit: float = 120) -> None:
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        if (
            docker_exec(
                node, "rabbitmqctl", "await_startup", "--timeout", "10", check=False
            ).returncode
            == 0
        ):
            return
    raise AssertionError(f"{node} did not start within {limit:.0f} s")


def status_report_when_healthy(limit: float = 120) -> tuple[int, str]:
    """The status report, repeated until it says healthy or `limit` seconds pass: after a node
    restart HAProxy needs its checks and the quorum members catch up."""
    deadline = time.monotonic() + limit
    rc, output = status()
    while rc != 0 and time.monotonic() < deadline:
        rc, output = status()
    return rc, output


@behaviour
def test_the_status_report_says_healthy_then_names_a_stopped_node(tmp_path):
    """The report reads each node through its own management API, and with the CLI where that
    does not answer. First with an operator password the API refuses: every node read with the
    CLI, still healthy. Then a stopped node (the CLI says why) beside two read through the API;
    then healthy again, all through the API."""
    refused = tmp_path / "refused.json"
    refused.write_text(json.dumps({"rabbitmq_operator_password": "refused-by-the-api"}))
    rc, output = status("-e", f"@{refused}")
    assert rc == 0, output[-4000:]
    assert "Healthy" in output
    assert len(hosts_of(output, "rabbitmq : Read this node's status")) == len(NODES), output
    for heading in (
        "RabbitMQ nodes",
        "Quorum queues",
        "HAProxy servers",
        "Celery workers",
        "Flower",
    ):
        assert heading in output, heading

    docker_exec(LAST, "systemctl", "stop", "rabbitmq-server")
    try:
        rc, output = status()
        assert rc != 0, output[-4000:]
        assert f"{LAST}: not running" in output, output[-4000:]
        assert "UNHEALTHY" in output
        # The CLI only for the stopped node: the two others answered through their API.
        assert hosts_of(output, "rabbitmq : Read this node's status") == [LAST], output[-4000:]
    finally:
        docker_exec(LAST, "systemctl", "start", "rabbitmq-server")
        wait_for_running(LAST)
    # Back: the report must say healthy again within two minutes, every node read through its API.
    rc, output = status_report_when_healthy()
    assert rc == 0, output[-4000:]
    assert hosts_of(output, "rabbitmq : Read this node's status") == [], output


@behaviour
def test_a_changing_rabbitmqctl_without_confirm_is_refused_and_changes_nothing(tmp_path):
    extra = tmp_path / "cli.json"
    extra.write_text(json.dumps({"cli": ["rabbitmqctl", "add_vhost", "refused-by-ops"]}))
    rc, output, changed = run_playbook(
        LAB_INVENTORY, "playbooks/ops/rabbitmqctl.yml", "-e", f"@{extra}"
    )
    assert rc != 0, output[-3000:]
    assert "changes the cluster; refused" in output, output[-3000:]
    assert set(changed) == {"localhost"}, changed  # no host of the lab was contacted
    assert "refused-by-ops" not in vhosts()


def test_a_read_only_rabbitmqctl_runs_and_prints_data(tmp_path):
    extra = tmp_path / "cli.json"
    extra.write_text(json.dumps({"cli": ["rabbitmqctl", "cluster_status"], "json": True}))
    rc, output, changed = run_playbook(
        LAB_INVENTORY, "playbooks/ops/rabbitmqctl.yml", "-e", f"@{extra}"
    )
    assert rc == 0, output[-3000:]
    assert set(changed.values()) == {0}, changed
    for node in NODES:
        assert f"rabbit@{node}" in output
    assert "running_nodes:" in output, output[-3000:]  # the answer shown as data


def vhost_definitions(definitions: dict, vhost: str) -> dict:
    """What a definitions export holds for one vhost, comparable between two exports."""
    kinds = ("queues", "exchanges", "bindings", "policies", "permissions")
    return {
        kind: sorted(
            (item for item in definitions.get(kind, []) if item.get("vhost") == vhost),
            key=lambda item: json.dumps(item, sort_keys=True),
        )
        for kind in kinds
    }


def export_definitions(backup_dir: Path) -> tuple[Path, dict]:
    before = set(backup_dir.glob("definitions-*.json")) if backup_dir.exists() else set()
    rc, output, _ = run_playbook(
        LAB_INVENTORY, "playbooks/ops/definitions_export.yml", "-e", f"backup_dir={backup_dir}"
    )
    assert rc == 0, output[-3000:]
    (new,) = set(backup_dir.glob("definitions-*.json")) - before
    return new, json.loads(new.read_text())


@behaviour
def test_definitions_exported_deleted_and_imported_come_back_the_same(lab, tmp_path):
    api, verify = controller_api(lab, LB)
    # The CA goes with each request: requests lets REQUESTS_CA_BUNDLE or CURL_CA_BUNDLE in the
    # environment override a Session's own `verify` (and CI machines set them).
    session = requests.Session()
    operator = (lab["rabbitmq_operator_user"], lab["rabbitmq_operator_password"])
    vhost = f"{api}/vhosts/{DRILL_VHOST}"
    calls = [
        ("put", vhost, {"default_queue_type": "quorum"}),
        ("put", f"{api}/permissions/{DRILL_VHOST}/{operator[0]}", _full_rights()),
        ("put", f"{api}/exchanges/{DRILL_VHOST}/drill-x", {"type": "topic", "durable": True}),
        (
            "put",
            f"{api}/queues/{DRILL_VHOST}/drill-q",
            {"durable": True, "arguments": {"x-queue-type": "quorum"}},
        ),
        (
            "post",
            f"{api}/bindings/{DRILL_VHOST}/e/drill-x/q/drill-q",
            {"routing_key": "drill.#"},
        ),
        (
            "put",
            f"{api}/policies/{DRILL_VHOST}/drill-limit",
            {"pattern": "^drill-", "definition": {"max-length": 1000}, "apply-to": "queues"},
        ),
    ]
    backup_dir = tmp_path / "backups"
    try:
        for method, url, body in calls:
            response = getattr(session, method)(
                url, json=body, auth=operator, timeout=30, verify=verify
            )
            assert response.status_code in (201, 204), (url, response.text)

        path, exported = export_definitions(backup_dir)
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        assert stat.S_IMODE(backup_dir.stat().st_mode) == 0o700
        before = vhost_definitions(exported, DRILL_VHOST)
        assert all(before.values()), before  # one of each kind, or the test proves nothing

        docker_exec(NODES[0], "rabbitmqctl", "-q", "delete_vhost", DRILL_VHOST)
        assert DRILL_VHOST not in vhosts()

        rc, output, _ = run_playbook(
            LAB_INVENTORY, "playbooks/ops/definitions_import.yml", "-e", f"file={path}"
        )
        assert rc != 0, output[-3000:]
        assert "Run again with -e confirm=yes" in output, output[-3000:]
        assert DRILL_VHOST not in vhosts()

        rc, output, _ = run_playbook(
            LAB_INVENTORY,
            "playbooks/ops/definitions_import.yml",
            "-e",
            f"file={path}",
            "-e",
            "confirm=yes",
        )
        assert rc == 0, output[-3000:]
        _, restored = export_definitions(backup_dir)
        assert vhost_definitions(restored, DRILL_VHOST) == before
    finally:
        session.delete(vhost, auth=operator, timeout=30, verify=verify)


def _full_rights() -> dict:
    return {"configure": ".*", "write": ".*", "read": ".*"}


# --- Upgrades: the lab's archive holds one RabbitMQ version, so an upgrade can only be shown
# doing nothing when nothing is to be done, and failing safely when the version is missing.
def installed_server_version() -> str:
    out = docker_exec(NODES[0], "dpkg-query", "-W", "-f", "${Version}", "rabbitmq-server")
    return out.stdout.strip()


def node_uptime(node: str) -> int:
    out = docker_exec(
        node, "systemctl", "show", "rabbitmq-server", "-p", "ExecMainStartTimestampMonotonic"
    )
    return int(out.stdout.strip().split("=", 1)[1])


@behaviour
@long
def test_an_upgrade_to_the_installed_versions_touches_nothing(tmp_path):
    extra = tmp_path / "upgrade.json"
    extra.write_text(json.dumps({"rabbitmq_server_version": installed_server_version()}))
    started = {node: node_uptime(node) for node in NODES}
    rc, output, changed = run_playbook(
        LAB_INVENTORY, "playbooks/ops/upgrade.yml", "-e", f"@{extra}"
    )
    assert rc == 0, output[-4000:]
    assert set(changed.values()) == {0}, changed
    assert {node: node_uptime(node) for node in NODES} == started  # no node restarted


@behaviour
@long
def test_an_upgrade_that_cannot_install_stops_at_the_first_node_and_leaves_it_serving(tmp_path):
    # A later patch release of the installed minor: allowed by the version rules, absent from
    # the archive, so the package step fails on the first node after it was drained and stopped.
    major, minor = installed_server_version().split(".")[:2]
    missing = f"{major}.{minor}.99-1"
    extra = tmp_path / "upgrade.json"
    extra.write_text(json.dumps({"rabbitmq_server_version": missing}))
    others = {node: node_uptime(node) for node in NODES[1:]}
    installed = installed_server_version()
    rc, output, _ = run_playbook(LAB_INVENTORY, "playbooks/ops/upgrade.yml", "-e", f"@{extra}")
    assert rc != 0, output[-4000:]
    assert missing in output, output[-4000:]
    assert "Install the inventory's Erlang and RabbitMQ versions" in output, output[-4000:]
    # The first node is running its old version again, out of maintenance, in the cluster; the
    # run stopped there (the other nodes were not restarted); every HAProxy sends to it again.
    wait_for_running(NODES[0])
    assert installed_server_version() == installed
    status = json.loads(
        docker_exec(NODES[0], "rabbitmqctl", "-q", "cluster_status", "--formatter", "json").stdout
    )
    assert sorted(status["running_nodes"]) == sorted(f"rabbit@{n}" for n in NODES), status
    maintenance = docker_exec(
        NODES[0], "rabbitmq-diagnostics", "-q", "status", "--formatter", "json"
    ).stdout
    assert json.loads(maintenance).get("is_under_maintenance") is False
    assert {node: node_uptime(node) for node in NODES[1:]} == others
    rc, report = status_report_when_healthy()
    assert rc == 0, report[-4000:]


# --- No secret on a process list ----------------------------------------------------------------
ROTATED = ("vault_rabbitmq_operator_password", "vault_rabbitmq_app_password")


@behaviour
@long
def test_no_password_reaches_a_process_list_while_passwords_rotate():
    """New operator and application passwords, rotated through rotate_passwords.yml while every
    host's process list is sampled: neither the old nor the new ones may ever show. The
    operator's own rotation takes the slow path (the API refuses the old operator password),
    so rabbitmqctl changes every user's password: the path that used to pass them as
    arguments. Last in this module: it changes the lab's secrets for everything after it."""
    before = lab_settings()
    subprocess.run(
        [sys.executable, str(PROJECT / "lab/generate_secrets.py"), "--rotate", *ROTATED],
        check=True,
        capture_output=True,
    )
    lab_settings.cache_clear()
    after = lab_settings()
    secrets = {before[name] for name in ROTATED} | {after[name] for name in ROTATED}
    assert len(secrets) == 2 * len(ROTATED)
    samplers = process_lists.start(lab_groups())
    try:
        rc, output, changed = run_playbook(LAB_INVENTORY, "playbooks/ops/rotate_passwords.yml")
    finally:
        problems = process_lists.problems(samplers, secrets)
    assert rc == 0, output[-4000:]
    assert changed[NODES[0]] > 0 or any(changed[n] > 0 for n in NODES), changed
    # Every host watched, the rotation's own rabbitmqctl commands seen, no password on a line.
    assert problems == []
    # The workers, beat and Flower reconnected with the new passwords.
    assert_whole_system_answers()
