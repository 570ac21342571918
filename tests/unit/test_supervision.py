"""tasks_app.systemd, tasks_app.worker, tasks_app.beat and tasks_app.backends without a broker:
the watchdog protocol over a real datagram socket, and the pieces the fault runs rely on."""

from __future__ import annotations

import socket
from types import SimpleNamespace

import pytest
from celery import Celery
from celery.worker.consumer import Consumer as CeleryConsumer

from tasks_app import systemd, worker
from tasks_app.backends import ReplicatedResultConsumer, ReplicatedRPCBackend
from tasks_app.config import load_settings


@pytest.fixture
def notify_socket(tmp_path):
    path = tmp_path / "notify"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind(str(path))
        sock.settimeout(2)
        yield sock, {"NOTIFY_SOCKET": str(path)}


def test_notify_sends_one_datagram(notify_socket):
    sock, environ = notify_socket
    assert systemd.notify(systemd.WATCHDOG, environ) is True
    assert sock.recv(64) == b"WATCHDOG=1"


def test_notify_outside_systemd_is_a_no_op():
    assert systemd.notify(systemd.READY, {}) is False
    assert systemd.notify(systemd.READY, {"NOTIFY_SOCKET": "relative"}) is False


def test_notify_abstract_socket_address():
    assert systemd.notify_address({"NOTIFY_SOCKET": "@abc"}) == "\0abc"


def test_notify_to_a_vanished_socket_does_not_raise(tmp_path):
    assert systemd.notify(systemd.READY, {"NOTIFY_SOCKET": str(tmp_path / "gone")}) is False


def fake_consumer(connected=True, consuming=("celery",), queues=("celery",)):
    return SimpleNamespace(
        connection=SimpleNamespace(connected=connected),
        task_consumer=SimpleNamespace(consuming_from=lambda name: name in consuming),
        app=SimpleNamespace(
            amqp=SimpleNamespace(queues=SimpleNamespace(consume_from=dict.fromkeys(queues)))
        ),
    )


@pytest.mark.parametrize(
    ("consumer", "expected"),
    [
        (fake_consumer(), True),
        (fake_consumer(connected=False), False),
        (fake_consumer(consuming=()), False),  # connected but consuming nothing: the wedge
        (fake_consumer(queues=("celery", "other")), False),
        (SimpleNamespace(connection=None, task_consumer=None), False),
    ],
)
def test_watchdog_is_fed_only_while_consuming(consumer, expected):
    assert worker.consuming(consumer) is expected


class FakeDispatcher:
    enabled = True

    def __init__(self, fail=False):
        self.fail, self.sent = fail, []
        self.on_enabled, self.on_disabled = set(), set()

    def send(self, event, **fields):
        if self.fail:
            raise ConnectionError("broker gone")
        self.sent.append((event, fields))


def heartbeat(dispatcher, consumer):
    timer = SimpleNamespace(call_repeatedly=lambda *a: None, cancel=lambda t: None)
    return worker.SupervisedHeartbeat(timer, dispatcher, 2.0, consumer=consumer)


def test_heartbeat_is_published_with_a_bounded_retry(notify_socket, monkeypatch):
    sock, environ = notify_socket
    monkeypatch.setenv("NOTIFY_SOCKET", environ["NOTIFY_SOCKET"])
    dispatcher = FakeDispatcher()
    heartbeat(dispatcher, fake_consumer())._send("worker-heartbeat")
    event, fields = dispatcher.sent[0]
    assert event == "worker-heartbeat"
    assert fields["retry"] is True
    assert fields["retry_policy"]["max_retries"] is not None  # Celery's own: None, forever
    assert sock.recv(64) == b"WATCHDOG=1"


def test_no_watchdog_when_not_consuming_and_no_raise_when_publish_fails(notify_socket, monkeypatch):
    sock, environ = notify_socket
    monkeypatch.setenv("NOTIFY_SOCKET", environ["NOTIFY_SOCKET"])
    heartbeat(FakeDispatcher(fail=True), fake_consumer(consuming=()))._send("worker-heartbeat")
    sock.settimeout(0.2)
    with pytest.raises(TimeoutError):
        sock.recv(64)


def test_consumer_blueprint_swaps_the_heart_step():
    steps = worker.Consumer.Blueprint.default_steps
    assert worker.HEART_STEP in CeleryConsumer.Blueprint.default_steps
    assert worker.HEART_STEP not in steps
    assert "tasks_app.worker:SupervisedHeart" in steps
    assert len(steps) == len(CeleryConsumer.Blueprint.default_steps)


def make_backend() -> ReplicatedRPCBackend:
    app = Celery("t", set_as_current=False)
    app.config_from_object(load_settings({}))
    return app.backend


def test_reply_queue_is_a_replicated_quorum_queue():
    queue = make_backend().binding
    assert queue.durable is True
    assert queue.auto_delete is False
    assert queue.exclusive is False
    assert queue.queue_arguments["x-queue-type"] == "quorum"
    assert queue.expires == 900


