"""TLS everywhere (roles/tls): every service listens over TLS with a certificate of the lab's
CA, the plain listeners are off, and every client verifies. Each check also shows the other
side: a client that does not trust the lab's CA is refused, a plain listener does not answer."""

from __future__ import annotations

import json
import socket
import ssl
import subprocess
import time

import pytest
import requests
from conftest import (
    LAB_INVENTORY,
    assert_whole_system_answers,
    behaviour,
    controller_api,
    controller_ca,
    lab_groups,
    lab_settings,
    published_port,
    run_playbook,
)

pytestmark = pytest.mark.skipif(
    not lab_settings()["tls_enabled"], reason="the lab runs without TLS (tls_enabled: false)"
)

GROUPS = lab_groups()
NODES = sorted(h for h, g in GROUPS.items() if "rabbitmq" in g)
LBS = sorted(h for h, g in GROUPS.items() if "haproxy" in g)
FLOWER = sorted(h for h, g in GROUPS.items() if "flower" in g)


def dexec(container: str, *args: str) -> str:
    return subprocess.run(
        ["docker", "exec", container, *args], capture_output=True, text=True, timeout=60, check=True
    ).stdout


def handshake(port: int, context: ssl.SSLContext, name: str) -> dict:
    """A TLS handshake with 127.0.0.1:port, checking the certificate names ``name``."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as raw:
        with context.wrap_socket(raw, server_hostname=name) as tls:
            return {"version": tls.version(), "cert": tls.getpeercert()}


def lab_context() -> ssl.SSLContext:
    return ssl.create_default_context(cafile=controller_ca(lab_settings()))


def listening(container: str) -> set[int]:
    out = dexec(container, "ss", "-Hltn")
    return {int(line.split()[3].rsplit(":", 1)[1]) for line in out.splitlines() if line.strip()}


@pytest.mark.parametrize("node", NODES)
def test_a_node_listens_over_tls_only(node):
    lab = lab_settings()
    ports = listening(node)
    assert {lab["rabbitmq_amqps_port"], lab["rabbitmq_management_tls_port"]} <= ports, ports
    assert not {lab["rabbitmq_amqp_port"], lab["rabbitmq_management_port"]} & ports, ports


@pytest.mark.parametrize("lb", LBS)
def test_amqp_through_the_load_balancer_is_tls_that_only_the_lab_ca_verifies(lb):
    """HAProxy passes TLS through: the certificate is a node's, valid for the virtual IP."""
    lab = lab_settings()
    port = published_port(lb, lab["haproxy_amqp_port"])
    vip = lab["app_broker"]["hosts"][0]
    session = handshake(port, lab_context(), vip)
    assert session["version"] in ("TLSv1.3", "TLSv1.2")
    names = {value for _, value in session["cert"]["subjectAltName"]}
    assert vip in names and names & set(NODES), names
    with pytest.raises(ssl.SSLCertVerificationError):
        handshake(port, ssl.create_default_context(), vip)  # the system's CAs only


@pytest.mark.parametrize("lb", LBS)
def test_the_management_api_through_the_load_balancer_is_https(lb):
    lab = lab_settings()
    api, verify = controller_api(lab, lb)
    assert api.startswith("https://")
    operator = (lab["rabbitmq_operator_user"], lab["rabbitmq_operator_password"])
    assert requests.get(f"{api}/overview", auth=operator, timeout=10, verify=verify).ok
    with pytest.raises(requests.exceptions.SSLError):
        requests.get(f"{api}/overview", auth=operator, timeout=10, verify=True)
    plain = api.replace("https://", "http://")
    try:  # HAProxy closes a plain HTTP request on its HTTPS port, or answers 400
        status = requests.get(f"{plain}/overview", auth=operator, timeout=10).status_code
    except requests.exceptions.ConnectionError:
        status = None
    assert status in (None, 400), status


@pytest.mark.parametrize("flower", FLOWER)
def test_flower_is_https(flower):
    lab = lab_settings()
    port = published_port(flower, lab["flower_port"])
    auth = (lab["flower_basic_auth_user"], lab["flower_basic_auth_password"])
    url = f"https://127.0.0.1:{port}/healthcheck"
    assert requests.get(url, auth=auth, timeout=10, verify=controller_ca(lab)).status_code == 200
    with pytest.raises(requests.exceptions.SSLError):
        requests.get(url, auth=auth, timeout=10, verify=True)


