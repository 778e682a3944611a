"""The admin in a real headless Chromium (Debian's package, driven by Playwright) against a
live server: log in, read the dashboard, filter the audit log and export it, open a row and a
job with its steps. Screenshots land in var/screenshots/ for a person to look at.

Skipped, with the reason shown, when /usr/bin/chromium is missing (`.ci/run` installs it).
Playwright's browsers are never downloaded: the system Chromium is used.
"""

from __future__ import annotations

import csv
import io
from datetime import timedelta
from pathlib import Path

import pytest
from django.conf import settings
from django.contrib.auth import get_user_model
from django.utils import timezone

from jobs.models import JobStatus
from tests.admin.conftest import PG_STEPS, make_job, make_row

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
SCREENSHOTS = Path(settings.BASE_DIR) / "var" / "screenshots"
PASSWORD = "browser-test-password-0123"

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(
        not CHROMIUM.exists(), reason=f"{CHROMIUM} not installed (apt-get install -y chromium)"
    ),
    pytest.mark.django_db(databases=["default", "audit"], transaction=True),
]


@pytest.fixture
def browser_page():
    """A fresh page in headless system Chromium; closed with its browser after the test."""
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed")
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True
        )
        try:
            context = browser.new_context(
                viewport={"width": 1400, "height": 900}, accept_downloads=True
            )
            page = context.new_page()
            page.set_default_timeout(20_000)
            yield page
        finally:
            browser.close()


@pytest.fixture
def story():
    """An operator, a day of audit rows (some denied) and a failed and a running job.

    Written before the browser starts: Django refuses ORM calls while Playwright's event loop
    runs in this thread.
    """
    get_user_model().objects.create_superuser("operator", "operator@example.org", PASSWORD)
    now = timezone.now()
    make_row(
        actor="cli:alice",
        source_ip="local",
        origin="cli",
        name="postgres",
        kind="statefulset",
        body={"replicas": 2},
        ts=now - timedelta(minutes=5),
    )
    make_row(
        actor="deploy-bot",
        namespace="kube-system",
        name="coredns",
        status="denied",
        error="Namespace 'kube-system' is not in the allowed namespaces.",
        body={"replicas": 0},
        ts=now - timedelta(minutes=4),
    )
    make_row(
        actor=None,
        source_ip="203.0.113.50",
        status="denied",
        action="list",
        kind="ops_log",
        name="",
        error="Invalid API key.",
        ts=now - timedelta(minutes=3),
    )
    make_row(actor="alice", name="web", ts=now - timedelta(minutes=2))
    failed = make_job(
        status=JobStatus.FAILED,
        steps_done=2,
        name="billing",
        failed_detail="timed out after 600 s: claim data-billing-1 still Terminating",
    )
    running = make_job(status=JobStatus.RUNNING, steps_done=3, name="orders")
    return {"failed": failed, "running": running, "denied": 2}


def shot(page, name: str) -> Path:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    target = SCREENSHOTS / f"{name}.png"
    page.screenshot(path=str(target), full_page=True)
    return target


def test_an_operator_reads_the_dashboard_filters_the_audit_log_and_opens_a_job(
    live_server, story, browser_page
):
    page = browser_page
    failed = story["failed"]

    # Log in: the admin sends an anonymous visitor to its login page.
    page.goto(f"{live_server.url}/admin/")
    assert "/admin/login/" in page.url
    page.fill("#id_username", "operator")
    page.fill("#id_password", PASSWORD)
    page.click("input[type=submit]")
    page.wait_for_selector("#ops-operations")

    # The dashboard: the day's operations, denials and jobs, above the usual app list.
    assert page.title().startswith("Dashboard")
    assert "operations, last 24 hours" in page.inner_text("#ops-operations").lower()
    denials = page.inner_text("#ops-denials")
    assert "deploy-bot" in denials
    assert "kube-system/coredns" in denials
    assert failed.job_id in page.inner_text("#ops-failed-jobs")
    assert page.locator("#ops-active-jobs .ops-progress").count() == 1
    assert page.locator('a[href="/admin/ops/opslog/"]').count() >= 1
    assert shot(page, "01-dashboard").stat().st_size > 0

    # The audit log, filtered with the sidebar to the denials.
    page.click('a[href="/admin/ops/opslog/"]')
    page.wait_for_selector("#result_list")
    # The story's four rows, and the operator's own login a moment ago.
    assert page.locator("#result_list tbody tr").count() == 5
    assert "admin:operator" in page.inner_text("#result_list")
    page.locator("#changelist-filter").get_by_role("link", name="denied", exact=True).first.click()
    page.wait_for_url("**status__exact=denied**")
    rows = page.locator("#result_list tbody tr")
    assert rows.count() == story["denied"]
    assert "cli:alice" not in page.inner_text("#result_list")
    shot(page, "02-audit-denied")

    # Its export holds exactly the rows on screen.
    with page.expect_download() as download:
        page.get_by_role("link", name="Export CSV").click()
    exported = list(csv.DictReader(io.StringIO(Path(download.value.path()).read_text())))
    assert sorted(r["status"] for r in exported) == ["denied", "denied"]

    # A row: its request body as formatted JSON, and nothing to save.
    rows.filter(has_text="coredns").locator("th a").click()
    page.wait_for_selector("pre.ops-json")
    assert '"replicas": 0' in page.inner_text("pre.ops-json")
    assert page.locator('input[name="_save"]').count() == 0
    shot(page, "03-audit-row")

    # The jobs: a progress bar per job, and the failed one with its steps.
    page.goto(f"{live_server.url}/admin/jobs/job/")
    page.wait_for_selector("#result_list")
    assert page.locator("#result_list .ops-progress").count() == 2
    shot(page, "04-jobs")
    page.get_by_role("link", name=failed.job_id).click()
    page.wait_for_selector(".inline-group")
    steps_text = page.inner_text(".inline-group")
    positions = [steps_text.index(name) for name in PG_STEPS]
    assert positions == sorted(positions)
    assert "claim data-billing-1 still Terminating" in steps_text
    assert page.locator('input[name="_save"]').count() == 0
    shot(page, "05-job-steps")

    assert sorted(p.name for p in SCREENSHOTS.glob("0*.png")) == [
        "01-dashboard.png",
        "02-audit-denied.png",
        "03-audit-row.png",
        "04-jobs.png",
        "05-job-steps.png",
    ]
