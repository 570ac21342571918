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
        # A required option without a default is a parameter of that entry point (the call
        # passes it, as celery_worker passes wheelhouse's venv its directory); every other
        # option is a role variable with its default in defaults/main.yml, and each entry point
        # documents the defaults it reads.
        parameters = {n for n, o in spec["options"].items() if o.get("required")}
        assert not parameters & set(defaults), f"{role}:{entry_point}"
        assert set(spec["options"]) - parameters <= set(defaults), f"{role}:{entry_point}"
        if entry_point == "main":
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


def test_site_checks_every_tier_before_it_changes_anything():
    # The tests of bad input (molecule/default/tests/test_preflight.py) rely on both: the first
    # import is the checks, and the checks only include the roles' preflight entry points.
    first = load(ROOT / "site.yml")[0]["ansible.builtin.import_playbook"]
    assert first == "playbooks/preflight.yml"
    for play in load(ROOT / first):
        for task in play["tasks"]:
            assert set(task) == {"name", "ansible.builtin.include_role"}, task
            assert task["ansible.builtin.include_role"]["tasks_from"] == "preflight", task


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


def test_vault_files_outside_the_lab_are_encrypted():
    for path in (ROOT / "inventory").rglob("vault.yml"):
        if path.parent == ROOT / "inventory/lab/group_vars/all":
            continue  # generated by lab/generate_secrets.py, git-ignored
        assert path.read_text().startswith("$ANSIBLE_VAULT;"), (
            f"{path} is not ansible-vault encrypted"
        )


def test_lab_vault_file_is_git_ignored():
    ignored = (ROOT / ".gitignore").read_text().splitlines()
    assert "/inventory/lab/group_vars/all/vault.yml" in ignored


def test_lab_virtual_ip_is_in_the_lab_subnet_but_never_handed_out():
    """keepalived's address must be on the lab network, outside the range docker assigns."""
    import ipaddress

    molecule = load(ROOT / "molecule/default/molecule.yml")
    lab_vars = load(ROOT / "inventory/lab/group_vars/all/main.yml")
    vip = ipaddress.ip_address(lab_vars["keepalived_virtual_ip"])
    for platform in molecule["platforms"]:
        for network in platform.get("docker_networks", []):
            for ipam in network["ipam_config"]:
                assert vip in ipaddress.ip_network(ipam["subnet"])
                assert vip not in ipaddress.ip_network(ipam["iprange"])
    load_balancers = [p for p in molecule["platforms"] if p["name"].startswith("lb")]
    assert len(load_balancers) >= 2
    # keepalived (the virtual IP) and every host's firewall (nftables) need it.
    for platform in molecule["platforms"]:
        assert "NET_ADMIN" in platform["capabilities"], platform["name"]


def test_the_service_sandboxing_is_the_same_for_every_python_service():
    """celery_worker and flower each carry sandboxing.j2 (a role's templates are its own): the
    two copies must not drift apart; change both, or neither."""
    copies = {
        role: (ROOT / "roles" / role / "templates/etc/systemd/system/sandboxing.j2").read_text()
        for role in ("celery_worker", "flower")
    }
    assert copies["celery_worker"] == copies["flower"]


def test_every_play_that_gathers_facts_gathers_the_same_few():
    """The facts are read for every task on every host: plays gather the network subset (and
    the minimal one, always there), not the hardware facts nothing reads. One subset for all,
    so that whichever play gathers first, every later one finds the facts it expects."""
    gathering = {}
    for path in sorted((ROOT / "playbooks").rglob("*.yml")):
        for play in load(path) or []:
            if any(key.endswith("import_playbook") for key in play):
                continue
            if play.get("gather_facts", True):
                gathering[f"{path.relative_to(ROOT)}: {play['name']}"] = play.get("gather_subset")
    assert gathering, "no play gathers facts"
    # A play after the first of its file finds the facts of the first (gathering = smart).
    firsts = {name: subset for name, subset in gathering.items() if subset is not None}
    assert set(map(tuple, firsts.values())) == {("network",)}, firsts
    for path in {name.split(":")[0] for name in gathering}:
        plays = [p for p in load(ROOT / path) if not any(k.endswith("import_playbook") for k in p)]
        first = next(p for p in plays if p.get("gather_facts", True))
        assert first.get("gather_subset") == ["network"], f"{path}: {first['name']}"
