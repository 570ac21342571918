"""Classify a RabbitMQ CLI command line before playbooks/ops/rabbitmqctl.yml runs it.

``rabbitmq_cli_classify(argv, json=False)`` takes the command as a list (the tool first, no
shell) and returns a dict:

- ``tool``, ``subcommand``: the tool and the first word after it that is not an option;
- ``args``: everything after the tool, as it will be passed on (``--formatter json`` appended
  when ``json`` is asked for and the command names no formatter); the playbook inserts
  ``--node`` itself;
- ``readonly``: the subcommand only reads (it runs freely, on several nodes at once);
- ``json``: the output is JSON (``--formatter json``), to be parsed;
- ``error``: why the command is refused (empty when it may run). Messages never repeat the
  arguments: a refused command may carry a password.

The subcommand lists are those of RabbitMQ 4.0.5: the command modules of rabbitmq-server v4.0.5
(deps/rabbitmq_cli/lib/rabbitmq/cli/{ctl,diagnostics,queues,plugins,upgrade,streams}/commands
and the plugins' src/Elixir.RabbitMQ.CLI.*.erl), each offered by the tools its ``scopes()``
names (by default the tool of its namespace). A subcommand on no list is refused, so a newer
RabbitMQ's additions are refused until someone classifies them here.
"""

from __future__ import annotations

import re

# Read-only subcommands that rabbitmqctl and rabbitmq-diagnostics both offer
# (scopes [:ctl, :diagnostics]); the last group comes from plugins and exists only while the
# plugin is enabled.
_CTL_AND_DIAGNOSTICS_READ = {
    "autocomplete",
    "check_if_any_deprecated_features_are_used",
    "cluster_status",
    "environment",  # the node leaves default_pass out (rabbit:environment/1)
    "help",
    "list_bindings",
    "list_channels",
    "list_ciphers",
    "list_connections",
    "list_consumers",
    "list_deprecated_features",
    "list_exchanges",
    "list_feature_flags",
    "list_global_parameters",
    "list_hashes",
    "list_node_auth_attempt_stats",
    "list_operator_policies",
    "list_parameters",
    "list_permissions",
    "list_policies",
    "list_queues",
    "list_topic_permissions",
    "list_unresponsive_queues",
    "list_user_limits",
    "list_user_permissions",
    "list_user_topic_permissions",
    "list_users",
    "list_vhost_limits",
    "list_vhosts",
    "node_health_check",
    "ping",
    "report",
    "schema_info",
    "status",
    "version",
    "wait",
    # plugins: federation, shovel, mqtt, stomp, web_mqtt, stream
    "federation_status",
    "shovel_status",
    "list_mqtt_connections",
    "list_stomp_connections",
    "list_web_mqtt_connections",
    "list_stream_connections",
    "list_stream_consumer_groups",
    "list_stream_consumers",
    "list_stream_group_consumers",
    "list_stream_publishers",
}
_CTL_AND_DIAGNOSTICS_CHANGE = {
    "activate_free_disk_space_monitoring",
    "deactivate_free_disk_space_monitoring",
}

# Queue health checks and listings that rabbitmq-diagnostics and rabbitmq-queues both offer.
_DIAGNOSTICS_AND_QUEUES_READ = {
    "check_if_cluster_has_classic_queue_mirroring_policy",
    "check_if_new_quorum_queue_replicas_have_finished_initial_sync",
    "check_if_node_is_mirror_sync_critical",
    "check_if_node_is_quorum_critical",
    "list_operator_policies_with_classic_queue_mirroring",
    "list_policies_with_classic_queue_mirroring",
    "quorum_status",
    "stream_status",
}

