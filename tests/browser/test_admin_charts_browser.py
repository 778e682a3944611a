"""The dashboard's charts in headless Chromium: the hourly operations chart and a job's
timeline are drawn (bars of real size, in order, stacked), with screenshots in
var/screenshots/ for a person to look at. Skipped without /usr/bin/chromium, like the other
browser test."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.signals import user_logged_in
from django.utils import timezone

from jobs.models import JobStatus, JobStep
from ops import logins
from tests.admin.conftest import make_job, make_row
from tests.browser.test_admin_browser import (  # noqa: F401 - its page fixture and marks
    PASSWORD,
    SCREENSHOTS,
    browser_page,
    pytestmark,
    shot,
)


@pytest.fixture
def day():
    """A day of operations (more in some hours, some denied or failed) and a failed job."""
    get_user_model().objects.create_superuser("operator", "operator@example.org", PASSWORD)
    hour = timezone.now().replace(minute=0, second=0, microsecond=0)
    for back, successes, errors, denials in (
        (0, 6, 1, 2),
        (3, 3, 0, 0),
        (7, 9, 2, 1),
        (20, 1, 0, 4),
    ):
        at = hour - timedelta(hours=back) + timedelta(seconds=5)
        for status, n in (("success", successes), ("error", errors), ("denied", denials)):
            for _ in range(n):
                make_row(ts=at, status=status)
    job = make_job(status=JobStatus.FAILED, steps_done=3, failed_detail="timed out")
    for i, step in enumerate(JobStep.objects.filter(job=job).order_by("step_order")[:4]):
        step.started_at = job.created_at + timedelta(seconds=sum(range(i + 1)) * 4)
        step.finished_at = step.started_at + timedelta(seconds=(i + 1) * 4)
        step.save()
    return job


def test_the_dashboard_and_a_job_page_draw_their_charts(live_server, day, browser_page):  # noqa: F811
    page = browser_page
    page.goto(f"{live_server.url}/admin/")
    page.fill("#id_username", "operator")
    page.fill("#id_password", PASSWORD)
    # The login is an audit row of its own (ops/logins.py): left out, so the chart shows
    # exactly the rows seeded.
    user_logged_in.disconnect(dispatch_uid=logins.LOGGED_IN_UID)
    try:
        page.click("input[type=submit]")
        chart = page.wait_for_selector("#ops-hourly-chart")
    finally:
        user_logged_in.connect(logins.on_logged_in, dispatch_uid=logins.LOGGED_IN_UID)

    bars = page.locator("#ops-hourly-chart rect.ops-bar")
    assert bars.count() == 9  # the statuses present in each of the four hours
    box = chart.bounding_box()
    assert box["width"] > 400
    assert box["height"] > 80
    # The busiest hour (12 rows) is the tallest stack; within an hour, denied sits on error.
    heights: dict[float, float] = {}
    for i in range(bars.count()):
        b = bars.nth(i).bounding_box()
        assert b["height"] > 0
        heights[round(b["x"])] = heights.get(round(b["x"]), 0) + b["height"]
    tallest, second = sorted(heights.values())[-1], sorted(heights.values())[-2]
    assert tallest == pytest.approx(second * 12 / 9, rel=0.05)  # 12 rows that hour, 9 the next
    assert "denied" in page.inner_text("#ops-operations-chart")  # the legend
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.locator("#ops-operations-chart").screenshot(path=str(SCREENSHOTS / "charts-1-hourly.png"))
    assert shot(page, "charts-2-dashboard").stat().st_size > 0

    page.goto(f"{live_server.url}/admin/jobs/job/{day.pk}/change/")
    timeline = page.wait_for_selector("#ops-job-timeline")
    steps = page.locator("#ops-job-timeline rect.ops-bar")
    assert steps.count() == 4
    boxes = [steps.nth(i).bounding_box() for i in range(4)]
    assert [b["y"] for b in boxes] == sorted(b["y"] for b in boxes)  # one row per step
    assert [b["x"] for b in boxes] == sorted(b["x"] for b in boxes)  # each after the last
    assert boxes[3]["width"] == pytest.approx(4 * boxes[0]["width"], rel=0.05)
    assert page.locator("#ops-job-timeline rect.ops-bar-failed").count() == 1
    assert timeline.bounding_box()["width"] > 400
    assert shot(page, "charts-3-job-timeline").stat().st_size > 0
