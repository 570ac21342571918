"""What is wrong with a directory option, for the roles' preflight asserts.

The roles create, chown and point systemd at the directories their options name. A relative
path, one with ``..`` or ``.`` (``/var/lib/..`` is ``/var``), ``//`` or a trailing ``/`` means
another directory than it seems, or none: such a value is refused before any host changes.

    {{ celery_worker_venv_dir | path_problems('celery_worker_venv_dir') }}
    {{ celery_worker_state_dir | path_problems('celery_worker_state_dir', '/var/lib') }}

Each returns a list of sentences ([] when the path is fine) that name the option and the fix.
"""

from __future__ import annotations

import posixpath
import re
from typing import Any

# Letters, digits and . _ + @ - between the slashes: nothing a unit file, a shell-free command
# or a URL would read differently.
_PLAIN = re.compile(r"(/[A-Za-z0-9._+@-]+)+")


def path_problems(path: Any, name: str, parent: str | None = None) -> list[str]:
    """Why ``path`` is not a plain absolute directory (directly under ``parent`` if given)."""
    if not isinstance(path, str) or not path:
        return [f"{name} must be an absolute path (it is {type(path).__name__} {path!r})"]
    if not path.startswith("/"):
        return [f"{name} ('{path}') must be an absolute path, starting with /"]
    normal = posixpath.normpath(path)
    if path in ("/", "//") or path != normal or "//" in path:
        return [
            f"{name} ('{path}') must be a plain absolute path without '.', '..', '//' or a "
            f"trailing '/' (it stands for '{normal}'), and not / itself"
        ]
    if not _PLAIN.fullmatch(path):
        return [
            f"{name} ('{path}') may hold only letters, digits and . _ + @ - between the slashes"
        ]
    if parent is not None and posixpath.dirname(path) != parent:
        return [f"{name} ('{path}') must be a directory directly under {parent}"]
    return []


class FilterModule:
    """Ansible filters: input checks of directory options."""

    def filters(self):
        return {"path_problems": path_problems}
