#!/usr/bin/env python3
"""No-op converge benchmark (`make bench-noop`): `site.yml` again on the converged lab, several
times in a row, each timed from the controller, with each host's `changed` count.

Issue 10's bar: a second `site.yml` on the converged lab takes at most 60 s with `changed=0`.
Exit status 0 only when every run changed nothing and the median run met the limit. The
figures vary with the lab's own load (three RabbitMQ nodes idle at ~0.5 of this machine's two
cores), so the median of several runs is judged, not one; each run is printed.
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import sys
import time

from chaos import playbook

RECAP = re.compile(r"^(\S+)\s*:\s*ok=(\d+)\s+changed=(\d+)", re.MULTILINE)


def converge() -> tuple[float, int, dict[str, int], str]:
    """One `site.yml` on the lab, as the fault run starts its playbooks (ansible.cfg's strategy
    and inventory): seconds, exit code, changed per host, and the output's tail."""
    started = time.monotonic()
    returncode, output = playbook("site.yml")
    seconds = time.monotonic() - started
    changed = {host: int(count) for host, _, count in RECAP.findall(output)}
    return seconds, returncode, changed, output[-3000:]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", "--runs", type=int, default=3, help="how many runs (default 3)")
    parser.add_argument(
        "--limit", type=float, default=60.0, help="the median's bar in seconds (default 60)"
    )
    args = parser.parse_args()
    load = os.getloadavg()[0]
    print(f"[bench-noop] {args.runs} no-op runs of site.yml; load average before: {load:.2f}")
    times, problems = [], []
    for run in range(1, args.runs + 1):
        seconds, returncode, changed, tail = converge()
        times.append(seconds)
        total = sum(changed.values())
        print(
            f"  run {run}: {seconds:6.1f} s  exit {returncode}  hosts {len(changed)}  "
            f"changed {total}"
            + (
                f" ({', '.join(f'{h}={c}' for h, c in sorted(changed.items()) if c)})"
                if total
                else ""
            ),
            flush=True,
        )
        if returncode != 0 or not changed:
            problems.append(f"run {run} failed (exit {returncode}):\n{tail}")
        elif total:
            problems.append(f"run {run} changed something: {changed}")
    median = statistics.median(times)
    print(
        f"[bench-noop] median {median:.1f} s (min {min(times):.1f}, max {max(times):.1f}); "
        f"bar: median <= {args.limit:.0f} s and changed=0 on every host"
    )
    if median > args.limit:
        problems.append(f"median {median:.1f} s > {args.limit:.0f} s")
    for problem in problems:
        print(f"[bench-noop] FAILED: {problem}")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