READ_ONLY: dict[str, frozenset[str]] = {
    "rabbitmqctl": frozenset(_CTL_AND_DIAGNOSTICS_READ | {"await_online_nodes", "await_startup"}),
    "rabbitmq-diagnostics": frozenset(
        _CTL_AND_DIAGNOSTICS_READ
        | _DIAGNOSTICS_AND_QUEUES_READ
        | {
            "alarms",
            "certificates",
            "check_alarms",
            "check_certificate_expiration",
            "check_local_alarms",
            "check_port_connectivity",
            "check_port_listener",
            "check_protocol_listener",
            "check_running",
            "check_virtual_hosts",
            "cipher_suites",
            "command_line_arguments",
            "consistent_hash_exchange_ring_state",  # plugin
            "coordinator_status",
            "discover_peers",
            "erlang_cookie_hash",  # a hash meant for comparing nodes, not the cookie
            "erlang_cookie_sources",  # where the cookie comes from, not its value
            "erlang_version",
            "is_booting",
            "is_running",
            "list_network_interfaces",
            "list_policies_that_match",
            "listeners",
            "log_location",
            "log_tail",
            "maybe_stuck",
            "memory_breakdown",
            "metadata_store_status",
            "resolve_hostname",
            "resolver_info",
            "runtime_thread_stats",
            "server_version",
            "tls_versions",
        }
    ),
    "rabbitmq-queues": frozenset(_DIAGNOSTICS_AND_QUEUES_READ | {"autocomplete", "help", "peek"}),
    "rabbitmq-plugins": frozenset(
        {"autocomplete", "directories", "help", "is_enabled", "list", "version"}
    ),
    # await_online_quorum_plus_one only waits until every quorum queue and stream would keep a
    # quorum without the node (rabbit_upgrade_preparation); it changes nothing. It is the very
    # health gate this playbook puts in front of a changing command.
    "rabbitmq-upgrade": frozenset({"await_online_quorum_plus_one", "help"}),
}

CHANGING: dict[str, frozenset[str]] = {
    "rabbitmqctl": frozenset(
        _CTL_AND_DIAGNOSTICS_CHANGE
        | {
            "add_vhost",
            "clear_global_parameter",
            "clear_operator_policy",
            "clear_parameter",
            "clear_password",
            "clear_permissions",
            "clear_policy",
            "clear_topic_permissions",
            "clear_user_limits",
            "clear_vhost_limits",
            "close_all_connections",
            "close_all_user_connections",
            "close_connection",
            "delete_queue",
            "delete_user",
            "delete_vhost",
            "enable_feature_flag",
            "force_gc",
            "import_definitions",
            "purge_queue",
            "reconcile_vhosts",
            "remove_classic_queue_mirroring_from_policies",
            "restart_vhost",
            "resume_listeners",
            "rotate_logs",
            "set_cluster_name",
            "set_disk_free_limit",
            "set_global_parameter",
            "set_log_level",
            "set_operator_policy",
            "set_parameter",
            "set_permissions",
            "set_permissions_globally",
            "set_policy",
            "set_topic_permissions",
            "set_user_limits",
            "set_user_tags",
            "set_vhost_limits",
            "set_vhost_tags",
            "set_vm_memory_high_watermark",
            "suspend_listeners",
            "trace_off",
            "trace_on",
            "update_vhost_metadata",
            # plugins: management_agent, federation, shovel
            "reset_stats_db",
            "restart_federation_link",
            "delete_shovel",
            "restart_shovel",
        }
    ),
    "rabbitmq-diagnostics": frozenset(
        _CTL_AND_DIAGNOSTICS_CHANGE
        | {
            "disable_auth_attempt_source_tracking",
            "enable_auth_attempt_source_tracking",
            "reclaim_quorum_memory",
            "reset_node_auth_attempt_metrics",
        }
    ),
    "rabbitmq-queues": frozenset(
        {"add_member", "delete_member", "grow", "rebalance", "reclaim_quorum_memory", "shrink"}
    ),
    # The rabbitmq role writes enabled_plugins from rabbitmq_plugins: its next run undoes these.
    "rabbitmq-plugins": frozenset({"disable", "enable", "set"}),
    "rabbitmq-upgrade": frozenset({"drain", "post_upgrade", "revive"}),
}

_CREDENTIAL_ON_COMMAND_LINE = (
    "it carries a secret on the command line, which Ansible would log. Users and their "
    "passwords belong to the rabbitmq role (rabbitmq_*_password, rabbitmq_extra_users, from "
    "vault); rotate a password there and run playbooks/rabbitmq.yml"
)
_MEMBERSHIP = (
    "it stops, resets or moves a node, which the health gate and the membership check after "
    "each node cannot make safe. Restarts: playbooks/ops/rolling_restart.yml; joining: "
    "playbooks/rabbitmq.yml; removing or recovering nodes: by hand, node by node"
)
_CODE = (
    "it runs arbitrary Erlang/Elixir code on the node: no list can tell whether that reads, "
    "changes or prints secrets, so this playbook never runs it. Use a shell on the node, "
    "deliberately"
)
_ENDLESS = "it runs until interrupted (interactive or streaming); use log_tail or status instead"

