"""Shared helpers of the lab's testinfra checks."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import yaml

PROJECT = Path(os.environ.get("MOLECULE_PROJECT_DIRECTORY", Path(__file__).resolve().parents[3]))
LAB_INVENTORY = PROJECT / "inventory/lab/hosts.yml"


def _walk(group: str, body: dict, memberships: dict[str, set[str]], parents: list[str]) -> None:
    body = body or {}
    for host in body.get("hosts") or {}:
        memberships.setdefault(host, set()).update(parents + [group])
    for child, child_body in (body.get("children") or {}).items():
        _walk(child, child_body, memberships, parents + [group])


def lab_groups() -> dict[str, set[str]]:
    """Host -> groups, read straight from the lab inventory file (not through Ansible)."""
    memberships: dict[str, set[str]] = {}
    _walk("all", yaml.safe_load(LAB_INVENTORY.read_text())["all"], memberships, [])
    return {host: groups - {"all"} for host, groups in memberships.items()}


@pytest.fixture(scope="session")
def expected_groups() -> dict[str, set[str]]:
    return lab_groups()
