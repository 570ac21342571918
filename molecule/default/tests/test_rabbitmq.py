"""The RabbitMQ cluster: membership, health, access, policies, quorum replication."""

from __future__ import annotations

import json
import ssl
import uuid

import pika
import pytest
import requests
from conftest import (
    client_port,
    controller_api,
    controller_ca,
    lab_groups,
    lab_settings,
    published_port,
)

testinfra_hosts = ["ansible://rabbitmq"]

NODES = sorted(h for h, groups in lab_groups().items() if "rabbitmq" in groups)
NODENAMES = sorted(f"rabbit@{h}" for h in NODES)


def cluster_status(host) -> dict:
    return json.loads(host.check_output("rabbitmqctl -q cluster_status --formatter json"))


def test_cluster_has_every_node_running_and_healthy(host):
    status = cluster_status(host)
    assert sorted(status["running_nodes"]) == NODENAMES
    assert sorted(status["disk_nodes"]) == sorted(status["running_nodes"])
    assert status["partitions"] == {}
    assert status["alarms"] == []
    assert set(status["maintenance_status"].values()) == {"not under maintenance"}
    versions = status["versions"].values()
    assert len({v["rabbitmq_version"] for v in versions}) == 1
    assert len({v["erlang_version"] for v in versions}) == 1
    assert len(status["versions"]) == len(NODES)


@pytest.mark.parametrize(
    "check",
    ["check_running", "check_local_alarms", "check_port_connectivity", "check_virtual_hosts"],
)
def test_diagnostics_pass(host, check):
    result = host.run(f"rabbitmq-diagnostics -q {check}")
    assert result.rc == 0, result.stdout + result.stderr


def test_cookie_is_private_to_rabbitmq(host):
    cookie = host.file("/var/lib/rabbitmq/.erlang.cookie")
    assert cookie.user == "rabbitmq"
    assert cookie.mode == 0o400
    assert len(cookie.content_string.strip()) >= 32


def test_partition_handling_is_pause_minority(host):
    value = host.check_output(
        "rabbitmqctl -q eval 'application:get_env(rabbit, cluster_partition_handling).'"
    )
    assert "pause_minority" in value


def test_app_vhost_defaults_to_quorum_queues(host, lab):
    vhosts = json.loads(
        host.check_output("rabbitmqctl -q list_vhosts name default_queue_type --formatter json")
    )
    types = {v["name"]: v["default_queue_type"] for v in vhosts}
    assert types[lab["rabbitmq_app_vhost"]] == "quorum"


def test_users_and_tags(host, lab):
    users = {
        u["user"]: set(u["tags"])
        for u in json.loads(host.check_output("rabbitmqctl -q list_users --formatter json"))
    }
    assert "guest" not in users
    assert "administrator" in users[lab["rabbitmq_operator_user"]]
    assert users[lab["rabbitmq_app_user"]] == set()
    assert "monitoring" in users[lab["rabbitmq_monitoring_user"]]


def test_quorum_dead_letter_policy(host, lab):
    policies = json.loads(
        host.check_output(
            "rabbitmqctl -q list_policies -p %s --formatter json", lab["rabbitmq_app_vhost"]
        )
    )
    policy = next(p for p in policies if p["name"] == "quorum-dead-letter")
    definition = policy["definition"]
    definition = json.loads(definition) if isinstance(definition, str) else definition
    assert policy["apply-to"] == "quorum_queues"
    assert definition["dead-letter-exchange"] == lab["rabbitmq_dead_letter_exchange"]
    assert definition["delivery-limit"] == lab["rabbitmq_delivery_limit"]


# --- From the controller, through each node's published AMQP port -------------------------


def connect(node: str, user: str, password: str, vhost: str) -> pika.BlockingConnection:
    lab = lab_settings()
    ca_file = controller_ca(lab) if lab["app_broker"].get("tls") else None
    tls = None
    if ca_file:
        # The node's own certificate is valid for the controller's loopback in the lab.
        tls = pika.SSLOptions(ssl.create_default_context(cafile=ca_file), "127.0.0.1")
    return pika.BlockingConnection(
        pika.ConnectionParameters(
            host="127.0.0.1",
            port=published_port(node, client_port(lab, lab_groups()[node])),
            ssl_options=tls,
            virtual_host=vhost,
            credentials=pika.PlainCredentials(user, password),
            connection_attempts=3,
            retry_delay=1,
        )
    )


def app_connection(lab, node: str, vhost: str | None = None):
    app = lab["app_broker"]
    return connect(node, app["user"], app["password"], vhost or app["vhost"])


def test_guest_user_is_gone(host):
    # On the node itself: loopback_users would refuse guest from afar even if it existed.
    assert host.run("rabbitmqctl -q authenticate_user guest guest").rc != 0


@pytest.mark.parametrize("node", NODES)
def test_guest_cannot_log_in(node):
    with pytest.raises(pika.exceptions.ProbableAuthenticationError):
        connect(node, "guest", "guest", "/")


def test_app_user_is_refused_on_another_vhost(lab):
    with pytest.raises(pika.exceptions.ProbableAccessDeniedError):
        app_connection(lab, NODES[0], vhost="/")


