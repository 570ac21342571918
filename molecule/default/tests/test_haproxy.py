"""HAProxy in front of the cluster: valid config, running, every node UP, stats and metrics (both
behind the stats user)."""

from __future__ import annotations

import csv
import io
import re

import pytest
from conftest import lab_settings

testinfra_hosts = ["ansible://haproxy"]


def stats_base() -> str:
    """curl's options and the stats port's base URL on the load balancer itself (HTTPS checked
    against the CA the tls role installed, when the lab runs TLS)."""
    port = lab_settings()["haproxy_stats_port"]
    if lab_settings()["tls_enabled"]:
        return f"--cacert /etc/haproxy/tls/ca.pem https://127.0.0.1:{port}"
    return f"http://127.0.0.1:{port}"


# Proxy names from roles/haproxy/vars/main.yml.
AMQP_BACKEND = "rabbitmq_amqp"
MANAGEMENT_BACKEND = "rabbitmq_management"


def backend_nodes(host) -> list[str]:
    group = lab_settings()["haproxy_backend_group"]
    return sorted(host.ansible.get_variables()["groups"][group])


def status_code(host, path: str, auth: str | None = None) -> str:
    credentials = f"-u {auth} " if auth else ""
    # The command holds the password: never put it in an assertion message.
    result = host.run(f"curl -s -o /dev/null -w '%{{http_code}}' {credentials}{stats_base()}{path}")
    return result.stdout.strip()


@pytest.fixture(scope="module")
def stats_rows(host) -> list[dict]:
    auth = f"{lab_settings()['haproxy_stats_user']}:{lab_settings()['haproxy_stats_password']}"
    result = host.run(f"curl -s --fail -u {auth} {stats_base()}'/stats;csv'")
    assert result.rc == 0, f"the stats CSV did not answer (curl exit {result.rc})"
    return list(csv.DictReader(io.StringIO(result.stdout.lstrip("# "))))


def test_configuration_is_valid(host):
    result = host.run("haproxy -c -f /etc/haproxy/haproxy.cfg")
    assert result.rc == 0, result.stdout + result.stderr


def test_configuration_is_private(host):
    config = host.file("/etc/haproxy/haproxy.cfg")
    assert (config.user, config.group, config.mode) == ("root", "haproxy", 0o640)


def test_service_is_enabled_and_running(host):
    service = host.service("haproxy")
    assert service.is_enabled
    assert service.is_running


@pytest.mark.parametrize("backend", [AMQP_BACKEND, MANAGEMENT_BACKEND])
def test_every_node_is_a_server_and_up(host, stats_rows, backend):
    servers = {
        row["svname"]: row["status"]
        for row in stats_rows
        if row["pxname"] == backend and row["svname"] not in ("FRONTEND", "BACKEND")
    }
    assert sorted(servers) == backend_nodes(host)
    assert set(servers.values()) == {"UP"}, servers


def test_amqp_servers_pass_the_amqp_check(host, stats_rows):
    checks = {
        # While a check runs, HAProxy shows the last one's status prefixed with "* " (its
        # management guide, field check_status): the last status is what counts.
        row["svname"]: row["check_status"].removeprefix("* ")
        for row in stats_rows
        if row["pxname"] == AMQP_BACKEND and row["svname"] not in ("FRONTEND", "BACKEND")
    }
    # L7OK: the node answered the AMQP protocol header with Connection.Start (L4OK would
    # mean a bare TCP connect, the role's haproxy_amqp_check: tcp).
    expected = "L7OK" if lab_settings()["haproxy_amqp_check"] == "amqp" else "L4OK"
    assert set(checks.values()) == {expected}, checks


def test_metrics_need_credentials(host):
    assert status_code(host, "/metrics") == "401"
    wrong = f"{lab_settings()['haproxy_stats_user']}:not-the-password"
    assert status_code(host, "/metrics", wrong) == "401"
    right = f"{lab_settings()['haproxy_stats_user']}:{lab_settings()['haproxy_stats_password']}"
    # The command holds the password: never put it in an assertion message.
    metrics = host.check_output(f"curl -s --fail -u {right} {stats_base()}/metrics")
    up = rf'haproxy_server_status{{proxy="{AMQP_BACKEND}",server="[^"]+",state="UP"}} 1'
    assert len(re.findall(up, metrics)) == len(backend_nodes(host))


def test_stats_need_credentials(host):
    assert status_code(host, "/stats") == "401"
    wrong = f"{lab_settings()['haproxy_stats_user']}:not-the-password"
    assert status_code(host, "/stats", wrong) == "401"
    right = f"{lab_settings()['haproxy_stats_user']}:{lab_settings()['haproxy_stats_password']}"
    assert status_code(host, "/stats", right) == "200", "the inventory's password was refused"


def test_exactly_one_load_balancer_holds_the_virtual_ip(host):
    """keepalived: the virtual IP is on one host of the group, never on two."""
    vip = host.ansible.get_variables()["keepalived_virtual_ip"]
    holders = []
    for name in host.ansible.get_variables()["groups"]["haproxy"]:
        peer = host.get_host(f"ansible://{name}", ansible_inventory=host.backend.ansible_inventory)
        if f" {vip}/" in peer.check_output("ip -4 -o addr show"):
            holders.append(name)
    assert len(holders) == 1, holders


def test_keepalived_tracks_haproxy(host):
    assert host.service("keepalived").is_running
    assert host.service("keepalived").is_enabled
    config = host.file("/etc/keepalived/keepalived.conf").content_string
    # A polled check (containers get no kernel process events for vrrp_track_process).
    assert 'script "/usr/bin/pgrep -x haproxy"' in config
    assert "track_script" in config
    assert "script_user keepalived_script" in config
    assert "nopreempt" in config
