"""tasks_app.stream: publishing is never held up by the result consumer (fakes, no broker)."""

import io
import json
import threading
import time

from tasks_app.stream import Stream


class FakeResult:
    def __init__(self, backend, task_id, token):
        self.backend, self.id, self.token = backend, task_id, token
        self.result = None

    def then(self, callback):
        self.backend.subscribe(self, callback)

    def successful(self):
        return True


class FakeConsumer:
    """Delivers every subscribed result on drain; the first drain blocks like a reconnect."""

    def __init__(self, block_first=0.0, lose=()):
        self._consumer = object()
        self._lost_queues = None
        self.block_first, self.lose = block_first, set(lose)
        self.waiting, self.drains = [], 0
        self.threads = set()

    def drain_events(self, timeout):
        self.threads.add(threading.current_thread().name)
        self.drains += 1
        if self.drains == 1 and self.block_first:
            time.sleep(self.block_first)
        ready, self.waiting = self.waiting, []
        for result, callback in ready:
            result.result = {"token": result.token}
            callback(result)
        if not ready:
            time.sleep(min(timeout, 0.01))


class FakeBackend:
    def __init__(self, consumer):
        self.result_consumer = consumer

    def subscribe(self, result, callback):
        self.result_consumer.threads.add(threading.current_thread().name)
        if result.token not in self.result_consumer.lose:
            self.result_consumer.waiting.append((result, callback))


class FakeApp:
    def __init__(self, consumer):
        self.backend = FakeBackend(consumer)
        self.sent = 0

    def send_task(self, name, args):
        self.sent += 1
        return FakeResult(self.backend, f"id-{self.sent}", args[0])


def run_stream(consumer, duration, result_timeout=2.0):
    out = io.StringIO()
    stream = Stream(FakeApp(consumer), run_id="r", rate=50, out=out)
    code = stream.run(duration, None, result_timeout)
    return code, [json.loads(line) for line in out.getvalue().splitlines()]


def test_a_blocked_result_consumer_does_not_stall_publishing():
    consumer = FakeConsumer(block_first=1.5)
    code, events = run_stream(consumer, duration=2.5)
    sent = [e["t1"] for e in events if e["ev"] == "sent"]
    gaps = [b - a for a, b in zip(sent, sent[1:], strict=False)]
    assert code == 0
    assert len(sent) > 80  # 50/s for 2.5 s, not held for the 1.5 s the consumer blocked
    assert max(gaps) < 0.5
    assert events[-1] == {
        "ev": "end",
        "sent": len(sent),
        "results": len(sent),
        "missing": 0,
        "wrong": 0,
        "send_errors": 0,
    }
    # Every call on the result consumer happened in the collector thread.
    assert consumer.threads == {"collector"}


def test_a_result_that_never_comes_is_reported_missing_by_the_deadline():
    consumer = FakeConsumer(lose={"r-3"})
    started = time.monotonic()
    code, events = run_stream(consumer, duration=0.5, result_timeout=1.0)
    assert code == 1
    assert [e["seq"] for e in events if e["ev"] == "missing"] == [3]
    assert events[-1]["missing"] == 1
    assert time.monotonic() - started < 5
