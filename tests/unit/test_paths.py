"""The directory options' input check (filter_plugins/paths.py): a path that means another
directory than it seems is refused with the option's name; a plain one passes."""

from __future__ import annotations

import pytest

from filter_plugins.paths import path_problems


@pytest.mark.parametrize("path", ["/opt/tasks_app/venv", "/var/cache/wheelhouse", "/a", "/x+y/z@1"])
def test_plain_absolute_paths_pass(path):
    assert path_problems(path, "some_dir") == []


@pytest.mark.parametrize(
    ("path", "words"),
    [
        ("opt/venv", "must be an absolute path, starting with /"),
        ("", "must be an absolute path"),
        (None, "must be an absolute path (it is NoneType None)"),
        (["/opt"], "must be an absolute path (it is list"),
        ("/", "and not / itself"),
        ("/var/lib/..", "it stands for '/var'"),
        ("/var/lib/.", "it stands for '/var/lib'"),
        ("/opt/../etc", "it stands for '/etc'"),
        ("/opt//venv", "'//'"),
        ("//opt", "'//'"),
        ("/opt/venv/", "trailing '/'"),
        ("/opt/my venv", "only letters, digits"),
        ("/opt/venv\n", "only letters, digits"),
        ("/opt/$HOME", "only letters, digits"),
    ],
)
def test_paths_that_mean_another_directory_are_refused(path, words):
    (problem,) = path_problems(path, "some_dir")
    assert problem.startswith("some_dir ") and words in problem, problem


def test_a_directory_directly_under_a_parent():
    assert path_problems("/var/lib/tasks_app", "state_dir", "/var/lib") == []
    (problem,) = path_problems("/var/lib/a/b", "state_dir", "/var/lib")
    assert problem == "state_dir ('/var/lib/a/b') must be a directory directly under /var/lib"
    (problem,) = path_problems("/var/lib/..", "state_dir", "/var/lib")
    assert "it stands for '/var'" in problem
    (problem,) = path_problems("/srv/tasks_app", "state_dir", "/var/lib")
    assert "directly under /var/lib" in problem
