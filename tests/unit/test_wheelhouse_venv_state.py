"""The wheelhouse role's virtualenv record (roles/wheelhouse/vars/main.yml): pip is skipped only
while the pins asked for and what the virtualenv holds are those the last install recorded."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = yaml.safe_load((ROOT / "roles/wheelhouse/vars/main.yml").read_text())[
    "_wheelhouse_venv_state_script"
]


def state(*args: str) -> str:
    out = subprocess.run(  # noqa: S603 (this interpreter, the role's script)
        [sys.executable, "-c", SCRIPT, *args], capture_output=True, text=True, check=True
    )
    return out.stdout


def test_without_a_record_nothing_is_settled(tmp_path):
    read = json.loads(state("read", str(tmp_path / ".installed.json")))
    assert read["recorded"] == {}
    # This interpreter's own distributions, normalised as pins are written.
    assert "pyyaml==" + yaml.__version__ in read["held"]


def test_a_record_reads_back_as_the_pins_and_what_is_held(tmp_path):
    record = tmp_path / ".installed.json"
    state("record", str(record), json.dumps(["tasks_app==0.3.0"]))
    read = json.loads(state("read", str(record)))
    assert read["recorded"] == {"pins": ["tasks_app==0.3.0"], "held": read["held"]}


def test_a_damaged_record_is_no_record(tmp_path):
    record = tmp_path / ".installed.json"
    record.write_text("{not json")
    assert json.loads(state("read", str(record)))["recorded"] == {}
