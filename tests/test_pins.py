"""Versions are pinned in a few places that must agree: the hosts' wheelhouse
(roles/wheelhouse/defaults), the tasks_app package (pyproject.toml), the roles that install it
(celery_worker, flower) and the controller's requirements.txt (the client side of the round
trips and the fault run). This test ties them together."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)(?:\[[^\]]*\])?==(\S+)$")


def pins(lines) -> dict[str, str]:
    found = {}
    for line in lines:
        match = PIN.match(line.split("#", 1)[0].strip())
        if match:
            found[match.group(1).lower().replace("_", "-")] = match.group(2)
    return found


def defaults(role: str) -> dict:
    return yaml.safe_load((ROOT / "roles" / role / "defaults/main.yml").read_text())


PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
WHEELHOUSE = pins(defaults("wheelhouse")["wheelhouse_requirements"])
CONTROLLER = pins((ROOT / "requirements.txt").read_text().splitlines())


def test_every_wheelhouse_requirement_is_an_exact_pin():
    assert len(WHEELHOUSE) == len(defaults("wheelhouse")["wheelhouse_requirements"])


def test_the_roles_install_the_tasks_app_version_pyproject_builds():
    assert defaults("celery_worker")["celery_worker_app_version"] == PYPROJECT["version"]
    assert defaults("flower")["flower_app_version"] == PYPROJECT["version"]


def test_tasks_app_dependencies_are_in_the_wheelhouse_at_the_same_versions():
    dependencies = pins(PYPROJECT["dependencies"])
    assert dependencies, PYPROJECT["dependencies"]
    assert {name: WHEELHOUSE.get(name) for name in dependencies} == dependencies


def test_flower_is_installed_at_the_wheelhouse_version():
    assert defaults("flower")["flower_version"] == WHEELHOUSE["flower"]


def test_the_controller_runs_the_hosts_client_versions():
    shared = sorted(set(WHEELHOUSE) & set(CONTROLLER))
    assert {"celery", "kombu", "flower"} <= set(shared)
    assert {n: CONTROLLER[n] for n in shared} == {n: WHEELHOUSE[n] for n in shared}
