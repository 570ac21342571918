"""The Celery application (``celery -A tasks_app worker`` finds it as ``tasks_app.app``)."""

from __future__ import annotations

from celery import Celery

from . import config

app = Celery("tasks_app", include=["tasks_app.tasks"])
app.config_from_object(config.settings)
