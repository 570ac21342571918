"""The rabbitmq role's command classifier (roles/rabbitmq/filter_plugins/rabbitmq_cli.py), which
playbooks/ops/rabbitmqctl.yml runs on the controller before any host is contacted."""

from __future__ import annotations

import importlib.util
import json
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PLAYBOOK = ROOT / "playbooks/ops/rabbitmqctl.yml"

# Loaded by path, as Ansible loads it: the role's filter_plugins is not a package.
_spec = importlib.util.spec_from_file_location(
    "rabbitmq_cli", ROOT / "roles/rabbitmq/filter_plugins/rabbitmq_cli.py"
)
rabbitmq_cli = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(rabbitmq_cli)
classify = rabbitmq_cli.rabbitmq_cli_classify


@pytest.mark.parametrize(
    "argv",
    [
        ["rabbitmqctl", "status"],
        ["rabbitmqctl", "cluster_status"],
        ["rabbitmqctl", "list_queues", "-p", "celery", "name", "leader"],
        ["rabbitmqctl", "list_connections", "user", "peer_host"],
        ["rabbitmqctl", "environment"],
        ["rabbitmqctl", "report"],
        ["rabbitmq-diagnostics", "ping"],
        ["rabbitmq-diagnostics", "check_port_connectivity"],
        ["rabbitmq-diagnostics", "check_if_node_is_quorum_critical"],
        ["rabbitmq-diagnostics", "memory_breakdown", "--unit", "mb"],
        ["rabbitmq-diagnostics", "alarms"],
        ["rabbitmq-diagnostics", "log_tail", "-N", "50"],
        ["rabbitmq-diagnostics", "server_version"],
        ["rabbitmq-queues", "quorum_status", "celery", "-p", "celery"],
        ["rabbitmq-queues", "check_if_node_is_quorum_critical"],
        ["rabbitmq-plugins", "list"],
        ["rabbitmq-plugins", "is_enabled", "rabbitmq_management"],
        ["rabbitmq-upgrade", "await_online_quorum_plus_one"],
    ],
)
def test_read_only_subcommands_run_freely(argv):
    result = classify(argv)
    assert result["error"] == ""
    assert result["readonly"] is True
    assert result["tool"] == argv[0]
    assert result["args"] == argv[1:]


@pytest.mark.parametrize(
    "argv",
    [
        ["rabbitmqctl", "delete_vhost", "x"],
        ["rabbitmqctl", "set_policy", "ha", "^x$", '{"delivery-limit": 5}'],
        ["rabbitmqctl", "set_user_tags", "operator", "administrator"],
        ["rabbitmqctl", "purge_queue", "celery", "-p", "celery"],
        ["rabbitmqctl", "close_all_connections", "maintenance"],
        ["rabbitmq-diagnostics", "reclaim_quorum_memory", "celery"],
        ["rabbitmq-queues", "grow", "rabbit@rabbit3", "all"],
        ["rabbitmq-queues", "rebalance", "quorum"],
        ["rabbitmq-plugins", "enable", "rabbitmq_shovel"],
        ["rabbitmq-upgrade", "drain"],
        ["rabbitmq-upgrade", "revive"],
    ],
)
def test_changing_subcommands_are_flagged(argv):
    result = classify(argv)
    assert result["error"] == ""
    assert result["readonly"] is False


