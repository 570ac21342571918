"""The wheelhouse role's build fingerprint (roles/wheelhouse/vars/main.yml): a converge skips
the wheel build and the index check only while the sources, the pins and the wheels are those
of the last build."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = yaml.safe_load((ROOT / "roles/wheelhouse/vars/main.yml").read_text())[
    "_wheelhouse_fingerprint_script"
]
INPUTS = {
    "sources": ["pyproject.toml", "tasks_app"],
    "requirements": ["celery==5.5.3"],
    "target": ["--only-binary=:all:", "--python-version", "3.13"],
    "epoch": "315532800",
}


def fingerprint(mode: str, wheelhouse: Path, project: Path, inputs=INPUTS) -> str:
    out = subprocess.run(  # noqa: S603 (this interpreter, the role's script)
        [sys.executable, "-c", SCRIPT, mode, str(wheelhouse), str(project), json.dumps(inputs)],
        capture_output=True,
        text=True,
        check=True,
    )
    return out.stdout.strip()


@pytest.fixture
def built(tmp_path):
    project, wheelhouse = tmp_path / "project", tmp_path / "wheelhouse"
    (project / "tasks_app").mkdir(parents=True)
    (project / "pyproject.toml").write_text("[project]\nname = 'tasks_app'\n")
    (project / "tasks_app/__init__.py").write_text("")
    (project / "tasks_app/tasks.py").write_text("def add(x, y):\n    return x + y\n")
    wheelhouse.mkdir()
    (wheelhouse / "tasks_app-0.1.0-py3-none-any.whl").write_bytes(b"wheel")
    assert fingerprint("check", wheelhouse, project) == "stale"  # never built
    assert fingerprint("write", wheelhouse, project) == "written"
    assert fingerprint("check", wheelhouse, project) == "current"
    return project, wheelhouse


def test_a_changed_source_is_built_again(built):
    project, wheelhouse = built
    (project / "tasks_app/tasks.py").write_text("def add(x, y):\n    return y + x\n")
    assert fingerprint("check", wheelhouse, project) == "stale"


def test_a_new_source_file_is_built_again(built):
    project, wheelhouse = built
    (project / "tasks_app/more.py").write_text("")
    assert fingerprint("check", wheelhouse, project) == "stale"


def test_a_changed_pin_is_fetched_again(built):
    project, wheelhouse = built
    inputs = {**INPUTS, "requirements": ["celery==5.5.2"]}
    assert fingerprint("check", wheelhouse, project, inputs) == "stale"


def test_a_wheel_removed_or_changed_is_fetched_again(built):
    project, wheelhouse = built
    (wheelhouse / "tasks_app-0.1.0-py3-none-any.whl").write_bytes(b"other wheel")
    assert fingerprint("check", wheelhouse, project) == "stale"
    fingerprint("write", wheelhouse, project)
    (wheelhouse / "tasks_app-0.1.0-py3-none-any.whl").unlink()
    assert fingerprint("check", wheelhouse, project) == "stale"


def test_bytecode_left_by_a_test_run_is_not_a_change(built):
    project, wheelhouse = built
    (project / "tasks_app/__pycache__").mkdir()
    (project / "tasks_app/__pycache__/tasks.cpython-311.pyc").write_bytes(b"\0")
    assert fingerprint("check", wheelhouse, project) == "current"
