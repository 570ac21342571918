"""What to change so that RabbitMQ's users match the inventory.

``rabbitmq_users_plan(users, existing, permissions, whoami)`` takes the role's users (name,
password, tags, permissions) and what RabbitMQ reports: ``existing``, its users with their
tags (``GET /api/users``, or ``rabbitmqctl list_users`` whose key is ``user``); ``permissions``,
every user's permissions (``GET /api/permissions``), or None when unknown; ``whoami``, one
``GET /api/whoami`` per user made with that user's inventory password (the registered loop
results), or None when unknown. It returns one entry per user that needs a change:

    {"name", "create": bool, "set_password": bool,
     "tags": [..] or None (leave), "permissions": [..] (set these), "clear": [vhost, ..]}

Unknown passwords are set again and unknown permissions set (nothing cleared): the slow path
of tasks/users.yml, taken when the management API cannot be read as the operator (a first
install, or a rotated operator password). The plan holds no password: tasks/users.yml applies
it: new users and passwords are imported as RabbitMQ's salted hashes from a private file
(rabbitmq_users_definitions), tags and permissions set with rabbitmqctl, so no password
reaches a process list or a log.
"""

from __future__ import annotations

import base64
import hashlib
import os
from typing import Any
from urllib.parse import quote

PERMISSION_KINDS = ("configure", "write", "read")


def _tags(value: Any) -> set[str]:
    if isinstance(value, str):  # RabbitMQ 3.x: "administrator,monitoring"
        return {tag for tag in value.split(",") if tag}
    return set(value or [])


def _permission(entry: dict) -> tuple[str, ...]:
    return (entry["vhost"], *(str(entry.get(kind, "")) for kind in PERMISSION_KINDS))


def _password_ok(result: dict) -> bool:
    """A whoami with the user's password: 200, or 401 only because the user has no management
    tag (the application user); any other answer counts as a wrong password."""
    status = result.get("status")
    if status == 200:
        return True
    body = result.get("json") or {}
    return status == 401 and body.get("reason") == "Not management user"


def rabbitmq_users_plan(
    users: list[dict],
    existing: list[dict],
    permissions: list[dict] | None = None,
    whoami: list[dict] | None = None,
) -> list[dict]:
    have_tags = {
        (user.get("name") or user.get("user")): _tags(user.get("tags")) for user in existing
    }
    passwords = {
        result["item"]["name"]: _password_ok(result)
        for result in whoami or []
        if isinstance(result.get("item"), dict)
    }
    plan = []
    for user in users:
        name = user["name"]
        want_tags = _tags(user.get("tags"))
        want = {_permission(entry): entry for entry in user.get("permissions") or []}
        create = name not in have_tags
        if permissions is None or create:
            to_set, clear = list(want.values()), []
        else:
            has = {_permission(p) for p in permissions if p.get("user") == name}
            to_set = [entry for key, entry in want.items() if key not in has]
            wanted_vhosts = {key[0] for key in want}
            # Other vhosts' permissions are cleared only when the inventory lists some: a user
            # given no permissions keeps what it has.
            clear = sorted({key[0] for key in has if want and key[0] not in wanted_vhosts})
        change = {
            "name": name,
            "create": create,
            "set_password": not create and not passwords.get(name, False),
            "tags": None if not create and have_tags[name] == want_tags else sorted(want_tags),
            "permissions": to_set,
            "clear": clear,
        }
        if (
            change["create"]
            or change["set_password"]
            or change["tags"] is not None
            or to_set
            or clear
        ):
            plan.append(change)
    return plan


def rabbitmq_password_hash(password: str, salt: bytes | None = None) -> str:
    """RabbitMQ's stored form of a password (rabbit_password_hashing_sha256): a random 32-bit
    salt, then SHA-256 of the salt and the UTF-8 password, the salt prepended, base64."""
    salt = os.urandom(4) if salt is None else salt
    digest = hashlib.sha256(salt + password.encode("utf-8")).digest()
    return base64.b64encode(salt + digest).decode("ascii")


def rabbitmq_users_definitions(plan: list[dict], users: list[dict]) -> dict:
    """A definitions document (rabbitmqctl import_definitions) holding the users of the plan
    that must be created or get a new password, with hashes of the inventory's passwords and
    their tags: a password never goes on a command line."""
    passwords = {user["name"]: user["password"] for user in users}
    tags = {user["name"]: sorted(_tags(user.get("tags"))) for user in users}
    return {
        "users": [
            {
                "name": change["name"],
                "password_hash": rabbitmq_password_hash(passwords[change["name"]]),
                "hashing_algorithm": "rabbit_password_hashing_sha256",
                "tags": tags[change["name"]],
                "limits": {},
            }
            for change in plan
            if change["create"] or change["set_password"]
        ]
    }


def rabbitmq_api_permission_path(vhost: str, user: str) -> str:
    """The management API's path of one user's permissions on one vhost: both names are path
    segments, so every reserved character is escaped, "/" (the default vhost) included."""
    return f"permissions/{quote(vhost, safe='')}/{quote(user, safe='')}"


class FilterModule:
    """Ansible filters of the rabbitmq role: what to change for the users."""

    def filters(self):
        return {
            "rabbitmq_users_plan": rabbitmq_users_plan,
            "rabbitmq_users_definitions": rabbitmq_users_definitions,
            "rabbitmq_api_permission_path": rabbitmq_api_permission_path,
        }
