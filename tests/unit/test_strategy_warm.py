"""plugins/strategy/mitogen_linear.py: the caches each forked worker would otherwise fill for
itself are warm in the controller before the fork."""

from __future__ import annotations

import ansible.collections.list as collection_list
import pytest
from ansible.plugins.loader import filter_loader, init_plugin_loader, test_loader

from plugins.strategy import mitogen_linear


@pytest.fixture(scope="module", autouse=True)
def plugin_loader():
    init_plugin_loader()


def test_filter_and_test_plugins_are_loaded_before_a_fork():
    for loader in (filter_loader, test_loader):
        loader._clear_caches()
        assert not loader._cached_non_collection_wrappers
    mitogen_linear.warm_caches()
    # The built-in ones and this project's (filter_plugins/): what a worker's first `when:` needs.
    assert "ansible.builtin.to_json" in filter_loader._cached_non_collection_wrappers
    assert "amqp_urls" in filter_loader._cached_non_collection_wrappers
    assert "ansible.builtin.version" in test_loader._cached_non_collection_wrappers


def test_the_collection_list_is_computed_once(monkeypatch):
    calls = []
    mitogen_linear.warm_caches()
    inner = collection_list.list_collection_dirs.__wrapped__  # Ansible's own

    def counting(*args, **kwargs):
        calls.append((args, kwargs))
        return inner(*args, **kwargs)

    monkeypatch.setattr(collection_list, "list_collection_dirs", counting)
    mitogen_linear.warm_caches()
    first = list(collection_list.list_collection_dirs())
    second = list(collection_list.list_collection_dirs())
    assert first == second
    assert any(b"community/rabbitmq" in path for path in first)
    assert calls == [((), {})]
    # A call with arguments (ansible-galaxy's own use) is never answered from the cache.
    list(collection_list.list_collection_dirs(coll_filter="community.rabbitmq"))
    assert len(calls) == 2