def test_app_user_publishes_with_confirms_and_consumes_across_nodes(lab):
    queue = f"test.roundtrip.{uuid.uuid4().hex[:8]}"
    body = uuid.uuid4().hex.encode()
    producer = app_connection(lab, NODES[0])
    channel = producer.channel()
    channel.confirm_delivery()
    channel.queue_declare(queue, durable=True, arguments={"x-queue-type": "quorum"})
    channel.basic_publish("", queue, body, mandatory=True)  # raises unless confirmed
    consumer = app_connection(lab, NODES[-1])
    try:
        method, _, received = consumer.channel().basic_get(queue, auto_ack=True)
        assert method is not None and received == body
    finally:
        channel.queue_delete(queue)
        producer.close()
        consumer.close()


def test_quorum_queue_has_a_member_on_every_node(host, lab):
    if host.backend.host != NODES[0]:
        pytest.skip("declared once, checked from the first node")
    queue = f"test.members.{uuid.uuid4().hex[:8]}"
    connection = app_connection(lab, NODES[1])
    channel = connection.channel()
    channel.queue_declare(queue, durable=True)  # the vhost's default type must make it quorum
    try:
        queues = json.loads(
            host.check_output(
                "rabbitmqctl -q list_queues -p %s name type members --formatter json",
                lab["rabbitmq_app_vhost"],
            )
        )
        mine = next(q for q in queues if q["name"] == queue)
        assert mine["type"] == "quorum"
        assert sorted(mine["members"]) == NODENAMES
    finally:
        channel.queue_delete(queue)
        connection.close()


def test_message_past_the_delivery_limit_is_dead_lettered(lab):
    queue = f"test.poison.{uuid.uuid4().hex[:8]}"
    body = uuid.uuid4().hex.encode()
    connection = app_connection(lab, NODES[0])
    channel = connection.channel()
    channel.confirm_delivery()
    channel.queue_declare(queue, durable=True, arguments={"x-queue-type": "quorum"})
    try:
        channel.basic_publish("", queue, body)
        rejected = 0
        while True:
            method, _, _ = channel.basic_get(queue)
            if method is None:
                break
            channel.basic_nack(method.delivery_tag, requeue=True)
            rejected += 1
            assert rejected <= lab["rabbitmq_delivery_limit"] + 1, "message never dead-lettered"
        assert rejected == lab["rabbitmq_delivery_limit"] + 1
        found = None
        for _ in range(50):
            method, _, dead = channel.basic_get(lab["rabbitmq_dead_letter_queue"], auto_ack=False)
            if method is None:
                connection.sleep(0.1)  # dead-lettering is asynchronous; poll, bounded
                continue
            if dead == body:
                found = dead
                channel.basic_ack(method.delivery_tag)
                break
            channel.basic_nack(method.delivery_tag, requeue=True)
        assert found == body
    finally:
        channel.queue_delete(queue)
        connection.close()


# --- Least privilege: each forbidden action refused ------------------------------------------
# The management API through the first load balancer (the nodes publish only AMQP).
LB = sorted(h for h, groups in lab_groups().items() if "haproxy" in groups)[0]


def _refused(action) -> int:
    with pytest.raises(pika.exceptions.ChannelClosedByBroker) as refused:
        action()
    return refused.value.reply_code


def test_the_monitoring_user_can_neither_consume_publish_nor_delete(lab):
    vhost = lab["app_broker"]["vhost"]
    monitoring = connect(
        NODES[0], lab["rabbitmq_monitoring_user"], lab["rabbitmq_monitoring_password"], vhost
    )
    try:
        dead_letters = lab["rabbitmq_dead_letter_queue"]
        assert _refused(lambda: monitoring.channel().basic_get(dead_letters)) == 403
        assert _refused(lambda: monitoring.channel().queue_delete(dead_letters)) == 403

        def publish():
            channel = monitoring.channel()
            channel.confirm_delivery()  # so that the refusal arrives before basic_publish returns
            channel.basic_publish(lab["rabbitmq_dead_letter_exchange"], "", b"x")

        assert _refused(publish) == 403
    finally:
        monitoring.close()
    # What it is for: the management API shows it the vhost's queues (Flower's broker API).
    api, verify = controller_api(lab, LB)
    seen = requests.get(
        f"{api}/queues/{vhost}",
        auth=(lab["rabbitmq_monitoring_user"], lab["rabbitmq_monitoring_password"]),
        timeout=10,
        verify=verify,
    )
    assert seen.status_code == 200, seen.text
    assert dead_letters in {queue["name"] for queue in seen.json()}


def test_the_app_user_cannot_delete_the_dead_letters_or_change_policies(lab):
    connection = app_connection(lab, NODES[0])
    try:
        queue, exchange = lab["rabbitmq_dead_letter_queue"], lab["rabbitmq_dead_letter_exchange"]
        assert _refused(lambda: connection.channel().queue_delete(queue)) == 403
        assert _refused(lambda: connection.channel().exchange_delete(exchange)) == 403
    finally:
        connection.close()
    app = lab["app_broker"]
    api, verify = controller_api(lab, LB)
    answer = requests.put(
        f"{api}/policies/{app['vhost']}/x",
        json={"pattern": ".*", "definition": {"max-length": 1}},
        auth=(app["user"], app["password"]),
        timeout=10,
        verify=verify,
    )
    assert answer.status_code == 401, answer.text  # no management tag: no API, no policies
