"""roles/rabbitmq/filter_plugins/rabbitmq_users.py: what tasks/users.yml changes."""

from __future__ import annotations

import importlib.util
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
_spec = importlib.util.spec_from_file_location(
    "rabbitmq_users", ROOT / "roles/rabbitmq/filter_plugins/rabbitmq_users.py"
)
users_mod = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(users_mod)
plan = users_mod.rabbitmq_users_plan

FULL = {"configure": ".*", "write": ".*", "read": ".*"}
USERS = [
    {
        "name": "operator",
        "password": "operator-secret-0123456789",
        "tags": ["administrator"],
        "permissions": [{"vhost": "/", **FULL}, {"vhost": "celery", **FULL}],
    },
    {
        "name": "celery",
        "password": "celery-secret-0123456789",
        "tags": [],
        "permissions": [{"vhost": "celery", **FULL}],
    },
]
API_USERS = [{"name": "operator", "tags": ["administrator"]}, {"name": "celery", "tags": []}]
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
        code = 401 if status in ("no-tag", 401) else 200
        results.append({"item": user, "status": code, "json": body})
    return results


def names(changes):
    return [change["name"] for change in changes]


def test_nothing_to_do_when_everything_is_in_place():
    assert plan(USERS, API_USERS, API_PERMISSIONS, whoami(celery="no-tag")) == []


def test_a_wrong_password_is_set_and_nothing_else():
    (change,) = plan(USERS, API_USERS, API_PERMISSIONS, whoami(celery=401))
    assert (change["name"], change["set_password"], change["create"]) == ("celery", True, False)
    assert (change["tags"], change["permissions"], change["clear"]) == (None, [], [])


def test_a_missing_user_is_created_with_its_tags_and_permissions():
    (change,) = plan(USERS, API_USERS[:1], API_PERMISSIONS[:2], whoami())
    assert (change["name"], change["create"], change["set_password"]) == ("celery", True, False)
    assert change["tags"] == [] and change["permissions"] == USERS[1]["permissions"]


def test_other_tags_or_permissions_are_changed_and_extra_vhosts_cleared():
    retagged = [{"name": "operator", "tags": "administrator,monitoring"}, API_USERS[1]]
    (change,) = plan(USERS, retagged, API_PERMISSIONS, whoami())
    assert (change["name"], change["tags"]) == ("operator", ["administrator"])
    extra = API_PERMISSIONS + [{"user": "celery", "vhost": "/", **FULL}]
    (change,) = plan(USERS, API_USERS, extra, whoami())
    assert (change["name"], change["clear"], change["permissions"]) == ("celery", ["/"], [])
    narrower = API_PERMISSIONS[:2] + [{"user": "celery", "vhost": "celery", **FULL, "read": "^$"}]
    (change,) = plan(USERS, API_USERS, narrower, whoami())
    assert change["permissions"] == USERS[1]["permissions"]


def test_unknown_state_sets_every_password_and_permission():
    """The slow path: the API could not be read (rabbitmqctl list_users names it `user`)."""
    listed = [{"user": "operator", "tags": ["administrator"]}]
    changes = plan(USERS, listed, None, None)
    assert names(changes) == ["operator", "celery"]
    assert changes[0]["set_password"] and changes[0]["permissions"] == USERS[0]["permissions"]
    assert changes[1]["create"] and not changes[1]["set_password"]


def test_password_hash_is_rabbitmqs_sha256_format():
    """The worked example of RabbitMQ's passwords guide: salt 908D C60A, password test12."""
    salt = bytes.fromhex("908DC60A")
    assert users_mod.rabbitmq_password_hash("test12", salt) == (
        "kI3GCqW5JLMJa4iX1lo7X4D6XbYqlLgxIs30+P6tENUV2POR"
    )


def test_the_definitions_hold_hashes_of_the_users_that_need_a_password_and_no_password():
    changes = plan(USERS, API_USERS[:1], API_PERMISSIONS[:2], whoami(operator=401))
    document = users_mod.rabbitmq_users_definitions(changes, USERS)
    assert [u["name"] for u in document["users"]] == ["operator", "celery"]
    assert "secret-0123456789" not in str(document)
    import base64
    import hashlib

    raw = base64.b64decode(document["users"][1]["password_hash"])
    assert hashlib.sha256(raw[:4] + b"celery-secret-0123456789").digest() == raw[4:]
    assert document["users"][0]["tags"] == ["administrator"]


def test_a_user_given_no_permissions_keeps_what_it_has():
    bare = [{"name": "reports", "password": "reports-secret-0123456789", "tags": []}]
    existing = [{"name": "reports", "tags": []}]
    has = [{"user": "reports", "vhost": "reports", **FULL}]
    ok = [{"item": bare[0], "status": 401, "json": {"reason": "Not management user"}}]
    assert plan(bare, existing, has, ok) == []


def test_the_permission_path_escapes_both_names_as_path_segments():
    path = users_mod.rabbitmq_api_permission_path
    # The default vhost is "/": one segment, not two.
    assert path("/", "operator") == "permissions/%2F/operator"
    assert path("celery", "celery") == "permissions/celery/celery"
    assert path("a b/c?d", "x#y") == "permissions/a%20b%2Fc%3Fd/x%23y"
