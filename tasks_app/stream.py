"""A steady stream of tasks with every send and every result recorded, for fault runs.

``python -m tasks_app stream --rate 10 --stop-file F`` sends ``record(token)`` tasks at a fixed
rate until F exists (or --duration passes), waits up to --result-timeout for the results still
missing, and prints one JSON object per line:

    {"ev": "sent", "seq": 7, "id": "...", "t0": ..., "t1": ...}   publish confirmed (t0 -> t1)
    {"ev": "send_error", "seq": 8, "t0": ..., "t1": ..., "error": "..."}
    {"ev": "result", "seq": 7, "id": "...", "t": ..., "ok": true, "value": {...}}
    {"ev": "missing", "seq": 9, "id": "..."}                         no result by the deadline
    {"ev": "end", "sent": N, "results": N, "missing": N, "wrong": N, "send_errors": N}

Times are wall-clock (the lab's hosts share the controller's clock).

Two threads, as a web application has them: the main thread only publishes, so the time
between two confirmed publishes measures the publish path alone; a collector thread owns the
result consumer (every call on it happens there) and records results as they arrive. A result
connection that is reconnecting after a node loss delays results, never publishes.
"""

from __future__ import annotations

import json
import queue
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from celery import Celery

RECORD = "tasks_app.tasks.record"


@dataclass
class Stream:
    app: Celery
    run_id: str
    rate: float
    out: TextIO = sys.stdout
    long_every: int = 0
    long_seconds: float = 0.0
    pending: dict[str, tuple[int, str]] = field(default_factory=dict)
    counts: dict[str, int] = field(
        default_factory=lambda: dict(sent=0, results=0, missing=0, wrong=0, send_errors=0)
    )

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        self._handoff: queue.SimpleQueue = queue.SimpleQueue()  # sent results, to the collector
        self._sending = threading.Event()
        self._backend = None  # the publishing thread's backend (Celery's backend is per thread)

    def emit(self, **event: Any) -> None:
        line = json.dumps(event, separators=(",", ":"), default=repr) + "\n"
        with self._lock:
            self.out.write(line)
            self.out.flush()

    def token(self, seq: int) -> str:
        return f"{self.run_id}-{seq}"

    def seconds_for(self, seq: int) -> float:
        return self.long_seconds if self.long_every and seq % self.long_every == 0 else 0.0

    # --- the publishing thread -----------------------------------------------------------------
    def send(self, seq: int) -> None:
        token = self.token(seq)
        t0 = time.time()
        try:
            result = self.app.send_task(RECORD, args=(token, self.seconds_for(seq)))
        except Exception as exc:  # gave up after task_publish_retry_policy
            with self._lock:
                self.counts["send_errors"] += 1
            self.emit(ev="send_error", seq=seq, t0=t0, t1=time.time(), error=repr(exc))
            return
        with self._lock:
            self.counts["sent"] += 1
            self.pending[result.id] = (seq, token)
        self.emit(ev="sent", seq=seq, id=result.id, t0=t0, t1=time.time())
        self._handoff.put(result)

    # --- the collector thread ------------------------------------------------------------------
    def on_result(self, result) -> None:
        with self._lock:
            entry = self.pending.pop(result.id, None)
        if entry is None:
            return  # a duplicate delivery of a result already counted
        seq, token = entry
        value = result.result if result.successful() else repr(result.result)
        ok = isinstance(value, dict) and value.get("token") == token
        with self._lock:
            self.counts["results"] += 1
            self.counts["wrong"] += not ok
        self.emit(ev="result", seq=seq, id=result.id, t=time.time(), ok=ok, value=value)

    def register(self, result) -> None:
        """Wait for this result (subscribes the result consumer on the first call)."""
        try:
            result.then(self.on_result)
        except Exception as exc:  # broker unreachable right now: subscribed again below
            print(f"stream: subscribing to results failed: {exc!r}", file=sys.stderr)

    def drain(self, timeout: float) -> None:
        consumer = self._backend.result_consumer
        try:
            idle = getattr(consumer, "_consumer", True) is None
            if idle and getattr(consumer, "_lost_queues", None) is None:
                # Never subscribed (the first attempt failed): try again for a waiting result.
                with self._lock:
                    waiting = next(iter(self.pending), None)
                if waiting is not None:
                    consumer.consume_from(waiting)
            consumer.drain_events(timeout=max(timeout, 0.01))
        except TimeoutError:
            pass
        except Exception as exc:  # lost connection: the consumer reconnects on the next call
            print(f"stream: draining results: {exc!r}", file=sys.stderr)
            time.sleep(min(timeout, 0.5))

    def collect(self, result_timeout: float) -> None:
        deadline = None
        while True:
            while True:
                try:
                    self.register(self._handoff.get_nowait())
                except queue.Empty:
                    break
            with self._lock:
                waiting = bool(self.pending)
            if not self._sending.is_set():
                if deadline is None:
                    deadline = time.monotonic() + result_timeout
                if not waiting or time.monotonic() >= deadline:
                    return
            if waiting:
                self.drain(0.2)
            else:
                time.sleep(0.05)

    # --- both ----------------------------------------------------------------------------------
    def run(self, duration: float, stop_file: Path | None, result_timeout: float) -> int:
        self._backend = self.app.backend
        self._sending.set()
        collector = threading.Thread(
            target=self.collect, args=(result_timeout,), name="collector", daemon=True
        )
        collector.start()
        interval = 1.0 / self.rate
        end = time.monotonic() + duration
        next_send, seq = time.monotonic(), 0
        try:
            while time.monotonic() < end and not (stop_file and stop_file.exists()):
                if time.monotonic() >= next_send:
                    self.send(seq)
                    seq += 1
                    # No catching up after a stall: the rate stays what it was asked to be.
                    next_send = max(next_send + interval, time.monotonic())
                time.sleep(max(0.0, min(next_send - time.monotonic(), 0.5)))
        finally:
            self._sending.clear()
        collector.join(result_timeout + 30)
        with self._lock:
            missing = sorted(self.pending.items(), key=lambda kv: kv[1][0])
        for task_id, (seq, _token) in missing:
            self.counts["missing"] += 1
            self.emit(ev="missing", seq=seq, id=task_id)
        self.emit(ev="end", **self.counts)
        bad = self.counts["missing"] + self.counts["wrong"] + self.counts["send_errors"]
        return 0 if bad == 0 else 1
