#!/usr/bin/env python3
"""Report on the running lab: what runs where, a live round trip through the load balancer
compared with a direct connection to one node (same run, same client), and how to log in.

Exit status is non-zero when a host is not running or a round trip misses a result.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import subprocess
import sys
from pathlib import Path

import inventory_vars
from inventory_vars import INVENTORY, ROOT, client_port, settings, web_tls

sys.path.insert(0, str(ROOT))
from filter_plugins.broker import amqp_urls  # noqa: E402 - the project root is not on the path

BIN = Path(sys.executable).parent


def inventory() -> dict:
    out = subprocess.run(
        [str(BIN / "ansible-inventory"), "-i", str(INVENTORY / "hosts.yml"), "--list"],
        check=True,
        capture_output=True,
        text=True,
        cwd=ROOT,
    ).stdout
    return json.loads(out)


def host_groups(inv: dict) -> dict[str, list[str]]:
    groups: dict[str, list[str]] = {}
    for group, body in inv.items():
        if group in ("_meta", "all", "ungrouped") or not isinstance(body, dict):
            continue
        for host in body.get("hosts", []):
            groups.setdefault(host, []).append(group)
    return groups


def container(name: str) -> tuple[str, dict[int, int]]:
    proc = subprocess.run(
        [
            "docker",
            "inspect",
            "--format",
            "{{json .State.Status}}|{{json .NetworkSettings.Ports}}",
            name,
        ],
        capture_output=True,
        text=True,
    )
    if proc.returncode != 0:
        return "absent", {}
    status, ports = proc.stdout.strip().split("|", 1)
    published = {}
    for inner, binds in (json.loads(ports) or {}).items():
        for bind in binds or []:
            published[int(inner.split("/")[0])] = int(bind["HostPort"])
    return json.loads(status), published


def controller_url(conf: dict, port: int) -> str:
    """The application's broker URL (the inventory's app_broker) as the controller reaches it:
    through a port docker publishes on the controller's loopback."""
    return amqp_urls({**conf["app_broker"], "hosts": ["127.0.0.1"], "port": port})[0]


def roundtrip(conf: dict, targets: dict[str, int], count: int) -> int:
    args = [sys.executable, "-m", "tasks_app", "roundtrip", "-n", str(count), "--timeout", "300"]
    for name, port in targets.items():
        args += ["--target", f"{name}={controller_url(conf, port)}"]
    print(f"\nRound trip from the controller: {count} add(i, i) per target, every result checked")
    env = {**os.environ, **inventory_vars.client_env(conf)}
    return subprocess.run(args, cwd=ROOT, timeout=900, env=env).returncode


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("-n", type=int, default=300, help="tasks per target (0: no round trip)")
    parser.add_argument(
        "--env",
        action="store_true",
        help="only print shell exports of the broker URLs for a client on the controller",
    )
    args = parser.parse_args()

    groups = host_groups(inventory())
    if args.env:
        ports = {host: container(host)[1] for host in groups}
        print(client_env(groups, ports), end="")
        return 0
    print(f"{'host':<10} {'state':<9} {'groups':<38} published on 127.0.0.1")
    states, ports = {}, {}
    for host in sorted(groups):
        states[host], ports[host] = container(host)
        published = " ".join(f"{h}->{c}" for c, h in sorted(ports[host].items())) or "-"
        print(f"{host:<10} {states[host]:<9} {','.join(sorted(groups[host])):<38} {published}")
    if any(state != "running" for state in states.values()):
        print("\nSome hosts are not running: make lab")
        return 1

    conf = settings()
    lb = next(h for h in sorted(groups) if "haproxy" in groups[h])
    node = next(h for h in sorted(groups) if "rabbitmq" in groups[h])
    flower = next((h for h in sorted(groups) if "flower" in groups[h]), None)
    status = 0
    if args.n > 0:
        # Interleaved and repeated, so that warm-up and noise show next to the difference.
        amqp_lb = ports[lb][client_port(conf, groups[lb])]
        amqp_node = ports[node][client_port(conf, groups[node])]
        targets = {
            f"{lb}(haproxy)": amqp_lb,
            f"{node}(direct)": amqp_node,
            f"{lb}(haproxy)#2": amqp_lb,
            f"{node}(direct)#2": amqp_node,
        }
        status = roundtrip(conf, targets, args.n)

    web = "https" if web_tls(conf)["tls"] else "http"
    vault = INVENTORY / "group_vars/all/vault.yml"
    print(f"\nWhere to log in (passwords: the named key in {vault.relative_to(ROOT)})")
    logins = [
        (
            "RabbitMQ management UI",
            f"{web}://127.0.0.1:{ports[lb].get(conf['haproxy_management_port'])}/",
            conf["rabbitmq_operator_user"],
            "vault_rabbitmq_operator_password",
        ),
        (
            "HAProxy stats (+ /metrics)",
            f"{web}://127.0.0.1:{ports[lb].get(conf['haproxy_stats_port'])}/stats",
            conf["haproxy_stats_user"],
            "vault_haproxy_stats_password",
        ),
    ]
    if flower:
        logins.append(
            (
                "Flower",
                f"{web}://127.0.0.1:{ports[flower].get(conf['flower_port'])}/",
                conf["flower_basic_auth_user"],
                "vault_flower_password",
            )
        )
    for what, url, user, secret in logins:
        print(f"  {what:<27} {url:<36} user {user:<10} password {secret}")
    print(f'  {"Broker URLs for a client":<27} eval "$(.venv/bin/python lab/report.py --env)"')
    return status


def client_env(groups: dict[str, list[str]], ports: dict[str, dict[int, int]]) -> str:
    """Shell exports of the application's broker URLs as the controller reaches them: every
    load balancer's published AMQP port, first one first (the rest are the failover list)."""
    conf = settings()
    urls = [
        controller_url(conf, ports[lb][conf["haproxy_amqp_port"]])
        for lb in sorted(h for h in groups if "haproxy" in groups[h])
    ]
    return (
        f"export TASKS_APP_BROKER_URL={shlex.quote(urls[0])}\n"
        f"export TASKS_APP_BROKER_FAILOVER={shlex.quote(';'.join(urls[1:]))}\n"
        "unset TASKS_APP_CONFIG_FILE\n"
        + "".join(
            f"export {name}={shlex.quote(value)}\n"
            for name, value in inventory_vars.client_env(conf).items()
        )
    )


if __name__ == "__main__":
    sys.exit(main())
