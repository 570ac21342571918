# The two commands of the README: `make lab` (bring the lab up and converge site.yml) and
# `make test` (lint, fast tests, the full molecule sequence). Both install what they need.
SHELL := /bin/bash
.SHELLFLAGS := -euo pipefail -c
.DEFAULT_GOAL := help

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.requirements-$(shell sha256sum requirements.txt | cut -c1-12)
SCENARIO ?= default
# Every molecule call gets the base image built (or reused) first.
# (A separate assignment, so that a failed image build stops the recipe under `set -e`.)
MOLECULE = LAB_IMAGE=$$(lab/image/build.sh); export LAB_IMAGE; PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/molecule

.PHONY: help venv browser image secrets lab lab-report lab-down lint unit docs test behaviour chaos chaos-short ops-drill bench-noop

help:  ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-11s %s\n", $$1, $$2}'

$(STAMP): requirements.txt
	@echo "[venv] installing the pinned controller requirements into $(VENV)"
	@rm -rf $(VENV) && $(PYTHON) -m venv $(VENV)
	@$(BIN)/pip install --quiet --upgrade pip==25.3
	@$(BIN)/pip install --quiet -r requirements.txt
	@touch $@

venv: $(STAMP)  ## Create the controller virtualenv with the pinned requirements

# Debian's chromium, which the browser test drives through Playwright (nothing downloads a
# browser of its own), and certutil (libnss3-tools) to make it trust the lab's CA. Installed
# only when missing; as root, or through sudo without a prompt; waits for an apt run
# elsewhere instead of failing on its lock.
APT = env DEBIAN_FRONTEND=noninteractive apt-get -qq -o DPkg::Lock::Timeout=300
browser:  ## Install Debian's chromium (and certutil) for the browser test, when missing
	@if ! command -v chromium >/dev/null || ! command -v certutil >/dev/null; then \
	  echo "[browser] installing Debian's chromium and libnss3-tools (apt-get, no recommends)"; \
	  sudo=; if [ "$$(id -u)" -ne 0 ]; then sudo="sudo -n"; fi; \
	  $$sudo $(APT) update; \
	  $$sudo $(APT) install -y --no-install-recommends chromium libnss3-tools >/dev/null; \
	fi

image:  ## Build the lab's base image (reused when its recipe is unchanged)
	@lab/image/build.sh >/dev/null

secrets: $(STAMP)  ## Generate the lab's secrets once (git-ignored)
	@$(BIN)/python lab/generate_secrets.py >/dev/null

lab: secrets  ## Bring the lab up, converge site.yml, report what runs where
	@start=$$(date +%s); \
	if ! $(BIN)/python lab/report.py -n 0 >/dev/null 2>&1; then \
	  echo "[lab] some lab host is missing or stopped: recreating the lab"; \
	  $(MOLECULE) destroy -s $(SCENARIO) >/dev/null; \
	fi; \
	$(MOLECULE) create -s $(SCENARIO); \
	$(MOLECULE) converge -s $(SCENARIO); \
	echo "[lab] up and converged in $$(( $$(date +%s) - start )) s"
	@$(MAKE) --no-print-directory lab-report

lab-report: $(STAMP)  ## Report what runs where in the lab
	@$(BIN)/python lab/report.py

lab-down: $(STAMP)  ## Tear the lab down (containers and network)
	@$(MOLECULE) destroy -s $(SCENARIO)

lint: $(STAMP)  ## yamllint, ansible-lint (profile production), ruff
	@$(BIN)/yamllint --strict .
	@PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/ansible-lint
	@$(BIN)/ruff check .
	@$(BIN)/ruff format --check .

unit: $(STAMP)  ## Fast tests that need no containers
	@$(BIN)/python -m pytest -q tests

docs: $(STAMP)  ## Regenerate the role READMEs' variable tables from argument_specs
	@$(BIN)/python tools/role_docs.py

test: lint unit secrets browser  ## Lint, fast tests, then the full molecule sequence
	@start=$$(date +%s); rm -rf .chaos/last.txt .verify/junit.xml .verify/behaviour.xml .verify/screenshots; status=0; \
	$(MOLECULE) test -s $(SCENARIO) || status=$$?; \
	echo "[test] molecule test took $$(( $$(date +%s) - start )) s, exit $$status"; \
	echo "[test] the browser's screenshots (management UI, Flower): $(CURDIR)/.verify/screenshots/"; \
	if [ "$$status" -ne 0 ]; then \
	  $(BIN)/python lab/verify_summary.py .verify/junit.xml; \
	  $(BIN)/python lab/verify_summary.py .verify/behaviour.xml; \
	  if [ -f .chaos/last.txt ]; then \
	    echo "[test] the short fault run's verdict (.chaos/last.txt):"; cat .chaos/last.txt; \
	  fi; \
	fi; \
	exit "$$status"

# The same tests of behaviour as side_effect, and the long proofs it leaves out, against the lab
# `make lab` brought up (its inventory, as the operators' runs use it).
behaviour: $(STAMP)  ## Every test of behaviour, long proofs included, against the running lab (~12 min)
	@rm -f .verify/behaviour-all.xml
	@cd molecule/default && PATH="$(CURDIR)/$(BIN):$$PATH" MOLECULE_PROJECT_DIRECTORY="$(CURDIR)" \
	  ANSIBLE_CONFIG="$(CURDIR)/ansible.cfg" $(CURDIR)/$(BIN)/python -m pytest -v -p no:cacheprovider \
	  --durations=15 -m behaviour --connection=ansible \
	  --ansible-inventory="$(CURDIR)/inventory/lab/hosts.yml" \
	  --junitxml="$(CURDIR)/.verify/behaviour-all.xml" tests

chaos: $(STAMP)  ## Full fault run against the running lab (make lab first; ~15 min)
	@$(BIN)/python lab/chaos.py

chaos-short: $(STAMP)  ## The short fault run that make test includes (~6 min)
	@$(BIN)/python lab/chaos.py --short

ops-drill: $(STAMP)  ## The operations playbooks while tasks flow, against the running lab (~11 min)
	@$(BIN)/python lab/chaos.py --ops

# AGAINST=<git revision>: that revision's site.yml timed too, the two taking turns on the same lab.
bench-noop: $(STAMP)  ## site.yml again on the running lab, 3 times: median <= 60 s, changed=0 (~3 min)
	@$(BIN)/python lab/bench_noop.py $(if $(AGAINST),--against $(AGAINST))
