"""Which RabbitMQ version changes a rolling upgrade supports.

``rabbitmq_upgrade_refusal(installed, wanted)`` takes two package versions (Debian
``4.0.5-1``, ``1:4.0.5-1+b1``; RPM ``4.0.5-1.el9``) and returns why the change from the
installed to the wanted version is refused, or an empty string when it is allowed.

RabbitMQ's rolling upgrades (https://www.rabbitmq.com/docs/rolling-upgrade) never skip a
version except patch releases: any patch within a minor series, the next minor of the same
major, or from the last minor of a major to the next major's first (3.13 -> 4.0). A downgrade
is never supported (the node's data may already use the newer format).
``rabbitmq_erlang_refusal(installed, wanted)`` refuses an Erlang/OTP downgrade only; which
OTP a RabbitMQ needs is the package dependencies' business.
"""

from __future__ import annotations

import re

# The last minor of each RabbitMQ major that upgrades in place to the next major's .0.
_LAST_MINOR = {3: 13}


def _upstream(version: str) -> tuple[int, ...]:
    """(major, minor, patch) of a package version: no epoch, no package revision."""
    text = str(version).strip()
    text = text.split(":", 1)[1] if re.match(r"^\d+:", text) else text
    text = text.split("-", 1)[0]
    numbers = re.match(r"^(\d+)(?:\.(\d+))?(?:\.(\d+))?", text)
    if not numbers:
        raise ValueError(f"not a version: {version!r}")
    return tuple(int(n or 0) for n in numbers.groups())


def rabbitmq_upgrade_refusal(installed: str, wanted: str) -> str:
    if not installed or not wanted:
        return ""
    try:
        have, want = _upstream(installed), _upstream(wanted)
    except ValueError as exc:
        return f"{exc}: rabbitmq_server_version must be a package version such as 4.0.5-1."
    if want < have:
        return (
            f"RabbitMQ {wanted} is older than the installed {installed}: downgrades are not "
            "supported (the node's data may already be in the newer format)."
        )
    if want[:2] == have[:2]:
        return ""
    if want[0] == have[0] and want[1] == have[1] + 1:
        return ""
    if want[0] == have[0] + 1 and want[1] == 0 and _LAST_MINOR.get(have[0]) == have[1]:
        return ""
    # The next version on the way: the next minor, or the next major's .0 from its last minor.
    last = _LAST_MINOR.get(have[0])
    step = (
        f"{have[0] + 1}.0" if want[0] > have[0] and last == have[1] else f"{have[0]}.{have[1] + 1}"
    )
    return (
        f"RabbitMQ {installed} cannot be upgraded in place to {wanted}: rolling upgrades skip "
        f"no version but patch releases. Upgrade to the latest {step}.x first."
    )


def rabbitmq_erlang_refusal(installed: str, wanted: str) -> str:
    if not installed or not wanted:
        return ""
    try:
        older = _upstream(wanted) < _upstream(installed)
    except ValueError as exc:
        return f"{exc}: rabbitmq_erlang_version must be a package version such as 1:27.3.4-1."
    if older:
        return f"Erlang {wanted} is older than the installed {installed}: downgrades are refused."
    return ""


def rabbitmq_installed_versions(query: str) -> dict[str, str]:
    """The installed packages of one query (tasks/installed_versions.yml) as {name: version}.

    Each line is "<name> <state> <version>": dpkg-query's two-letter state (``ii`` installed,
    ``hi`` installed and held; ``rc``, ``un`` and the rest are not installed), or the ``ii``
    the rpm query writes for every installed package. apt's version is whole (``1:27.3-1``),
    rpm's is version and release joined (``4.0.5-1.el9``): as a pin names them. A package the
    query does not list (rpm: "package erlang is not installed") is not in the result.
    """
    installed = {}
    for line in str(query or "").splitlines():
        fields = line.split()
        if len(fields) == 3 and fields[1] in ("ii", "hi"):
            installed[fields[0]] = fields[2]
    return installed


class FilterModule:
    """Ansible filters of the rabbitmq role: version checks."""

    def filters(self):
        return {
            "rabbitmq_upgrade_refusal": rabbitmq_upgrade_refusal,
            "rabbitmq_erlang_refusal": rabbitmq_erlang_refusal,
            "rabbitmq_installed_versions": rabbitmq_installed_versions,
        }
