"""Closed by default (roles/firewall): each service's port answers the hosts that use it and no
other host. Every closed case has an open twin (the same port from an allowed host), so a
failure to connect is the firewall's doing, not a service that is down."""

from __future__ import annotations

import subprocess

import pytest
from conftest import lab_settings

# Connects with a short timeout; prints "open" or why not. A dropped SYN is a timeout.
PROBE = """
import socket, sys
try:
    socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=float(sys.argv[3])).close()
    print("open")
except OSError as error:
    print(type(error).__name__)
"""
TIMEOUT_S = 2.0


def reach(source: str, target: str, port: int) -> str:
    result = subprocess.run(
        ["docker", "exec", source, "python3", "-c", PROBE, target, str(port), str(TIMEOUT_S)],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    return result.stdout.strip()


def cases() -> list[tuple[str, str, str, str, bool]]:
    """(what, source, target, port setting or number, open?)"""
    return [
        ("inter-node port from a cluster member", "rabbit2", "rabbit1", "rabbitmq_dist_port", True),
        ("inter-node port from a worker", "worker1", "rabbit1", "rabbitmq_dist_port", False),
        ("inter-node port from a load balancer", "lb1", "rabbit1", "rabbitmq_dist_port", False),
        ("epmd from a cluster member", "rabbit3", "rabbit1", 4369, True),
        ("epmd from a worker", "worker2", "rabbit1", 4369, False),
        ("a node's AMQP from a load balancer", "lb1", "rabbit2", "rabbitmq_amqps_port", True),
        ("a node's AMQP from a worker", "worker1", "rabbit2", "rabbitmq_amqps_port", False),
        (
            "a node's management from a load balancer",
            "lb2",
            "rabbit3",
            "rabbitmq_management_tls_port",
            True,
        ),
        (
            "a node's management from a worker",
            "worker2",
            "rabbit3",
            "rabbitmq_management_tls_port",
            False,
        ),
        # Nothing scrapes in the lab: not even another node gets the metrics.
        (
            "a node's Prometheus metrics from another node",
            "rabbit2",
            "rabbit1",
            "rabbitmq_prometheus_port",
            False,
        ),
        ("the load balancer's AMQP from a worker", "worker1", "lb1", "haproxy_amqp_port", True),
        ("the load balancer's stats from a worker", "worker1", "lb1", "haproxy_stats_port", False),
        ("Flower from another worker", "worker2", "worker1", "flower_port", False),
    ]


def port_of(port: str | int) -> int:
    return port if isinstance(port, int) else int(lab_settings()[port])


@pytest.mark.parametrize(
    ("source", "target", "port", "expect_open"),
    [case[1:] for case in cases()],
    ids=[case[0] for case in cases()],
)
def test_port_answers_only_whom_it_serves(source, target, port, expect_open):
    outcome = reach(source, target, port_of(port))
    if expect_open:
        assert outcome == "open", f"{source} -> {target}:{port_of(port)} ({port}): {outcome}"
    else:
        assert outcome != "open", f"{source} reached {target}:{port_of(port)} ({port})"


def test_each_closed_case_has_an_open_twin_or_a_local_listener():
    """A closed case proves nothing if the port is closed for everyone: each closed port is open
    from some allowed host above, or (metrics, Flower, stats) answers on the host itself."""
    open_ports = {(target, port) for _, _, target, port, is_open in cases() if is_open}
    local = {
        ("rabbit1", "rabbitmq_prometheus_port"),
        ("lb1", "haproxy_stats_port"),
        ("worker1", "flower_port"),
    }
    for what, _, target, port, is_open in cases():
        if is_open or (target, port) in open_ports:
            continue
        assert (target, port) in local or any(p == port for (_, p) in open_ports), what
    for target, port in sorted(local):
        assert reach(target, "127.0.0.1", port_of(port)) == "open", (
            f"{target}:{port} has no listener"
        )


@pytest.mark.parametrize("container", ["rabbit1", "lb1", "worker1"])
def test_the_firewall_drops_what_it_does_not_allow(container):
    table = subprocess.run(
        ["docker", "exec", container, "nft", "list", "chain", "inet", "host_firewall", "input"],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    ).stdout
    assert "policy drop;" in table
