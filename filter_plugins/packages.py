"""Which packages a host lacks, from one ``dpkg-query`` call: the roles install with apt only
when something is missing, so a converge that changes nothing skips apt (the module loads
the whole package cache each time: seconds per host and role on the lab).

    {{ ['nftables'] | dpkg_missing(result.stdout) }}   the names dpkg-query does not report
                                                        installed ([] when all are)

The roles run ``dpkg-query --show --showformat '${Package} ${db:Status-Abbrev}\\n' NAMES``
(exit 1 when a name is unknown to dpkg: it is then missing too). Only plain package names:
a pinned version (name=version) is the rabbitmq role's business (tasks/versions.yml).
"""

from __future__ import annotations

from collections.abc import Iterable


def dpkg_missing(wanted: Iterable[str], dpkg_query_stdout: str) -> list[str]:
    """The names of ``wanted`` that dpkg-query's output does not show as installed, in order.

    Status-Abbrev is three letters: wanted state, current state, error flag. Installed is a
    current state of ``i`` ("ii", or "hi" when held) with no error flag.
    """
    installed = set()
    for line in dpkg_query_stdout.splitlines():
        name, _, status = line.partition(" ")
        if len(status) >= 2 and status[1] == "i" and status[2:].strip() == "":
            installed.add(name.partition(":")[0])
    return [name for name in wanted if name not in installed]


class FilterModule:
    def filters(self):
        return {"dpkg_missing": dpkg_missing}
