"""roles/rabbitmq/filter_plugins/rabbitmq_state.py: what tasks/access.yml still hands to modules."""

from __future__ import annotations

import importlib.util
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
_spec = importlib.util.spec_from_file_location(
    "rabbitmq_state", ROOT / "roles/rabbitmq/filter_plugins/rabbitmq_state.py"
)
state = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(state)

VHOSTS = [{"name": "celery", "default_queue_type": "quorum"}, {"name": "reports"}]
POLICY = {
    "name": "quorum-dead-letter",
    "vhost": "celery",
    "pattern": "^(?!dead-letter$)",
    "apply_to": "quorum_queues",
    "priority": 0,
    "tags": {"delivery-limit": 20, "dead-letter-exchange": "dlx"},
}
# GET /api/policies as RabbitMQ 4.0 answers for POLICY.
API_POLICY = {
    "vhost": "celery",
    "name": "quorum-dead-letter",
    "pattern": "^(?!dead-letter$)",
    "apply-to": "quorum_queues",
    "definition": {"delivery-limit": 20, "dead-letter-exchange": "dlx"},
    "priority": 0,
}


def test_nothing_pending_when_the_vhosts_match():
    have = [
        {"name": "/", "default_queue_type": "classic"},
        {
            "name": "celery",
            "default_queue_type": "quorum",
            "metadata": {"default_queue_type": "quorum"},
        },
        {"name": "reports", "default_queue_type": "classic"},
    ]
    assert state.rabbitmq_vhosts_pending(VHOSTS, have) == []


def test_a_missing_vhost_is_created_and_typed():
    pending = state.rabbitmq_vhosts_pending(VHOSTS, [{"name": "reports"}])
    assert pending == [
        {"name": "celery", "default_queue_type": "quorum", "create": True, "set_type": True}
    ]


def test_a_vhost_of_another_queue_type_is_retyped_not_created():
    have = [{"name": "celery", "metadata": {"default_queue_type": "classic"}}, {"name": "reports"}]
    pending = state.rabbitmq_vhosts_pending(VHOSTS, have)
    assert pending == [
        {"name": "celery", "default_queue_type": "quorum", "create": False, "set_type": True}
    ]


def test_unknown_vhosts_are_all_pending():
    pending = state.rabbitmq_vhosts_pending(VHOSTS, None)
    assert [(v["name"], v["create"], v["set_type"]) for v in pending] == [
        ("celery", True, True),
        ("reports", True, False),
    ]


def test_cli_listing_keys_work_too():
    # rabbitmqctl list_vhosts name default_queue_type --formatter json
    have = [
        {"name": "celery", "default_queue_type": "quorum"},
        {"name": "reports", "default_queue_type": "classic"},
    ]
    assert state.rabbitmq_vhosts_pending(VHOSTS, have) == []


def test_an_equal_policy_is_not_pending():
    assert state.rabbitmq_policies_pending([POLICY], [API_POLICY]) == []


def test_policy_differences_are_pending():
    for change in (
        {"pattern": "^x"},
        {"apply-to": "all"},
        {"priority": 1},
        {"definition": {"delivery-limit": 10, "dead-letter-exchange": "dlx"}},
        {"vhost": "other"},
    ):
        assert state.rabbitmq_policies_pending([POLICY], [{**API_POLICY, **change}]) == [POLICY], (
            change
        )


def test_policy_apply_to_defaults_to_all():
    policy = {k: v for k, v in POLICY.items() if k != "apply_to"}
    assert state.rabbitmq_policies_pending([policy], [{**API_POLICY, "apply-to": "all"}]) == []


def test_unknown_policies_are_all_pending():
    assert state.rabbitmq_policies_pending([POLICY], None) == [POLICY]


def test_only_stable_disabled_flags_are_enabled():
    flags = [
        {"name": "a", "state": "enabled", "stability": "stable"},
        {"name": "b", "state": "disabled", "stability": "stable"},
        {"name": "c", "state": "disabled", "stability": "experimental"},
        {"name": "d", "state": "enabled", "stability": "required"},
    ]
    assert state.rabbitmq_flags_to_enable(flags) == ["b"]
