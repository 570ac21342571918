"""lab/chaos.py's bookkeeping on synthetic events: each loss it must catch, it catches."""

from __future__ import annotations

import sys
from collections import Counter
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "lab"))
import chaos  # noqa: E402


def sent(task_id: str, t0: float, t1: float | None = None) -> dict:
    return {"ev": "sent", "seq": 0, "id": task_id, "t0": t0, "t1": t1 or t0 + 0.01}


def result(task_id: str, t: float, ok: bool = True) -> dict:
    return {"ev": "result", "seq": 0, "id": task_id, "t": t, "ok": ok, "value": {}}


def fault(kind: str, start: float, **kw) -> chaos.Fault:
    return chaos.Fault(
        kind, "rabbit1", t_start=start, t_heal=start + 1, ping_s=2.0, healthy_s=3.0, **kw
    )


END = {"ev": "end"}


def steady(start: float, stop: float, prefix: str = "s") -> list[dict]:
    """Confirmed publishes every 0.1 s, each with its result."""
    events = [sent(f"{prefix}{i}", start + i / 10) for i in range(int((stop - start) * 10))]
    return events + [result(e["id"], e["t1"] + 0.05) for e in events]


def ran_once(events: list[dict]) -> Counter:
    return Counter(e["id"] for e in events if e["ev"] == "sent")


def test_a_clean_run_meets_the_bar():
    events = steady(0, 20) + [END]
    report = chaos.analyse(events, ran_once(events), [fault("node_kill", 10)], 20)
    assert report["failures"] == []
    assert [r["sent"] for r in report["rows"]] == [100, 100]  # steady window, then the fault's


@pytest.mark.parametrize(
    ("events", "runs", "failure"),
    [
        ([sent("a", 11), result("a", 12)], Counter(), "never_ran=1"),
        ([sent("a", 11)], Counter(a=1), "results_missing=1"),
        ([sent("a", 11), result("a", 12, ok=False)], Counter(a=1), "wrong=1"),
        (
            [{"ev": "send_error", "seq": 0, "t0": 11, "t1": 30, "error": "x"}],
            Counter(),
            "send_errors=1",
        ),
        ([], Counter(), "no task was sent"),
    ],
)
def test_each_kind_of_loss_fails_the_bar(events, runs, failure):
    report = chaos.analyse(events, runs, [fault("node_kill", 10)], 20)
    assert any(failure in f for f in report["failures"]), report["failures"]


def test_a_task_run_twice_is_counted_but_allowed():
    events = steady(0, 20) + [END]
    runs = ran_once(events)
    runs["s150"] = 2
    report = chaos.analyse(events, runs, [fault("pause", 10)], 20)
    assert report["totals"]["ran_twice"] == 1
    assert report["failures"] == []


def test_a_stream_that_died_fails_the_bar():
    events = steady(0, 20)  # no end record
    report = chaos.analyse(events, ran_once(events), [fault("pause", 10)], 20)
    assert any("did not finish" in f for f in report["failures"])


def test_a_fault_window_without_traffic_fails_the_bar():
    events = steady(0, 10) + [END]
    report = chaos.analyse(events, ran_once(events), [fault("pause", 10)], 20)
    assert any("no task was sent" in f for f in report["failures"])


def test_a_worker_that_never_answers_or_a_system_that_does_not_heal_fails():
    events = [sent("a", 11), result("a", 12)]
    silent = fault("worker_wedge", 10)
    silent.ping_s = None
    report = chaos.analyse(events, Counter(a=1), [silent], 20)
    assert any("did not all answer" in f for f in report["failures"]), report["failures"]
    broken = fault("netcut", 10, unhealthy_after=["cluster"])
    broken.healthy_s = None
    report = chaos.analyse(events, Counter(a=1), [broken], 20)
    assert any("cluster" in f for f in report["failures"])


def test_publish_stall_after_a_node_kill_over_5_s_fails():
    # Confirmed publishes every 0.1 s, then nothing for 7 s after the kill at t=10.
    events = [sent(f"s{i}", 9 + i / 10) for i in range(10)]
    events += [sent(f"t{i}", 17 + i / 10) for i in range(10)]
    events += [result(e["id"], e["t1"] + 0.1) for e in events]
    runs = Counter(e["id"] for e in events if e["ev"] == "sent")
    report = chaos.analyse(events, runs, [fault("node_kill", 10)], 20)
    assert report["rows"][1]["publish_stall_s"] == pytest.approx(7.0, abs=0.2)
    assert any("p95" in f for f in report["failures"])


