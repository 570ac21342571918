"""``tasks_app.backends:ReplicatedRPCBackend``: Celery's rpc:// result backend with reply
queues that survive the loss of a RabbitMQ node.

rpc:// sends each result straight to a reply queue of the client that sent the task. Stock,
that queue is a classic queue on whichever node the client happened to connect to: when that
node dies the queue is gone with every result in it, results published meanwhile are dropped
(the worker publishes them without ``mandatory``), and the consumer gives up after one failed
reconnect. Here

* the reply queue is a **quorum queue** (replicated on every node; ``x-expires`` removes it
  once its client is gone for ``result_expires`` seconds): results sent while the client's
  node is down wait in it, and a node loss costs no result;
* results are consumed with **manual acknowledgements**, so a result in flight when the
  connection drops is delivered again instead of lost (a duplicate is ignored);
* after a lost connection the consumer **keeps reconnecting** (through the failover list)
  and consumes the same queue again, for as long as the caller is waiting; ``get(timeout=)``
  keeps its deadline and raises ``TimeoutError`` when a result cannot arrive in time.

What it does not do: a result lives only as long as its client process (the queue is named
after it, like rpc://); it cannot be fetched by another process or after a restart.
"""

from __future__ import annotations

import logging
import time

from celery._state import task_join_will_block
from celery.backends.rpc import ResultConsumer, RPCBackend
from kombu.common import maybe_declare

logger = logging.getLogger(__name__)


class ReplicatedResultConsumer(ResultConsumer):
    """Consumes results with acks and heartbeats, and reconnects while a caller waits."""

    _lost_queues: list | None = None

    def _connect(self):
        # With heartbeats (checked in drain_events): an idle result connection through a load
        # balancer that died would otherwise be noticed only by TCP keepalive, after minutes.
        return self.app.connection_for_read(heartbeat=self.app.conf.broker_heartbeat)

    def _consume(self, connection, queues):
        consumer = self.Consumer(
            connection.default_channel,
            queues,
            # Acknowledge after Celery has recorded the result: with no_ack, a result in flight
            # when a node dies is lost. Only deliveries of this consumer are acked here; results
            # fetched by polling (get_task_meta) are acked or requeued by Celery itself.
            callbacks=[self.on_state_change, self._ack],
            no_ack=False,
            accept=self.accept,
        )
        consumer.consume()
        return consumer

    def start(self, initial_task_id, no_ack=True, **kwargs):
        self._no_ack = False
        self._connection = self._connect()
        self._connection_errors = (
            self._connection.connection_errors + self._connection.channel_errors
        )
        self._consumer = self._consume(self._connection, [self._create_binding(initial_task_id)])

    @staticmethod
    def _ack(_body, message):
        if message.acknowledged:
            return
        try:
            message.ack()
        except Exception as exc:  # connection gone: it comes again, and is ignored then
            logger.debug("result not acknowledged: %r", exc)

    def _reconnect(self):
        """Forget the lost connection; drain_events reconnects while the caller waits."""
        if self._consumer is not None:
            self._lost_queues = list(self._consumer.queues)
        if self._connection is not None:
            try:
                self._connection.collect()  # drop the socket without a close handshake
            except Exception as exc:
                logger.debug("dropping the lost result connection: %r", exc)
        self._connection = None
        self._consumer = None
        logger.warning("result consumer: connection lost, reconnecting")

    def _resubscribe(self):
        connection = self._connect()
        try:
            # One connection attempt (bounded by broker_connection_timeout); the Drainer calls
            # again until the caller's deadline.
            connection.ensure_connection(max_retries=0)
            # The rpc Consumer does not declare; the queue is replicated and still there, but
            # declare it anyway in case it expired while everything was down.
            for queue in self._lost_queues or []:
                queue(connection.default_channel).declare()
            consumer = self._consume(connection, self._lost_queues)
        except Exception:
            connection.collect()
            raise
        self._connection, self._consumer, self._lost_queues = connection, consumer, None
        self._connection_errors = connection.connection_errors + connection.channel_errors
        logger.warning("result consumer: reconnected")

    def drain_events(self, timeout=None):
        if self._connection is None and self._lost_queues is not None:
            started = time.monotonic()
            try:
                self._resubscribe()
            except Exception as exc:
                logger.debug("result consumer: reconnect failed: %r", exc)
                time.sleep(max(0.0, min(timeout or 1.0, 1.0) - (time.monotonic() - started)))
                raise TimeoutError() from exc  # not a result yet; the Drainer keeps the deadline
            return None
        if self._connection is not None:
            with self.reconnect_on_error():
                # Sends our heartbeats and raises when the broker's stopped arriving.
                self._connection.heartbeat_check()
            if self._connection is None:
                return None
        return super().drain_events(timeout=timeout)

    def consume_from(self, task_id):
        if self._connection is None and self._lost_queues is not None:
            return None  # the reply queue is the same for every task: resubscribing covers it
        return super().consume_from(task_id)


class ReplicatedRPCBackend(RPCBackend):
    """rpc:// with quorum reply queues and a consumer that survives node loss."""

    ResultConsumer = ReplicatedResultConsumer

    def on_task_call(self, producer, task_id):
        # rpc:// declares the reply queue before each send with kombu's default retry, which
        # retries forever; bound it like the publish itself (task_publish_retry_policy).
        if not task_join_will_block():
            policy = self.app.conf.task_publish_retry_policy
            maybe_declare(self.binding(producer.channel), retry=True, **policy)

    @property
    def binding(self):
        return self.Queue(
            self.oid,
            self.exchange,
            self.oid,
            durable=True,
            auto_delete=False,  # quorum queues cannot auto-delete; x-expires cleans up
            expires=self.expires,
            queue_arguments={"x-queue-type": "quorum"},
        )
