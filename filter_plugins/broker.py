"""The application's broker connection, rendered in one place.

The inventory states the connection once, as data (``app_broker``: hosts, port, vhost, user,
password; ``monitoring_broker`` for the management API), and everything that needs it as a URL
goes through these functions: the celery_worker and flower roles (as Jinja filters), the lab's
report, the fault run and the tests (imported). User, password and vhost are percent-encoded,
so a password holding ``/ # ? % @ :`` or a ``\\`` stays one URL component, and the rendered
value holds no character systemd's EnvironmentFile would interpret.

    {{ app_broker | amqp_urls }}           one amqp:// URL per host, in order (failover list)
    {{ monitoring_broker | management_api_url }}   http://USER:PASSWORD@HOST:PORT/api/
    web_url(endpoint)                      http://HOST:PORT/ of a web UI, no credentials (tests)
    {{ app_broker | broker_problems }}     what is wrong with it ([] when nothing): preflights
    {{ monitoring_broker | broker_problems('api') }}
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import quote

AMQP_KEYS = ("hosts", "port", "vhost", "user", "password")
API_KEYS = ("host", "port", "user", "password")


def _require(connection: Any, keys: tuple[str, ...], what: str) -> Mapping:
    if not isinstance(connection, Mapping):
        raise ValueError(
            f"{what} must be a mapping with {', '.join(keys)}; got {type(connection).__name__}"
        )
    missing = [key for key in keys if connection.get(key) in (None, "", [])]
    if missing:
        raise ValueError(f"{what} lacks {', '.join(missing)}")
    return connection


def _host(host: str) -> str:
    return f"[{host}]" if ":" in host and not host.startswith("[") else host


def _port(value: Any, what: str) -> int:
    try:
        port = int(value)
    except (TypeError, ValueError):
        raise ValueError(f"{what}: port {value!r} is not a number") from None
    if not 0 < port < 65536:
        raise ValueError(f"{what}: port {value} is not a TCP port")
    return port


def _auth(connection: Mapping) -> str:
    return (
        f"{quote(str(connection['user']), safe='')}:{quote(str(connection['password']), safe='')}"
    )


def amqp_urls(connection: Any) -> list[str]:
    """One AMQP URL per host of the connection (amqps:// when ``tls`` is true)."""
    conn = _require(connection, AMQP_KEYS, "the broker connection")
    hosts = conn["hosts"]
    if isinstance(hosts, str) or not all(isinstance(h, str) and h for h in hosts):
        raise ValueError("the broker connection's hosts must be a list of host names or addresses")
    scheme = "amqps" if conn.get("tls") else "amqp"
    port = _port(conn["port"], "the broker connection")
    vhost = quote(str(conn["vhost"]), safe="")
    return [f"{scheme}://{_auth(conn)}@{_host(host)}:{port}/{vhost}" for host in hosts]


def _http_base(conn: Mapping, what: str) -> str:
    scheme = "https" if conn.get("tls") else "http"
    return f"{scheme}://{_host(str(conn['host']))}:{_port(conn['port'], what)}/"


def management_api_url(connection: Any) -> str:
    """The management HTTP API's base URL with credentials (Flower's --broker-api)."""
    what = "the management API connection"
    conn = _require(connection, API_KEYS, what)
    scheme, _, rest = _http_base(conn, what).partition("://")
    return f"{scheme}://{_auth(conn)}@{rest}api/"


def web_url(endpoint: Any) -> str:
    """A web interface's root URL without credentials (https:// when ``tls`` is true): the
    management UI or Flower as a browser opens it, logging in by form or basic auth."""
    what = "the web endpoint"
    return _http_base(_require(endpoint, ("host", "port"), what), what)


def broker_problems(connection: Any, kind: str = "amqp") -> list[str]:
    """Why the connection cannot be rendered (an empty list when it can), for preflight asserts."""
    render = amqp_urls if kind == "amqp" else management_api_url
    try:
        render(connection)
    except (ValueError, TypeError, KeyError) as exc:
        return [str(exc)]
    return []


class FilterModule:
    """Ansible filters: the broker connection as URLs."""

    def filters(self):
        return {
            "amqp_urls": amqp_urls,
            "management_api_url": management_api_url,
            "broker_problems": broker_problems,
        }
