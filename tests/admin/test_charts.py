"""The admin's charts: operations per hour stacked by status (one aggregate query, the day's
rows only) on the dashboard, and a job's steps on a timeline on its page — inline SVG whose
bars say what they count, nothing loaded from anywhere."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pytest
from django.db import connections
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from jobs.models import JobStatus, JobStep
from ops import charts
from tests.admin.conftest import make_job, make_row

pytestmark = pytest.mark.django_db(databases=["default", "audit"])

NOW = datetime(2026, 3, 4, 15, 40, tzinfo=UTC)


def test_hours_are_stacked_by_status_with_heights_in_proportion():
    hour = NOW.replace(minute=0)
    counts = {
        (hour, "success"): 6,
        (hour, "denied"): 2,
        (hour - timedelta(hours=5), "error"): 10,
        (hour - timedelta(hours=24), "success"): 99,  # outside the window
    }

    chart = charts.operations_per_hour(NOW, counts)

    assert chart.total == 18
    last = [b for b in chart.bars if b.title.startswith("2026-03-04 15:00")]
    success, denied = last  # stacked bottom first
    assert (success.status, denied.status) == ("success", "denied")
    assert denied.y + denied.height == pytest.approx(success.y)  # right on top of it
    assert success.height == pytest.approx(3 * denied.height)
    [error] = [b for b in chart.bars if b.status == "error"]
    assert error.height == pytest.approx(success.height / 6 * 10)
    assert error.x < success.x
    assert [t.label for t in chart.y_ticks] == ["0", "5", "10"]
    assert chart.x_ticks[0].label == "16:00"
    assert chart.x_ticks[-1].label == "15:00 (now)"
    assert "6 success" in success.title


def test_hourly_counts_are_one_aggregate_over_the_window():
    now = timezone.now()
    make_row(ts=now - timedelta(minutes=1))
    make_row(ts=now - timedelta(minutes=2), status="denied")
    make_row(ts=now - timedelta(hours=3))
    make_row(ts=now - timedelta(hours=30))  # too old

    with CaptureQueriesContext(connections["audit"]) as queries:
        chart = charts.operations_per_hour(now)

    assert len(queries.captured_queries) == 1
    assert chart.total == 3
    assert sorted(b.status for b in chart.bars) == ["denied", "success", "success"]


def test_a_steps_timeline_places_each_step_where_and_as_long_as_it_ran():
    t0 = NOW
    spans = [
        charts.Span("first", "success", t0, t0 + timedelta(seconds=10)),
        charts.Span("second", "failed", t0 + timedelta(seconds=10), t0 + timedelta(seconds=40)),
        charts.Span("third", "pending", None, None),
    ]

    chart = charts.timeline(spans, NOW + timedelta(hours=1))

    first, second = chart.bars
    assert first.x == chart.plot_left
    assert second.x == pytest.approx(first.x + first.width)
    assert second.width == pytest.approx(3 * first.width)
    assert second.colour == charts.COLOURS["failed"]
    assert second.title == "second: failed, 30.0 s"
    assert [t.label for t in chart.y_ticks] == ["first", "second", "third"]
    assert chart.x_ticks[-1].label == "+40.0 s"


def test_the_dashboard_draws_the_day_as_inline_svg(admin_client):
    hour = timezone.now().replace(minute=0, second=0, microsecond=0)  # all in this hour
    for seconds in (1, 2, 3):
        make_row(ts=hour + timedelta(seconds=seconds))
    make_row(ts=hour + timedelta(seconds=4), status="denied")

    page = admin_client.get("/admin/").content.decode()

    svg = re.search(r'<svg class="ops-chart" id="ops-hourly-chart".*?</svg>', page, re.S).group()
    titles = re.findall(r"<title>([^<]*)</title>", svg)
    assert any(t.endswith(": 3 success") for t in titles)
    assert any(t.endswith(": 1 denied") for t in titles)
    assert "<script" not in svg
    assert not re.search(r'(href|src)="https?://', page)


def test_a_job_page_shows_its_steps_on_a_timeline(admin_client):
    job = make_job(status=JobStatus.FAILED, steps_done=2, failed_detail="timed out")
    start = job.created_at
    for i, step in enumerate(JobStep.objects.filter(job=job).order_by("step_order")[:3]):
        step.started_at = start + timedelta(seconds=10 * i)
        step.finished_at = start + timedelta(seconds=10 * (i + 1))
        step.save()

    page = admin_client.get(f"/admin/jobs/job/{job.pk}/change/").content.decode()

    svg = re.search(r'<svg class="ops-chart" id="ops-job-timeline".*?</svg>', page, re.S).group()
    titles = re.findall(r"<rect [^>]*><title>([^<]*)</title>", svg)
    assert titles == [
        "scale_sts_to_zero: success, 10.0 s",
        "wait_pods_down: success, 10.0 s",
        "delete_pvc: failed, 10.0 s",
    ]