@pytest.mark.parametrize("node", NODES)
def test_erlang_distribution_runs_over_tls(node):
    """The node and the CLI tools speak distribution over TLS (inet_tls); the cluster formed
    that way (test_rabbitmq checks its members)."""
    argument = dexec(node, "rabbitmqctl", "-q", "eval", "init:get_argument(proto_dist).")
    assert "inet_tls" in argument, argument
    status = json.loads(dexec(node, "rabbitmqctl", "-q", "cluster_status", "--formatter", "json"))
    assert len(status["running_nodes"]) == len(NODES), status["running_nodes"]


@pytest.mark.parametrize("node", NODES)
def test_a_peer_without_a_certificate_is_refused_on_the_distribution_port(node):
    """fail_if_no_peer_cert: a TLS client without a certificate of the lab's CA gets no
    further than the handshake (a cluster member's own connection presents its cert)."""
    lab = lab_settings()
    probe = (
        "import socket, ssl, sys\n"
        "ctx = ssl.create_default_context(cafile='/etc/rabbitmq/tls/ca.pem')\n"
        "ctx.check_hostname = False\n"
        f"raw = socket.create_connection(('{node}', {lab['rabbitmq_dist_port']}), timeout=5)\n"
        "try:\n"
        f"    s = ctx.wrap_socket(raw, server_hostname='{node}')\n"
        "    s.settimeout(5); s.recv(1)\n"
        "    print('accepted')\n"
        "except (ssl.SSLError, ConnectionError, OSError) as error:\n"
        "    print('refused', type(error).__name__)\n"
    )
    other = next(n for n in NODES if n != node)
    outcome = dexec(other, "python3", "-c", probe).strip()
    assert outcome.startswith("refused"), outcome


def test_every_client_of_the_broker_verifies_it():
    """The workers' and Flower's settings: amqps:// URLs and the CA they verify with."""
    for host, groups in GROUPS.items():
        for group, env_file in (
            ("celery_workers", "/etc/tasks_app/tasks_app.env"),
            ("flower", "/etc/flower/flower.env"),
        ):
            if group not in groups:
                continue
            env = dexec(host, "cat", env_file)
            assert "TASKS_APP_BROKER_URL=amqps://" in env, (host, env_file)
            ca_line = next(line for line in env.splitlines() if "BROKER_CA_FILE=" in line)
            dexec(host, "test", "-s", ca_line.split("=", 1)[1])


def served_serial(lb: str) -> int:
    """The serial number of the certificate HAProxy serves on lb's management port, verified
    against the lab's CA for the load balancer's own name."""
    port = published_port(lb, lab_settings()["haproxy_management_port"])
    return int(handshake(port, lab_context(), lb)["cert"]["serialNumber"], 16)


@behaviour
def test_renewal_is_a_re_run_that_serves_new_certificates():
    """A certificate due for renewal is signed again by the next run, and served at once.
    `tls_renew_days` beyond a certificate's lifetime makes every one due: the load balancers'
    playbook re-signs theirs, HAProxy reloads and serves them (verified against the lab's CA),
    and the whole system answers: every node, every worker's ping, beat, Flower, every
    HAProxy backend, one virtual IP."""
    before = {lb: served_serial(lb) for lb in LBS}
    rc, output, changed = run_playbook(
        LAB_INVENTORY, "playbooks/haproxy.yml", "-e", "tls_renew_days=3650"
    )
    assert rc == 0, output[-4000:]
    assert all(changed.get(lb, 0) > 0 for lb in LBS), changed
    # A reload lets the old process finish its connections; a new handshake gets the new one.
    deadline = time.monotonic() + 30
    after = {lb: served_serial(lb) for lb in LBS}
    while any(after[lb] == before[lb] for lb in LBS) and time.monotonic() < deadline:
        time.sleep(1)
        after = {lb: served_serial(lb) for lb in LBS}
    assert all(after[lb] != before[lb] for lb in LBS), (before, after)
    assert_whole_system_answers()
