"""A job step's Kubernetes requests carry its own row's ``audit_id`` as ``Audit-ID`` (seen
by kubesim on the wire), like a primitive called directly: the restart step of a
``rollout-restart`` job sends its read and its template write with the ``restart`` row's id,
and the job's wait step, which changes nothing, sends none."""

from __future__ import annotations

import pytest

from jobs.models import JobStatus
from ops import __version__
from ops.models import OpsLog
from tests.jobs.test_rollout_restart import start, steps, web  # noqa: F401 - fixture

pytestmark = pytest.mark.django_db(databases=["default", "audit"], transaction=True)


def test_a_job_steps_requests_carry_its_rows_audit_id(api, web, drive):  # noqa: F811
    job_id = start(api, kind="deployment", name="web")
    job = drive(job_id)

    assert job.status == JobStatus.SUCCESS, steps(job_id)
    row = OpsLog.objects.using("audit").get(job_id=job_id, action="restart")
    writes = [r for r in web.requests.mutations() if r.resource == "deployments"]
    assert [(r.verb, r.name) for r in writes] == [("patch", "web")]
    assert writes[0].audit_id == str(row.audit_id)
    assert writes[0].user_agent == f"apiops/{__version__}"
    tagged = {r.audit_id for r in web.requests if r.user_agent.startswith("apiops/")}
    # The restart row's id, and untagged reads (the job's checks and its wait for the rollout).
    assert tagged == {str(row.audit_id), ""}
