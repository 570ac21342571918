"""Celery settings for tasks_app, built from environment variables.

The worker, beat and the CLI all run on hosts where systemd passes the settings through an
EnvironmentFile. So that an operator can also run ``python -m tasks_app ...`` by hand on those
hosts, the same KEY=VALUE file is read here too (real environment variables win over it).

``settings`` is what the app loads (``app.config_from_object(config.settings)``: a dict, so that
the helpers and imports of this module do not end up among the settings); ``load_settings`` is
the pure function behind it, for unit tests.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

DEFAULT_CONFIG_FILE = "/etc/tasks_app/tasks_app.env"
DEFAULT_BROKER_URL = "amqp://guest:guest@localhost:5672//"
DEFAULT_STATE_DIR = "/var/lib/tasks_app"


def parse_env_file(text: str) -> dict[str, str]:
    """Parse systemd EnvironmentFile syntax: KEY=VALUE lines, # or ; comments, optional quotes."""
    values: dict[str, str] = {}
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";")) or "=" not in line:
            continue  # systemd skips such lines too
        key, value = line.split("=", 1)
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
            value = value[1:-1]
        values[key.strip()] = value
    return values


def merged_environ(environ: Mapping[str, str]) -> dict[str, str]:
    """Return the env file's values overlaid with ``environ`` (the real environment wins).

    An explicitly named file (TASKS_APP_CONFIG_FILE) must be readable; the default file is only
    used when it exists and is readable, so the package imports fine on a developer machine.
    """
    named = environ.get("TASKS_APP_CONFIG_FILE")
    path = Path(named or DEFAULT_CONFIG_FILE)
    if named or os.access(path, os.R_OK):
        file_values = parse_env_file(path.read_text(encoding="utf-8"))
    else:
        file_values = {}
    return {**file_values, **environ}


def _number(environ: Mapping[str, str], name: str, default: int, cast: type = int) -> Any:
    raw = environ.get(name, "").strip()
    if not raw:
        return cast(default)
    try:
        value = cast(raw)
    except ValueError:
        raise ValueError(f"{name} must be a number, got {raw!r}") from None
    if value < 0:
        raise ValueError(f"{name} must not be negative, got {raw!r}")
    return value


def load_settings(environ: Mapping[str, str]) -> dict[str, Any]:
    """Build the Celery settings dict from an environment mapping (no I/O)."""
    broker_url = environ.get("TASKS_APP_BROKER_URL", "").strip() or DEFAULT_BROKER_URL
    failover = [
        url.strip()
        for url in environ.get("TASKS_APP_BROKER_FAILOVER", "").split(";")
        if url.strip() and url.strip() != broker_url
    ]
    beat_interval = _number(environ, "TASKS_APP_BEAT_INTERVAL", 10, float)
    if beat_interval <= 0:
        raise ValueError("TASKS_APP_BEAT_INTERVAL must be greater than 0")
    state_dir = environ.get("TASKS_APP_STATE_DIR", "").strip() or DEFAULT_STATE_DIR

    settings: dict[str, Any] = {
        # The load balancer comes first; the nodes (if given) are only tried when it fails.
        "broker_url": ";".join([broker_url, *failover]),
        "result_backend": environ.get("TASKS_APP_RESULT_BACKEND", "").strip() or "rpc://",
        # rpc:// reply queues expire after this long unused; nothing needs results for longer.
        "result_expires": 3600,
        # JSON only: never unpickle what arrives from the network.
        "task_serializer": "json",
        "result_serializer": "json",
        "event_serializer": "json",
        "accept_content": ["json"],
        "result_accept_content": ["json"],
        # Ack after the task ran, and requeue when its worker process dies, so a node or worker
        # lost mid-task does not lose the message (tasks must therefore be idempotent).
        "task_acks_late": True,
        "task_reject_on_worker_lost": True,
        # With late acks, a worker should hold only the messages it is working on.
        "worker_prefetch_multiplier": _number(environ, "TASKS_APP_PREFETCH", 1),
        # On connection loss the unacked messages go back to the queue and will run elsewhere,
        # so stop the copies still running here instead of running them twice.
        "worker_cancel_long_running_tasks_on_connection_loss": True,
        "broker_heartbeat": _number(environ, "TASKS_APP_HEARTBEAT", 30),
        # Replicated quorum queues survive the loss of a node. ETA/countdown tasks then use
        # RabbitMQ native delayed delivery (Celery >= 5.5), which needs a topic exchange;
        # workers would otherwise hold ETA tasks in memory, which quorum queues cannot support.
        "task_default_queue": environ.get("TASKS_APP_DEFAULT_QUEUE", "").strip() or "celery",
        "task_default_queue_type": "quorum",
        "task_default_exchange_type": "topic",
        "task_create_missing_queue_type": "quorum",
        "task_create_missing_queue_exchange_type": "topic",
        "broker_native_delayed_delivery_queue_type": "quorum",
        # Quorum queues do not support global QoS; let the worker detect them and use per-consumer.
        "worker_detect_quorum_queues": True,
        # Publisher confirms: publishing returns only once RabbitMQ accepted the message.
        "broker_transport_options": {"confirm_publish": True},
        # Keep reconnecting (through the failover list) for as long as it takes.
        "broker_connection_retry": True,
        "broker_connection_retry_on_startup": True,
        "broker_connection_max_retries": None,
        "task_track_started": False,
        # Events for Flower.
        "worker_send_task_events": True,
        "task_send_sent_event": True,
        "timezone": "UTC",
        "enable_utc": True,
        "beat_schedule": {
            "beat-tick": {"task": "tasks_app.tasks.beat_tick", "schedule": beat_interval},
        },
        # Keep beat's own state next to the tick file, not in whatever the working directory is.
        "beat_schedule_filename": str(Path(state_dir) / "celerybeat-schedule"),
        # Not a Celery setting: read by tasks_app.tasks.beat_tick through app.conf.
        "tasks_app_state_dir": state_dir,
    }
    if failover:
        settings["broker_failover_strategy"] = "round-robin"
    return settings


settings = load_settings(merged_environ(os.environ))
