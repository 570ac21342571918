"""Which vhosts, policies and feature flags tasks/access.yml has to hand to their modules.

The community.rabbitmq modules for vhosts, policies and feature flags have no HTTP mode: each
call boots a `rabbitmqctl` Erlang VM, several seconds apiece once the distribution runs over
TLS. tasks/access.yml therefore reads what RabbitMQ has through the management API (one HTTP
call per kind) and calls the modules only for what these filters find different. When the API
could not be read (``None``: a first install, a rotated operator password) every item is
pending, and the modules, which are idempotent, decide. A filter may report an item that does
not differ (the module then reports no change); it never hides one that does.

``rabbitmq_vhosts_pending(vhosts, have)``: the inventory's vhosts (name, optional
default_queue_type) against ``GET /api/vhosts``; each pending one gets ``create`` (missing) and
``set_type`` (its default queue type differs, or it is missing).

``rabbitmq_policies_pending(policies, have)``: the inventory's policies (name, vhost, pattern,
apply_to, priority, tags) against ``GET /api/policies`` (vhost, name, pattern, apply-to,
priority, definition).

``rabbitmq_flags_to_enable(flags)``: the names of the stable feature flags that are disabled,
from ``GET /api/feature-flags`` or ``rabbitmqctl list_feature_flags --formatter json`` (same keys).
"""

from __future__ import annotations

from typing import Any


def _queue_type(vhost: dict) -> str:
    """RabbitMQ 3.13+/4.x report it at the top level and in ``metadata``."""
    return str(
        vhost.get("default_queue_type")
        or (vhost.get("metadata") or {}).get("default_queue_type")
        or ""
    )


def rabbitmq_vhosts_pending(vhosts: list[dict], have: list[dict] | None) -> list[dict]:
    existing = None if have is None else {vhost["name"]: vhost for vhost in have}
    pending = []
    for vhost in vhosts:
        current = None if existing is None else existing.get(vhost["name"])
        create = existing is None or current is None
        want_type = vhost.get("default_queue_type")
        set_type = bool(want_type) and (current is None or _queue_type(current) != str(want_type))
        if create or set_type:
            pending.append({**vhost, "create": create, "set_type": set_type})
    return pending


def _same_policy(want: dict, current: dict) -> bool:
    return (
        current.get("pattern") == want["pattern"]
        and current.get("apply-to") == want.get("apply_to", "all")
        and str(current.get("priority", 0)) == str(want.get("priority", 0))
        and current.get("definition") == want.get("tags", {})
    )


def rabbitmq_policies_pending(policies: list[dict], have: list[dict] | None) -> list[dict]:
    if have is None:
        return list(policies)
    existing = {(policy.get("vhost"), policy.get("name")): policy for policy in have}
    return [
        policy
        for policy in policies
        if (policy["vhost"], policy["name"]) not in existing
        or not _same_policy(policy, existing[(policy["vhost"], policy["name"])])
    ]


def rabbitmq_flags_to_enable(flags: list[dict[str, Any]]) -> list[str]:
    return [
        flag["name"]
        for flag in flags
        if flag.get("stability") == "stable" and flag.get("state") == "disabled"
    ]


class FilterModule:
    """Ansible filters of the rabbitmq role: what access.yml must still change."""

    def filters(self):
        return {
            "rabbitmq_vhosts_pending": rabbitmq_vhosts_pending,
            "rabbitmq_policies_pending": rabbitmq_policies_pending,
            "rabbitmq_flags_to_enable": rabbitmq_flags_to_enable,
        }
