"""Metrics and notifications across real processes: the web server with two workers and a supervised
django-q2 worker on the test database, sharing one metrics directory, and real local receivers.

Known traffic gives exact counts summed over every process (operations through both web
workers, a job and its Kubernetes requests in the worker, equal to what kubesim logged); each
job event reaches each target once, signed; and a worker SIGKILLed while a delivery is on the
wire loses nothing: the delivery is sent again, with the same event id.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import signal
import time
import urllib.request
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest
from django.core.management import call_command
from django.db import connection
from prometheus_client.mmap_dict import MmapedDict
from prometheus_client.parser import text_string_to_metric_families

from kubesim.pytest_plugin import DEMO_YAML, FAST, _all_demo_pods_ready
from kubesim.sim import KubeSim
from ops.models import NotificationDelivery
from tests.jobs.test_worker import FAST as WORKER_FAST
from tests.jobs.test_worker import child_db_url, running_cluster
from tests.jobs.test_worker_recovery import alive, worker_processes
from tests.ops.receiver import Receiver
from tests.opsctl.conftest import server_env, web_server

pytestmark = pytest.mark.django_db(databases=["default", "audit"], transaction=True)

TOKEN = "stack-metrics-token-0123456789"
SECRET = "stack-hook-secret"


@dataclass
class Stack:
    url: str
    key: str
    sim: KubeSim
    metrics_dir: Path
    worker: object
    hooks: dict[str, Receiver]


def _targets(hooks: dict[str, Receiver]) -> str:
    return json.dumps(
        [
            {
                "name": "hook",
                "kind": "webhook",
                "url": hooks["hook"].url,
                "secret": SECRET,
                "events": ["job.*"],
            },
            {
                "name": "slack",
                "kind": "slack",
                "url": hooks["slack"].url,
                "events": ["job.*"],
                "namespaces": ["staging"],
            },
            {
                "name": "teams",
                "kind": "teams",
                "url": hooks["teams"].url,
                "events": ["job.succeeded"],
            },
            {
                "name": "slow",
                "kind": "webhook",
                "url": hooks["slow"].url,
                "secret": SECRET,
                "events": ["job.started"],
            },
        ]
    )


@pytest.fixture(scope="module")
def stack(django_db_setup, django_db_blocker, tmp_path_factory) -> Iterator[Stack]:
    logs = tmp_path_factory.mktemp("obs")
    metrics_dir = logs / "metrics"
    metrics_dir.mkdir()
    with django_db_blocker.unblock():
        connection.close()
        db_url = child_db_url()
    with (
        Receiver() as hook,
        Receiver() as slack,
        Receiver() as teams,
        Receiver() as slow,
        KubeSim(**FAST) as sim,
    ):
        hooks = {"hook": hook, "slack": slack, "teams": teams, "slow": slow}
        sim.load_file(DEMO_YAML)
        sim.wait_for(lambda: _all_demo_pods_ready(sim), timeout=20, message="demo not Ready")
        shared = {
            "PROMETHEUS_MULTIPROC_DIR": str(metrics_dir),
            "OPS_METRICS_TOKEN": TOKEN,
            "OPS_NOTIFY_TARGETS": _targets(hooks),
            "OPS_NOTIFY_TIMEOUT": "2",
            "OPS_NOTIFY_BACKOFF": "0.2",
            "OPS_NOTIFY_BACKOFF_MAX": "1",
        }
        env = {**server_env(db_url, sim.kubeconfig_path), **shared}
        with (
            django_db_blocker.unblock(),
            running_cluster(
                sim.kubeconfig_path,
                logs / "worker.log",
                env={**WORKER_FAST, "OPS_JOB_WAIT_TIMEOUT": "20", **shared},
            ) as worker,
            web_server(env, logs / "web.log") as url,
        ):
            yield Stack(url, env["OPS_API_KEY"], sim, metrics_dir, worker, hooks)
    with django_db_blocker.unblock():
        call_command("flush", interactive=False, verbosity=0)


def call(stack: Stack, method: str, path: str, body: dict | None = None) -> tuple[int, dict]:
    request = urllib.request.Request(  # noqa: S310 - our own server
        stack.url + path,
        method=method,
        data=json.dumps(body).encode() if body is not None else None,
        headers={"X-API-Key": stack.key, "Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310 - our server
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


def scrape(stack: Stack) -> dict[tuple, float]:
    request = urllib.request.Request(  # noqa: S310 - our own server
        stack.url + "/metrics", headers={"Authorization": f"Bearer {TOKEN}"}
    )
    with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310 - our server
        text = response.read().decode()
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def total(samples: dict[tuple, float], name: str, **labels: str) -> float:
    return sum(
        v
        for (n, lbls), v in samples.items()
        if n == name and all(dict(lbls).get(k) == x for k, x in labels.items())
    )


def wait_job(stack: Stack, job_id: str, timeout: float = 90) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        _code, job = call(stack, "GET", f"/ops/jobs/{job_id}")
        if job.get("status") in ("success", "failed", "cancelled"):
            return job
        assert time.monotonic() < deadline, job
        time.sleep(0.3)


def wait_delivered(timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while (
        NotificationDelivery.objects.exclude(status="delivered")
        .exclude(target_name="slow")
        .exists()
    ):
        assert time.monotonic() < deadline, list(
            NotificationDelivery.objects.values("target_name", "status", "last_error")
        )
        time.sleep(0.2)


def processes_counting(metrics_dir: Path, sample: str, **labels: str) -> set[int]:
    """The pids whose own metrics file has a non-zero ``sample`` with these labels."""
    pids = set()
    for path in metrics_dir.glob("counter_*.db"):
        for key, value, _, _ in MmapedDict.read_all_values_from_file(str(path)):
            _, name, found, _ = json.loads(key)
            if name == sample and value and all(found.get(k) == v for k, v in labels.items()):
                pids.add(int(path.stem.rsplit("_", 1)[1]))
    return pids


def test_counts_are_exact_over_both_web_workers_and_the_job_worker(stack):
    stack.hooks["slow"].statuses = []
    before, logged_before = scrape(stack), len(stack.sim.requests)
    scale = "/ops/namespaces/staging/deployments/web/scale"

    codes: list[int] = []
    with ThreadPoolExecutor(6) as pool:
        # Batches of 40 concurrent scales until both web workers have served some (the
        # kernel decides who accepts; one batch nearly always does it).
        while len(codes) < 400 and (
            not codes
            or len(
                processes_counting(stack.metrics_dir, "apiops_operations_total", operation="scale")
            )
            < 2
        ):
            codes += pool.map(
                lambda i: call(stack, "POST", scale, {"replicas": i % 3 + 1})[0], range(40)
            )
    sent = len(codes)
    code, started = call(
        stack,
        "POST",
        "/ops/jobs/rollout-restart",
        {"namespace": "prod", "kind": "deployment", "name": "web"},
    )
    job = wait_job(stack, started["job_id"])
    wait_delivered()
    after, logged_after = scrape(stack), len(stack.sim.requests)

    assert codes == [200] * sent
    assert (code, job["status"]) == (202, "success"), job

    def delta(name: str, **labels: str) -> float:
        return total(after, name, **labels) - total(before, name, **labels)

    assert (
        delta("apiops_operations_total", operation="scale", namespace="staging", status="success")
        == sent
    )
    assert (
        delta(
            "apiops_operations_total",
            operation="rollout-restart",
            namespace="prod",
            status="success",
        )
        == 1
    )
    assert (
        delta("apiops_operations_total", operation="restart", namespace="prod", status="success")
        == 1
    )
    assert delta("apiops_operations_total") == sent + 2
    assert delta("apiops_jobs_total", type="rollout-restart", status="success") == 1
    for step in ("restart", "wait_rollout"):
        assert (
            delta("apiops_job_step_duration_seconds_count", type="rollout-restart", step=step) == 1
        )
    assert delta("apiops_job_pickup_seconds_count") >= 1
    # Every request our processes sent to the cluster, and nothing else, as kubesim saw it.
    assert delta("apiops_kubernetes_requests_total") == logged_after - logged_before
    assert (
        delta("apiops_kubernetes_requests_total", verb="patch", resource="deployments/scale")
        == sent
    )
    assert delta("apiops_http_request_duration_seconds_count", method="POST", status="200") == sent
    # The scales were served by both web workers, the job by the worker: all of them summed.
    web = processes_counting(stack.metrics_dir, "apiops_operations_total", operation="scale")
    jobs = processes_counting(stack.metrics_dir, "apiops_jobs_total", type="rollout-restart")
    assert len(web) == 2, web
    assert len(jobs) == 1
    assert not web & jobs
    assert total(after, "apiops_notifications_total", outcome="delivered") >= 3
    # Read from the database at scrape time: the worker's two processes beat, the job ended.
    assert total(after, "apiops_workers_alive") == 2
    assert total(after, "apiops_jobs_active") == 0
    assert total(after, "apiops_jobs_pump_age_seconds") < 10


def signed(received) -> bool:
    want = "sha256=" + hmac.new(SECRET.encode(), received.body, hashlib.sha256).hexdigest()
    return received.headers.get("X-ApiOps-Signature") == want


def test_each_job_event_reaches_each_target_once_with_its_format(stack):
    _code, started = call(
        stack,
        "POST",
        "/ops/jobs/rollout-restart",
        {"namespace": "staging", "kind": "deployment", "name": "web"},
    )
    job_id = started["job_id"]
    assert wait_job(stack, job_id)["status"] == "success"
    wait_delivered()
    time.sleep(1)  # a duplicate would arrive now

    def about_job(receiver):
        return [r for r in receiver.received if job_id in r.body.decode()]

    hook = about_job(stack.hooks["hook"])
    assert sorted(r.json()["event"] for r in hook) == ["job.started", "job.succeeded"]
    assert all(signed(r) and r.headers["X-ApiOps-Event"] == r.json()["event"] for r in hook)
    assert len({r.json()["id"] for r in hook}) == 2
    slack = about_job(stack.hooks["slack"])
    assert len(slack) == 2
    assert all(r.json()["text"] and r.json()["blocks"] for r in slack)
    [teams] = about_job(stack.hooks["teams"])
    assert teams.json()["attachments"][0]["content"]["type"] == "AdaptiveCard"


def test_a_worker_killed_while_sending_loses_nothing(stack):
    slow = stack.hooks["slow"]
    slow.hang = True
    already = len(slow.received)
    code, started = call(
        stack,
        "POST",
        "/ops/jobs/rollout-restart",
        {"namespace": "prod", "kind": "deployment", "name": "web"},
    )
    assert code == 202
    first = slow.wait_for(already + 1, timeout=60)[-1]  # job.started, held open by the receiver

    victims = worker_processes(stack.worker)
    for proc in victims:
        os.kill(proc.pid, signal.SIGKILL)
    deadline = time.monotonic() + 10
    while any(alive(p) for p in victims):
        assert time.monotonic() < deadline
        time.sleep(0.05)
    slow.release()  # the killed worker's connection is gone; what comes now is a new attempt

    second = slow.wait_for(already + 2, timeout=90)[-1]
    assert second.json()["id"] == first.json()["id"] == second.headers["X-ApiOps-Delivery"]
    assert second.json()["event"] == "job.started"
    assert signed(first)
    assert signed(second)
    delivery = NotificationDelivery.objects.get(target_name="slow", event_id=first.json()["id"])
    deadline = time.monotonic() + 30
    while delivery.status != "delivered":
        assert time.monotonic() < deadline, (delivery.status, delivery.last_error)
        time.sleep(0.2)
        delivery.refresh_from_db()
    assert delivery.attempts == 2
    assert wait_job(stack, started["job_id"])["status"] == "success"