def test_the_full_run_has_every_fault_the_issue_asks_for():
    lab = chaos.Lab(["r1", "r2", "r3"], ["lb1", "lb2"], ["w1", "w2"], "w1", "w1", "w1", {})
    kinds = Counter(f.kind for f in chaos.schedule(lab, "full"))
    assert kinds["node_kill"] >= 10
    assert sum(1 for f in chaos.schedule(lab, "full") if f.target == "leader") >= 2
    assert kinds["netcut"] >= 3 and kinds["pause"] >= 3
    for kind in ("worker_child_kill", "worker_host_kill", "worker_wedge", "lb_kill"):
        assert kinds[kind] >= 1, kind
    assert kinds["rolling_restart"] == 1
    assert all(f.hold >= 20 for f in chaos.schedule(lab, "full") if f.kind == "netcut")
    for fault in (
        chaos.schedule(lab, "full") + chaos.schedule(lab, "short") + chaos.schedule(lab, "ops")
    ):
        assert callable(getattr(chaos.Chaos, fault.kind)), fault.kind


def test_a_stall_that_begins_just_before_a_fault_is_charged_to_that_fault():
    # Steady until t=12.9, then nothing until the pause that started at 13 ends at 28.
    events = steady(0, 13) + steady(28, 40, prefix="t") + [END]
    faults = [fault("node_kill", 5), fault("pause", 13)]
    report = chaos.analyse(events, ran_once(events), faults, 40)
    kill, pause = report["rows"][1], report["rows"][2]
    assert kill["publish_stall_s"] < 1
    assert pause["publish_stall_s"] == pytest.approx(15.1, abs=0.2)


def test_the_short_run_reports_a_slow_kill_but_fails_only_on_loss():
    events = [sent(f"s{i}", 9 + i / 10) for i in range(10)]
    events += [sent(f"t{i}", 17 + i / 10) for i in range(10)]
    events += [result(e["id"], e["t1"] + 0.1) for e in events] + [END]
    runs = Counter(e["id"] for e in events if e["ev"] == "sent")
    report = chaos.analyse(events, runs, [fault("node_kill", 10)], 20, stall_bar=False)
    assert report["resume"]["node_kill"]["p95"] == pytest.approx(7.0, abs=0.2)
    assert report["failures"] == []
    runs["t3"] = 0
    report = chaos.analyse(events, runs, [fault("node_kill", 10)], 20, stall_bar=False)
    assert report["failures"] == ["never_ran=1"]


def test_the_terminal_and_readme_tables_render_every_row_with_every_column():
    events = steady(0, 20) + [END]
    report = chaos.analyse(events, ran_once(events), [fault("node_kill", 10)], 20)
    rows = chaos.markdown(report).split("\n\n")[0].splitlines()
    assert len({row.count("|") for row in rows}) == 1, rows  # header, rule, 2 rows, total
    assert len(rows) == 5
    terminal = chaos.table(report).splitlines()
    assert terminal[0].split()[:3] == ["fault", "sent", "ran"]
    assert terminal[3].startswith("total") and " 200 " in terminal[3]


def test_send_errors_are_allowed_only_while_every_node_is_down():
    error = {"ev": "send_error", "seq": 0, "t0": 11, "t1": 30, "error": "x"}
    events = steady(0, 10) + steady(31, 40, prefix="t") + [error, END]
    outage = chaos.analyse(events, ran_once(events), [fault("full_outage", 10)], 40)
    assert outage["totals"]["send_errors"] == 1
    assert outage["failures"] == []
    kill = chaos.analyse(events, ran_once(events), [fault("node_kill", 10)], 40)
    assert "send_errors=1" in kill["failures"]


def test_the_operations_drill_runs_each_operation_of_issue_9():
    lab = chaos.Lab(["r1", "r2", "r3"], ["lb1", "lb2"], ["w1", "w2"], "w1", "w1", "w1", {})
    kinds = [f.kind for f in chaos.schedule(lab, "ops")]
    assert kinds == [
        "rolling_restart",
        "membership",
        "full_outage",
        "cookie_rotation",
        "password_rotation",
    ]
    # The stream is a client the rotation does not roll: nothing after it may make it reconnect.
    for plan in ("ops", "short"):
        assert chaos.schedule(lab, plan)[-1].kind == "password_rotation"
    # Every operation the plans name exists.
    for plan in ("ops", "short", "full"):
        for planned in chaos.schedule(lab, plan):
            assert callable(getattr(chaos.Chaos, planned.kind))
