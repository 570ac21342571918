"""The sd_notify protocol (one datagram on $NOTIFY_SOCKET), so the worker and beat can run as
``Type=notify`` units with a watchdog without a new dependency.

See sd_notify(3): the socket is a path, or an abstract name when it starts with '@'.
Outside systemd (no NOTIFY_SOCKET) every call is a no-op returning False.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Mapping

READY = "READY=1"
STOPPING = "STOPPING=1"
WATCHDOG = "WATCHDOG=1"


def notify_address(environ: Mapping[str, str]) -> str | None:
    """The datagram address systemd listens on, or None when not run by systemd."""
    address = environ.get("NOTIFY_SOCKET", "")
    if not address or address[0] not in "/@":
        return None
    return "\0" + address[1:] if address[0] == "@" else address


def notify(state: str, environ: Mapping[str, str] | None = None) -> bool:
    """Send one state line (READY=1, WATCHDOG=1, STATUS=...) to systemd; True if sent."""
    address = notify_address(os.environ if environ is None else environ)
    if address is None:
        return False
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
        try:
            sock.sendto(state.encode(), address)
        except OSError:
            # systemd gone or the socket not ours: a missed notification only means the
            # watchdog does not get fed, which is what should happen then anyway.
            return False
    return True
