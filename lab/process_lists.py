"""Watch the lab hosts' process lists while a playbook runs, for secrets on a command line.

Used by the fault run's password rotation (`make test`, `make chaos-short`, `make ops-drill`)
and by the test of behaviour that rotates passwords on its own (`make behaviour`): one sampler
process inside each host, started before the playbook, stopped after it, then one verdict.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterable

# Runs inside a host: every 20 ms, every process's full command line (what `ps -eo args`
# shows), kept once each, until the controller closes its standard input; then one last sweep,
# and it prints them. One process per host, instead of one `docker exec ps` per sample, which
# cost the controller's two cores more than the rotation it watched.
SAMPLER = """
import json, os, select, sys
seen, sweeps = set(), 0
def sweep():
    for pid in os.listdir("/proc"):
        if pid.isdigit():
            try:
                with open(f"/proc/{pid}/cmdline", "rb") as f:
                    seen.add(f.read().replace(b"\\0", b" ").decode(errors="replace").strip())
            except OSError:
                pass
while True:
    sweep()
    sweeps += 1
    if select.select([sys.stdin], [], [], 0.02)[0]:
        break
sweep()
print(json.dumps({"sweeps": sweeps, "lines": sorted(seen)}))
"""

# A sampler that swept fewer times than this saw too little to prove anything.
MIN_SWEEPS = 100


class ProcessLists:
    """Samples one lab host's process list from inside it until stopped."""

    def __init__(self, host: str):
        self.host = host
        self.process = subprocess.Popen(
            ["docker", "exec", "-i", host, "python3", "-c", SAMPLER],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )

    def stop(self) -> dict | None:
        """Its unique command lines and sweep count; None when the sampler failed (killed then)."""
        try:
            out, _ = self.process.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.communicate()
            return None
        return json.loads(out) if self.process.returncode == 0 else None


def start(hosts: Iterable[str]) -> list[ProcessLists]:
    return [ProcessLists(host) for host in sorted(hosts)]


def problems(
    samplers: list[ProcessLists], secrets: set[str], must_see: str = "rabbitmqctl"
) -> list[str]:
    """Stops the samplers; what is wrong: a sampler that failed or swept too little, no line
    naming `must_see` anywhere (the samplers could not see the playbook's own commands), a
    secret on any command line. An empty list: every host watched, nothing leaked."""
    samples = {sampler.host: sampler.stop() for sampler in samplers}
    found = []
    failed = sorted(host for host, sample in samples.items() if sample is None)
    if failed:
        found.append(f"the process sampler failed on {', '.join(failed)}")
    swept = {host: sample["sweeps"] for host, sample in samples.items() if sample}
    few = sorted(host for host, sweeps in swept.items() if sweeps < MIN_SWEEPS)
    if few:
        found.append(f"the process sampler swept fewer than {MIN_SWEEPS} times on {few}: {swept}")
    lines = [line for sample in samples.values() if sample for line in sample["lines"]]
    if not any(must_see in line for line in lines):
        found.append(f"no process list showed {must_see}: the samplers saw nothing to judge")
    leaks = sorted(
        {
            host
            for host, sample in samples.items()
            if sample
            for line in sample["lines"]
            if any(secret and secret in line for secret in secrets)
        }
    )
    if leaks:
        found.append(f"a password showed in the process list of {', '.join(leaks)}")
    return found
