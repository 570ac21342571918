"""Bad input is refused with a clear message before any host changes."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import PROJECT

BAD_INPUTS = {
    "short cookie": (
        {"rabbitmq_erlang_cookie": "tooshort"},
        "rabbitmq_erlang_cookie must be 32 to 255 letters and digits",
    ),
    "cookie with symbols": (
        {"rabbitmq_erlang_cookie": "a" * 31 + "!$"},
        "with characters other than letters and digits",
    ),
    "invalid user name": ({"rabbitmq_app_user": "bad user"}, "Invalid names"),
    "short password": ({"rabbitmq_app_password": "short"}, "has no password or a short one"),
    "partition handling": (
        {"rabbitmq_cluster_partition_handling": "sometimes"},
        "rabbitmq_cluster_partition_handling",
    ),
}


@pytest.mark.parametrize("case", sorted(BAD_INPUTS))
def test_bad_input_is_refused_before_anything_changes(case, tmp_path):
    extra, message = BAD_INPUTS[case]
    extra_file = tmp_path / "extra.json"
    extra_file.write_text(__import__("json").dumps(extra))
    env = dict(os.environ, ANSIBLE_CONFIG=str(PROJECT / "ansible.cfg"), ANSIBLE_NOCOLOR="1")
    bindir = Path(sys.executable).parent
    result = subprocess.run(
        [
            str(bindir / "ansible-playbook"),
            "-i",
            str(PROJECT / "inventory/lab/hosts.yml"),
            str(PROJECT / "playbooks/rabbitmq.yml"),
            "-e",
            f"@{extra_file}",
        ],
        capture_output=True,
        text=True,
        env=env,
        cwd=PROJECT,
        timeout=300,
    )
    output = result.stdout + result.stderr
    assert result.returncode != 0, output
    assert message in output, output[-3000:]
    recap = re.findall(r"^(\S+)\s*:\s*ok=\d+\s+changed=(\d+)", result.stdout, re.MULTILINE)
    assert recap, output[-3000:]
    assert all(changed == "0" for _, changed in recap), recap
