"""Command line checks against a running cluster: ``python -m tasks_app [--broker URL] COMMAND``.

Every command prints key=value lines (for scripts and Ansible) and exits non-zero on failure:

    submit TASK [ARGS...]   send one task (ARGS parsed as JSON when possible) and print its result
    ping                    list the workers that answer; exit 1 if fewer than --expect answered,
                            or one of --destination did not (returns at the last awaited reply)
    roundtrip               send N add(i, i) tasks, check every result is 2*i, report throughput
    canvas                  run a chain, a group and chunks and check their results
    stream                  send record() tasks at a steady rate, print every send and result
                            as JSON lines (for fault runs; see tasks_app/stream.py)
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import json
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import kombu.pools
from celery import Celery, group
from kombu.exceptions import OperationalError

from . import config
from .celery import app as default_app
from .stream import Stream
from .tasks import add, mul

TASK_PREFIX = "tasks_app.tasks."
MISSING = object()  # stands for a result that never arrived or raised


def to_json(value: Any) -> str:
    """Compact JSON (no spaces), so that key=value output splits cleanly on whitespace."""
    return json.dumps(value, separators=(",", ":"), default=repr)


def parse_value(text: str) -> Any:
    """Parse a command line task argument as JSON ("4" -> 4, "[1,2]" -> [1, 2]), else a str."""
    try:
        return json.loads(text)
    except ValueError:
        return text


def task_name(name: str) -> str:
    """Accept short names ("add") as well as full ones ("tasks_app.tasks.add")."""
    return name if "." in name else TASK_PREFIX + name


def parse_target(text: str) -> tuple[str, str]:
    """Parse a roundtrip --target NAME=URL (the URL may itself contain '=')."""
    name, sep, url = text.partition("=")
    if not sep or not name.strip() or not url.strip():
        raise argparse.ArgumentTypeError(f"expected NAME=URL, got {text!r}")
    return name.strip(), url.strip()


def check_results(results: Sequence[Any], count: int) -> tuple[int, int]:
    """Count (ok, failed) for add(i, i) results: result i must be 2*i; absent ones failed."""
    ok = 0
    for i in range(count):
        value = results[i] if i < len(results) else MISSING
        # bool is an int subclass; True is never a correct answer here.
        if type(value) is int and value == 2 * i:
            ok += 1
    return ok, count - ok


@dataclass
class RoundtripReport:
    target: str
    tasks: int
    ok: int
    failed: int
    seconds: float

    @property
    def tasks_per_second(self) -> float:
        """Correct results per second (failures do not count as throughput)."""
        return self.ok / self.seconds if self.seconds > 0 else 0.0

    def line(self) -> str:
        return (
            f"target={self.target} tasks={self.tasks} ok={self.ok} failed={self.failed} "
            f"seconds={self.seconds:.3f} tasks_per_second={self.tasks_per_second:.1f}"
        )


def roundtrip_exit_code(reports: Sequence[RoundtripReport]) -> int:
    return 0 if reports and all(r.failed == 0 and r.ok == r.tasks for r in reports) else 1


def format_table(reports: Sequence[RoundtripReport]) -> str:
    """Side-by-side comparison of several targets."""
    header = ("target", "tasks", "ok", "failed", "seconds", "tasks_per_second")
    rows = [header] + [
        (r.target, str(r.tasks), str(r.ok), str(r.failed), f"{r.seconds:.3f}")
        + (f"{r.tasks_per_second:.1f}",)
        for r in reports
    ]
    widths = [max(len(row[col]) for row in rows) for col in range(len(header))]
    return "\n".join(
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        for row in rows
    )


def make_app(broker_url: str) -> Celery:
    """A separate app with the usual settings but only this broker (no failover list)."""
    target = Celery("tasks_app", set_as_current=False)
    target.config_from_object(copy.deepcopy(config.settings))  # nothing shared with the others
    target.conf.update(broker_url=broker_url, broker_failover_strategy=None)
    return target


def close_app(app: Celery) -> None:
    """Close every broker connection the app opened, so the next target starts clean.

    Celery's app.close() only forgets the connection pool; the rpc:// result consumer keeps its
    own connection, which is only reachable through a private attribute.
    """
    consumer = getattr(app.backend, "result_consumer", None)
    if consumer is not None and getattr(consumer, "_connection", None) is not None:
        with contextlib.suppress(Exception):
            consumer.stop()
    with contextlib.suppress(Exception):
        app.pool.force_close_all()
    app.close()
    # Producer pools live in kombu's process-wide registry, keyed by connection: forget them,
    # or the next app with the same URL would be handed this app's closed pool.
    kombu.pools.reset()


def run_roundtrip(app: Celery, name: str, count: int, timeout: float) -> RoundtripReport:
    """Send ``count`` add(i, i) tasks one by one with send_task, then fetch every result.

    Individual messages (not one group) so that each task is a separate publish and a separate
    delivery, which is what the throughput figure is meant to measure. ``timeout`` bounds the
    whole run; a result still missing at the deadline counts as failed.
    """
    start = time.monotonic()
    deadline = start + timeout
    pending, errors = [], []
    try:
        for i in range(count):
            pending.append(app.send_task(TASK_PREFIX + "add", args=(i, i)))
    except Exception as exc:  # broker unreachable: report it as failures, go on to next target
        errors.append(f"send: {exc!r}")
    results: list[Any] = []
    for result in pending:
        try:
            # After the deadline, only collect the results that have already arrived.
            results.append(result.get(timeout=max(deadline - time.monotonic(), 0.01)))
        except Exception as exc:
            errors.append(f"result: {exc!r}")
            results.append(MISSING)
    seconds = time.monotonic() - start
    if errors:
        print(f"target={name} errors={len(errors)} first_error={errors[0]}", file=sys.stderr)
    ok, failed = check_results(results, count)
    return RoundtripReport(name, count, ok, failed, seconds)


def compare(check: str, got: Any, expected: Any) -> bool:
    ok = got == expected
    print(f"check={check} ok={str(ok).lower()} result={to_json(got)} expected={to_json(expected)}")
    return ok


def cmd_submit(app: Celery, args: argparse.Namespace) -> int:
    name = task_name(args.task)
    task_args = [parse_value(a) for a in args.args]
    start = time.time()
    result = app.send_task(name, args=task_args, countdown=args.countdown)
    try:
        value = result.get(timeout=args.timeout)
    except Exception as exc:
        print(f"task={name} id={result.id} status=error error={exc!r}")
        return 1
    print(
        f"task={name} id={result.id} status=ok sent_at={start:.3f} "
        f"seconds={time.time() - start:.3f} result={to_json(value)}"
    )
    return 0


def cmd_ping(app: Celery, args: argparse.Namespace) -> int:
    # Each answer ends the wait early: with --destination, the broadcast goes to those workers
    # only and stops at the last one's reply (kombu sets the reply limit to their number); with
    # --expect N alone, it stops at the Nth reply, from whichever workers. Without either, every
    # worker that answers within --timeout is listed.
    destination = [name for names in args.destination or [] for name in names.split(",") if name]
    if destination:
        replies = app.control.ping(destination=destination, timeout=args.timeout) or []
        expect = len(destination) if args.expect is None else args.expect
    else:
        limit = args.expect or None
        replies = app.control.ping(timeout=args.timeout, limit=limit) or []
        expect = 1 if args.expect is None else args.expect
    workers = {}
    for reply in replies:
        workers.update(reply)
    for hostname in sorted(workers):
        answer = workers[hostname]
        text = answer.get("ok", answer) if isinstance(answer, dict) else answer
        print(f"worker={hostname} reply={text}")
    missing = sorted(set(destination) - set(workers))
    ok = len(workers) >= expect and not missing
    print(f"workers={len(workers)} expected={expect} status={'ok' if ok else 'failed'}")
    for name in missing:
        print(f"missing={name}")
    return 0 if ok else 1


def cmd_roundtrip(app: Celery, args: argparse.Namespace) -> int:
    reports = []
    if not args.target:
        reports.append(run_roundtrip(app, "default", args.n, args.timeout))
        print(reports[-1].line(), flush=True)
    for name, url in args.target or []:
        target = make_app(url)
        try:
            reports.append(run_roundtrip(target, name, args.n, args.timeout))
        finally:
            close_app(target)
        print(reports[-1].line(), flush=True)
    if len(reports) > 1:
        print()
        print(format_table(reports))
    return roundtrip_exit_code(reports)


def cmd_canvas(app: Celery, args: argparse.Namespace) -> int:
    # add and mul belong to the default app, which main() has already pointed at --broker.
    timeout = args.timeout
    checks = [
        ("chain", lambda: (add.s(2, 2) | mul.s(8)).apply_async().get(timeout=timeout), 32),
        (
            "group",
            lambda: group(add.s(i, i) for i in range(10)).apply_async().get(timeout=timeout),
            [2 * i for i in range(10)],
        ),
        (
            # 20 additions, 5 per message: 4 messages, each returning a list of 5 results.
            "chunks",
            lambda: (
                add.chunks(zip(range(20), range(20), strict=True), 5)
                .apply_async()
                .get(timeout=timeout)
            ),
            [[2 * i for i in range(j, j + 5)] for j in range(0, 20, 5)],
        ),
    ]
    failed = 0
    for check, run, expected in checks:
        try:
            got = run()
        except Exception as exc:
            got = f"error: {exc!r}"
        failed += not compare(check, got, expected)
    print(f"checks={len(checks)} failed={failed} status={'ok' if not failed else 'failed'}")
    return 1 if failed else 0


def cmd_stream(app: Celery, args: argparse.Namespace) -> int:
    stream = Stream(
        app,
        run_id=args.run_id,
        rate=args.rate,
        long_every=args.long_every,
        long_seconds=args.long_seconds,
    )
    return stream.run(args.duration, args.stop_file, args.result_timeout)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m tasks_app", description=__doc__.splitlines()[0]
    )
    parser.add_argument(
        "--broker",
        metavar="URL",
        help="use exactly this broker for this run, instead of TASKS_APP_BROKER_URL and "
        "TASKS_APP_BROKER_FAILOVER",
    )
    commands = parser.add_subparsers(dest="command", required=True)

    submit = commands.add_parser("submit", help="send one task and print its result")
    submit.add_argument("task", help='task name, e.g. "add" or "tasks_app.tasks.add"')
    submit.add_argument("args", nargs="*", help="positional arguments, parsed as JSON if possible")
    submit.add_argument("--timeout", type=float, default=30.0)
    submit.add_argument("--countdown", type=float, default=None, help="delay execution (seconds)")
    submit.set_defaults(func=cmd_submit)

    ping = commands.add_parser("ping", help="ping the workers")
    ping.add_argument(
        "--expect",
        type=int,
        default=None,
        help="fail if fewer workers answer (default 1, or every --destination); "
        "stop waiting once this many answered",
    )
    ping.add_argument(
        "-d",
        "--destination",
        action="append",
        help="ping only these workers (node names, comma-separated or repeated); "
        "fail if any of them does not answer",
    )
    ping.add_argument("--timeout", type=float, default=5.0)
    ping.set_defaults(func=cmd_ping)

    roundtrip = commands.add_parser("roundtrip", help="send N add tasks and check the results")
    roundtrip.add_argument("-n", type=int, default=100, help="number of tasks per target")
    roundtrip.add_argument("--timeout", type=float, default=60.0, help="per target")
    roundtrip.add_argument(
        "--target",
        type=parse_target,
        action="append",
        metavar="NAME=URL",
        help="broker to test (repeatable); default: the configured broker, named 'default'",
    )
    roundtrip.set_defaults(func=cmd_roundtrip)

    canvas = commands.add_parser("canvas", help="check a chain, a group and chunks")
    canvas.add_argument("--timeout", type=float, default=30.0)
    canvas.set_defaults(func=cmd_canvas)

    stream = commands.add_parser("stream", help="a steady stream of recorded tasks (fault runs)")
    stream.add_argument("--rate", type=float, default=10.0, help="tasks per second")
    stream.add_argument("--duration", type=float, default=3600.0, help="seconds at most")
    stream.add_argument("--stop-file", type=Path, help="stop sending once this file exists")
    stream.add_argument("--run-id", default=f"run{int(time.time())}", help="token prefix")
    stream.add_argument("--result-timeout", type=float, default=120.0)
    stream.add_argument("--long-every", type=int, default=0, help="every Nth task is long")
    stream.add_argument("--long-seconds", type=float, default=2.0, help="how long it sleeps")
    stream.set_defaults(func=cmd_stream)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    app = default_app
    if args.broker:
        # Nothing has connected yet, so changing the setting here is enough.
        app.conf.update(broker_url=args.broker, broker_failover_strategy=None)
    try:
        return args.func(app, args)
    except (OperationalError, OSError) as exc:  # broker unreachable: one line, no traceback
        print(f"command={args.command} status=error error={exc!r}")
        return 1
    finally:
        close_app(app)
