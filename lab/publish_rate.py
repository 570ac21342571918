"""Confirmed publishes per second over the lab's AMQP(S), a classic queue beside a quorum one.

Separates what a Celery round trip costs from what the broker costs: a classic queue's
confirm stays on the node the client is connected to, a quorum queue's crosses the Erlang
distribution (TLS in the lab) to a majority of its members first. Publishes ``-n`` persistent
messages one by one, each confirmed, to a fresh queue of each type on the vhost of the
application (as its user), prints one line per queue type, and deletes the queues.

    .venv/bin/python lab/publish_rate.py            # through lb1's published port
    .venv/bin/python lab/publish_rate.py --host rabbit1
"""

from __future__ import annotations

import argparse
import ssl
import time

from inventory_vars import client_port, controller_ca, settings
from kombu import Connection, Exchange, Producer, Queue
from report import container, controller_url, host_groups, inventory


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default="lb1", help="lab host whose published port to use")
    parser.add_argument("-n", type=int, default=500, help="messages per queue type")
    args = parser.parse_args()

    conf = settings()
    groups = host_groups(inventory())
    _, ports = container(args.host)
    port = ports[client_port(conf, set(groups[args.host]))]
    broker = conf["app_broker"]
    ca_file = controller_ca(conf) if broker.get("tls") else None
    tls = {"ca_certs": ca_file, "cert_reqs": ssl.CERT_REQUIRED} if ca_file else False
    url = controller_url(conf, port)  # filter_plugins/broker.py: the one way to build it
    for queue_type in ("classic", "quorum"):
        name = f"publish-rate-{queue_type}"
        queue = Queue(
            name,
            exchange=Exchange(""),
            routing_key=name,
            durable=True,
            queue_arguments={"x-queue-type": queue_type},
        )
        with Connection(url, ssl=tls, transport_options={"confirm_publish": True}) as conn:
            channel = conn.channel()
            bound = queue(channel)
            bound.declare()
            try:
                producer = Producer(channel)
                start = time.monotonic()
                for i in range(args.n):
                    producer.publish({"i": i}, routing_key=name, delivery_mode=2)
                seconds = time.monotonic() - start
            finally:
                bound.delete()
        print(
            f"host={args.host} port={port} tls={bool(ca_file)} queue={queue_type} "
            f"messages={args.n} seconds={seconds:.2f} per_second={args.n / seconds:.0f}"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