# Subcommands refused whatever the tool and confirm say, with the reason.
REFUSED: dict[str, str] = {
    "add_user": _CREDENTIAL_ON_COMMAND_LINE,
    "authenticate_user": _CREDENTIAL_ON_COMMAND_LINE,
    "change_password": _CREDENTIAL_ON_COMMAND_LINE,
    "hash_password": _CREDENTIAL_ON_COMMAND_LINE,
    "encode": _CREDENTIAL_ON_COMMAND_LINE,
    "decode": _CREDENTIAL_ON_COMMAND_LINE,
    "encrypt_conf_value": _CREDENTIAL_ON_COMMAND_LINE,
    "decrypt_conf_value": _CREDENTIAL_ON_COMMAND_LINE,
    "add_signing_key": _CREDENTIAL_ON_COMMAND_LINE,
    "add_uaa_key": _CREDENTIAL_ON_COMMAND_LINE,
    "export_definitions": (
        "the definitions hold every user's password hash, which would end up in the log or in "
        "a file on a node; backups are a separate playbook"
    ),
    "os_env": (
        "it prints the node's RABBITMQ_* environment, which may hold the Erlang cookie "
        "(RABBITMQ_ERLANG_COOKIE) or a default password"
    ),
    "eval": _CODE,
    "eval_file": _CODE,
    "exec": _CODE,
    "change_cluster_node_type": _MEMBERSHIP,
    "force_boot": _MEMBERSHIP,
    "force_reset": _MEMBERSHIP,
    "force_standalone_khepri_boot": _MEMBERSHIP,
    "forget_cluster_node": _MEMBERSHIP,
    "join_cluster": _MEMBERSHIP,
    "rename_cluster_node": _MEMBERSHIP,
    "reset": _MEMBERSHIP,
    "shutdown": _MEMBERSHIP,
    "start_app": _MEMBERSHIP,
    "stop": _MEMBERSHIP,
    "stop_app": _MEMBERSHIP,
    "update_cluster_nodes": _MEMBERSHIP,
    "observer": _ENDLESS,
    "remote_shell": _ENDLESS,
    "log_tail_stream": _ENDLESS,
    "consume_event_stream": _ENDLESS,
}

TOOLS = tuple(READ_ONLY)

# The global options every tool parses (rabbitmq_cli's Core.Parser.default_switches and
# default_aliases), anywhere on the command line. Those that take a value:
VALUE_OPTIONS = frozenset(
    {
        "aliases-file",
        "data-dir",
        "enabled-plugins-file",
        "erlang-cookie",
        "file",
        "formatter",
        "mnesia-dir",
        "node",
        "plugins-dir",
        "printer",
        "rabbitmq-home",
        "script-name",
        "timeout",
        "vhost",
    }
)
FLAG_OPTIONS = frozenset({"dry-run", "help", "longnames", "print-stacktrace", "quiet", "silent"})
SHORT_OPTIONS = {
    "p": "vhost",
    "n": "node",
    "q": "quiet",
    "s": "silent",
    "l": "longnames",
    "t": "timeout",
    "?": "help",
}
REFUSED_OPTIONS = {
    "node": "--node/-n is set by the playbook (choose nodes with -e nodes=...)",
    "erlang-cookie": "--erlang-cookie puts the cookie on the command line, which Ansible would log",
    "aliases-file": "--aliases-file could rename a subcommand past these checks",
    "script-name": "--script-name switches to another tool's subcommands past these checks",
}

# scheme://user:password@host: a password inside an argument (a shovel or federation URI).
_URI_WITH_PASSWORD = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://[^/@\s]*:[^/@\s]*@")


