#!/usr/bin/env python3
"""No-op converge benchmark (`make bench-noop`): `site.yml` again on the converged lab, several
times in a row, each timed from the controller, with each host's `changed` count.

Issue 10's bar: a second `site.yml` on the converged lab takes at most 60 s with `changed=0`.
Exit status 0 only when every run changed nothing and the median run met the limit. The
figures vary with the machine and the lab's own load, so the median of several runs is
judged, not one; each run is printed.

`--against REV` (`make bench-noop AGAINST=REV`) also times another revision of the project on
the same lab, its run and this checkout's taking turns, so that both see the same machine:
REV is checked out in a temporary git worktree and run with its own ansible.cfg, playbooks and
roles, but this checkout's lab inventory (the lab's secrets and CA are not in git) and `.cache`
(the fact cache and the wheelhouse, which REV would otherwise rebuild). Its runs are printed
beside this checkout's; the bar judges this checkout's alone. A revision whose wheelhouse or
settings differ from this checkout's changes the hosts back and forth: its `changed` counts
say so.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from chaos import ROOT, playbook

RECAP = re.compile(r"^(\S+)\s*:\s*ok=(\d+)\s+changed=(\d+)", re.MULTILINE)


def converge(root: Path = ROOT) -> tuple[float, int, dict[str, int], str]:
    """One `site.yml` on the lab, as the fault run starts its playbooks (ansible.cfg's strategy):
    seconds, exit code, changed per host, and the output's tail. Another checkout (``root``)
    runs against this checkout's lab inventory."""
    extra = [] if root == ROOT else ["-i", str(ROOT / "inventory/lab/hosts.yml")]
    started = time.monotonic()
    returncode, output = playbook("site.yml", *extra, root=root)
    seconds = time.monotonic() - started
    changed = {host: int(count) for host, _, count in RECAP.findall(output)}
    return seconds, returncode, changed, output[-3000:]


@contextlib.contextmanager
def worktree(revision: str) -> Iterator[Path]:
    """REV checked out in a temporary git worktree sharing this checkout's `.cache`; removed
    afterwards, also when the checkout fails (git's own message is raised)."""
    path = Path(tempfile.mkdtemp(prefix="bench-noop-"))
    try:
        added = subprocess.run(
            ["git", "-C", str(ROOT), "worktree", "add", "--detach", str(path), revision],
            capture_output=True,
            text=True,
            check=False,
        )
        if added.returncode != 0:
            raise SystemExit(f"[bench-noop] cannot check out {revision}: {added.stderr.strip()}")
        (path / ".cache").symlink_to(ROOT / ".cache")
        yield path
    finally:
        removed = subprocess.run(
            ["git", "-C", str(ROOT), "worktree", "remove", "--force", str(path)],
            capture_output=True,
            text=True,
            check=False,
        )
        shutil.rmtree(path, ignore_errors=True)
        subprocess.run(["git", "-C", str(ROOT), "worktree", "prune"], check=False)
        if removed.returncode != 0 and "is not a working tree" not in removed.stderr:
            print(f"[bench-noop] warning: git worktree remove: {removed.stderr.strip()}")


def describe(label: str, seconds: float, returncode: int, changed: dict[str, int]) -> str:
    total = sum(changed.values())
    detail = ", ".join(f"{h}={c}" for h, c in sorted(changed.items()) if c)
    return (
        f"{label}: {seconds:6.1f} s  exit {returncode}  hosts {len(changed)}  changed {total}"
        + (f" ({detail})" if total else "")
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", "--runs", type=int, default=3, help="how many runs (default 3)")
    parser.add_argument(
        "--limit", type=float, default=60.0, help="the median's bar in seconds (default 60)"
    )
    parser.add_argument(
        "--against", metavar="REV", help="also time this git revision, the two taking turns"
    )
    args = parser.parse_args()
    load = os.getloadavg()[0]
    print(f"[bench-noop] {args.runs} no-op runs of site.yml; load average before: {load:.2f}")
    with contextlib.ExitStack() as stack:
        other = stack.enter_context(worktree(args.against)) if args.against else None
        times, other_times, problems = [], [], []
        for run in range(1, args.runs + 1):
            if other is not None:
                seconds, returncode, changed, _ = converge(other)
                # A failed run of the other revision is shown, not counted: its time says nothing.
                if returncode == 0 and changed:
                    other_times.append(seconds)
                print("  " + describe(f"run {run} {args.against}", seconds, returncode, changed))
            seconds, returncode, changed, tail = converge()
            times.append(seconds)
            label = f"run {run} this checkout" if other is not None else f"run {run}"
            print("  " + describe(label, seconds, returncode, changed), flush=True)
            if returncode != 0 or not changed:
                problems.append(f"run {run} failed (exit {returncode}):\n{tail}")
            elif sum(changed.values()):
                problems.append(f"run {run} changed something: {changed}")
    median = statistics.median(times)
    if args.against and not other_times:
        print(f"[bench-noop] {args.against}: no run succeeded, nothing to compare")
    if other_times:
        other_median = statistics.median(other_times)
        print(
            f"[bench-noop] {args.against}: median {other_median:.1f} s; this checkout: median "
            f"{median:.1f} s ({median - other_median:+.1f} s)"
        )
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
