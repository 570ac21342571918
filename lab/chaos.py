#!/usr/bin/env python3
"""Fault run against the lab (`make chaos`, `make chaos-short`), or the operations drill
(`make ops-drill`: rolling restart, node removal and addition, full outage and recovery,
Erlang cookie rotation, password rotation, each through its playbook while the same stream
runs).

A steady stream of Celery tasks goes through the load balancers' virtual IP the whole time
(`python -m tasks_app stream` on a client host of the lab, every send and result recorded),
while this script kills, pauses and cuts off RabbitMQ nodes, kills a worker's child mid-task,
wedges a worker (SIGSTOP), kills a whole worker host and the load balancer holding the virtual
IP. After each fault it waits for the whole system to answer again: every node running with
no partition or alarm, every worker's ping, beat's tick, Flower seeing every worker, every
HAProxy seeing every node UP, exactly one host holding the virtual IP.

At the end it counts, per fault window, the tasks sent, run (the workers' runs.log lines of
this run), run twice, never run, results missing and wrong; the publish stall (how long the
client could not publish); the time until every worker answered a ping and until the whole
system was healthy. It writes JSON and a PNG plot under .chaos/ and prints a table. Exit
status 0 only when the bar is met: nothing lost, nothing wrong, every check answered again.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import ssl
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import process_lists
import requests
from amqp.exceptions import AccessRefused
from inventory_vars import client_port, settings, web_tls
from kombu import Connection
from report import host_groups, inventory

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / ".chaos"
NETWORK = "rabbitmq-lab"
TASK_QUEUE = "celery"
COOKIE = "vault_rabbitmq_erlang_cookie"
# The RabbitMQ users whose passwords playbooks/ops/rotate_passwords.yml rotates: name setting
# -> the lab vault's secret.
PASSWORDS = {
    "rabbitmq_app_user": "vault_rabbitmq_app_password",
    "rabbitmq_operator_user": "vault_rabbitmq_operator_password",
    "rabbitmq_monitoring_user": "vault_rabbitmq_monitoring_password",
}
# The bar of issue 8: a client publishing through the load balancer resumes within this many
# seconds (p95) of a node being killed.
RESUME_P95_LIMIT = 5.0
PING_LIMIT = 60.0  # every worker answers a ping within this long after a fault is healed
HEAL_LIMIT = 180.0  # the whole system is healthy again within this long
FULL_OUTAGE_LIMIT = 120.0  # issue 9: after every node died, the cluster is back within this long
# While every node is down nothing can accept a task: the client's publishes fail (after their
# retry policy's ~20 s) and it says so. Only these faults may cost send errors; a task that
# was accepted must still run and return its result.
SEND_ERRORS_EXPECTED = {"full_outage", "cookie_rotation"}


def log(message: str) -> None:
    print(f"[chaos {time.strftime('%H:%M:%S')}] {message}", flush=True)


def run(*args: str, timeout: float = 60, check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run(args, capture_output=True, text=True, timeout=timeout, check=check)


def dexec(host: str, *args: str, user: str | None = None, timeout: float = 60, check=True):
    user_args = ["-u", user] if user else []
    return run("docker", "exec", *user_args, host, *args, timeout=timeout, check=check)


def playbook(path: str, *args: str, root: Path = ROOT) -> tuple[int, str]:
    """Run one of the project's playbooks against the lab, as an operator would: its exit
    status and output (printed when it fails). ``root``: another checkout of the project
    (lab/bench_noop.py --against), run with its own ansible.cfg."""
    # ansible.cfg decides the strategy (Mitogen), whatever ANSIBLE_STRATEGY the caller exported.
    dropped = ("ANSIBLE_FORCE_COLOR", "PY_COLORS", "ANSIBLE_STRATEGY")
    env = {k: v for k, v in os.environ.items() if k not in dropped}
    env["ANSIBLE_CONFIG"] = str(root / "ansible.cfg")
    proc = subprocess.run(
        [str(Path(sys.executable).parent / "ansible-playbook"), str(root / path), *args],
        capture_output=True,
        text=True,
        cwd=root,
        env=env,
        timeout=1200,
        check=False,
    )
    if proc.returncode != 0:
        print(proc.stdout[-3000:])
    return proc.returncode, proc.stdout


def wait_until(what: str, probe: Callable[[], bool], limit: float, every: float = 1.0) -> float:
    """Poll ``probe`` until it is true; return the seconds it took, or raise after ``limit``."""
    start = time.monotonic()
    while True:
        try:
            if probe():
                return time.monotonic() - start
        except (subprocess.SubprocessError, requests.RequestException, ValueError, KeyError):
            pass
        if time.monotonic() - start > limit:
            raise TimeoutError(f"{what}: not within {limit:.0f} s")
        time.sleep(every)


@dataclass
class Lab:
    nodes: list[str]
    lbs: list[str]
    workers: list[str]
    client: str
    beat: str
    flower: str
    conf: dict

    @classmethod
    def discover(cls) -> Lab:
        groups = host_groups(inventory())
        members = {
            g: sorted(h for h, gs in groups.items() if g in gs)
            for g in set(sum(groups.values(), []))
        }
        beat = members["celery_beat"][0]
        return cls(
            nodes=members["rabbitmq"],
            lbs=members["haproxy"],
            workers=members["celery_workers"],
            # The stream runs on the beat/Flower host; the worker faults hit the other workers.
            client=beat,
            beat=beat,
            flower=members["flower"][0],
            conf=settings(),
        )

    @property
    def hosts(self) -> list[str]:
        """Every host of the lab."""
        return sorted({*self.nodes, *self.lbs, *self.workers, self.client, self.beat, self.flower})

    # Where the celery_worker role put things (role defaults, or the lab's group_vars).
    @property
    def python(self) -> str:
        return f"{self.conf['celery_worker_venv_dir']}/bin/python"

    @property
    def state_dir(self) -> str:
        return self.conf["celery_worker_state_dir"]

    @property
    def victim_worker(self) -> str:
        return next(w for w in self.workers if w != self.client)

    def web(self, published_port: int) -> str:
        """A lab web interface's base URL on the controller (https:// when the lab runs TLS)."""
        scheme = "https" if web_tls(self.conf)["tls"] else "http"
        return f"{scheme}://127.0.0.1:{published_port}/"

    @property
    def verify(self) -> str | bool:
        """What requests verifies the lab's web interfaces with: the lab's CA over TLS."""
        return web_tls(self.conf)["ca_file"] or True

    def published(self, host: str, port: int) -> int:
        out = run("docker", "port", host, f"{port}/tcp").stdout
        return int(out.splitlines()[0].rsplit(":", 1)[1])

    def running(self, host: str) -> bool:
        return run("docker", "inspect", "-f", "{{.State.Running}}", host).stdout.strip() == "true"

    # --- what "healthy" means ----------------------------------------------------------------
    def rabbitmqctl_json(self, *args: str):
        """`rabbitmqctl -q ARGS --formatter json` on the first running node that answers."""
        for node in self.nodes:
            if not self.running(node):
                continue
            proc = dexec(
                node, "rabbitmqctl", "-q", *args, "--formatter", "json", check=False, timeout=30
            )
            if proc.returncode == 0:
                return json.loads(proc.stdout)
        raise ValueError(f"no node answers rabbitmqctl {args[0]}")

    def authenticates(self, user: str, password: str) -> bool:
        """Whether RabbitMQ accepts this password (an AMQP login through the first load
        balancer); any other failure raises."""
        port = self.published(self.lbs[0], client_port(self.conf, {"haproxy"}))
        ca_file = web_tls(self.conf)["ca_file"] if self.conf["app_broker"].get("tls") else None
        connection = Connection(
            hostname="127.0.0.1",
            port=port,
            ssl={"ca_certs": ca_file, "cert_reqs": ssl.CERT_REQUIRED} if ca_file else False,
            userid=user,
            password=password,
            virtual_host=self.conf["app_broker"]["vhost"],
            connect_timeout=10,
        )
        try:
            connection.connect()
        except AccessRefused:
            return False
        finally:
            connection.release()
        return True

    def cluster_status(self) -> dict:
        return self.rabbitmqctl_json("cluster_status")

    def cluster_ok(self) -> bool:
        status = self.cluster_status()
        return (
            len(status["running_nodes"]) == len(self.nodes)
            and not status.get("partitions")
            and not status.get("alarms")
        )

    def ping_ok(self) -> bool:
        proc = dexec(
            self.client,
            self.python,
            "-m",
            "tasks_app",
            "ping",
            "--expect",
            str(len(self.workers)),
            "--timeout",
            "3",
            user="celery",
            check=False,
        )
        return proc.returncode == 0

    def beat_age(self) -> float:
        tick = dexec(self.beat, "cat", f"{self.state_dir}/beat-tick").stdout
        return time.time() - float(tick)

    def flower_ok(self) -> bool:
        port = self.published(self.flower, self.conf["flower_port"])
        auth = (self.conf["flower_basic_auth_user"], self.conf["flower_basic_auth_password"])
        online = requests.get(
            f"{self.web(port)}api/workers?status=true", auth=auth, timeout=5, verify=self.verify
        ).json()
        names = {name.split("@", 1)[1] for name, up in online.items() if up}
        return set(self.workers) <= names

    def haproxy_states(self, lb: str) -> dict[str, str]:
        """Each RabbitMQ server's state in one HAProxy's AMQP backend (UP, DOWN, MAINT...)."""
        auth = (self.conf["haproxy_stats_user"], self.conf["haproxy_stats_password"])
        port = self.published(lb, self.conf["haproxy_stats_port"])
        csv = requests.get(
            f"{self.web(port)}stats;csv", auth=auth, timeout=5, verify=self.verify
        ).text
        return {
            row.split(",")[1]: row.split(",")[17]
            for row in csv.splitlines()
            if row.startswith("rabbitmq_amqp,") and row.split(",")[1] != "BACKEND"
        }

    def haproxy_ok(self) -> bool:
        for lb in self.lbs:
            up = {name for name, state in self.haproxy_states(lb).items() if state.startswith("UP")}
            if up != set(self.nodes):
                return False
        return True

    def list_queues(self, *fields: str) -> list[dict]:
        """`rabbitmqctl list_queues` of the app vhost."""
        return self.rabbitmqctl_json("list_queues", "-p", self.conf["app_broker"]["vhost"], *fields)

    def quorum_members(self) -> dict[str, set[str]]:
        """Members (host names) of each quorum queue of the app vhost."""
        return {
            q["name"]: {m.split("@", 1)[1] for m in q["members"]}
            for q in self.list_queues("name", "type", "members")
            if q["type"] == "quorum"
        }

    def vip_holders(self) -> list[str]:
        vip = self.conf["keepalived_virtual_ip"]
        return [
            lb
            for lb in self.lbs
            if self.running(lb)
            and f" {vip}/" in dexec(lb, "ip", "-4", "-o", "addr", "show", check=False).stdout
        ]

    def unhealthy(self) -> list[str]:
        """Names of the checks that fail now (empty: the whole system answers)."""
        checks = {
            "cluster": self.cluster_ok,
            "workers ping": self.ping_ok,
            "beat": lambda: (
                self.beat_age() < 3 * float(self.conf.get("celery_worker_beat_interval", 10))
            ),
            "flower": self.flower_ok,
            "haproxy": self.haproxy_ok,
            "virtual ip": lambda: len(self.vip_holders()) == 1,
        }
        failed = []
        for name, check in checks.items():
            try:
                ok = check()
            except (subprocess.SubprocessError, requests.RequestException, ValueError, KeyError):
                ok = False
            if not ok:
                failed.append(name)
        return failed

    def queue_leader(self) -> str:
        for queue in self.list_queues("name", "leader"):
            if queue["name"] == TASK_QUEUE:
                return queue["leader"].split("@", 1)[1]
        raise ValueError(f"no leader found for queue {TASK_QUEUE}")

    def main_pid(self, host: str, unit: str = "celery-worker") -> int:
        out = dexec(host, "systemctl", "show", "-p", "MainPID", "--value", unit).stdout
        return int(out.strip())


