"""``tasks_app.beat:Scheduler``: celery beat's persistent scheduler feeding systemd's watchdog.

Beat's loop calls ``tick()`` at least every ``beat_max_loop_interval`` seconds; each call tells
systemd beat is alive. A beat stuck in a publish misses its watchdog and is restarted. Its
publishes are bounded by ``task_publish_retry_policy`` (tasks_app.config).

A publish that fails for good (every node down for longer than the retry policy, found by the
operations drill's full outage) leaves stock beat's cached producer on a dead channel: every
later due task fails with "channel disconnected" while beat itself looks alive. Here a failed
publish drops the producer and its connection, so the next due task connects afresh (beat's
own connect waits for the broker; the watchdog restarts beat if that lasts too long).
"""

from __future__ import annotations

from contextlib import suppress

from celery.beat import PersistentScheduler, SchedulingError

from . import systemd


class Scheduler(PersistentScheduler):
    def setup_schedule(self):
        super().setup_schedule()
        # Beat loads its scheduler after its beat_init signal: ready here, schedule loaded.
        systemd.notify(systemd.READY)

    def tick(self, *args, **kwargs):
        systemd.notify(systemd.WATCHDOG)
        return super().tick(*args, **kwargs)

    def apply_async(self, entry, producer=None, advance=True, **kwargs):
        try:
            return super().apply_async(entry, producer=producer, advance=advance, **kwargs)
        except SchedulingError:
            self.reset_producer()
            raise

    def reset_producer(self) -> None:
        """Forget the cached producer and connection (kombu cached_property values)."""
        producer = self.__dict__.pop("producer", None)
        connection = self.__dict__.pop("connection", None)
        if producer is not None:
            with suppress(Exception):
                producer.release()
        if connection is not None:
            # Without I/O: the connection is most likely dead already.
            with suppress(Exception):
                connection.collect()