def _option_name(word: str) -> str | None:
    """The long name of the global option ``word`` spells, or None when it is not an option."""
    if word.startswith("--") and len(word) > 2:
        return word[2:].split("=", 1)[0].replace("_", "-")
    if word.startswith("-") and len(word) > 1 and not word[1].isdigit():
        short = word[1:].split("=", 1)[0]
        return SHORT_OPTIONS.get(short, short)
    return None


def _refusal(tool: str, subcommand: str, error: str) -> dict:
    return {
        "tool": tool,
        "subcommand": subcommand,
        "args": [],
        "readonly": False,
        "json": False,
        "error": error,
    }


def rabbitmq_cli_classify(argv, json=False) -> dict:
    """Classify ``argv`` (see the module docstring)."""
    usage = (
        "Give the command as a list, the tool first: "
        '-e \'{"cli": ["rabbitmqctl", "list_queues", "-p", "celery", "name", "leader"]}\''
    )
    if isinstance(argv, str) and argv:
        return _refusal("", "", f"The command must be a list, not a string (no shell). {usage}")
    if not isinstance(argv, (list, tuple)) or not argv:
        return _refusal("", "", f"No command to run. {usage}")
    if not all(isinstance(word, str) for word in argv):
        return _refusal("", "", f"Every word of the command must be a string. {usage}")
    if any(ch in word for word in argv for ch in "\0\n\r"):
        return _refusal("", "", "An argument holds a NUL or line break; refused.")

    tool, rest = argv[0], list(argv[1:])
    if tool not in TOOLS:
        return _refusal(
            "", "", f"Unknown tool (the first word must be one of: {', '.join(TOOLS)})."
        )

    # The subcommand is the first word that is neither a global option nor its value.
    subcommand, index = "", 0
    while index < len(rest):
        word = rest[index]
        name = _option_name(word)
        if name is None:
            subcommand = word
            break
        if name in REFUSED_OPTIONS:
            return _refusal(tool, "", REFUSED_OPTIONS[name] + "; refused.")
        if name not in VALUE_OPTIONS | FLAG_OPTIONS:
            return _refusal(
                tool,
                "",
                f"Option {word.split('=', 1)[0]} before the subcommand is not a global "
                f"option of {tool}; put the subcommand's own options after it.",
            )
        index += 2 if name in VALUE_OPTIONS and "=" not in word else 1
    if not subcommand:
        return _refusal(tool, "", f"No subcommand after {tool}. {usage}")

    if subcommand in REFUSED:
        return _refusal(tool, subcommand, f"{tool} {subcommand} is refused: {REFUSED[subcommand]}.")
    if subcommand in READ_ONLY[tool]:
        readonly = True
    elif subcommand in CHANGING[tool]:
        readonly = False
    else:
        return _refusal(
            tool,
            subcommand,
            f"{tool} {subcommand} is not a subcommand this playbook knows (RabbitMQ 4.0.5); "
            "refused. Classify it in roles/rabbitmq/filter_plugins/rabbitmq_cli.py first.",
        )

    # Options may follow the subcommand too (the CLI parses them anywhere).
    formatter = None
    for position, word in enumerate(rest):
        name = _option_name(word)
        if name in REFUSED_OPTIONS:
            return _refusal(tool, subcommand, REFUSED_OPTIONS[name] + "; refused.")
        if name == "formatter":
            if "=" in word:
                formatter = word.split("=", 1)[1]
            elif position + 1 < len(rest):
                formatter = rest[position + 1]
        if _URI_WITH_PASSWORD.search(word):
            return _refusal(
                tool,
                subcommand,
                "An argument holds a URI with a password, which Ansible would log; refused. "
                "Set such parameters from vault through a role.",
            )

    args = rest
    if json and formatter is None:
        args = rest + ["--formatter", "json"]
        formatter = "json"
    elif json and formatter != "json":
        return _refusal(
            tool,
            subcommand,
            f"json=yes asks for JSON, but the command asks for --formatter {formatter}.",
        )
    return {
        "tool": tool,
        "subcommand": subcommand,
        "args": args,
        "readonly": readonly,
        "json": formatter == "json",
        "error": "",
    }


class FilterModule:
    """Ansible filters of the rabbitmq role."""

    def filters(self):
        return {"rabbitmq_cli_classify": rabbitmq_cli_classify}
