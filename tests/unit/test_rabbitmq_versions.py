"""The rabbitmq role's upgrade-path check (roles/rabbitmq/filter_plugins/rabbitmq_versions.py),
which the preflight runs before any host changes."""

from __future__ import annotations

import importlib.util
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
_spec = importlib.util.spec_from_file_location(
    "rabbitmq_versions", ROOT / "roles/rabbitmq/filter_plugins/rabbitmq_versions.py"
)
versions = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(versions)


@pytest.mark.parametrize(
    ("installed", "wanted"),
    [
        ("4.0.5-1", "4.0.5-1"),  # nothing changes
        ("4.0.5-1", "4.0.9-1"),  # patch
        ("4.0.5-1", "4.1.4-1"),  # next minor
        ("3.13.7-1", "4.0.5-1"),  # last minor of 3 to 4.0
        ("1:4.0.5-1+b1", "4.0.6-1"),  # epoch and binNMU suffix
        ("4.0.5-1.el9", "4.1.0-1.el9"),  # RPM release
        ("", "4.0.5-1"),  # not installed yet: a fresh install
        ("4.0.5-1", ""),  # no pin: whatever the repository has, held
    ],
)
def test_supported_changes_pass(installed, wanted):
    assert versions.rabbitmq_upgrade_refusal(installed, wanted) == ""


@pytest.mark.parametrize(
    ("installed", "wanted", "says"),
    [
        ("4.0.5-1", "4.0.4-1", "downgrades are not supported"),
        ("4.1.0-1", "4.0.9-1", "downgrades are not supported"),
        ("4.0.5-1", "4.2.0-1", "Upgrade to the latest 4.1.x first"),
        ("3.12.14-1", "4.0.5-1", "Upgrade to the latest 3.13.x first"),
        ("3.13.7-1", "4.1.0-1", "Upgrade to the latest 4.0.x first"),
        ("4.0.5-1", "5.0.0-1", "Upgrade to the latest 4.1.x first"),
    ],
)
def test_unsupported_changes_are_refused_with_the_step_to_take(installed, wanted, says):
    assert says in versions.rabbitmq_upgrade_refusal(installed, wanted)


def test_an_erlang_downgrade_is_refused_an_upgrade_is_not():
    assert "downgrades are refused" in versions.rabbitmq_erlang_refusal("1:27.3.4-1", "1:26.2.5-1")
    assert versions.rabbitmq_erlang_refusal("1:27.3.4-1", "1:27.3.4.1-1") == ""


def test_garbage_is_refused_not_passed():
    assert "must be a package version" in versions.rabbitmq_upgrade_refusal("4.0.5-1", "latest")
    assert "must be a package version" in versions.rabbitmq_erlang_refusal("1:27.3-1", "new")


def test_installed_versions_read_as_a_pin_names_them():
    installed = versions.rabbitmq_installed_versions
    # dpkg-query's "${Package} ${db:Status-Abbrev} ${Version}" (the state is three characters).
    assert installed("rabbitmq-server hi  4.0.5-1\nerlang-base ii  1:27.3.4.1+dfsg-1\n") == {
        "rabbitmq-server": "4.0.5-1",
        "erlang-base": "1:27.3.4.1+dfsg-1",
    }
    # Removed with its configuration left, or known and never installed: not installed.
    assert installed("rabbitmq-server rc  4.0.5-1\nerlang-base un  \n") == {}
    # rpm's query: version and release joined; a missing package is a sentence, not a line.
    assert installed("rabbitmq-server ii 4.0.5-1.el9\npackage erlang is not installed\n") == {
        "rabbitmq-server": "4.0.5-1.el9"
    }
    assert installed("") == {}
    assert installed(None) == {}


@pytest.mark.skipif(shutil.which("dpkg-query") is None, reason="no dpkg on this controller")
def test_the_roles_dpkg_query_is_read_as_installed():
    """The role's own query (vars/main.yml) against this controller's package database."""
    argv = yaml.safe_load((ROOT / "roles/rabbitmq/vars/main.yml").read_text())[
        "_rabbitmq_version_query"
    ]["Debian"]
    out = subprocess.run(  # noqa: S603 (the role's own argv, and two fixed names)
        [*argv, "dpkg", "surely-no-such-package"], capture_output=True, text=True, check=False
    )
    assert out.returncode == 1  # one package missing: the task accepts 0, 1 and 2
    found = versions.rabbitmq_installed_versions(out.stdout)
    assert list(found) == ["dpkg"]
    assert found["dpkg"][0].isdigit()
