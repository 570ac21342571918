"""Ansible's linear strategy, run through Mitogen (pinned in requirements.txt).

ansible.cfg names this plugin. Mitogen keeps one Python interpreter per host for the whole run
and sends each task's module to it, instead of one `docker exec` (or SSH command) per task
that unpacks and compiles Ansible's module code afresh: on the lab a no-op converge goes from
about 5 minutes to about 3 (README, "Timings"). The plugin lives in the installed package;
this file only makes it findable from the project's plugin path, whatever the virtualenv's
location. To run without Mitogen: ANSIBLE_STRATEGY=linear.
"""

from ansible_mitogen.plugins.strategy.mitogen_linear import StrategyModule

__all__ = ["StrategyModule"]