@dataclass
class Fault:
    kind: str
    target: str = ""
    hold: float = 0.0
    t_start: float = 0.0
    t_heal: float = 0.0
    ping_s: float | None = None
    healthy_s: float | None = None
    unhealthy_after: list[str] = field(default_factory=list)
    note: str = ""


class Chaos:
    def __init__(self, lab: Lab):
        self.lab = lab

    # Each fault injects, holds, heals (where healing is ours to do) and returns the target.
    def node_kill(self, fault: Fault) -> None:
        leader = self.lab.queue_leader()
        if fault.target == "leader":
            fault.target = leader
        if fault.target == leader:  # aimed at it, or the leader moved there meanwhile
            fault.note = "leader of the task queue"
        run("docker", "kill", fault.target)
        time.sleep(fault.hold)  # how long the machine stays dead: part of the fault, not a wait
        fault.t_heal = time.time()
        run("docker", "start", fault.target)

    def pause(self, fault: Fault) -> None:
        run("docker", "pause", fault.target)
        time.sleep(fault.hold)
        fault.t_heal = time.time()
        run("docker", "unpause", fault.target)

    def netcut(self, fault: Fault) -> None:
        ip = run(
            "docker",
            "inspect",
            "-f",
            f'{{{{(index .NetworkSettings.Networks "{NETWORK}").IPAddress}}}}',
            fault.target,
        ).stdout.strip()
        run("docker", "network", "disconnect", NETWORK, fault.target)
        time.sleep(fault.hold)
        fault.t_heal = time.time()
        run("docker", "network", "connect", "--ip", ip, NETWORK, fault.target)

    def worker_child_kill(self, fault: Fault) -> None:
        """SIGKILL the pool process of a long task that is running right now."""
        fault.target = self.lab.victim_worker
        found: dict = {}

        def long_task_running() -> bool:
            out = dexec(
                self.lab.client,
                f"{Path(self.lab.python).parent}/celery",
                "-A",
                "tasks_app",
                "inspect",
                "active",
                "--json",
                "--timeout",
                "3",
                "-d",
                f"worker@{fault.target}",
                user="celery",
                check=False,
            ).stdout
            for tasks in json.loads(out or "{}").values():
                for task in tasks:
                    if task["name"].endswith(".record") and task["args"][1] > 0:
                        found.update(task)
                        return True
            return False

        wait_until("a long task running on " + fault.target, long_task_running, 60, every=0.2)
        dexec(fault.target, "kill", "-KILL", str(found["worker_pid"]))
        fault.note = f"pid {found['worker_pid']} running {found['id']}"
        fault.t_heal = time.time()

    def worker_wedge(self, fault: Fault) -> None:
        """SIGSTOP the worker's main process; only systemd's watchdog can bring it back."""
        fault.target = self.lab.victim_worker
        pid = self.lab.main_pid(fault.target)
        dexec(fault.target, "kill", "-STOP", str(pid))
        restarted = wait_until(
            f"the watchdog to restart the worker on {fault.target}",
            lambda: self.lab.main_pid(fault.target) not in (0, pid),
            limit=120,
        )
        fault.note = f"main pid {pid} stopped; new main process after {restarted:.1f} s"
        fault.t_heal = time.time()

    def worker_host_kill(self, fault: Fault) -> None:
        fault.target = self.lab.victim_worker
        run("docker", "kill", fault.target)
        time.sleep(fault.hold)
        fault.t_heal = time.time()
        run("docker", "start", fault.target)

    def lb_kill(self, fault: Fault) -> None:
        holders = self.lab.vip_holders()
        fault.target = holders[0]
        fault.note = "held the virtual IP"
        run("docker", "kill", fault.target)
        time.sleep(fault.hold)
        fault.t_heal = time.time()
        run("docker", "start", fault.target)

    def haproxy_kill(self, fault: Fault) -> None:
        """SIGKILL HAProxy (master and workers) on the load balancer holding the virtual IP."""
        fault.target = self.lab.vip_holders()[0]
        dexec(fault.target, "systemctl", "kill", "--signal=SIGKILL", "haproxy")
        fault.note = "held the virtual IP"
        fault.t_heal = time.time()

    def rolling_restart(self, fault: Fault) -> None:
        """The operators' rolling restart playbook, every node one after the other."""
        fault.target = "all nodes"
        returncode, _ = playbook("playbooks/ops/rolling_restart.yml")
        fault.note = f"playbook exit {returncode} in {time.time() - fault.t_start:.0f} s"
        if returncode != 0:
            fault.unhealthy_after.append("rolling restart playbook failed")
        fault.t_heal = time.time()

    def membership(self, fault: Fault) -> None:
        """The operators' remove_node playbook on the last node, the two-node cluster checked
        (members moved, HAProxy), then add_node brings it back and grows the queues again."""
        leaving = self.lab.nodes[-1]
        rest = set(self.lab.nodes) - {leaving}
        fault.target = leaving
        problems = fault.unhealthy_after
        started = time.time()
        code, _ = playbook(
            "playbooks/ops/remove_node.yml", "-e", f"node={leaving}", "-e", "confirm=yes"
        )
        removed_s = time.time() - started
        if code != 0:
            problems.append("remove_node playbook failed")
        status = self.lab.cluster_status()
        if {n.split("@", 1)[1] for n in status["running_nodes"]} != rest:
            problems.append(f"after removal running_nodes {status['running_nodes']}")
        kept = [q for q, members in self.lab.quorum_members().items() if leaving in members]
        if kept:
            problems.append(f"quorum queues still with a member on {leaving}: {kept[:3]}")
        for lb in self.lab.lbs:
            states = self.lab.haproxy_states(lb)
            if not states.get(leaving, "").startswith("MAINT") or any(
                not states.get(n, "").startswith("UP") for n in rest
            ):
                problems.append(f"{lb} after removal: {states}")
        started = time.time()
        code, _ = playbook("playbooks/ops/add_node.yml")
        added_s = time.time() - started
        if code != 0:
            problems.append("add_node playbook failed")
        short = [
            q for q, members in self.lab.quorum_members().items() if members != set(self.lab.nodes)
        ]
        if short:
            problems.append(f"quorum queues not grown onto every node: {short[:3]}")
        fault.note = f"removed in {removed_s:.0f} s, added back in {added_s:.0f} s"
        fault.t_heal = time.time()

    def cookie_rotation(self, fault: Fault) -> None:
        """A new Erlang cookie in the lab's vault, then the operators' rotation playbook: every
        node stops, gets it and starts at once (issue 9: the outage is measured)."""
        fault.target = "all nodes"
        subprocess.run(
            [sys.executable, str(ROOT / "lab/generate_secrets.py"), "--rotate", COOKIE],
            check=True,
            capture_output=True,
        )
        returncode, output = playbook("playbooks/ops/rotate_cookie.yml", "-e", "confirm=yes")
        outage = re.search(r"was down for\s+([0-9.]+) s", output)
        fault.note = (
            f"rotation playbook exit {returncode} in {time.time() - fault.t_start:.0f} s, "
            f"cluster down {outage.group(1) if outage else '?'} s"
        )
        if returncode != 0:
            fault.unhealthy_after.append("cookie rotation playbook failed")
        fault.t_heal = time.time()

    def password_rotation(self, fault: Fault) -> None:
        """New application, operator and monitoring passwords in the lab's vault, then the
        operators' rotation playbook: RabbitMQ first, then each client one at a time (issue 9:
        no task may fail). Afterwards each new password must log in and each old one not."""
        fault.target = "app, operator, monitoring"
        old = settings()
        subprocess.run(
            [
                sys.executable,
                str(ROOT / "lab/generate_secrets.py"),
                "--rotate",
                *PASSWORDS.values(),
            ],
            check=True,
            capture_output=True,
        )
        new = settings()
        # Every host's process list watched while the playbook runs: no old or new password
        # may show on any command line (issue 10 ran this proof on its own; here it costs no
        # second rotation).
        samplers = process_lists.start(self.lab.hosts)
        try:
            returncode, _ = playbook("playbooks/ops/rotate_passwords.yml")
        finally:
            leaks = process_lists.problems(
                samplers, {conf[name] for conf in (old, new) for name in PASSWORDS.values()}
            )
        fault.note = f"rotation playbook exit {returncode} in {time.time() - fault.t_start:.0f} s"
        if returncode != 0:
            fault.unhealthy_after.append("password rotation playbook failed")
        fault.unhealthy_after += leaks
        for user_setting, secret in PASSWORDS.items():
            user = new[user_setting]
            if not self.lab.authenticates(user, new[secret]):
                fault.unhealthy_after.append(f"{user}: the new password is refused")
            if self.lab.authenticates(user, old[secret]):
                fault.unhealthy_after.append(f"{user}: the old password still logs in")
        self.lab.conf = new
        fault.t_heal = time.time()

    def full_outage(self, fault: Fault) -> None:
        """Every node killed at once, started again in reverse order, then the operators'
        recovery playbook (issue 9: the cluster is back within FULL_OUTAGE_LIMIT)."""
        fault.target = "all nodes"
        for node in self.lab.nodes:
            run("docker", "kill", node)
        time.sleep(fault.hold)  # how long the machines stay dead: part of the fault
        started = time.time()
        for node in reversed(self.lab.nodes):
            run("docker", "start", node)
        returncode, _ = playbook("playbooks/ops/recover.yml")
        recovered = time.time() - started
        fault.note = f"recovery playbook exit {returncode}, back {recovered:.0f} s after 1st start"
        if returncode != 0:
            fault.unhealthy_after.append("recovery playbook failed")
        elif recovered > FULL_OUTAGE_LIMIT:
            fault.unhealthy_after.append(
                f"cluster back after {recovered:.0f} s > {FULL_OUTAGE_LIMIT:.0f} s"
            )
        fault.t_heal = time.time()

    def apply(self, fault: Fault) -> Fault:
        try:
            before = wait_until(
                "the system to be healthy before the fault",
                lambda: not self.lab.unhealthy(),
                HEAL_LIMIT,
            )
        except TimeoutError as exc:
            raise TimeoutError(f"{exc}; failing: {', '.join(self.lab.unhealthy())}") from exc
        if before > 1:
            log(f"waited {before:.0f} s for a healthy system first")
        time.sleep(3)  # a few seconds of steady stream before the fault, for the plot and stalls
        fault.t_start = time.time()
        log(f"fault {fault.kind} {fault.target}".rstrip())
        getattr(self, fault.kind)(fault)
        try:
            fault.ping_s = wait_until("every worker's ping", self.lab.ping_ok, PING_LIMIT)
        except TimeoutError:
            fault.ping_s = None
        try:
            fault.healthy_s = wait_until(
                "the whole system", lambda: not self.lab.unhealthy(), HEAL_LIMIT, every=2
            )
        except TimeoutError:
            fault.unhealthy_after += self.lab.unhealthy()
        log(
            f"  {fault.kind} {fault.target}: ping after {fault.ping_s} s, healthy after "
            f"{fault.healthy_s} s {fault.note}"
        )
        return fault


