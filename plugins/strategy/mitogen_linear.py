"""Ansible's linear strategy, run through Mitogen (pinned in requirements.txt), with two caches
warmed in the controller before each worker forks.

ansible.cfg names this plugin. Mitogen keeps one Python interpreter per host for the whole run
and sends each task's module to it, instead of one `docker exec` (or SSH command) per task
that unpacks and compiles Ansible's module code afresh: on the lab a no-op converge goes from
about 5 minutes to about 3 (README, "Timings"). The plugin lives in the installed package;
this file makes it findable from the project's plugin path, whatever the virtualenv's
location. To run without Mitogen: ANSIBLE_STRATEGY=linear.

Ansible forks a worker process for every task on every host, and a cache filled in a worker dies
with it. Mitogen already fills the module, action and connection plugin caches in the
controller before each fork, so that every worker inherits them. A profile of a no-op
`site.yml` on the lab (py-spy, README "Timings") showed two more that were refilled in every
worker, about half of the workers' CPU time between them:

- the Jinja filter and test plugins: the first filter or test a worker evaluates (most `when:`
  conditions use one) imports every filter and test plugin file of Ansible and of this project;
- the list of installed collections: Mitogen's planner walks every collection the `ansible`
  package installs (about a hundred) for each module that comes from a collection.

Both are filled here once in the controller (again only when Ansible clears the filter cache,
as it does when a role brings a filter_plugins directory), and every worker inherits them.
Neither changes during a run. tests/unit/test_strategy_warm.py checks that both are warm.
"""

import functools

import ansible.collections.list as _collection_list
from ansible.plugins.loader import filter_loader, test_loader
from ansible_mitogen.plugins.strategy.mitogen_linear import StrategyModule as _MitogenLinear

__all__ = ["StrategyModule"]


def _memoise_collection_dirs():
    """Make the argument-less list_collection_dirs() (Mitogen's call) compute its answer once."""
    listing = _collection_list.list_collection_dirs
    if getattr(listing, "_project_memoised", False):
        return

    @functools.wraps(listing)
    def list_collection_dirs(*args, **kwargs):
        if args or kwargs:
            return listing(*args, **kwargs)
        if list_collection_dirs.cache is None:
            list_collection_dirs.cache = tuple(listing())
        return iter(list_collection_dirs.cache)

    list_collection_dirs.cache = None
    list_collection_dirs._project_memoised = True
    _collection_list.list_collection_dirs = list_collection_dirs


def warm_caches():
    """Fill, in this (the controller's) process, what each forked worker would fill for itself."""
    _memoise_collection_dirs()
    _collection_list.list_collection_dirs()
    for loader in (filter_loader, test_loader):
        # A no-op when the cache is full; Ansible empties it when a plugin path is added.
        loader._ensure_non_collection_wrappers()


class StrategyModule(_MitogenLinear):
    def _queue_task(self, host, task, task_vars, play_context):
        warm_caches()
        return super()._queue_task(host, task, task_vars, play_context)
