"""tasks_app.config: settings built from the environment, and the env file."""

from pathlib import Path

import pytest
from celery.app.defaults import DEFAULTS

from tasks_app.config import (
    DEFAULT_BROKER_URL,
    load_settings,
    merged_environ,
    parse_env_file,
)

LB = "amqp://tasks:secret@lb.example:5672/tasks"
NODE1 = "amqp://tasks:secret@rabbit1.example:5672/tasks"
NODE2 = "amqp://tasks:secret@rabbit2.example:5672/tasks"


def test_defaults():
    settings = load_settings({})
    assert settings["broker_url"] == DEFAULT_BROKER_URL
    assert "broker_failover_strategy" not in settings
    assert settings["result_backend"] == "tasks_app.backends:ReplicatedRPCBackend"
    assert settings["worker_prefetch_multiplier"] == 1
    assert settings["broker_heartbeat"] == 10
    assert settings["task_default_queue"] == "celery"
    assert settings["tasks_app_state_dir"] == "/var/lib/tasks_app"
    assert settings["beat_schedule_filename"] == "/var/lib/tasks_app/celerybeat-schedule"
    assert settings["timezone"] == "UTC"


def test_values_from_environment():
    settings = load_settings(
        {
            "TASKS_APP_BROKER_URL": LB,
            "TASKS_APP_RESULT_BACKEND": "rpc://?x=1",
            "TASKS_APP_PREFETCH": "4",
            "TASKS_APP_HEARTBEAT": "20",
            "TASKS_APP_DEFAULT_QUEUE": "work",
            "TASKS_APP_STATE_DIR": "/srv/state",
            "TASKS_APP_BEAT_INTERVAL": "2.5",
        }
    )
    assert settings["broker_url"] == LB
    assert settings["result_backend"] == "rpc://?x=1"
    assert settings["worker_prefetch_multiplier"] == 4
    assert settings["broker_heartbeat"] == 20
    assert settings["task_default_queue"] == "work"
    assert settings["tasks_app_state_dir"] == "/srv/state"
    assert settings["beat_schedule"]["beat-tick"]["schedule"] == 2.5


def test_failover_puts_the_load_balancer_first():
    settings = load_settings(
        {"TASKS_APP_BROKER_URL": LB, "TASKS_APP_BROKER_FAILOVER": f" {NODE1} ;{NODE2};;"}
    )
    assert settings["broker_url"] == f"{LB};{NODE1};{NODE2}"
    assert settings["broker_failover_strategy"] == "round-robin"


@pytest.mark.parametrize("name", ["TASKS_APP_PREFETCH", "TASKS_APP_HEARTBEAT"])
@pytest.mark.parametrize("value", ["many", "-1"])
def test_bad_numbers_name_the_variable(name, value):
    with pytest.raises(ValueError, match=name):
        load_settings({name: value})


def test_beat_interval_must_be_positive():
    with pytest.raises(ValueError, match="TASKS_APP_BEAT_INTERVAL"):
        load_settings({"TASKS_APP_BEAT_INTERVAL": "0"})


def test_json_only():
    settings = load_settings({})
    assert settings["task_serializer"] == "json"
    assert settings["result_serializer"] == "json"
    assert settings["accept_content"] == ["json"]
    assert settings["result_accept_content"] == ["json"]


def test_reliability_settings():
    settings = load_settings({})
    assert settings["task_acks_late"] is True
    assert settings["task_reject_on_worker_lost"] is True
    assert settings["broker_transport_options"]["confirm_publish"] is True
    assert settings["broker_connection_retry_on_startup"] is True
    assert settings["broker_connection_max_retries"] is None
    assert settings["worker_cancel_long_running_tasks_on_connection_loss"] is True
    assert settings["worker_send_task_events"] is True
    assert settings["task_send_sent_event"] is True


def test_quorum_queue_on_topic_exchange_for_native_delayed_delivery():
    settings = load_settings({})
    assert settings["task_default_queue_type"] == "quorum"
    assert settings["task_default_exchange_type"] == "topic"
    assert settings["broker_native_delayed_delivery_queue_type"] == "quorum"
    assert settings["worker_detect_quorum_queues"] is True


def test_beat_schedule():
    entry = load_settings({"TASKS_APP_BEAT_INTERVAL": "7"})["beat_schedule"]["beat-tick"]
    assert entry == {"task": "tasks_app.tasks.beat_tick", "schedule": 7.0}


def test_every_setting_is_known_to_celery():
    """A misspelt setting would be silently ignored by Celery."""
    unknown = set(load_settings({"TASKS_APP_BROKER_FAILOVER": NODE1})) - set(DEFAULTS)
    assert unknown == {"tasks_app_state_dir", "tasks_app_confirm_timeout"}


def test_app_is_configured_from_the_module():
    from tasks_app import app, tasks

    queue = app.amqp.queues[app.conf.task_default_queue]
    assert queue.queue_arguments == {"x-queue-type": "quorum"}
    assert queue.exchange.type == "topic"
    assert tasks.add.name == "tasks_app.tasks.add"
    assert tasks.add.name in app.tasks


