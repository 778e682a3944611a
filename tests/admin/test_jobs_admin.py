"""The jobs admin: a read-only list with type, target, status, a progress bar, created and
duration, filtered by status and type; a job's page with its steps inline and read-only."""

from __future__ import annotations

import re

from jobs.models import Job, JobStatus, JobStep
from tests.admin.conftest import DB, PG_STEPS

pytestmark = DB

LIST = "/admin/jobs/job/"


def shown_ids(response) -> list[str]:
    return sorted(job.job_id for job in response.context["cl"].result_list)


def test_the_list_shows_type_target_status_progress_created_and_duration(admin_client, job):
    running = job(status=JobStatus.RUNNING, steps_done=2)

    html = admin_client.get(LIST).content.decode()

    assert running.job_id in html
    assert "pg-rebuild" in html
    assert "StatefulSet prod/postgres" in html
    assert 'class="ops-status ops-status-running"' in html
    assert 'aria-valuenow="2"' in html
    assert 'aria-valuemax="5"' in html
    assert 'style="width: 40%"' in html
    assert ">2/5<" in html
    assert re.search(r"\d+m\d\ds", html), "no duration shown"


def test_a_finished_job_shows_a_full_bar_and_its_duration(admin_client, job):
    job(status=JobStatus.SUCCESS, steps_done=5)

    html = admin_client.get(LIST).content.decode()

    assert 'style="width: 100%"' in html
    assert "2m00s" in html


def test_filters_by_status_and_type(admin_client, job):
    failed = job(status=JobStatus.FAILED, steps_done=1, failed_detail="boom", name="a")
    running = job(status=JobStatus.RUNNING, name="b")
    other = job(status=JobStatus.SUCCESS, steps_done=5, name="c")
    Job.objects.filter(pk=other.pk).update(type="backup")

    assert shown_ids(admin_client.get(LIST, {"status__exact": "failed"})) == [failed.job_id]
    assert shown_ids(admin_client.get(LIST, {"status__in": "pending,running"})) == [running.job_id]
    assert shown_ids(admin_client.get(LIST, {"type": "backup"})) == [other.job_id]


def test_the_job_page_shows_its_steps_in_order_read_only(admin_client, job):
    failed = job(
        status=JobStatus.FAILED,
        steps_done=2,
        failed_detail="claim data-postgres-1 still Terminating",
    )

    response = admin_client.get(f"{LIST}{failed.pk}/change/")

    assert response.status_code == 200
    html = response.content.decode()
    positions = [html.index(f">{name}<") for name in PG_STEPS]
    assert positions == sorted(positions), "steps not in order"
    assert "claim data-postgres-1 still Terminating" in html
    assert 'class="ops-status ops-status-failed"' in html
    assert 'name="_save"' not in html
    editable = r'<(?:textarea|select|input(?![^>]*type="hidden"))[^>]+name="steps-\d+-'
    assert not re.search(editable, html), "a step field is editable"
    assert (
        f'href="/admin/ops/opslog/?job_id={failed.job_id.replace("+", "%2B").replace(":", "%3A")}"'
        in html
    )


def test_a_superuser_cannot_add_change_or_delete_jobs_or_steps(admin_client, job):
    running = job(status=JobStatus.RUNNING)
    url = f"{LIST}{running.pk}/change/"

    assert admin_client.get(f"{LIST}add/").status_code == 403
    assert admin_client.post(url, {"status": "success"}).status_code == 403
    assert admin_client.post(f"{LIST}{running.pk}/delete/", {"post": "yes"}).status_code == 403

    running.refresh_from_db()
    assert running.status == JobStatus.RUNNING
    assert JobStep.objects.filter(job=running).count() == 5


def test_the_job_page_shows_the_error_code_and_the_evidence(admin_client, job):
    failed = job(status=JobStatus.FAILED, steps_done=2, failed_detail="postgres-1 is primary")
    Job.objects.filter(pk=failed.pk).update(
        error={"code": "primary_guard", "detail": "postgres-1 is primary (label role=primary)"},
        result={"old_pod_uid": "uid-old-pod-1", "old_claim_uids": {"data-postgres-1": "uid-c1"}},
    )

    html = admin_client.get(f"{LIST}{failed.pk}/change/").content.decode()

    assert '<code class="ops-error-code">primary_guard</code>' in html
    assert "postgres-1 is primary (label role=primary)" in html
    assert "uid-old-pod-1" in html
    assert "&quot;data-postgres-1&quot;: &quot;uid-c1&quot;" in html