@pytest.mark.parametrize(
    ("argv", "why"),
    [
        (["rabbitmqctl", "add_user", "bob", "PASSWORD"], "secret"),
        (["rabbitmqctl", "change_password", "bob", "PASSWORD"], "secret"),
        (["rabbitmqctl", "authenticate_user", "bob", "PASSWORD"], "secret"),
        (["rabbitmqctl", "hash_password", "PASSWORD"], "secret"),
        (["rabbitmqctl", "encode", "value", "PASSWORD"], "secret"),
        (["rabbitmqctl", "export_definitions", "-"], "password hash"),
        (["rabbitmq-diagnostics", "os_env"], "cookie"),
        (["rabbitmqctl", "eval", "node()."], "arbitrary"),
        (["rabbitmqctl", "exec", "IO.puts(1)"], "arbitrary"),
        (["rabbitmqctl", "stop_app"], "rolling_restart"),
        (["rabbitmqctl", "forget_cluster_node", "rabbit@rabbit3"], "rolling_restart"),
        (["rabbitmqctl", "reset"], "rolling_restart"),
        (["rabbitmq-diagnostics", "observer"], "interrupted"),
    ],
)
def test_refused_subcommands_say_why_without_repeating_the_arguments(argv, why):
    result = classify(argv)
    assert why in result["error"]
    assert "PASSWORD" not in result["error"]
    assert result["args"] == []


@pytest.mark.parametrize(
    "argv",
    [
        ["rabbitmqctl", "list_bogus"],
        ["rabbitmqctl", "quorum_status", "q"],  # a rabbitmq-queues subcommand
        ["rabbitmq-upgrade", "status"],
        ["rabbitmq-plugins", "list_queues"],
    ],
)
def test_unknown_subcommands_are_refused(argv):
    assert "not a subcommand this playbook knows" in classify(argv)["error"]


@pytest.mark.parametrize(
    "argv",
    [
        ["rabbitmq-streams", "stream_status", "s"],
        ["/usr/sbin/rabbitmqctl", "status"],
        ["sh", "-c", "rabbitmqctl status"],
        ["rabbitmqadmin", "list", "queues"],
    ],
)
def test_unknown_tools_are_refused(argv):
    assert classify(argv)["error"].startswith("Unknown tool")


@pytest.mark.parametrize(
    "argv", [None, [], "rabbitmqctl status", ["rabbitmqctl", 5], ["rabbitmqctl"]]
)
def test_malformed_commands_are_refused(argv):
    assert classify(argv)["error"]


@pytest.mark.parametrize(
    "argv",
    [
        ["rabbitmqctl", "list_queues", "name\n"],
        ["rabbitmqctl", "list_queues", "na\0me"],
        ["rabbitmqctl", "list_queues", "name\rx"],
    ],
)
def test_nul_and_line_breaks_are_refused(argv):
    assert "NUL or line break" in classify(argv)["error"]


@pytest.mark.parametrize(
    ("argv", "subcommand"),
    [
        (["rabbitmqctl", "-q", "status"], "status"),
        (["rabbitmqctl", "--quiet", "--silent", "status"], "status"),
        (["rabbitmqctl", "-s", "list_vhosts"], "list_vhosts"),
        (["rabbitmqctl", "--formatter", "json", "cluster_status"], "cluster_status"),
        (["rabbitmqctl", "--formatter=json", "cluster_status"], "cluster_status"),
        (["rabbitmqctl", "-t", "30", "list_queues"], "list_queues"),
        (["rabbitmqctl", "--timeout", "30", "-q", "list_queues"], "list_queues"),
        (["rabbitmqctl", "-p", "celery", "list_queues", "name"], "list_queues"),
        (["rabbitmqctl", "--vhost", "celery", "delete_queue", "q"], "delete_queue"),
        (["rabbitmq-diagnostics", "-l", "ping"], "ping"),
    ],
)
def test_global_options_before_the_subcommand_are_skipped(argv, subcommand):
    result = classify(argv)
    assert result["error"] == ""
    assert result["subcommand"] == subcommand


def test_a_value_that_looks_like_a_subcommand_is_still_an_option_value():
    # "-p status": status is the vhost, and there is no subcommand after it.
    assert "No subcommand" in classify(["rabbitmqctl", "-p", "status"])["error"]
    assert classify(["rabbitmqctl", "-p", "delete_vhost", "status"])["subcommand"] == "status"


def test_an_unknown_option_before_the_subcommand_is_refused():
    assert "not a global option" in classify(["rabbitmqctl", "--offline", "list_queues"])["error"]


