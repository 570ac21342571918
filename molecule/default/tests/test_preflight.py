"""Bad input is refused with a clear message before any host changes: site.yml checks every
tier's input first, so even a bad Flower password stops the run before RabbitMQ is touched.

Each case is a run that must fail. site.yml's first play is playbooks/preflight.yml
(tests/test_repository.py holds it there), so most cases run that playbook alone, limited to
the hosts of the tier whose check refuses the input (the hosts preflight.yml runs that role's
checks on): a whole site.yml on every host costs the controller three times as much and shows
nothing more. The cases in EVERY_HOST are whole site.yml runs on every host (the bad Flower
password shows that a check of the last tier stops the run before the first tier is touched);
those in AFTER_PREFLIGHT are site.yml runs on the refusing tier's hosts. The runs only read
the hosts, so they run side by side (PARALLEL at a time), each with its own copy of the fact
cache; each case is still its own test, with its own outcome."""

from __future__ import annotations

import json
import shutil
from concurrent.futures import Future, ThreadPoolExecutor

import pytest
import yaml
from conftest import LAB_INVENTORY, PROJECT, behaviour, long, run_playbook

# The controller has few cores and each run is mostly ansible-playbook's own CPU time.
PARALLEL = 4

# A password long enough to pass, from the lab vault (the cases are about other keys).
FROM_VAULT = "{{ vault_rabbitmq_app_password }}"
POLICY = {"name": "cap", "vhost": "celery", "pattern": "^reports\\.", "tags": {"max-length": 1000}}

