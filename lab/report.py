#!/usr/bin/env python3
"""Print what runs where in the lab: each host, its groups, its state and published ports."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def inventory() -> dict:
    out = subprocess.run(
        [
            str(Path(sys.executable).parent / "ansible-inventory"),
            "-i",
            str(ROOT / "inventory/lab/hosts.yml"),
            "--list",
        ],
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


def container(name: str) -> tuple[str, str]:
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
        return "absent", ""
    status, ports = proc.stdout.strip().split("|", 1)
    published = []
    for inner, binds in sorted((json.loads(ports) or {}).items()):
        for bind in binds or []:
            published.append(f"{bind['HostIp']}:{bind['HostPort']}->{inner.split('/')[0]}")
    return json.loads(status), " ".join(published)


def main() -> int:
    groups = host_groups(inventory())
    print(f"{'host':<10} {'state':<9} {'groups':<38} published")
    missing = 0
    for host in sorted(groups):
        status, published = container(host)
        missing += status != "running"
        print(f"{host:<10} {status:<9} {','.join(sorted(groups[host])):<38} {published or '-'}")
    return 1 if missing else 0


if __name__ == "__main__":
    sys.exit(main())
