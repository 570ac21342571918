"""tasks_app.cli: argument parsing and result checking, with fakes instead of a broker."""

import argparse

import pytest
from kombu import pidbox
from kombu.exceptions import OperationalError

from tasks_app import app, cli
from tasks_app.cli import (
    MISSING,
    RoundtripReport,
    build_parser,
    check_results,
    format_table,
    parse_target,
    parse_value,
    roundtrip_exit_code,
    run_roundtrip,
    task_name,
)


def test_submit_arguments_are_json_when_possible():
    args = build_parser().parse_args(["submit", "xsum", "[1, 2]", "4", "-3", "text"])
    assert args.func is cli.cmd_submit
    assert task_name(args.task) == "tasks_app.tasks.xsum"
    assert [parse_value(a) for a in args.args] == [[1, 2], 4, -3, "text"]
    assert args.timeout == 30
    assert args.countdown is None


def test_full_task_names_are_kept():
    assert task_name("tasks_app.tasks.add") == "tasks_app.tasks.add"


def test_global_broker_option():
    args = build_parser().parse_args(["--broker", "amqp://node1//", "ping", "--expect", "3"])
    assert args.broker == "amqp://node1//"
    assert args.expect == 3
    assert args.func is cli.cmd_ping


def test_roundtrip_targets():
    args = build_parser().parse_args(
        ["roundtrip", "-n", "50", "--target", "lb=amqp://lb//", "--target", "n1=amqp://n1/?a=b"]
    )
    assert args.n == 50
    assert args.target == [("lb", "amqp://lb//"), ("n1", "amqp://n1/?a=b")]


def test_roundtrip_defaults_to_the_configured_broker():
    args = build_parser().parse_args(["roundtrip"])
    assert args.target is None
    assert args.n == 100


@pytest.mark.parametrize("text", ["amqp://lb//", "=amqp://lb//", "lb="])
def test_bad_target(text):
    with pytest.raises(argparse.ArgumentTypeError):
        parse_target(text)


def test_a_command_is_required(capsys):
    with pytest.raises(SystemExit) as exc:
        build_parser().parse_args([])
    assert exc.value.code == 2


def test_check_results():
    assert check_results([0, 2, 4], 3) == (3, 0)
    assert check_results([0, 3, 4], 3) == (2, 1)  # wrong value
    assert check_results([0, MISSING, 4], 3) == (2, 1)  # never arrived
    assert check_results([0, 2], 3) == (2, 1)  # too few results
    assert check_results([0, True], 2) == (1, 1)  # True == 1, but it is not a correct answer


def test_report_line_and_exit_code():
    good = RoundtripReport("lb", tasks=10, ok=10, failed=0, seconds=2.0)
    bad = RoundtripReport("n1", tasks=10, ok=9, failed=1, seconds=1.0)
    assert good.line() == ("target=lb tasks=10 ok=10 failed=0 seconds=2.000 tasks_per_second=5.0")
    assert roundtrip_exit_code([good]) == 0
    assert roundtrip_exit_code([good, bad]) == 1
    assert roundtrip_exit_code([]) == 1


def test_table_has_a_row_per_target():
    table = format_table(
        [
            RoundtripReport("lb", 10, 10, 0, 2.0),
            RoundtripReport("rabbit1", 10, 10, 0, 1.0),
        ]
    ).splitlines()
    assert table[0].split() == ["target", "tasks", "ok", "failed", "seconds", "tasks_per_second"]
    assert table[2].split() == ["rabbit1", "10", "10", "0", "1.000", "10.0"]


class FakeResult:
    def __init__(self, value):
        self.value = value

    def get(self, timeout=None):
        if isinstance(self.value, Exception):
            raise self.value
        return self.value


class FakeApp:
    """Answers add(i, i) with 2*i, except for the given wrong answers or errors."""

    def __init__(self, answers=None, fail_sending_after=None):
        self.answers = answers or {}
        self.fail_sending_after = fail_sending_after
        self.sent = []

    def send_task(self, name, args):
        if self.fail_sending_after is not None and len(self.sent) >= self.fail_sending_after:
            raise ConnectionRefusedError("no broker")
        self.sent.append((name, args))
        i = args[0]
        return FakeResult(self.answers.get(i, 2 * i))