# case: (extra vars, words of the message[, groups to add hosts to, as an extra inventory])
BAD_INPUTS = {
    "short cookie": (
        {"rabbitmq_erlang_cookie": "tooshort"},
        "rabbitmq_erlang_cookie must be 32 to 255 letters and digits",
    ),
    "cookie with symbols": (
        {"rabbitmq_erlang_cookie": "a" * 31 + "!$"},
        "with characters other than letters and digits",
    ),
    # `cookie: |` in YAML keeps the line break; re.match's $ matched before it.
    "cookie from a YAML block scalar": (
        {"rabbitmq_erlang_cookie": "A" * 40 + "\n"},
        "ending in a line break (a YAML block scalar: write |- or a quoted string)",
    ),
    # Valid on its own, but not the cookie the running cluster has: rotation is an operation.
    "different cookie on a running cluster": (
        {"rabbitmq_erlang_cookie": "Rotated" + "0" * 40},
        "already runs with a different Erlang cookie",
    ),
    "node host with rabbit@": (
        {"rabbitmq_node_host": "rabbit@mq1"},
        "would be named rabbit@rabbit@mq1, rabbit@rabbit@mq1, rabbit@rabbit@mq1. "
        "rabbitmq_node_host is only the host part after rabbit@",
    ),
    "one node host for every node": (
        {"rabbitmq_node_host": "rabbit1"},
        "would be named rabbit@rabbit1, rabbit@rabbit1, rabbit@rabbit1",
    ),
    "RabbitMQ management port on the AMQP port": (
        {"rabbitmq_management_port": "{{ rabbitmq_amqp_port }}"},
        "must be TCP ports (1-65535), each a different one",
    ),
    "plugins without the management plugin": (
        {"rabbitmq_plugins": ["rabbitmq_prometheus"]},
        "rabbitmq_plugins must be a list of plugin names",
    ),
    "invalid user name": ({"rabbitmq_app_user": "bad user"}, "Invalid names"),
    "short password": ({"rabbitmq_app_password": "short"}, "has no password or a short one"),
    # The shapes of rabbitmq_extra_*: the argument specs of the role's preflight entry point.
    "extra vhost without a name": (
        {"rabbitmq_extra_vhosts": [{"nmae": "reports"}]},
        "missing required arguments: name found in rabbitmq_extra_vhosts",
    ),
    "extra user's permissions not a list of entries": (
        {
            "rabbitmq_extra_users": [
                {"name": "reporter", "password": FROM_VAULT, "permissions": "reports"}
            ]
        },
        "Elements value for option 'permissions' found in 'rabbitmq_extra_users' is of type str",
    ),
    "policy with apply-to for apply_to": (
        {"rabbitmq_extra_policies": [{**POLICY, "apply-to": "queues"}]},
        "rabbitmq_extra_policies.apply-to. Supported parameters include",
    ),
    "policy applying to an unknown kind": (
        {"rabbitmq_extra_policies": [{**POLICY, "apply_to": "queue"}]},
        "value of apply_to must be one of",
    ),
    # What the specs cannot see: how the entries refer to each other.
    "permission on an undeclared vhost": (
        {
            "rabbitmq_extra_users": [
                {
                    "name": "reporter",
                    "password": FROM_VAULT,
                    "permissions": [
                        {"vhost": "reports", "configure": "", "write": "", "read": ".*"}
                    ],
                }
            ]
        },
        "Vhost(s) reports are named by a user's permissions or by a policy but not declared",
    ),
    "policy named like the built-in one": (
        {"rabbitmq_extra_policies": [{**POLICY, "name": "quorum-dead-letter"}]},
        "A name may appear once per vhost",
    ),
    # The lab runs RabbitMQ 4.0.x: an older pin is a downgrade, 4.2 skips 4.1.
    "RabbitMQ downgrade": (
        {"rabbitmq_server_version": "3.13.7-1"},
        "downgrades are not supported",
    ),
    "RabbitMQ version jump": (
        {"rabbitmq_server_version": "4.2.0-1"},
        "Upgrade to the latest 4.1.x first",
    ),
    # Allowed by the version rules, but a converge would upgrade every node at once.
    "RabbitMQ upgrade through site.yml": (
        {"rabbitmq_server_version": "4.0.99-1"},
        "run playbooks/ops/upgrade.yml",
    ),
    "partition handling": (
        {"rabbitmq_cluster_partition_handling": "sometimes"},
        "rabbitmq_cluster_partition_handling",
    ),
    "RabbitMQ node also a load balancer": (
        {},
        "rabbit1 is both a load balancer and a RabbitMQ node",
        {"haproxy": ["rabbit1"]},
    ),
    "HAProxy management port on the AMQP port": (
        {"haproxy_management_port": "{{ haproxy_amqp_port }}"},
        "Ports must be 1..65535 and the three listeners distinct",
    ),
    "HAProxy port out of range": (
        {"haproxy_stats_port": 70000},
        "Ports must be 1..65535",
    ),
    "short HAProxy stats password": ({"haproxy_stats_password": "short"}, "haproxy_stats_password"),
    "virtual IP not an IPv4 address": (
        {"keepalived_virtual_ip": "10.213.64.300"},
        "keepalived_virtual_ip must be a free IPv4 address",
    ),
    "wheelhouse requirement not pinned": (
        {"wheelhouse_requirements": ["celery>=5", "kombu==5.7.0"]},
        "wheelhouse_requirements must be exact pins (name==version)",
    ),
    "wheelhouse directory with ..": (
        {"wheelhouse_host_dir": "/var/cache/../wheelhouse"},
        "wheelhouse_host_dir ('/var/cache/../wheelhouse') must be a plain absolute path",
    ),
    "broker hosts not a list": (
        {
            "celery_worker_broker": {
                "hosts": "10.213.64.250",
                "port": 5672,
                "vhost": "celery",
                "user": "celery",
                "password": FROM_VAULT,
            }
        },
        "the broker connection's hosts must be a list",
    ),
    "zero worker concurrency": (
        {"celery_worker_concurrency": 0},
        "celery_worker_concurrency (0) must be at least 1",
    ),
    "worker as root": (
        {"celery_worker_user": "root"},
        "celery_worker_user ('root') and celery_worker_group ('celery') must name an unprivileged",
    ),
    "state directory /var/lib/..": (
        {"celery_worker_state_dir": "/var/lib/.."},
        "celery_worker_state_dir ('/var/lib/..') must be a plain absolute path",
    ),
    "relative virtualenv directory": (
        {"celery_worker_venv_dir": "opt/tasks_app/venv"},
        "celery_worker_venv_dir ('opt/tasks_app/venv') must be an absolute path",
    ),
    "beat host that is not a worker": (
        {"celery_worker_beat_group": "beat_elsewhere"},
        "lb1 would run celery beat, but it is not a worker host",
        {"beat_elsewhere": ["lb1"]},
    ),
    "two beat hosts": (
        {},
        "must hold exactly one host",
        {"celery_beat": ["worker2"]},
    ),
    "short Flower password": (
        {"flower_basic_auth_password": "short"},
        "flower_basic_auth_password",
    ),
    # systemd's EnvironmentFile reads a\b as ab: Flower would check another password.
    "Flower password with a backslash": (
        {"flower_basic_auth_password": "{{ vault_flower_password }}\\x"},
        "with a backslash, which systemd's EnvironmentFile would drop",
    ),
    "Flower as root": (
        {"flower_user": "root"},
        "flower_user ('root') and flower_group ('flower') must name an unprivileged",
    ),
}

