"""The Celery application (``celery -A tasks_app worker`` finds it as ``tasks_app.app``)."""

from __future__ import annotations

from celery import Celery

from . import config

# amqp: task publishing waits a bounded time for RabbitMQ's confirm (tasks_app.amqp).
# task_cls: a connection loss cancels running tasks without a false REVOKED (tasks_app.worker).
app = Celery(
    "tasks_app",
    include=["tasks_app.tasks"],
    amqp="tasks_app.amqp:AMQP",
    task_cls="tasks_app.worker:Task",
)
app.config_from_object(config.settings)