@pytest.mark.parametrize(
    "argv",
    [
        ["rabbitmqctl", "--node", "rabbit@rabbit2", "status"],
        ["rabbitmqctl", "--node=rabbit@rabbit2", "status"],
        ["rabbitmqctl", "-n", "rabbit@rabbit2", "status"],
        ["rabbitmqctl", "status", "-n", "rabbit@rabbit2"],  # options count anywhere
        ["rabbitmq-queues", "quorum_status", "q", "--node", "rabbit@rabbit2"],
    ],
)
def test_node_chosen_by_the_user_is_refused(argv):
    assert "--node/-n is set by the playbook" in classify(argv)["error"]


@pytest.mark.parametrize(
    "argv",
    [
        ["rabbitmqctl", "--erlang-cookie", "COOKIE", "status"],
        ["rabbitmqctl", "status", "--erlang_cookie=COOKIE"],
        ["rabbitmqctl", "--script-name", "rabbitmq-upgrade", "drain"],
        ["rabbitmqctl", "--aliases-file", "aliases.conf", "status"],
    ],
)
def test_options_that_leak_a_secret_or_bypass_the_lists_are_refused(argv):
    error = classify(argv)["error"]
    assert error.endswith("refused.")
    assert "COOKIE" not in error


def test_an_argument_with_a_password_in_a_uri_is_refused():
    argv = [
        "rabbitmqctl",
        "set_parameter",
        "federation-upstream",
        "up",
        '{"uri": "amqp://user:PASSWORD@host"}',
    ]
    error = classify(argv)["error"]
    assert "URI with a password" in error
    assert "PASSWORD" not in error
    assert classify(argv[:4] + ['{"uri": "amqp://host"}'])["error"] == ""


def test_json_is_asked_for_with_json_yes_or_formatter_json():
    assert classify(["rabbitmqctl", "status"])["json"] is False
    asked = classify(["rabbitmqctl", "status"], json=True)
    assert asked["json"] is True
    assert asked["args"] == ["status", "--formatter", "json"]
    given = classify(["rabbitmqctl", "status", "--formatter", "json"])
    assert given["json"] is True
    assert given["args"] == ["status", "--formatter", "json"]
    assert classify(["rabbitmqctl", "--formatter=json", "status"], json=True)["json"] is True
    contradiction = classify(["rabbitmqctl", "status", "--formatter", "table"], json=True)
    assert "json=yes" in contradiction["error"]


def test_the_lists_do_not_contradict_each_other():
    for tool in rabbitmq_cli.TOOLS:
        read, change = rabbitmq_cli.READ_ONLY[tool], rabbitmq_cli.CHANGING[tool]
        assert not read & change, tool
        assert not (read | change) & set(rabbitmq_cli.REFUSED), tool
        # The allow-list names every list_ and check_ subcommand of the tool as read-only.
        assert not {name for name in change if name.startswith(("list_", "check_"))}, tool


def test_the_filter_is_registered_for_ansible():
    filters = rabbitmq_cli.FilterModule().filters()
    assert filters["rabbitmq_cli_classify"] is classify


# "#   read-only  -e '{"cli": [...]}' ..." lines of the playbook's header comment.
EXAMPLE = re.compile(r"^#\s+(read-only|changing|refused)\s+-e '(\{.*?\})'(.*)$")


def _examples():
    found = []
    for line in PLAYBOOK.read_text().splitlines():
        match = EXAMPLE.match(line)
        if match:
            label, extra_vars, rest = match.groups()
            found.append((label, json.loads(extra_vars)["cli"], "json=yes" in rest))
    return found


def test_the_playbook_has_examples_of_every_kind():
    assert {label for label, _, _ in _examples()} == {"read-only", "changing", "refused"}


@pytest.mark.parametrize(("label", "argv", "as_json"), _examples(), ids=lambda v: str(v))
def test_every_example_in_the_playbook_classifies_as_labelled(label, argv, as_json):
    result = classify(argv, json=as_json)
    if label == "refused":
        assert result["error"]
    else:
        assert result["error"] == ""
        assert result["readonly"] is (label == "read-only")
