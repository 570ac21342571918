"""tasks_app.amqp: publishing a task waits a bounded time for RabbitMQ's confirm."""

from unittest import mock

from tasks_app import app
from tasks_app.config import load_settings


def publish_kwargs(**options):
    producer = mock.MagicMock()
    message = app.amqp.create_task_message("id-1", "tasks_app.tasks.add", (1, 2), {})
    app.amqp.send_task_message(producer, "tasks_app.tasks.add", message, **options)
    producer.publish.assert_called_once()
    return producer.publish.call_args.kwargs


def test_the_app_publishes_with_the_configured_confirm_timeout():
    assert app.conf.tasks_app_confirm_timeout == 3.0
    assert publish_kwargs()["confirm_timeout"] == 3.0


def test_a_caller_can_still_choose_its_own_confirm_timeout():
    assert publish_kwargs(confirm_timeout=9)["confirm_timeout"] == 9


def test_the_confirm_timeout_comes_from_the_environment():
    settings = load_settings({"TASKS_APP_CONFIRM_TIMEOUT": "1.5"})
    assert settings["tasks_app_confirm_timeout"] == 1.5
