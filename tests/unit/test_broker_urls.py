"""The broker connection rendered as URLs (filter_plugins/broker.py): what kombu and Flower
read back must be exactly the inventory's user, password, host, port and vhost."""

from __future__ import annotations

import pytest
from kombu.utils.url import url_to_parts

from filter_plugins.broker import amqp_urls, broker_problems, management_api_url, web_url
from lab.inventory_vars import web_tls

CONNECTION = {
    "hosts": ["10.0.0.5", "lb2.example.org"],
    "port": 5672,
    "vhost": "celery",
    "user": "celery",
    "password": "s3cret-Pass_word0",
}


def test_one_url_per_host_in_order():
    assert amqp_urls(CONNECTION) == [
        "amqp://celery:s3cret-Pass_word0@10.0.0.5:5672/celery",
        "amqp://celery:s3cret-Pass_word0@lb2.example.org:5672/celery",
    ]


@pytest.mark.parametrize(
    "password",
    [
        "with/slash",
        "with#hash",
        "with?query",
        "with%25percent",
        "with@at:colon",
        "back\\slash",
        "-dash",
    ],
)
def test_any_password_reads_back_unchanged(password):
    (url,) = amqp_urls({**CONNECTION, "hosts": ["lb"], "password": password})
    parts = url_to_parts(url)
    assert (parts.password, parts.username, parts.hostname, parts.port, parts.path) == (
        password,
        "celery",
        "lb",
        5672,
        "celery",
    )
    assert "\\" not in url and " " not in url  # nothing systemd's EnvironmentFile would unescape


def test_the_default_vhost_and_ipv6_and_tls():
    (url,) = amqp_urls({**CONNECTION, "hosts": ["fd00::1"], "vhost": "/", "tls": True})
    assert url == "amqps://celery:s3cret-Pass_word0@[fd00::1]:5672/%2F"
    assert url_to_parts(url).path == "/"


def test_management_api_url():
    api = {"host": "10.0.0.5", "port": 15672, "user": "monitoring", "password": "p/w"}
    assert management_api_url(api) == "http://monitoring:p%2Fw@10.0.0.5:15672/api/"
    assert management_api_url({**api, "tls": True}).startswith("https://")


def test_web_url_has_no_credentials_and_follows_the_lab_s_tls_setting():
    endpoint = {"host": "127.0.0.1", "port": 15672, "user": "monitoring", "password": "secret"}
    assert web_url(endpoint) == "http://127.0.0.1:15672/"
    assert web_url({"host": "fd00::1", "port": 5555, "tls": True}) == "https://[fd00::1]:5555/"
    # No TLS in the inventory: plain HTTP, no CA file; with it, https and the CA roles/tls made.
    assert web_tls({}) == {"tls": False, "ca_file": None}
    assert web_tls({"tls_enabled": True, "tls_ca_dir": "/lab/tls"}) == {
        "tls": True,
        "ca_file": "/lab/tls/ca.pem",
    }
    with pytest.raises(ValueError, match="lacks port"):
        web_url({"host": "127.0.0.1"})


@pytest.mark.parametrize(
    "bad, message",
    [
        ("amqp://x", "must be a mapping"),
        ({**CONNECTION, "password": ""}, "lacks password"),
        ({**CONNECTION, "hosts": "lb1"}, "list of host names"),
        ({**CONNECTION, "hosts": []}, "lacks hosts"),
        ({**CONNECTION, "port": 70000}, "not a TCP port"),
    ],
)
def test_bad_connections_are_refused(bad, message):
    with pytest.raises(ValueError, match=message):
        amqp_urls(bad)


def test_problems_are_listed_for_the_preflight():
    assert broker_problems(CONNECTION) == []
    assert broker_problems({**CONNECTION, "port": "amqp"}) == [
        "the broker connection: port 'amqp' is not a number"
    ]
    assert broker_problems({"host": "lb", "port": 15672, "user": "m"}, "api") == [
        "the management API connection lacks password"
    ]