def schedule(lab: Lab, plan: str) -> list[Fault]:
    if plan == "ops":
        # Issue 9's operations, each while the stream runs: what each costs the clients.
        return [
            Fault("rolling_restart"),
            Fault("membership"),
            Fault("full_outage", hold=10),
            Fault("cookie_rotation"),
            # Last: the stream is a client this playbook does not roll; it keeps its open
            # connections, and would be refused if an outage made it open new ones.
            Fault("password_rotation"),
        ]
    if plan == "short":
        return [
            Fault("node_kill", "leader", hold=5),
            Fault("pause", lab.nodes[1], hold=10),
            Fault("worker_wedge"),
            Fault("lb_kill", hold=5),
            # Issue 9's recovery test: every node killed, started in reverse order, back
            # through playbooks/ops/recover.yml within FULL_OUTAGE_LIMIT; beat must publish again.
            Fault("full_outage", hold=10),
            # Issue 9's rotation test: no task may fail. Last, as in the ops plan.
            Fault("password_rotation"),
        ]
    nodes = lab.nodes
    faults = []
    plan = [
        ("node_kill", "leader"),
        ("node_kill", nodes[1]),
        ("pause", nodes[2]),
        ("node_kill", nodes[2]),
        ("netcut", nodes[0]),
        ("node_kill", "leader"),
        ("worker_child_kill", ""),
        ("node_kill", nodes[0]),
        ("pause", nodes[0]),
        ("lb_kill", ""),
        ("node_kill", nodes[1]),
        ("netcut", nodes[1]),
        ("node_kill", "leader"),
        ("worker_wedge", ""),
        ("node_kill", nodes[2]),
        ("pause", nodes[1]),
        ("worker_host_kill", ""),
        ("netcut", nodes[2]),
        ("node_kill", "leader"),
        ("haproxy_kill", ""),
        ("node_kill", nodes[0]),
        ("lb_kill", ""),
        ("rolling_restart", ""),
    ]
    holds = {
        "node_kill": 5,
        "pause": 15,
        "netcut": 25,
        "worker_host_kill": 5,
        "lb_kill": 5,
    }
    for kind, target in plan:
        faults.append(Fault(kind, target, hold=holds.get(kind, 0)))
    return faults


