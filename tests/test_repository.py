"""Fast structural checks of the repository: no containers needed."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
ROLES = sorted(p.name for p in (ROOT / "roles").iterdir() if (p / "tasks/main.yml").exists())


class _Loader(yaml.SafeLoader):
    """Reads Ansible YAML (with !vault tags) and molecule.yml (with ${VAR} strings)."""


_Loader.add_constructor("!vault", lambda loader, node: "<vault>")


def load(path: Path):
    return yaml.load(path.read_text(), Loader=_Loader)  # noqa: S506 - safe loader subclass


@pytest.mark.parametrize("role", ROLES)
def test_argument_specs_document_exactly_the_defaults(role):
    defaults = load(ROOT / "roles" / role / "defaults/main.yml") or {}
    specs = load(ROOT / "roles" / role / "meta/argument_specs.yml")["argument_specs"]
    for entry_point, spec in specs.items():
        assert set(spec["options"]) == set(defaults), f"{role}:{entry_point}"
        for name, option in spec["options"].items():
            assert option.get("description"), f"{role}: {name} has no description"


@pytest.mark.parametrize("role", ROLES)
def test_role_variables_carry_the_role_prefix(role):
    defaults = load(ROOT / "roles" / role / "defaults/main.yml") or {}
    assert all(name.startswith(f"{role}_") for name in defaults), sorted(defaults)
    internal = (
        load(ROOT / "roles" / role / "vars/main.yml")
        if (ROOT / "roles" / role / "vars/main.yml").exists()
        else {}
    )
    assert all(name.startswith(f"_{role}_") for name in internal or {}), sorted(internal)


@pytest.mark.parametrize("role", ROLES)
def test_role_has_a_readme(role):
    assert (ROOT / "roles" / role / "README.md").exists()


def _inventory_hosts(path: Path) -> set[str]:
    hosts: set[str] = set()

    def walk(body):
        body = body or {}
        hosts.update((body.get("hosts") or {}).keys())
        for child in (body.get("children") or {}).values():
            walk(child)

    walk(load(path)["all"])
    return hosts


def test_molecule_platforms_are_the_lab_inventory():
    molecule = load(ROOT / "molecule/default/molecule.yml")
    platforms = {p["name"] for p in molecule["platforms"]}
    assert platforms == _inventory_hosts(ROOT / "inventory/lab/hosts.yml")
    for platform in molecule["platforms"]:
        assert platform["hostname"] == platform["name"]
        assert not platform.get("privileged"), "this engine refuses privileged containers"
        for published in platform.get("published_ports", []):
            assert published.startswith("127.0.0.1:"), f"{published} must bind loopback only"


def test_molecule_links_the_lab_inventory_instead_of_copying_it():
    links = load(ROOT / "molecule/default/molecule.yml")["provisioner"]["inventory"]["links"]
    for kind, target in links.items():
        resolved = (ROOT / "molecule/default" / target).resolve()
        assert resolved.is_relative_to(ROOT / "inventory/lab"), kind


def test_site_only_imports_playbooks():
    for play in load(ROOT / "site.yml"):
        assert set(play) == {"name", "ansible.builtin.import_playbook"}, play


SECRET_NAME = re.compile(r"(password|passwd|cookie|secret|token)", re.IGNORECASE)


@pytest.mark.parametrize(
    "path",
    sorted(
        p
        for p in (ROOT / "inventory").rglob("*.yml")
        if p.name != "vault.yml"  # the lab's generated file is git-ignored
    ),
    ids=lambda p: str(p.relative_to(ROOT)),
)
def test_inventories_hold_no_literal_secret(path):
    def walk(node, key=""):
        if isinstance(node, dict):
            for k, v in node.items():
                walk(v, str(k))
        elif isinstance(node, list):
            for v in node:
                walk(v, key)
        elif (
            isinstance(node, str)
            and SECRET_NAME.search(key)
            and not key.endswith(("_user", "_file"))
        ):
            assert "{{" in node or node == "<vault>", f"{path}: {key} holds a literal value"

    walk(load(path))
