"""``tasks_app.amqp:AMQP``: Celery's task publisher with a bounded wait for RabbitMQ's confirm.

With publisher confirms, publishing a task waits for RabbitMQ to confirm it. Stock, that wait
has no limit. When the leader of a quorum queue dies with a message in flight, the publishing
channel re-sends it to the new leader only on RabbitMQ's resend timer: the fault runs measured
the client waiting 7 s (RabbitMQ 4.0) while the new leader had been elected in under half a
second. Here the wait for a confirm is bounded (``tasks_app_confirm_timeout``, 3 s): past it,
kombu treats the connection as broken, reconnects and publishes the task again, within the
same ``task_publish_retry_policy``. The price: a task whose first copy was in fact accepted
runs twice, as late acknowledgements already allow (tasks must be idempotent).
"""

from __future__ import annotations

from celery.app.amqp import AMQP as CeleryAMQP


class AMQP(CeleryAMQP):
    def _create_task_sender(self):
        send = super()._create_task_sender()
        default = self.app.conf.get("tasks_app_confirm_timeout")

        def send_task_message(producer, name, message, confirm_timeout=None, **kwargs):
            if confirm_timeout is None:
                confirm_timeout = default
            return send(producer, name, message, confirm_timeout=confirm_timeout, **kwargs)

        return send_task_message
