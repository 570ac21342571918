"""roles/rabbitmq/filter_plugins/rabbitmq_users.py: which users need the module."""

from __future__ import annotations

import importlib.util
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
_spec = importlib.util.spec_from_file_location(
    "rabbitmq_users", ROOT / "roles/rabbitmq/filter_plugins/rabbitmq_users.py"
)
users_mod = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(users_mod)
in_sync = users_mod.rabbitmq_users_in_sync

FULL = {"configure": ".*", "write": ".*", "read": ".*"}
USERS = [
    {
        "name": "operator",
        "password": "p1",
        "tags": ["administrator"],
        "permissions": [{"vhost": "/", **FULL}, {"vhost": "celery", **FULL}],
    },
    {"name": "celery", "password": "p2", "tags": [], "permissions": [{"vhost": "celery", **FULL}]},
]
API_USERS = [
    {"name": "operator", "tags": ["administrator"]},
    {"name": "celery", "tags": []},
]
API_PERMISSIONS = [
    {"user": "operator", "vhost": "/", **FULL},
    {"user": "operator", "vhost": "celery", **FULL},
    {"user": "celery", "vhost": "celery", **FULL},
]


def whoami(**statuses):
    results = []
    for user in USERS:
        status = statuses.get(user["name"], 200)
        body = {"reason": "Not management user"} if status == "no-tag" else {}
        results.append(
            {"item": user, "status": 401 if status in ("no-tag", 401) else 200, "json": body}
        )
    return results


def test_everything_in_place():
    assert in_sync(USERS, API_USERS, API_PERMISSIONS, whoami(celery="no-tag")) == [
        "operator",
        "celery",
    ]


def test_a_wrong_password_a_missing_user_other_tags_or_permissions_need_the_module():
    assert in_sync(USERS, API_USERS, API_PERMISSIONS, whoami(celery=401)) == ["operator"]
    assert in_sync(USERS, API_USERS[:1], API_PERMISSIONS, whoami()) == ["operator"]
    retagged = [{"name": "operator", "tags": "administrator,monitoring"}, API_USERS[1]]
    assert in_sync(USERS, retagged, API_PERMISSIONS, whoami()) == ["celery"]
    extra = API_PERMISSIONS + [{"user": "celery", "vhost": "/", **FULL}]
    assert in_sync(USERS, API_USERS, extra, whoami()) == ["operator"]
    narrower = API_PERMISSIONS[:2] + [{"user": "celery", "vhost": "celery", **FULL, "read": "^$"}]
    assert in_sync(USERS, API_USERS, narrower, whoami()) == ["operator"]


def test_a_skipped_whoami_counts_as_unknown():
    skipped = [{"item": user, "skipped": True} for user in USERS]
    assert in_sync(USERS, API_USERS, API_PERMISSIONS, skipped) == []