def test_roundtrip_all_correct():
    fake = FakeApp()
    report = run_roundtrip(fake, "lb", 20, timeout=5)
    assert fake.sent[3] == ("tasks_app.tasks.add", (3, 3))
    assert (report.tasks, report.ok, report.failed) == (20, 20, 0)
    assert roundtrip_exit_code([report]) == 0


def test_roundtrip_wrong_and_missing_results_fail(capsys):
    fake = FakeApp(answers={4: 9, 7: TimeoutError("late")})
    report = run_roundtrip(fake, "lb", 10, timeout=5)
    assert (report.ok, report.failed) == (8, 2)
    assert roundtrip_exit_code([report]) == 1
    assert "target=lb errors=1" in capsys.readouterr().err


def test_roundtrip_unreachable_broker_fails():
    report = run_roundtrip(FakeApp(fail_sending_after=5), "n2", 10, timeout=5)
    assert (report.ok, report.failed) == (5, 5)


def test_roundtrip_command_runs_each_target_and_prints_a_table(monkeypatch, capsys):
    made, closed = [], []

    def make_app(url):
        made.append(url)
        return FakeApp(answers={1: 0} if url == "amqp://bad//" else None)

    monkeypatch.setattr(cli, "make_app", make_app)
    monkeypatch.setattr(cli, "close_app", closed.append)
    args = build_parser().parse_args(
        ["roundtrip", "-n", "3", "--target", "lb=amqp://lb//", "--target", "bad=amqp://bad//"]
    )
    assert args.func(None, args) == 1
    assert made == ["amqp://lb//", "amqp://bad//"]
    assert len(closed) == 2  # every target's connections are closed before the next one
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("target=lb tasks=3 ok=3 failed=0 ")
    assert lines[1].startswith("target=bad tasks=3 ok=2 failed=1 ")
    assert lines[3].split()[0] == "target"


def test_target_apps_are_separate():
    target = cli.make_app("amqp://other:5672//")
    try:
        assert target.conf.broker_url == "amqp://other:5672//"
        assert target.conf.task_default_queue_type == "quorum"
        assert app.conf.broker_url != "amqp://other:5672//"
    finally:
        cli.close_app(target)


def test_canvas_command_eagerly(monkeypatch, capsys):
    monkeypatch.setitem(app.conf, "task_always_eager", True)
    args = build_parser().parse_args(["canvas"])
    assert args.func(app, args) == 0
    out = capsys.readouterr().out
    assert "check=chain ok=true result=32 expected=32" in out
    assert "check=group ok=true result=[0,2,4,6,8,10,12,14,16,18] " in out
    assert out.splitlines()[-1] == "checks=3 failed=0 status=ok"


def test_canvas_mismatch_fails(monkeypatch, capsys):
    monkeypatch.setitem(app.conf, "task_always_eager", True)
    monkeypatch.setattr(cli, "compare", lambda check, got, expected: check != "group")
    args = build_parser().parse_args(["canvas"])
    assert args.func(app, args) == 1


def test_ping_counts_the_workers(monkeypatch, capsys):
    replies = [{"celery@w1": {"ok": "pong"}}, {"celery@w2": {"ok": "pong"}}]
    limits = []
    monkeypatch.setattr(app.control, "ping", lambda timeout, limit: limits.append(limit) or replies)
    assert cli.cmd_ping(app, build_parser().parse_args(["ping", "--expect", "2"])) == 0
    assert cli.cmd_ping(app, build_parser().parse_args(["ping", "--expect", "3"])) == 1
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "worker=celery@w1 reply=pong"
    assert out[2] == "workers=2 expected=2 status=ok"
    assert out[-1] == "workers=2 expected=3 status=failed"
    # --expect stops the broadcast at that many replies; without it every reply is awaited.
    assert cli.cmd_ping(app, build_parser().parse_args(["ping"])) == 0
    assert cli.cmd_ping(app, build_parser().parse_args(["ping", "--expect", "0"])) == 0
    assert limits == [2, 3, None, None]