def test_parse_env_file():
    text = """
# a comment
; another comment

TASKS_APP_BROKER_URL="amqp://u:p@lb:5672/v"
TASKS_APP_DEFAULT_QUEUE='work'
TASKS_APP_PREFETCH = 2
TASKS_APP_BROKER_FAILOVER=amqp://a/x=1;amqp://b/
not a setting
"""
    assert parse_env_file(text) == {
        "TASKS_APP_BROKER_URL": "amqp://u:p@lb:5672/v",
        "TASKS_APP_DEFAULT_QUEUE": "work",
        "TASKS_APP_PREFETCH": "2",
        "TASKS_APP_BROKER_FAILOVER": "amqp://a/x=1;amqp://b/",
    }


def test_environment_wins_over_the_file(tmp_path: Path):
    env_file = tmp_path / "tasks_app.env"
    env_file.write_text("TASKS_APP_PREFETCH=2\nTASKS_APP_HEARTBEAT='15'\n")
    environ = {"TASKS_APP_CONFIG_FILE": str(env_file), "TASKS_APP_PREFETCH": "3"}
    settings = load_settings(merged_environ(environ))
    assert settings["worker_prefetch_multiplier"] == 3
    assert settings["broker_heartbeat"] == 15


def test_a_named_but_missing_file_is_an_error(tmp_path: Path):
    with pytest.raises(FileNotFoundError):
        merged_environ({"TASKS_APP_CONFIG_FILE": str(tmp_path / "missing.env")})


def test_publishing_outlasts_a_failover():
    """Celery's default publish retry gives up in under a second, before HAProxy has marked a
    dead node down (2-3 s) or the virtual IP has moved (~4 s); ours keeps trying ~20 s."""
    settings = load_settings({})
    policy = settings["task_publish_retry_policy"]
    assert settings["task_publish_retry"] is True
    waits, interval = 0.0, policy["interval_start"]
    for _ in range(policy["max_retries"]):
        waits += interval
        interval = min(interval + policy["interval_step"], policy["interval_max"])
    assert 10 <= waits <= 30
    default = DEFAULTS["task_publish_retry_policy"]
    assert default["max_retries"] * default["interval_max"] < 5  # what the default would give


def test_worker_and_beat_are_supervised():
    settings = load_settings({})
    assert settings["worker_consumer"] == "tasks_app.worker:Consumer"
    assert settings["beat_scheduler"] == "tasks_app.beat:Scheduler"
    assert settings["beat_max_loop_interval"] <= 10
    # Reconnect forever, but each attempt is bounded so the watchdog sees progress.
    assert settings["broker_connection_max_retries"] is None
    assert settings["broker_connection_timeout"] <= 5


def test_result_backend_can_be_loaded():
    from celery import Celery

    from tasks_app.backends import ReplicatedRPCBackend

    app = Celery("t", set_as_current=False)
    app.config_from_object(load_settings({}))
    assert isinstance(app.backend, ReplicatedRPCBackend)


def test_a_connection_opened_on_first_use_retries_through_a_failover():
    options = load_settings({})["broker_transport_options"]
    assert options["confirm_publish"] is True
    assert options["connect_retries_timeout"] >= 10  # kombu's default: one connect timeout


def test_tasks_have_time_limits_and_children_a_memory_bound():
    defaults = load_settings({})
    assert 0 < defaults["task_soft_time_limit"] < defaults["task_time_limit"]
    assert defaults["worker_max_memory_per_child"] > 0
    tuned = load_settings(
        {
            "TASKS_APP_TASK_SOFT_TIME_LIMIT": "50",
            "TASKS_APP_TASK_TIME_LIMIT": "60",
            "TASKS_APP_MAX_MEMORY_PER_CHILD": "100000",
        }
    )
    assert (tuned["task_soft_time_limit"], tuned["task_time_limit"]) == (50, 60)
    assert tuned["worker_max_memory_per_child"] == 100000
    with pytest.raises(ValueError, match="TASKS_APP_TASK_SOFT_TIME_LIMIT"):
        load_settings({"TASKS_APP_TASK_SOFT_TIME_LIMIT": "60", "TASKS_APP_TASK_TIME_LIMIT": "60"})


def test_amqps_verifies_the_broker_against_the_ca_file():
    import ssl

    settings = load_settings(
        {
            "TASKS_APP_BROKER_URL": LB.replace("amqp://", "amqps://"),
            "TASKS_APP_BROKER_CA_FILE": "/etc/tasks_app/tls/ca.pem",
        }
    )
    options = settings["broker_use_ssl"]
    assert options["ca_certs"] == "/etc/tasks_app/tls/ca.pem"
    assert options["cert_reqs"] == ssl.CERT_REQUIRED
    # None: kombu checks the name of the host each (failover) URL dials.
    assert "server_hostname" in options and options["server_hostname"] is None


def test_amqps_without_a_ca_file_is_refused():
    with pytest.raises(ValueError, match="TASKS_APP_BROKER_CA_FILE"):
        load_settings({"TASKS_APP_BROKER_URL": LB.replace("amqp://", "amqps://")})


def test_plain_amqp_has_no_tls_settings():
    assert "broker_use_ssl" not in load_settings({"TASKS_APP_BROKER_URL": LB})
