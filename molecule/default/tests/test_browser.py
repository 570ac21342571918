"""In a real browser: headless Chromium (Debian's `chromium`, `make browser`) driven by
Playwright logs into the management UI through each load balancer and sees every node of the
cluster running, and into Flower and sees every worker online. State only: it reads the UIs.

Full-page screenshots of each page, passed or failed, go to .verify/screenshots/ (git-ignored;
`make test` prints where). URLs come from conftest.controller_web_url: the scheme and CA file
from `web_tls` in lab/inventory_vars.py, the one place that decides HTTP or HTTPS.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from conftest import PROJECT, controller_web_url, expand_node_name, lab_groups
from inventory_vars import web_tls
from playwright.sync_api import Browser, Page, expect, sync_playwright

SCREENSHOTS = PROJECT / ".verify/screenshots"
# Each page must show what it should within this; the UIs refresh themselves every few seconds.
READY_MS = 30_000
UPTIME = re.compile(r"\b\d+[dhm] \d+[hms]\b")


def hosts_of(group: str) -> list[str]:
    return sorted(host for host, groups in lab_groups().items() if group in groups)


LOAD_BALANCERS = hosts_of("haproxy")
FLOWER_HOSTS = hosts_of("flower")


def trusting_home(ca_file: str, home: Path) -> Path:
    """A HOME whose NSS database trusts the lab's CA. Chromium takes no CA file: on Linux it
    adds the roots trusted in $HOME/.pki/nssdb (certutil from libnss3-tools: `make browser`).
    Nothing else is relaxed: names and dates are still checked."""
    nssdb = home / ".pki/nssdb"
    nssdb.mkdir(parents=True)
    certutil = ["certutil", "-d", f"sql:{nssdb}"]
    subprocess.run([*certutil, "-N", "--empty-password"], check=True, capture_output=True)
    subprocess.run(
        [*certutil, "-A", "-n", "lab CA", "-t", "C,,", "-i", ca_file],
        check=True,
        capture_output=True,
    )
    return home


@pytest.fixture(scope="module")
def browser(lab, tmp_path_factory) -> Iterator[Browser]:
    chromium = shutil.which("chromium")
    assert chromium, "Debian's chromium is not installed: `make browser` installs it"
    env = dict(os.environ)
    ca_file = web_tls(lab)["ca_file"]
    if ca_file:
        env["HOME"] = str(trusting_home(ca_file, tmp_path_factory.mktemp("browser-home")))
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as playwright:
        # No sandbox: Chromium refuses to start sandboxed as root ("Running as root without
        # --no-sandbox is not supported"), and `make test` runs as root, CI included (README).
        # This browser opens only the lab's own pages on the controller's loopback.
        browser = playwright.chromium.launch(
            executable_path=chromium, chromium_sandbox=False, env=env
        )
        yield browser
        browser.close()


def shoot(page: Page, name: str, check: Callable[[], None]) -> None:
    """Run the page's check and keep a full-page screenshot of what it saw, even on failure."""
    try:
        check()
    finally:
        page.screenshot(path=SCREENSHOTS / f"{name}.png", full_page=True)


@pytest.mark.parametrize("lb", LOAD_BALANCERS)
def test_management_ui_through_each_load_balancer_shows_every_node_running(browser, lab, lb):
    """As the monitoring user, the read-only one Flower uses: the Overview page's node table."""
    nodes = sorted(f"rabbit@{host}" for host in hosts_of(lab["rabbitmq_cluster_group"]))
    url = controller_web_url(lab, lb, lab["haproxy_management_port"])
    started = time.monotonic()
    page = browser.new_page(viewport={"width": 1280, "height": 900})

    def check():
        page.goto(url)
        page.locator("input[name=username]").fill(lab["monitoring_broker"]["user"])
        page.locator("input[name=password]").fill(lab["monitoring_broker"]["password"])
        page.locator("input[type=submit]").click()
        expect(page.locator("#logout")).to_contain_text(lab["monitoring_broker"]["user"])
        rows = page.locator("#main table.list tr")
        for node in nodes:
            row = rows.filter(has=page.get_by_role("link", name=node, exact=True))
            # A stopped node keeps its row, "Node not running" in place of its figures; a
            # running one shows its uptime (fmt_uptime: "5m 12s", "3h 4m", "2d 1h").
            expect(row).to_have_count(1, timeout=READY_MS)
            expect(row).to_contain_text(UPTIME, timeout=READY_MS)
            expect(row).not_to_contain_text("not running")
        expect(page.locator("#main")).not_to_contain_text("Network partition detected")

    shoot(page, f"management-{lb}", check)
    page.close()
    print(f"management UI through {lb}: {time.monotonic() - started:.1f} s")


@pytest.mark.parametrize("flower_host", FLOWER_HOSTS)
def test_flower_shows_every_worker_online(browser, lab, flower_host):
    workers = sorted(
        expand_node_name(lab["celery_worker_node_name"], host)
        for host in hosts_of("celery_workers")
    )
    url = controller_web_url(lab, flower_host, lab["flower_port"])
    started = time.monotonic()
    context = browser.new_context(
        viewport={"width": 1280, "height": 900},
        http_credentials={
            "username": lab["flower_basic_auth_user"],
            "password": lab["flower_basic_auth_password"],
        },
    )
    page = context.new_page()

    def check():
        page.goto(f"{url}workers")
        rows = page.locator("#workers-table tbody tr")
        for worker in workers:
            # Flower's table draws each worker's name as a link titled with it, and its status
            # as a badge: "Online" while the worker's heartbeats arrive, else "Offline".
            row = rows.filter(has=page.get_by_title(worker, exact=True))
            expect(row).to_have_count(1, timeout=READY_MS)
            expect(row.locator(".badge")).to_have_text("Online", timeout=READY_MS)

    shoot(page, f"flower-{flower_host}", check)
    context.close()
    print(f"Flower on {flower_host}: {time.monotonic() - started:.1f} s")
