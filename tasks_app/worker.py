"""Worker supervision: a heartbeat that cannot block the event loop, and systemd's watchdog
fed only while the worker really consumes.

Celery's own Heart publishes ``worker-heartbeat`` with ``retry=True`` and no retry policy,
so kombu retries a lost connection forever inside the worker's event loop (seen in this
project's fault runs: a worker ``active`` to systemd that consumed nothing for 25 minutes).
``Consumer`` replaces that step with ``SupervisedHeart``, which

* publishes heartbeats with a bounded retry policy (the loop is back within seconds; the
  consumer's own connection handling then reconnects, and answers shutdown while it does);
* sends ``WATCHDOG=1`` to systemd on each beat, but only while the connection is up and the
  task consumer consumes from every queue it should. A worker that is stuck, reconnecting
  for longer than ``WatchdogSec`` or consuming nothing misses its watchdog and systemd
  restarts it; its unacknowledged (late-ack) tasks go back to the queue.

``READY=1`` is sent once the worker consumes (``worker_ready``), ``STOPPING=1`` when it shuts
down. The setting ``worker_consumer = "tasks_app.worker:Consumer"`` (tasks_app.config) wires it in.

``Request`` (every task's request class, through ``Task``, the app's task class) cancels a
running late-ack task on a connection loss without publishing a RETRY state first; see there.
"""

from __future__ import annotations

import logging

from celery import Task as _CeleryTask
from celery import signals
from celery.worker import heartbeat
from celery.worker.consumer import Consumer as _CeleryConsumer
from celery.worker.consumer.events import Events
from celery.worker.consumer.heart import Heart as _HeartStep
from celery.worker.request import Request as _CeleryRequest

from . import systemd

logger = logging.getLogger(__name__)

# How a heartbeat publish retries a lost connection: a few quick attempts, then give up
# until the next beat (Celery's default: forever, in the event loop).
HEARTBEAT_RETRY_POLICY = {
    "max_retries": 2,
    "interval_start": 0,
    "interval_step": 0.5,
    "interval_max": 1,
}


def consuming(consumer) -> bool:
    """True when the worker's connection is up and it consumes from every queue it should."""
    connection = getattr(consumer, "connection", None)
    task_consumer = getattr(consumer, "task_consumer", None)
    if connection is None or task_consumer is None or not connection.connected:
        return False
    queues = consumer.app.amqp.queues.consume_from or {}
    return bool(queues) and all(task_consumer.consuming_from(name) for name in queues)


class SupervisedHeartbeat(heartbeat.Heart):
    """Celery's heartbeat with a bounded publish, feeding systemd's watchdog."""

    def __init__(self, timer, eventer, interval=None, consumer=None):
        super().__init__(timer, eventer, interval)
        self.consumer = consumer

    def _send(self, event, retry=True):
        if event == "worker-heartbeat" and consuming(self.consumer):
            systemd.notify(systemd.WATCHDOG)
        if self._send_sent_signal is not None:
            self._send_sent_signal(sender=self)
        try:
            return self.eventer.send(
                event,
                freq=self.interval,
                active=len(heartbeat.active_requests),
                processed=heartbeat.all_total_count[0],
                loadavg=heartbeat.load_average(),
                retry=retry,
                retry_policy=HEARTBEAT_RETRY_POLICY,
                **heartbeat.SOFTWARE_INFO,
            )
        except Exception as exc:  # the dispatcher re-raises only when it cannot buffer
            logger.warning("heartbeat not sent: %r", exc)
            return None


class SupervisedHeart(_HeartStep):
    """The consumer step that runs SupervisedHeartbeat in place of Celery's Heart."""

    name = "tasks_app.worker.SupervisedHeart"
    requires = (Events,)

    def start(self, c):
        c.heart = SupervisedHeartbeat(
            c.timer, c.event_dispatcher, self.heartbeat_interval, consumer=c
        )
        c.heart.start()


HEART_STEP = "celery.worker.consumer.heart:Heart"


class Consumer(_CeleryConsumer):
    """Celery's consumer with SupervisedHeart instead of its Heart step."""

    class Blueprint(_CeleryConsumer.Blueprint):
        default_steps = [
            "tasks_app.worker:SupervisedHeart" if step == HEART_STEP else step
            for step in _CeleryConsumer.Blueprint.default_steps
        ]


class Request(_CeleryRequest):
    """Celery's task request, cancelled quietly after a broker connection loss.

    On a connection loss (worker_cancel_long_running_tasks_on_connection_loss) Celery kills the
    running late-ack jobs, whose messages RabbitMQ puts back in the queue, and first publishes a
    RETRY state for each through the connection that was just lost. That publish blocks the
    event loop for the publish retry policy (~20 s) and then fails before the request is marked
    cancelled, so the killed job is reported to the caller as REVOKED ('terminated') while its
    message runs again elsewhere: the caller gets an error for a task that succeeded. (Found by
    `make ops-drill`, run chaos20261129T172557: a 2 s task running when the cookie rotation
    stopped every node.) Here no RETRY state is published: the caller simply waits for the
    result of the run that completes.
    """

    def cancel(self, pool, signal=None, emit_retry=True):
        super().cancel(pool, signal, emit_retry=False)


class Task(_CeleryTask):
    """The app's task class (tasks_app.celery): Celery's, with the Request above."""

    Request = "tasks_app.worker:Request"


@signals.worker_ready.connect
def _ready(**_kwargs):
    systemd.notify(systemd.READY)


@signals.worker_shutting_down.connect
def _stopping(**_kwargs):
    systemd.notify(systemd.STOPPING)
