"""Which users already match the inventory, from what the management API reports.

``rabbitmq_users_in_sync(users, api_users, api_permissions, whoami)`` takes the role's users
(name, password, tags, permissions) and three management API answers read on the anchor:
``GET /api/users``, ``GET /api/permissions`` and one ``GET /api/whoami`` per user made with
that user's inventory password (the registered loop results). It returns the names whose
tags, permissions (exactly: no vhost more, none less) and password already are the
inventory's: tasks/users.yml runs the rabbitmq_user module only for the others, so a converge
that changes nothing boots no Erlang VM per user and puts no password on a process list.
"""

from __future__ import annotations

from typing import Any

PERMISSION_KINDS = ("configure", "write", "read")


def _tags(value: Any) -> set[str]:
    if isinstance(value, str):  # RabbitMQ 3.x: "administrator,monitoring"
        return {tag for tag in value.split(",") if tag}
    return set(value or [])


def _permissions(entries: list[dict]) -> set[tuple[str, ...]]:
    return {
        (entry["vhost"], *(str(entry.get(kind, "")) for kind in PERMISSION_KINDS))
        for entry in entries
    }


def _password_ok(result: dict) -> bool:
    """A whoami with the user's password: 200, or 401 only because the user has no management
    tag (the application user); any other answer counts as a wrong password."""
    status = result.get("status")
    if status == 200:
        return True
    body = result.get("json") or {}
    return status == 401 and body.get("reason") == "Not management user"


def rabbitmq_users_in_sync(
    users: list[dict], api_users: list[dict], api_permissions: list[dict], whoami: list[dict]
) -> list[str]:
    existing = {user["name"]: _tags(user.get("tags")) for user in api_users}
    passwords = {
        result["item"]["name"]: _password_ok(result)
        for result in whoami
        if isinstance(result.get("item"), dict)
    }
    in_sync = []
    for user in users:
        name = user["name"]
        if name not in existing or not passwords.get(name, False):
            continue
        if existing[name] != _tags(user.get("tags")):
            continue
        has = _permissions([p for p in api_permissions if p.get("user") == name])
        if has != _permissions(user.get("permissions") or []):
            continue
        in_sync.append(name)
    return in_sync


class FilterModule:
    """Ansible filters of the rabbitmq role: users that need no change."""

    def filters(self):
        return {"rabbitmq_users_in_sync": rabbitmq_users_in_sync}
