"""The Celery application (``celery -A tasks_app worker`` finds it as ``tasks_app.app``)."""

from __future__ import annotations

from celery import Celery

from . import config

# amqp: task publishing waits a bounded time for RabbitMQ's confirm (tasks_app.amqp).
app = Celery("tasks_app", include=["tasks_app.tasks"], amqp="tasks_app.amqp:AMQP")
app.config_from_object(config.settings)
