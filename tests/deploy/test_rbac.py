"""Least privilege, proven: the Role in k8s/ against the calls the code really makes.

Every operation ApiOps offers (scale a Deployment and a StatefulSet, delete a pod and a
claim, the pg-rebuild job end to end, the readiness check) runs through the HTTP API against
kubesim, whose request log records each call in RBAC terms. Then both directions are
checked: every call is allowed by the rendered Role of its namespace, and every rule the Role
grants was used by some call. A wider Role or a new kind of call fails here.
"""

from __future__ import annotations

import pytest

from .manifests import K8S, allowed_namespaces, granted, kubectl, load, render

pytestmark = [
    pytest.mark.kubectl,
    pytest.mark.skipif(kubectl() is None, reason="kubectl is not installed (it renders k8s/)"),
    pytest.mark.django_db(databases=["default", "audit"], transaction=True),
]

KEY = "deploy-rbac-test-bootstrap-key-0123456789"

# Non-resource URLs every authenticated identity may GET (Kubernetes' default ClusterRole
# system:public-info-viewer, bound to system:authenticated): they need no rule of ours.
PUBLIC_NON_RESOURCE = {"/version", "/version/"}


@pytest.fixture
def cluster(kubesim_demo, settings):
    """The demo cluster, ApiOps pointed at it with fast job timings, an empty request log."""
    from ops import k8s

    settings.APIOPS = {
        **settings.APIOPS,
        "API_KEY": KEY,
        "API_KEY_ACTOR": "bootstrap",
        "ALLOWED_NAMESPACES": ("prod", "staging"),
        "TRUSTED_PROXIES": (),
        "AUTH_FAILURE_LIMIT": 1000,
        "KUBECONFIG": kubesim_demo.kubeconfig_path,
        "K8S_TIMEOUT": 5.0,
        "K8S_RETRIES": 2,
        "K8S_BACKOFF": 0.01,
        "K8S_RETRY_MAX_WAIT": 0.05,
        "K8S_PING_TIMEOUT": 2.0,
        "JOB_WAIT_TIMEOUT": 30.0,
        "JOB_LEASE_SECONDS": 5.0,
        "JOB_POLL_INTERVAL": 0.01,
        "JOB_TICK_BUDGET": 0.0,
    }
    k8s.reset_client()
    kubesim_demo.requests.clear()
    yield kubesim_demo
    k8s.reset_client()


@pytest.fixture
def api():
    from rest_framework.test import APIClient

    client = APIClient(REMOTE_ADDR="203.0.113.10")
    client.credentials(HTTP_X_API_KEY=KEY)
    return client


def run_job_to_the_end(job_id: str, limit: int = 2000):
    """Deliver ticks in-process until the job is no longer active."""
    from jobs.models import Job
    from jobs.runner import run_tick

    for _ in range(limit):
        job = Job.objects.get(job_id=job_id)
        if not job.is_active:
            return job
        run_tick(job_id, job.tick_seq)
    raise AssertionError(f"{job_id} still active after {limit} ticks")


def exercise_everything(api) -> None:
    """Every operation and job type (both rebuild strategies, on the demo's Patroni-labelled
    set: its leader record is read), each asserted to have succeeded."""
    rebuild = {"namespace": "prod", "statefulset": "postgres", "ordinal": 1, "target_replicas": 3}
    for options in ({"strategy": "in-place"}, {"allow_outage": True}):
        job = api.post("/ops/jobs/pg-rebuild", {**rebuild, **options}, format="json")
        assert job.status_code == 202, job.content
        finished = run_job_to_the_end(job.json()["job_id"])
        assert finished.status == "success", [(s.name, s.detail) for s in finished.steps.all()]

    other_jobs = [
        ("rollout-restart", {"namespace": "staging", "kind": "deployment", "name": "web"}),
        ("rollout-restart", {"namespace": "staging", "kind": "statefulset", "name": "postgres"}),
        ("pg-backup", {"namespace": "prod", "statefulset": "postgres"}),
    ]
    for job_type, body in other_jobs:
        job = api.post(f"/ops/jobs/{job_type}", body, format="json")
        assert job.status_code == 202, job.content
        finished = run_job_to_the_end(job.json()["job_id"])
        assert finished.status == "success", [(s.name, s.detail) for s in finished.steps.all()]
    # A restore of the highest ordinal (a replica) from the snapshot just taken.
    restore = {**rebuild, "ordinal": 2, "strategy": "in-place"}
    job = api.post(
        "/ops/jobs/pg-rebuild",
        {**restore, "from_snapshot": finished.result["snapshot"]},
        format="json",
    )
    assert job.status_code == 202, job.content
    finished = run_job_to_the_end(job.json()["job_id"])
    assert finished.status == "success", [(s.name, s.detail) for s in finished.steps.all()]

    calls = [
        ("post", "/ops/namespaces/prod/deployments/web/scale", {"replicas": 3}),
        ("post", "/ops/namespaces/staging/statefulsets/postgres/scale", {"replicas": 3}),
        ("delete", "/ops/namespaces/staging/pods/postgres-2", None),
        ("delete", "/ops/namespaces/staging/persistentvolumeclaims/data-postgres-1", None),
    ]
    for method, path, body in calls:
        response = getattr(api, method)(path, body, format="json")
        assert response.status_code == 200, (path, response.content)
    assert api.get("/health/ready").status_code == 200


def calls_made(sim) -> tuple[set[tuple[str, str, str, str]], set[str]]:
    """(namespace, apiGroup, resource[/subresource], verb) of every resource call, and the
    paths of non-resource calls."""
    resource_calls, other = set(), set()
    for r in sim.requests.snapshot():
        if not r.resource:
            other.add(r.path)
            continue
        resource = f"{r.resource}/{r.subresource}" if r.subresource else r.resource
        resource_calls.add((r.namespace, r.api_group, resource, r.verb))
    return resource_calls, other


def test_every_call_is_allowed_by_the_role_and_every_rule_is_used(cluster, api):
    docs = load(render(K8S))
    allowed = granted(docs)

    exercise_everything(api)
    used, non_resource = calls_made(cluster)

    assert used, "kubesim recorded no calls"
    assert used <= allowed, f"calls the Role does not allow: {sorted(used - allowed)}"
    assert non_resource <= PUBLIC_NON_RESOURCE, sorted(non_resource)
    # Each namespace's Role is the same rule set; compare rules without the namespace.
    used_rules = {(group, resource, verb) for _, group, resource, verb in used}
    for namespace in allowed_namespaces(docs):
        rules = {(g, r, v) for ns, g, r, v in allowed if ns == namespace}
        assert rules == used_rules, (
            f"{namespace}: granted but never used {sorted(rules - used_rules)}; "
            f"used but not granted {sorted(used_rules - rules)}"
        )


def test_calls_stay_inside_the_allowed_namespaces_even_when_asked_for_another(cluster, api):
    response = api.post(
        "/ops/namespaces/kube-system/deployments/coredns/scale", {"replicas": 0}, format="json"
    )

    assert response.status_code == 403
    assert not [r for r in cluster.requests.snapshot() if r.namespace == "kube-system"]