def test_ping_to_destinations_names_the_one_missing(monkeypatch, capsys):
    """--destination: only those workers are asked (kombu waits for exactly their replies), and
    one that does not answer fails the ping even when another worker answered instead."""
    seen = []

    def ping(destination, timeout):
        seen.append(destination)
        return [{"celery@w2": {"ok": "pong"}}]

    monkeypatch.setattr(app.control, "ping", ping)
    args = build_parser().parse_args(["ping", "-d", "celery@w1,celery@w2"])
    assert cli.cmd_ping(app, args) == 1
    assert seen == [["celery@w1", "celery@w2"]]
    out = capsys.readouterr().out.splitlines()
    assert out == [
        "worker=celery@w2 reply=pong",
        "workers=1 expected=2 status=failed",
        "missing=celery@w1",
    ]
    args = build_parser().parse_args(["ping", "-d", "celery@w2"])
    assert cli.cmd_ping(app, args) == 0


def test_ping_stops_collecting_at_the_expected_replies(monkeypatch):
    """Against kombu's own mailbox: the limit reaches the reply collector, which stops there."""
    seen = {}

    def collect(self, ticket, limit=None, timeout=1, callback=None, channel=None, accept=None):
        seen.update(limit=limit, timeout=timeout)
        return [{"celery@w1": {"ok": "pong"}}]

    monkeypatch.setattr(pidbox.Mailbox, "_collect", collect)
    monkeypatch.setattr(pidbox.Mailbox, "_publish", lambda self, *a, **k: None)
    args = build_parser().parse_args(["ping", "--expect", "1", "--timeout", "4"])
    with app.connection_for_write("memory://") as connection:
        monkeypatch.setattr(app, "connection_or_acquire", lambda conn=None: connection)
        assert cli.cmd_ping(app, args) == 0
    assert seen == {"limit": 1, "timeout": 4.0}


def test_main_points_the_app_at_broker(monkeypatch):
    seen, closed = [], []
    monkeypatch.setitem(app.conf, "broker_url", app.conf.broker_url)
    monkeypatch.setitem(app.conf, "broker_failover_strategy", app.conf.broker_failover_strategy)
    monkeypatch.setattr(cli, "cmd_ping", lambda app_, args: seen.append(app_.conf.broker_url) or 1)
    monkeypatch.setattr(cli, "close_app", closed.append)
    assert cli.main(["--broker", "amqp://node1:5672//", "ping"]) == 1
    assert seen == ["amqp://node1:5672//"]
    assert closed == [app]


def test_an_unreachable_broker_is_one_line(monkeypatch, capsys):
    def refuse(app_, args):
        raise OperationalError("[Errno 111] Connection refused")

    monkeypatch.setattr(cli, "cmd_ping", refuse)
    monkeypatch.setattr(cli, "close_app", lambda app_: None)
    assert cli.main(["ping"]) == 1
    assert capsys.readouterr().out.startswith("command=ping status=error error=")


def test_submit_prints_the_result_as_compact_json(capsys):
    class Sent(FakeResult):
        id = "abc"

    sent = []

    class SubmitApp:
        def send_task(self, name, args, countdown):
            sent.append((name, args, countdown))
            return Sent([sum(args[0])])

    args = build_parser().parse_args(["submit", "xsum", "[1, 2, 3]", "--countdown", "2"])
    assert cli.cmd_submit(SubmitApp(), args) == 0
    assert sent == [("tasks_app.tasks.xsum", [[1, 2, 3]], 2.0)]
    line = capsys.readouterr().out.strip()
    assert line.startswith("task=tasks_app.tasks.xsum id=abc status=ok sent_at=")
    assert line.endswith(" result=[6]")


def test_apps_for_the_same_url_in_turn_do_not_share_a_closed_pool():
    # The roundtrip command runs one app per --target; the same URL may come twice.
    for _ in range(2):
        app = cli.make_app("memory://")
        with app.producer_pool.acquire(block=True) as producer:
            producer.publish({"x": 1}, routing_key="q")
        cli.close_app(app)