# --- analysis -------------------------------------------------------------------------------
def percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


def analyse(
    events: list[dict], runs: Counter, faults: list[Fault], t_end: float, stall_bar: bool = True
) -> dict:
    """Per-fault counts and the verdict. ``stall_bar``: the node-kill publish stall p95 is part
    of the bar (the full run, ten kills and more); the short run reports it without failing on
    it, since one kill is a sample, not a percentile (it fails on any loss or wedged worker)."""
    sent = [e for e in events if e["ev"] == "sent"]
    results = {e["id"]: e for e in events if e["ev"] == "result"}
    send_errors = [e for e in events if e["ev"] == "send_error"]
    starts = [f.t_start for f in faults]

    def window(t: float) -> int:  # -1: steady state before the first fault
        index = -1
        for i, start in enumerate(starts):
            if t >= start:
                index = i
        return index

    # Gaps between consecutive confirmed publishes over the whole run, the end of the run as
    # the last point (a stall that never ended counts). A gap is charged to the window that
    # holds its middle: a stall that begins a moment before the next fault starts is that fault's.
    confirmed = sorted(e["t1"] for e in sent) + [t_end]
    gaps_all = list(zip(confirmed, confirmed[1:], strict=False))
    rows = []
    for index in range(-1, len(faults)):
        lo = starts[index] if index >= 0 else 0.0
        hi = starts[index + 1] if index + 1 < len(starts) else t_end
        in_window = [e for e in sent if window(e["t0"]) == index]
        # The longest time the client went without a confirmed publish: a publish that blocks
        # (retrying) and a client loop held up by its result connection both count.
        stalls = [b - a for a, b in gaps_all if lo <= (a + b) / 2 < hi]
        arrivals = sorted(r["t"] for r in results.values() if lo <= r["t"] < hi)
        gaps = [b - a for a, b in zip(arrivals, arrivals[1:], strict=False)]
        fault = faults[index] if index >= 0 else None
        rows.append(
            {
                "fault": f"{fault.kind} {fault.target}".strip() if fault else "steady",
                "kind": fault.kind if fault else "steady",
                "sent": len(in_window),
                "send_errors": sum(1 for e in send_errors if window(e["t0"]) == index),
                "ran": sum(1 for e in in_window if runs[e["id"]] >= 1),
                "ran_twice": sum(1 for e in in_window if runs[e["id"]] >= 2),
                "never_ran": sum(1 for e in in_window if runs[e["id"]] == 0),
                "results_missing": sum(1 for e in in_window if e["id"] not in results),
                "wrong": sum(
                    1 for e in in_window if e["id"] in results and not results[e["id"]]["ok"]
                ),
                "publish_stall_s": round(max(stalls, default=0.0), 2),
                "result_gap_s": round(max(gaps, default=0.0), 2),
                "ping_s": None if not fault or fault.ping_s is None else round(fault.ping_s, 1),
                "healthy_s": None
                if not fault or fault.healthy_s is None
                else round(fault.healthy_s, 1),
                "unhealthy_after": fault.unhealthy_after if fault else [],
                "note": fault.note if fault else "",
            }
        )
    by_kind: dict[str, list[float]] = {}
    for row in rows[1:]:
        by_kind.setdefault(row["kind"], []).append(row["publish_stall_s"])
    resume = {
        kind: {"p50": percentile(v, 0.5), "p95": percentile(v, 0.95), "n": len(v)}
        for kind, v in by_kind.items()
    }
    totals = {
        k: sum(r[k] for r in rows)
        for k in (
            "sent",
            "send_errors",
            "ran",
            "ran_twice",
            "never_ran",
            "results_missing",
            "wrong",
        )
    }
    kill_p95 = resume.get("node_kill", {}).get("p95")
    failures = []
    for key in ("never_ran", "results_missing", "wrong"):
        if totals[key]:
            failures.append(f"{key}={totals[key]}")
    unexpected = sum(r["send_errors"] for r in rows if r["kind"] not in SEND_ERRORS_EXPECTED)
    if unexpected:
        failures.append(f"send_errors={unexpected}")
    for row in rows[1:]:
        if row["ping_s"] is None:
            failures.append(
                f"{row['fault']}: workers did not all answer a ping within {PING_LIMIT:.0f} s"
            )
        if row["healthy_s"] is None or row["unhealthy_after"]:
            failures.append(
                f"{row['fault']}: not healthy again: {', '.join(row['unhealthy_after'])}"
            )
    if stall_bar and kill_p95 is not None and kill_p95 > RESUME_P95_LIMIT:
        failures.append(f"node kill publish stall p95 {kill_p95} s > {RESUME_P95_LIMIT} s")
    for row in rows[1:]:
        if row["sent"] == 0:
            failures.append(f"{row['fault']}: no task was sent during this fault")
    if not any(e["ev"] == "end" for e in events):
        failures.append("the stream did not finish (no end record): see the .stream.err file")
    if not sent:
        failures.append("no task was sent")
    return {"rows": rows, "resume": resume, "totals": totals, "failures": failures}


