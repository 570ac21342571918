"""Shared helpers of the lab's testinfra checks."""

from __future__ import annotations

import functools
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

PROJECT = Path(os.environ.get("MOLECULE_PROJECT_DIRECTORY", Path(__file__).resolve().parents[3]))
LAB_INVENTORY = PROJECT / "inventory/lab/hosts.yml"
sys.path[:0] = [str(PROJECT), str(PROJECT / "lab")]
from inventory_vars import (  # noqa: E402 - after the path is set
    client_env,
    client_port,
    controller_ca,  # noqa: F401 - for the tests that import it from here
    settings,
    web_tls,
)

from filter_plugins.broker import amqp_urls, web_url  # noqa: E402 - after the path is set


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


def published_port(container: str, port: int) -> int:
    """The controller's loopback port that docker publishes for a container's port."""
    out = subprocess.run(
        ["docker", "port", container, f"{port}/tcp"], check=True, capture_output=True, text=True
    ).stdout
    for line in out.splitlines():
        address, _, host_port = line.rpartition(":")
        if address in ("127.0.0.1", "0.0.0.0"):  # noqa: S104 - parsing docker's output, not binding
            return int(host_port)
    raise AssertionError(f"{container}:{port} is not published on the controller: {out!r}")


def role_defaults(role: str) -> dict:
    return yaml.safe_load((PROJECT / "roles" / role / "defaults/main.yml").read_text())


@functools.cache
def lab_settings() -> dict:
    """The lab's settings as Ansible renders them (lab/inventory_vars.py): the one way the
    tests read a value of the inventory or a role default. Read once per test session."""
    return settings()


@pytest.fixture(scope="session")
def lab():
    return lab_settings()


def controller_url(lab: dict, container: str) -> str:
    """The application's broker URL (the inventory's app_broker, rendered by
    filter_plugins/broker.py) through the port docker publishes for the container's client
    AMQP port (amqps:// over TLS: add controller_env for the CA)."""
    port = published_port(container, client_port(lab, lab_groups()[container]))
    return amqp_urls({**lab["app_broker"], "hosts": ["127.0.0.1"], "port": port})[0]


def controller_env(lab: dict, container: str) -> dict[str, str]:
    """Environment of a tasks_app client on the controller that talks to the container."""
    return {"TASKS_APP_BROKER_URL": controller_url(lab, container), **client_env(lab)}


def controller_api(lab: dict, container: str) -> tuple[str, str | bool]:
    """The management API's base URL through the container's published management port, and
    what requests should verify it with (the lab's CA over TLS)."""
    port = lab["haproxy_management_port"]
    tls = web_tls(lab)
    base = web_url(
        {"host": "127.0.0.1", "port": published_port(container, port), "tls": tls["tls"]}
    )
    return f"{base}api", tls["ca_file"] or True


def expand_node_name(template: str, hostname: str) -> str:
    """Celery's %h / %n / %d expansion of a node name."""
    short, _, domain = hostname.partition(".")
    return template.replace("%h", hostname).replace("%n", short).replace("%d", domain)


def controller_web_url(lab: dict, container: str, port: int) -> str:
    """A lab web interface's URL (no credentials) through the port docker publishes for a
    container's ``port``: scheme from lab/inventory_vars.web_tls, rendered by
    filter_plugins/broker.py."""
    endpoint = {"host": "127.0.0.1", "port": published_port(container, port)}
    return web_url({**endpoint, "tls": web_tls(lab)["tls"]})


def assert_whole_system_answers() -> None:
    """After an operation: every node, every worker's ping, beat, Flower, every HAProxy backend
    and one virtual IP answer again within 120 s (lab/chaos.py's probes, as the fault run's)."""
    from chaos import Lab, wait_until  # lab/ is on sys.path (above)

    lab = Lab.discover()
    try:
        wait_until("the whole system", lambda: not lab.unhealthy(), 120, every=2)
    except TimeoutError as exc:
        raise AssertionError(f"{exc}; failing: {', '.join(lab.unhealthy())}") from exc


ANSI = re.compile(r"\x1b\[[0-9;]*m")
RECAP = re.compile(r"^(\S+)\s*:\s*ok=\d+\s+changed=(\d+)", re.MULTILINE)


def run_playbook(
    inventory: Path, playbook: str, *args: str, extra_env: dict[str, str] | None = None
) -> tuple[int, str, dict[str, int]]:
    """Run a playbook of the project against the lab from the controller.

    Returns the exit code, the plain output and the `changed` count of each host's recap.
    Molecule forces colours on for its own runs; this run is read by a program, so not here.
    ``extra_env`` adds environment variables (ANSIBLE_* settings) for this run only.
    """
    # ansible.cfg decides the strategy (Mitogen), whatever ANSIBLE_STRATEGY the caller exported.
    dropped = ("ANSIBLE_FORCE_COLOR", "PY_COLORS", "ANSIBLE_STRATEGY")
    env = {k: v for k, v in os.environ.items() if k not in dropped}
    env.update(ANSIBLE_CONFIG=str(PROJECT / "ansible.cfg"), ANSIBLE_NOCOLOR="1")
    env.update(extra_env or {})
    result = subprocess.run(
        [
            str(Path(sys.executable).parent / "ansible-playbook"),
            "-i",
            str(inventory),
            str(PROJECT / playbook),
            *args,
        ],
        capture_output=True,
        text=True,
        env=env,
        cwd=PROJECT,
        timeout=900,
    )
    output = ANSI.sub("", result.stdout + result.stderr)
    changed = {host: int(count) for host, count in RECAP.findall(ANSI.sub("", result.stdout))}
    return result.returncode, output, changed


def pytest_configure(config):
    config.addinivalue_line(
        "markers",
        "behaviour: drives playbooks and changes the lab on purpose (bad input, membership, "
        "operations); run once per `molecule test` by side_effect, before the fault run. "
        "verify (-m 'not behaviour') only checks the state of the system.",
    )
    config.addinivalue_line(
        "markers",
        "long: a long proof of behaviour (membership, upgrades, most bad-input cases): "
        "`make behaviour` runs it against the running lab, `make test` leaves it out.",
    )


# Tests of behaviour, not state: side_effect runs them (pytest -m behaviour), verify does not.
behaviour = pytest.mark.behaviour
# Long proofs of behaviour: `make behaviour` runs every test of behaviour against the running
# lab; `make test` (side_effect) leaves these out (-m "behaviour and not long").
long = pytest.mark.long