# The cases whose input no variable of the refusing role names (they change the groups).
REFUSED_BY = {
    "RabbitMQ node also a load balancer": "haproxy",
    "two beat hosts": "celery_worker",
    "beat host that is not a worker": "celery_worker",
}
# Whole site.yml runs on every host of the inventory. The beat host's check compares the beat
# group with every worker of the play, so the role leaves it out under --limit.
EVERY_HOST = {"short Flower password", "beat host that is not a worker"}
# Refused by a check of the role's own run, after the preflight: it reads the running cluster's
# cookie (site.yml, limited to the nodes).
AFTER_PREFLIGHT = {"different cookie on a running cluster"}

# `make test` runs these: one per refusing role, the whole site.yml on every host, and the
# check after the preflight. `make behaviour` runs every case.
SHORT = {
    "short Flower password",
    "different cookie on a running cluster",
    "short cookie",
    "HAProxy port out of range",
    "virtual IP not an IPv4 address",
    "wheelhouse requirement not pinned",
    "worker as root",
    "beat host that is not a worker",
}

TEST = "test_bad_input_is_refused_before_anything_changes"


def checked_hosts() -> dict[str, str]:
    """Role -> the host pattern playbooks/preflight.yml runs its checks on."""
    plays = yaml.safe_load((PROJECT / "playbooks/preflight.yml").read_text())
    return {
        task["ansible.builtin.include_role"]["name"]: play["hosts"]
        for play in plays
        for task in play["tasks"]
    }


def limit(case: str) -> list[str]:
    """--limit to the hosts of the role that refuses the case's input."""
    if case in EVERY_HOST:
        return []
    hosts = checked_hosts()
    role = REFUSED_BY.get(case) or max(
        (role for role in hosts if next(iter(BAD_INPUTS[case][0])).startswith(f"{role}_")),
        key=len,
    )
    return ["--limit", hosts[role]]


def test_every_case_runs_where_its_role_checks():
    # A fast guard on the table itself: each case names its refusing role, one way or the other,
    # and the short set names only cases of the table.
    for case in BAD_INPUTS:
        assert case in EVERY_HOST or limit(case), case
    named = SHORT | EVERY_HOST | AFTER_PREFLIGHT | set(REFUSED_BY)
    assert named <= set(BAD_INPUTS), named - set(BAD_INPUTS)


def _run(case: str, workdir) -> tuple[int, str, dict[str, int]]:
    extra, message, *groups = BAD_INPUTS[case]
    workdir.mkdir()
    extra_file = workdir / "extra.json"
    extra_file.write_text(json.dumps(extra))
    args = ["-e", f"@{extra_file}", *limit(case)]
    if groups:
        # ansible-playbook merges the inventories: the lab's, plus these hosts in these groups.
        children = {group: {"hosts": dict.fromkeys(hosts)} for group, hosts in groups[0].items()}
        (workdir / "groups.yml").write_text(yaml.safe_dump({"all": {"children": children}}))
        args[:0] = ["-i", str(workdir / "groups.yml")]
    # A copy of the facts the lab's runs cached: no gathering, and no two runs writing one file.
    facts = workdir / "facts"
    if (PROJECT / ".cache/facts").is_dir():
        shutil.copytree(PROJECT / ".cache/facts", facts)
    # Plain Ansible: these runs stop after the checks, and Mitogen's start of one interpreter
    # per host (~6 s a run here) costs more than it saves on so few tasks. The checks are the
    # same whatever the strategy.
    env = {"ANSIBLE_CACHE_PLUGIN_CONNECTION": str(facts), "ANSIBLE_STRATEGY": "linear"}
    whole = case in EVERY_HOST | AFTER_PREFLIGHT
    playbook = "site.yml" if whole else "playbooks/preflight.yml"
    return run_playbook(LAB_INVENTORY, playbook, *args, extra_env=env)


@pytest.fixture(scope="module")
def outcomes(request, tmp_path_factory) -> dict[str, Future]:
    """Start the selected cases' runs at once (PARALLEL at a time); each test waits for its own."""
    selected = sorted(
        {
            item.callspec.params["case"]
            for item in request.session.items
            if getattr(item, "originalname", None) == TEST
        }
    )
    base = tmp_path_factory.mktemp("preflight")
    pool = ThreadPoolExecutor(max_workers=PARALLEL)
    request.addfinalizer(pool.shutdown)
    return {
        case: pool.submit(_run, case, base / f"case{number}")
        for number, case in enumerate(selected)
    }


@behaviour
@pytest.mark.parametrize(
    "case", [pytest.param(c, marks=() if c in SHORT else long) for c in sorted(BAD_INPUTS)]
)
def test_bad_input_is_refused_before_anything_changes(case, outcomes):
    message = BAD_INPUTS[case][1]
    rc, output, changed = outcomes[case].result()
    assert rc != 0, output
    assert message in output, output[-3000:]
    assert changed, output[-3000:]
    assert set(changed.values()) == {0}, changed