# The columns of a run's table: key in the report's rows, title in the terminal, title in the
# README (None: terminal only). Keys that are also in the totals get a total.
COLUMNS = [
    ("sent", "sent", "sent"),
    ("ran", "ran", "ran"),
    ("ran_twice", "twice", "ran twice"),
    ("never_ran", "never", "never ran"),
    ("results_missing", "no result", "results missing"),
    ("wrong", "wrong", "wrong"),
    ("send_errors", "send err", "publish refused"),
    ("publish_stall_s", "stall s", "publish stall s"),
    ("result_gap_s", "result gap s", None),
    ("ping_s", "ping s", "ping s"),
    ("healthy_s", "healthy s", "healthy s"),
]


def cell(value) -> str:
    return "-" if value is None else str(value)


def table(report: dict) -> str:
    cols = [("fault", "fault")] + [(key, title) for key, title, _ in COLUMNS]
    totals = report["totals"]
    lines = [[title for _, title in cols]]
    lines += [[cell(row[key]) for key, _ in cols] for row in report["rows"]]
    lines.append(["total"] + [str(totals.get(key, "")) for key, _ in cols[1:]])
    widths = [max(len(line[i]) for line in lines) for i in range(len(cols))]
    out = [
        "  ".join(text.ljust(w) for text, w in zip(line, widths, strict=True)).rstrip()
        for line in lines
    ]
    out.append("")
    for kind, r in report["resume"].items():
        out.append(f"publish stall {kind:<18} p50 {r['p50']} s  p95 {r['p95']} s  (n={r['n']})")
    return "\n".join(out)


