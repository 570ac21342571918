"""Bad input is refused with a clear message before any host changes: site.yml checks every
tier's input first, so even a bad Flower password stops the run before RabbitMQ is touched."""

from __future__ import annotations

import json

import pytest
from conftest import LAB_INVENTORY, behaviour, run_playbook

BAD_INPUTS = {
    "short cookie": (
        {"rabbitmq_erlang_cookie": "tooshort"},
        "rabbitmq_erlang_cookie must be 32 to 255 letters and digits",
    ),
    "cookie with symbols": (
        {"rabbitmq_erlang_cookie": "a" * 31 + "!$"},
        "with characters other than letters and digits",
    ),
    # Valid on its own, but not the cookie the running cluster has: rotation is an operation.
    "different cookie on a running cluster": (
        {"rabbitmq_erlang_cookie": "Rotated" + "0" * 40},
        "already runs with a different Erlang cookie",
    ),
    "invalid user name": ({"rabbitmq_app_user": "bad user"}, "Invalid names"),
    "short password": ({"rabbitmq_app_password": "short"}, "has no password or a short one"),
    "short HAProxy stats password": ({"haproxy_stats_password": "short"}, "haproxy_stats_password"),
    "short Flower password": (
        {"flower_basic_auth_password": "short"},
        "flower_basic_auth_password",
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
}


@behaviour
@pytest.mark.parametrize("case", sorted(BAD_INPUTS))
def test_bad_input_is_refused_before_anything_changes(case, tmp_path):
    extra, message = BAD_INPUTS[case]
    extra_file = tmp_path / "extra.json"
    extra_file.write_text(json.dumps(extra))
    rc, output, changed = run_playbook(LAB_INVENTORY, "site.yml", "-e", f"@{extra_file}")
    assert rc != 0, output
    assert message in output, output[-3000:]
    assert changed, output[-3000:]
    assert set(changed.values()) == {0}, changed
