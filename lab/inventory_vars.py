"""The lab inventory's settings, as Ansible renders them.

The one way the lab's tooling (lab/report.py, lab/chaos.py) and the tests
(molecule/default/tests/conftest.py) read a value of the inventory: role defaults, overlaid
with every variable of the lab's group_vars rendered by Ansible itself (templates and the
generated secrets resolved), so that nothing here re-assembles what the inventory states
once, such as the application's broker connection (``app_broker``).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
INVENTORY = ROOT / "inventory/lab"
ROLES = ("rabbitmq", "haproxy", "keepalived", "celery_worker", "flower")


def role_defaults() -> dict:
    """The roles' defaults as written (a group_vars value overrides them, as in Ansible)."""
    merged: dict = {}
    for role in ROLES:
        merged.update(yaml.safe_load((ROOT / "roles" / role / "defaults/main.yml").read_text()))
    return merged


def group_var_names() -> list[str]:
    names: list[str] = []
    for path in sorted((INVENTORY / "group_vars/all").glob("*.yml")):
        names += list(yaml.safe_load(path.read_text()) or {})
    return names


def rendered(names: list[str]) -> dict:
    """The named variables as Ansible renders them for the lab (one ad hoc call, ~1 s)."""
    expression = "{{ {" + ", ".join(f"'{name}': {name}" for name in names) + "} }}"
    env = dict(
        os.environ,
        ANSIBLE_CONFIG=str(ROOT / "ansible.cfg"),
        ANSIBLE_LOAD_CALLBACK_PLUGINS="1",
        ANSIBLE_STDOUT_CALLBACK="ansible.builtin.json",
        ANSIBLE_NOCOLOR="1",
    )
    proc = subprocess.run(
        [
            str(Path(sys.executable).parent / "ansible"),
            # A host of the inventory, not the implicit localhost: inventory_dir is set for it
            # (tls_ca_dir uses it). debug runs on the controller: nothing connects to the host.
            "all[0]",
            "-i",
            str(INVENTORY / "hosts.yml"),
            "-m",
            "ansible.builtin.debug",
            "-a",
            f"msg={expression}",
        ],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        timeout=120,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"ansible could not render the lab's variables: {proc.stderr[-2000:]}")
    # The JSON document starts at its first line "{"; the timing callbacks print around it.
    start = 0 if proc.stdout.startswith("{") else proc.stdout.index("\n{") + 1
    document, _ = json.JSONDecoder().raw_decode(proc.stdout[start:])
    (result,) = document["plays"][0]["tasks"][0]["hosts"].values()
    return result["msg"]


def settings() -> dict:
    """Role defaults overlaid with the lab's group_vars (secrets included), rendered."""
    return {**role_defaults(), **rendered(group_var_names())}


def controller_ca(values: dict) -> str | None:
    """The CA file the controller verifies the lab's services with (roles/tls made it in the
    inventory's tls_ca_dir), or None when the lab runs without TLS."""
    if not values.get("tls_enabled"):
        return None
    return str(Path(values["tls_ca_dir"]) / "ca.pem")


def web_tls(values: dict) -> dict:
    """How the controller reaches the lab's web interfaces (the management UI through the load
    balancers, Flower): ``{"tls": bool, "ca_file": path or None}``, for filter_plugins/broker.py's
    ``web_url`` and the browser test. The one place that decides it: no test assembles a
    scheme or names a CA file itself."""
    ca_file = controller_ca(values)
    return {"tls": ca_file is not None, "ca_file": ca_file}


def client_env(values: dict) -> dict[str, str]:
    """The TASKS_APP_* variables a client on the controller adds to its broker URL: the CA the
    broker is verified against, over TLS (tasks_app.config.broker_ssl)."""
    ca_file = controller_ca(values)
    tls = bool(values["app_broker"].get("tls"))
    return {"TASKS_APP_BROKER_CA_FILE": ca_file} if tls and ca_file else {}


def client_port(values: dict, host_groups: set[str]) -> int:
    """The AMQP port clients use on a lab host: the load balancer's, or a node's own (its TLS
    listener when the lab runs TLS)."""
    if "haproxy" in host_groups:
        return int(values["haproxy_amqp_port"])
    tls = bool(values["app_broker"].get("tls"))
    return int(values["rabbitmq_amqps_port"] if tls else values["rabbitmq_amqp_port"])