def markdown(report: dict) -> str:
    """The README's table of a run, from its JSON (python lab/chaos.py --markdown FILE)."""
    cols = [(key, title) for key, _, title in COLUMNS if title]
    totals = report["totals"]
    lines = [
        "| fault | " + " | ".join(title for _, title in cols) + " |",
        "|---" * (len(cols) + 1) + "|",
    ]
    for row in report["rows"]:
        leader = row["note"] == "leader of the task queue"
        name = row["fault"] + (" (queue leader)" if leader else "")
        lines.append(f"| {name} | " + " | ".join(cell(row[key]) for key, _ in cols) + " |")
    bold = [f"**{totals[key]}**" if key in totals else "" for key, _ in cols]
    lines.append("| **total** | " + " | ".join(bold) + " |")
    stalls = ", ".join(
        f"{kind} p50 {r['p50']} / p95 {r['p95']} s (n={r['n']})"
        for kind, r in report["resume"].items()
    )
    return "\n".join(lines) + f"\n\nPublish stall per kind of fault: {stalls}.\n"


def plot(events: list[dict], faults: list[Fault], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    t0 = min(e.get("t0", e.get("t", 0)) for e in events if "t0" in e or "t" in e)
    sent = Counter(int(e["t1"] - t0) for e in events if e["ev"] == "sent")
    done = Counter(int(e["t"] - t0) for e in events if e["ev"] == "result")
    span = range(0, max(list(sent) + list(done) + [1]) + 1)
    fig, ax = plt.subplots(figsize=(14, 4.5), dpi=100)
    ax.plot(span, [sent[s] for s in span], label="published (confirmed) per second", lw=0.9)
    ax.plot(span, [done[s] for s in span], label="results received per second", lw=0.9)
    for fault in faults:
        ax.axvspan(
            fault.t_start - t0,
            max(fault.t_heal, fault.t_start + 0.5) - t0,
            color="tab:red",
            alpha=0.15,
        )
        ax.text(
            fault.t_start - t0,
            ax.get_ylim()[1] * 0.97,
            f"{fault.kind}\n{fault.target}",
            fontsize=6,
            va="top",
            rotation=90,
        )
    ax.set_xlabel("seconds since the stream started")
    ax.set_ylabel("tasks per second")
    ax.legend(loc="lower right", fontsize=8)
    ax.set_title("Celery through the load balancers' virtual IP under faults (red: fault held)")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def memory_gib() -> int:
    return round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--short", action="store_true", help="five faults (make test)")
    parser.add_argument(
        "--ops",
        action="store_true",
        help="the operations instead of faults: rolling restart, node removal and addition, "
        "full outage and recovery, cookie and password rotation (make ops-drill)",
    )
    parser.add_argument("--rate", type=float, default=10.0, help="tasks per second")
    parser.add_argument("--markdown", metavar="JSON", help="print a run's table for the README")
    args = parser.parse_args()
    if args.markdown:
        print(markdown(json.loads(Path(args.markdown).read_text())))
        return 0

    lab = Lab.discover()
    chaos = Chaos(lab)
    plan = "ops" if args.ops else "short" if args.short else "full"
    faults = schedule(lab, plan)
    run_id = time.strftime("chaos%Y%m%dT%H%M%S", time.gmtime())
    OUT.mkdir(exist_ok=True)
    stream_log = OUT / f"{run_id}.stream.jsonl"
    stop_file = f"/run/{run_id}.stop"  # inside the client container, created by root
    log(f"{run_id}: {len(faults)} faults, stream of {args.rate:g} tasks/s from {lab.client}")

    try:
        wait_until("a healthy system before the run", lambda: not lab.unhealthy(), HEAL_LIMIT)
    except TimeoutError as exc:
        print(f"{exc}; failing: {', '.join(lab.unhealthy())}")
        return 1
    with stream_log.open("w") as out:
        stream = subprocess.Popen(
            [
                "docker",
                "exec",
                "-u",
                "celery",
                lab.client,
                lab.python,
                "-m",
                "tasks_app",
                "stream",
                "--rate",
                str(args.rate),
                "--run-id",
                run_id,
                "--stop-file",
                stop_file,
                "--result-timeout",
                "180",
                "--long-every",
                "25",
                "--long-seconds",
                "2",
            ],
            stdout=out,
            stderr=(OUT / f"{run_id}.stream.err").open("w"),
        )
        done: list[Fault] = []
        aborted = ""
        try:
            for fault in faults:
                try:
                    done.append(chaos.apply(fault))
                except (TimeoutError, subprocess.SubprocessError, ValueError) as exc:
                    # The run stops here; what was recorded so far is still counted and shown.
                    aborted = f"{fault.kind} {fault.target}".strip() + f": run aborted: {exc}"
                    log(aborted)
                    if fault.t_start:
                        done.append(fault)
                    break
            time.sleep(5)
        finally:
            t_end = time.time()
            dexec(lab.client, "touch", stop_file, check=False)
            try:
                stream.wait(timeout=300)
            except subprocess.TimeoutExpired:
                stream.kill()
    events = [json.loads(line) for line in stream_log.read_text().splitlines() if line.strip()]
    runs: Counter = Counter()
    for worker in lab.workers:
        lines = dexec(worker, "cat", f"{lab.state_dir}/runs.log", check=False).stdout.splitlines()
        for line in lines:
            task_id, token, _host = line.split()
            if token.startswith(run_id + "-"):
                runs[task_id] += 1
    # The node-kill stall p95 is the full run's bar: the others kill one node or none.
    report = analyse(events, runs, done, t_end, stall_bar=plan == "full")
    if aborted:
        report["failures"].insert(0, aborted)
    if len(done) < len(faults):
        report["failures"].append(f"only {len(done)} of {len(faults)} faults ran")
    report.update(
        run_id=run_id,
        short=args.short,
        plan=plan,
        rate=args.rate,
        date=time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        machine=f"{os.cpu_count()} cores, {memory_gib()} GiB",
        faults=[asdict(f) for f in done],
    )
    (OUT / f"{run_id}.json").write_text(json.dumps(report, indent=2))
    plot(events, done, OUT / f"{run_id}.png")
    summary = [table(report), f"\nJSON: {OUT / f'{run_id}.json'}  plot: {OUT / f'{run_id}.png'}"]
    if report["failures"]:
        summary.append("\nBAR NOT MET:\n  " + "\n  ".join(report["failures"]))
    else:
        summary.append("\nbar met: nothing lost, nothing wrong, every worker answered, healed")
    print("\n" + "\n".join(summary))
    # The latest verdict, for `make test` to print last when the run failed inside molecule.
    (OUT / "last.txt").write_text(f"{run_id}\n" + "\n".join(summary) + "\n")
    return 1 if report["failures"] else 0


if __name__ == "__main__":
    sys.exit(main())
