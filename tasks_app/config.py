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
import ssl
from collections.abc import Mapping
from pathlib import Path
from typing import Any

DEFAULT_CONFIG_FILE = "/etc/tasks_app/tasks_app.env"
DEFAULT_BROKER_URL = "amqp://guest:guest@localhost:5672//"
DEFAULT_STATE_DIR = "/var/lib/tasks_app"
DEFAULT_BACKEND = "tasks_app.backends:ReplicatedRPCBackend"


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
    result_expires = _number(environ, "TASKS_APP_RESULT_EXPIRES", 900)
    if result_expires <= 0:  # it becomes the reply queue's x-expires, which must be > 0
        raise ValueError("TASKS_APP_RESULT_EXPIRES must be greater than 0")

    soft_limit = _number(environ, "TASKS_APP_TASK_SOFT_TIME_LIMIT", 240, float)
    hard_limit = _number(environ, "TASKS_APP_TASK_TIME_LIMIT", 300, float)
    if not 0 < soft_limit < hard_limit:
        raise ValueError(
            "TASKS_APP_TASK_SOFT_TIME_LIMIT must be greater than 0 and below "
            "TASKS_APP_TASK_TIME_LIMIT"
        )

    settings: dict[str, Any] = {
        # The load balancer comes first; the nodes (if given) are only tried when it fails.
        "broker_url": ";".join([broker_url, *failover]),
        # rpc:// with replicated (quorum) reply queues, acknowledged results and a consumer
        # that reconnects while a caller waits: a node loss costs no result (backends.py).
        "result_backend": environ.get("TASKS_APP_RESULT_BACKEND", "").strip() or DEFAULT_BACKEND,
        # A reply queue is deleted once no client has consumed from it for this long (its
        # x-expires); a waiting client keeps it alive, so this only bounds the leftovers.
        "result_expires": result_expires,
        # Results as persistent messages (quorum queues store every message anyway).
        "result_persistent": True,
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
        # AMQP heartbeat: a connection whose peer went silent (a paused node, a cut network,
        # a load balancer that died with the connection) is given up after about two of them.
        # HAProxy's idle timeouts are longer (3 x RabbitMQ's heartbeat), so it never cuts first.
        "broker_heartbeat": _number(environ, "TASKS_APP_HEARTBEAT", 10),
        # Connect plus AMQP handshake, per attempt: a dead address costs this, not 4 s.
        "broker_connection_timeout": _number(environ, "TASKS_APP_CONNECT_TIMEOUT", 3, float),
        # Publishing retries a lost connection for about 20 s (Celery's default gives up in
        # under a second: before HAProxy has even marked a dead node down, or the virtual IP
        # has moved to the other load balancer, ~4 s). Then the caller gets OperationalError.
        "task_publish_retry": True,
        "task_publish_retry_policy": {
            "max_retries": 20,
            "interval_start": 0,
            "interval_step": 0.5,
            "interval_max": 1,
        },
        # Not a Celery setting (tasks_app.amqp): how long publishing a task waits for RabbitMQ's
        # confirm before it reconnects and publishes again. Confirms take milliseconds; a
        # message in flight when its queue's leader dies would otherwise wait for RabbitMQ's
        # resend timer (7 s measured).
        "tasks_app_confirm_timeout": _number(environ, "TASKS_APP_CONFIRM_TIMEOUT", 3, float),
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
        "broker_transport_options": {
            # Publisher confirms: publishing returns only once RabbitMQ accepted the message.
            "confirm_publish": True,
            # A connection opened on first use (kombu's default_channel: a pool process's first
            # result, a client's first publish) gets this many seconds of attempts in all. By
            # default it gets one attempt of broker_connection_timeout: during a failover a
            # worker then reported a task that succeeded as failed ("timed out"), found by the
            # fault run.
            "connect_retries_timeout": 20,
            "interval_start": 0,
            "interval_step": 0.5,
            "interval_max": 1,
        },
        # The worker keeps reconnecting (through the failover list) for as long as it takes; it
        # still answers a shutdown meanwhile, and systemd's watchdog restarts it when that
        # lasts longer than WatchdogSec (tasks_app.worker).
        "broker_connection_retry": True,
        "broker_connection_retry_on_startup": True,
        "broker_connection_max_retries": None,
        # Celery's consumer with a heartbeat that cannot block the event loop and that feeds
        # systemd's watchdog only while the worker consumes (tasks_app.worker).
        "worker_consumer": "tasks_app.worker:Consumer",
        "task_track_started": False,
        # No task runs forever: at the soft limit it gets SoftTimeLimitExceeded (it may clean
        # up), at the hard limit its pool process is killed and replaced. Seconds.
        "task_soft_time_limit": soft_limit,
        "task_time_limit": hard_limit,
        # A pool process whose resident memory grew past this (KiB) is replaced after its
        # current task: a leak cannot grow a worker without bound.
        "worker_max_memory_per_child": _number(environ, "TASKS_APP_MAX_MEMORY_PER_CHILD", 262144),
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
        # Beat's scheduler feeds systemd's watchdog on every loop (tasks_app.beat), which runs
        # at least this often (seconds).
        "beat_scheduler": "tasks_app.beat:Scheduler",
        "beat_max_loop_interval": 5,
        # Not a Celery setting: read by tasks_app.tasks.beat_tick through app.conf.
        "tasks_app_state_dir": state_dir,
    }
    if failover:
        settings["broker_failover_strategy"] = "round-robin"
    ssl_options = broker_ssl(environ)
    if ssl_options:
        settings["broker_use_ssl"] = ssl_options
    return settings


def broker_ssl(environ: Mapping[str, str]) -> dict[str, Any] | None:
    """TLS for amqps:// URLs: the broker's certificate must chain to the CA of
    TASKS_APP_BROKER_CA_FILE and name the host the URL dials (each failover URL its own:
    kombu fills ``server_hostname`` from the URL in use when it is None). No CA file: plain
    AMQP, and an amqps:// URL is refused rather than connected without verification."""
    ca_file = environ.get("TASKS_APP_BROKER_CA_FILE", "").strip()
    urls = [environ.get("TASKS_APP_BROKER_URL", ""), environ.get("TASKS_APP_BROKER_FAILOVER", "")]
    wants_tls = any(url.strip().startswith("amqps://") for part in urls for url in part.split(";"))
    if not ca_file:
        if wants_tls:
            raise ValueError(
                "amqps:// broker URLs need TASKS_APP_BROKER_CA_FILE (the CA to verify)"
            )
        return None
    return {
        "ca_certs": ca_file,
        "cert_reqs": ssl.CERT_REQUIRED,
        "server_hostname": None,
        "tls_minimum_version": ssl.TLSVersion.TLSv1_2,
    }


settings = load_settings(merged_environ(os.environ))
