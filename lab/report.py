#!/usr/bin/env python3
"""Report on the running lab: what runs where, a live round trip through the load balancer
compared with a direct connection to one node (same run, same client), and how to log in.

Exit status is non-zero when a host is not running or a round trip misses a result.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
INVENTORY = ROOT / "inventory/lab"
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


def settings() -> dict:
    """Role defaults overlaid with the lab's literal group_vars and its generated secrets."""
    merged: dict = {}
    for role in ("rabbitmq", "haproxy", "celery_worker", "flower"):
        merged.update(yaml.safe_load((ROOT / "roles" / role / "defaults/main.yml").read_text()))
    group_vars = yaml.safe_load((INVENTORY / "group_vars/all/main.yml").read_text())
    merged.update({k: v for k, v in group_vars.items() if not (isinstance(v, str) and "{{" in v)})
    merged.update(yaml.safe_load((INVENTORY / "group_vars/all/vault.yml").read_text()))
    return merged


def roundtrip(conf: dict, targets: dict[str, int], count: int) -> int:
    user, password, vhost = (
        conf["rabbitmq_app_user"],
        conf["vault_rabbitmq_app_password"],
        conf["rabbitmq_app_vhost"],
    )
    args = [sys.executable, "-m", "tasks_app", "roundtrip", "-n", str(count), "--timeout", "300"]
    for name, port in targets.items():
        args += ["--target", f"{name}=amqp://{user}:{password}@127.0.0.1:{port}/{vhost}"]
    print(f"\nRound trip from the controller: {count} add(i, i) per target, every result checked")
    return subprocess.run(args, cwd=ROOT, timeout=900).returncode


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("-n", type=int, default=300, help="tasks per target (0: no round trip)")
    args = parser.parse_args()

    groups = host_groups(inventory())
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
        amqp_lb, amqp_node = ports[lb][conf["haproxy_amqp_port"]], ports[node][5672]
        targets = {
            f"{lb}(haproxy)": amqp_lb,
            f"{node}(direct)": amqp_node,
            f"{lb}(haproxy)#2": amqp_lb,
            f"{node}(direct)#2": amqp_node,
        }
        status = roundtrip(conf, targets, args.n)

    vault = INVENTORY / "group_vars/all/vault.yml"
    print(f"\nWhere to log in (passwords: the named key in {vault.relative_to(ROOT)})")
    logins = [
        (
            "RabbitMQ management UI",
            f"http://127.0.0.1:{ports[lb].get(conf['haproxy_management_port'])}/",
            conf["rabbitmq_operator_user"],
            "vault_rabbitmq_operator_password",
        ),
        (
            "HAProxy stats (+ /metrics)",
            f"http://127.0.0.1:{ports[lb].get(conf['haproxy_stats_port'])}/stats",
            conf["haproxy_stats_user"],
            "vault_haproxy_stats_password",
        ),
    ]
    if flower:
        logins.append(
            (
                "Flower",
                f"http://127.0.0.1:{ports[flower].get(conf['flower_port'])}/",
                conf["flower_basic_auth_user"],
                "vault_flower_password",
            )
        )
    for what, url, user, secret in logins:
        print(f"  {what:<27} {url:<36} user {user:<10} password {secret}")
    amqp = ports[lb][conf["haproxy_amqp_port"]]
    print(
        f"  {'Broker URL for a client':<27} amqp://{conf['rabbitmq_app_user']}:"
        f"<vault_rabbitmq_app_password>@127.0.0.1:{amqp}/{conf['rabbitmq_app_vhost']}"
    )
    return status


if __name__ == "__main__":
    sys.exit(main())
