"""The lab's hosts: reachable, systemd running with no failed unit, names resolve, groups."""

from __future__ import annotations

testinfra_hosts = ["ansible://all"]


def test_host_is_reachable(host):
    assert host.ansible("ansible.builtin.ping", check=False)["ping"] == "pong"


def test_systemd_is_running_with_no_failed_unit(host):
    state = host.run("systemctl is-system-running --wait")
    failed = host.check_output("systemctl list-units --failed --no-legend --plain")
    assert state.stdout.strip() == "running", (
        f"systemd is {state.stdout.strip()}; failed units:\n{failed}"
    )
    assert failed == ""


def test_pid1_is_systemd(host):
    assert host.file("/proc/1/comm").content_string.strip() == "systemd"


def test_resolves_every_other_host(host, expected_groups):
    for other in expected_groups:
        result = host.run("getent hosts %s", other)
        assert result.rc == 0, f"{host.backend.host} cannot resolve {other}"


def test_host_is_in_the_groups_the_inventory_says(host, expected_groups):
    name = host.backend.host
    # testinfra lists "all" among group_names; the inventory file leaves it implicit.
    seen = set(host.ansible.get_variables()["group_names"]) - {"all"}
    assert seen == expected_groups[name]
    # The host itself agrees on who it is (rabbit@<hostname> node names depend on it).
    assert host.check_output("hostname") == name


def test_time_zone_is_set(host):
    assert host.file("/etc/localtime").linked_to.endswith("/Etc/UTC")
