"""Cluster membership through the playbook: the seed, reinstalled empty, joins the running
cluster through another member the way a new host would; while it holds data it is refused,
never reset.

Runs `ansible-playbook playbooks/rabbitmq.yml` against the lab from the controller and leaves
the cluster as it found it (three running nodes)."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

from conftest import (
    LAB_INVENTORY,
    assert_whole_system_answers,
    behaviour,
    lab_groups,
    long,
    run_playbook,
)

NODES = sorted(h for h, groups in lab_groups().items() if "rabbitmq" in groups)
SEED, OTHER, LAST = NODES[0], NODES[1], NODES[-1]


def docker_exec(container: str, *command: str) -> str:
    return subprocess.run(
        ["docker", "exec", container, *command], check=True, capture_output=True, text=True
    ).stdout


def running_nodes(container: str) -> list[str]:
    status = json.loads(
        docker_exec(container, "rabbitmqctl", "-q", "cluster_status", "--formatter", "json")
    )
    return sorted(status["running_nodes"])


def playbook(inventory: Path, *args: str) -> tuple[int, str, dict[str, int]]:
    return run_playbook(inventory, "playbooks/rabbitmq.yml", *args)


def detach(node: str) -> None:
    """Make `node` a standalone node, as a freshly installed host would be."""
    docker_exec(node, "rabbitmqctl", "stop_app")
    docker_exec(node, "rabbitmqctl", "reset")
    docker_exec(node, "rabbitmqctl", "start_app")
    docker_exec(node, "rabbitmqctl", "await_startup")


@behaviour
@long
def test_a_reinstalled_seed_joins_through_a_running_member_and_data_is_never_reset():
    """The seed (first node of the group) comes back empty, as a reinstalled host would: the
    playbook must not need it, and must join it to the running cluster through another
    member. While it holds data of its own, it is refused and left untouched."""
    full = sorted(f"rabbit@{h}" for h in NODES)
    assert running_nodes(SEED) == full
    detach(SEED)
    try:
        assert running_nodes(SEED) == [f"rabbit@{SEED}"]
        assert running_nodes(OTHER) == sorted(set(full) - {f"rabbit@{SEED}"})

        docker_exec(SEED, "rabbitmqctl", "add_vhost", "stray")
        rc, out, changed = playbook(LAB_INVENTORY, "--limit", SEED)
        assert rc != 0, out[-3000:]
        assert f"rabbit@{SEED} is not in the cluster yet but holds data" in out, out[-3000:]
        assert running_nodes(SEED) == [f"rabbit@{SEED}"]
        assert "stray" in docker_exec(SEED, "rabbitmqctl", "-q", "list_vhosts", "name")
        docker_exec(SEED, "rabbitmqctl", "delete_vhost", "stray")
    finally:
        # Emptied, it joins through the node that speaks for the cluster (not itself).
        rc, out, changed = playbook(LAB_INVENTORY, "--limit", SEED)
    assert rc == 0, out[-3000:]
    assert changed.get(SEED, 0) > 0, out[-3000:]
    # The task header, then (with profile_tasks) a timing line, then the result.
    joined = rf"TASK \[rabbitmq : Join the anchor's cluster\].*\n(?:.*\*\s*\n)?changed: \[{SEED}\]"
    assert re.search(joined, out), out
    assert running_nodes(OTHER) == full
    # A second run changes nothing: the node is now skipped as a member.
    rc, out, changed = playbook(LAB_INVENTORY, "--limit", SEED)
    assert rc == 0 and changed.get(SEED) == 0, out[-3000:]
    assert_whole_system_answers()


def started_at(node: str) -> str:
    return docker_exec(
        node, "systemctl", "show", "rabbitmq-server", "--property=ActiveEnterTimestamp", "--value"
    ).strip()


@behaviour
@long
def test_newer_configuration_restarts_those_nodes_one_at_a_time():
    # As if an earlier run had written the configuration of two nodes, then failed before it
    # could restart them: the next run must still restart exactly those, one at a time.
    touched = NODES[1:]
    before = {node: started_at(node) for node in NODES}
    for node in touched:
        docker_exec(node, "touch", "/etc/rabbitmq/rabbitmq.conf")
    rc, out, changed = playbook(LAB_INVENTORY)
    assert rc == 0, out[-3000:]
    after = {node: started_at(node) for node in NODES}
    assert after[SEED] == before[SEED], "a node whose configuration did not change was restarted"
    assert all(after[node] != before[node] for node in touched), (before, after)
    blocks = re.split(r"\nTASK \[", out)
    restarts = [b for b in blocks if b.startswith("rabbitmq : Restart RabbitMQ]")]
    assert (
        sorted(h for b in restarts for h in re.findall(r"^changed: \[(\S+)\]", b, re.M)) == touched
    )
    assert all(len(re.findall(r"^changed: ", b, re.M)) <= 1 for b in restarts)
    assert running_nodes(SEED) == sorted(f"rabbit@{h}" for h in NODES)
    status = json.loads(
        docker_exec(SEED, "rabbitmqctl", "-q", "cluster_status", "--formatter", "json")
    )
    assert set(status["maintenance_status"].values()) == {"not under maintenance"}
    assert_whole_system_answers()
