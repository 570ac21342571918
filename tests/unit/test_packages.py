"""dpkg_missing (filter_plugins/packages.py): the roles skip apt only when dpkg-query shows
every package installed."""

from __future__ import annotations

import shutil
import subprocess

import pytest

from filter_plugins.packages import dpkg_missing

FORMAT = "${Package} ${db:Status-Abbrev}\n"  # what the roles pass to dpkg-query --showformat


def test_all_installed_means_nothing_missing():
    out = "nftables ii \nhaproxy ii \n"
    assert dpkg_missing(["haproxy", "nftables"], out) == []


def test_held_packages_count_as_installed():
    assert dpkg_missing(["rabbitmq-server"], "rabbitmq-server hi \n") == []


@pytest.mark.parametrize(
    "status",
    [
        "un ",  # known, never installed
        "rc ",  # removed, configuration files left
        "iU ",  # unpacked, not configured
        "iF ",  # configuration failed
        "iiR",  # installed but flagged for reinstallation
    ],
)
def test_anything_but_installed_is_missing(status):
    assert dpkg_missing(["keepalived"], f"keepalived {status}\n") == ["keepalived"]


def test_a_name_dpkg_does_not_know_is_missing_and_order_is_kept():
    # dpkg-query prints nothing on stdout for an unknown name (and exits 1).
    assert dpkg_missing(["b", "a", "c"], "a ii \n") == ["b", "c"]


def test_multiarch_names_match_the_plain_name():
    assert dpkg_missing(["libssl3t64"], "libssl3t64:amd64 ii \n") == []


DPKG_QUERY = shutil.which("dpkg-query")


@pytest.mark.skipif(DPKG_QUERY is None, reason="no dpkg on this controller")
def test_against_this_machines_dpkg():
    names = ["dpkg", "no-such-package-for-this-test"]
    out = subprocess.run(  # noqa: S603 - fixed arguments
        [DPKG_QUERY, "--show", f"--showformat={FORMAT}", *names],
        capture_output=True,
        text=True,
        check=False,
    )
    assert out.returncode == 1  # the unknown name
    assert dpkg_missing(names, out.stdout) == ["no-such-package-for-this-test"]