class FakeMessage:
    def __init__(self, fail=False):
        self.acknowledged, self.fail = False, fail

    def ack(self):
        if self.fail:
            raise ConnectionError("gone")
        self.acknowledged = True


def test_own_deliveries_are_acknowledged_once_and_a_failed_ack_is_harmless():
    consumer = make_backend().result_consumer
    assert isinstance(consumer, ReplicatedResultConsumer)
    message = FakeMessage()
    consumer._ack({}, message)
    assert message.acknowledged
    consumer._ack({}, message)  # already acked: not again (kombu would raise)
    consumer._ack({}, FakeMessage(fail=True))


def test_polled_results_are_not_acknowledged_by_on_state_change():
    """Celery acks or requeues messages fetched by get_task_meta itself; a second ack raises."""
    consumer = make_backend().result_consumer
    message = FakeMessage()
    consumer.on_state_change({"task_id": "x", "status": "STARTED"}, message)
    assert not message.acknowledged


def test_result_expiry_must_be_positive():
    with pytest.raises(ValueError, match="RESULT_EXPIRES"):
        load_settings({"TASKS_APP_RESULT_EXPIRES": "0"})


def test_lost_connection_is_retried_within_the_callers_wait(monkeypatch):
    consumer = make_backend().result_consumer
    consumer._lost_queues = ["q"]
    consumer._connection = None
    attempts = []

    def fail():
        attempts.append(1)
        raise ConnectionRefusedError("still down")

    monkeypatch.setattr(consumer, "_resubscribe", fail)
    for _ in range(3):
        with pytest.raises(TimeoutError):  # "no result yet": the Drainer keeps its deadline
            consumer.drain_events(timeout=0.05)
    assert len(attempts) == 3
    assert consumer.consume_from("another-task") is None  # covered by the resubscribe


def test_beat_forgets_a_dead_producer_after_a_failed_publish(monkeypatch, tmp_path):
    from celery.beat import PersistentScheduler, SchedulingError

    from tasks_app import beat

    released = []

    class Dead:
        def release(self):
            released.append("producer")

        def collect(self):
            released.append("connection")

    def fail(self, entry, producer=None, advance=True, **kwargs):
        raise SchedulingError("Couldn't apply scheduled task beat-tick: channel disconnected")

    monkeypatch.setattr(PersistentScheduler, "apply_async", fail)
    scheduler = beat.Scheduler.__new__(beat.Scheduler)  # no schedule file, no broker
    scheduler.__dict__.update(producer=Dead(), connection=Dead())
    with pytest.raises(SchedulingError):
        scheduler.apply_async(SimpleNamespace(name="beat-tick"))
    assert "producer" not in scheduler.__dict__ and "connection" not in scheduler.__dict__
    assert released == ["producer", "connection"]


def _running_request(app_request_class, backend):
    """A request of tasks_app.tasks.record as the worker holds it while a pool process runs it."""
    from celery.contrib.testing.mocks import TaskMessage

    from tasks_app import tasks  # noqa: F401 - registers the tasks
    from tasks_app.celery import app

    task = app.tasks["tasks_app.tasks.record"]
    message = TaskMessage(task.name, id="t-1", args=("token", 2.0))
    request = app_request_class(message, app=app, task=task)
    request.time_start, request.worker_pid = 1.0, 4242
    task.backend = backend
    return request


class _OfflineBackend:
    """A result backend whose broker connection is gone: every publish fails."""

    def __init__(self):
        self.calls = []

    def mark_as_retry(self, *args, **kwargs):
        self.calls.append("retry")
        raise ConnectionError("Server unexpectedly closed connection")

    def mark_as_revoked(self, *args, **kwargs):
        self.calls.append("revoked")


def test_a_task_cancelled_on_connection_loss_is_not_reported_revoked(monkeypatch):
    from celery.worker.request import Request as CeleryRequest

    from tasks_app import tasks  # noqa: F401 - registers the tasks
    from tasks_app.celery import app

    assert app.tasks["tasks_app.tasks.record"].Request == "tasks_app.worker:Request"

    class Pool:
        def __init__(self):
            self.terminated = []

        def terminate_job(self, pid, signal):
            self.terminated.append(pid)

    # Celery's own request: the RETRY publish fails before it is marked cancelled, so the
    # killed job's Terminated failure later reports REVOKED.
    task = app.tasks["tasks_app.tasks.record"]
    saved = task.backend
    try:
        stock = _running_request(CeleryRequest, _OfflineBackend())
        with pytest.raises(ConnectionError):
            stock.cancel(Pool())
        assert not stock._already_cancelled

        backend = _OfflineBackend()
        ours = _running_request(worker.Request, backend)
        pool = Pool()
        ours.cancel(pool)
        assert pool.terminated == [4242]  # the job is still stopped (its message is requeued)
        assert ours._already_cancelled  # so its Terminated failure reports nothing
        assert backend.calls == []  # and nothing was published over the lost connection
    finally:
        task.backend = saved
