"""Idempotency-Key under concurrent duplicates: the database decides which one runs.

Twenty identical requests with one key, sent at once over HTTP to a live server, make one
Kubernetes mutation; the others are answered 409 in flight or replayed, each with its audit
row. Twenty concurrent claims straight against the database: exactly one wins.
"""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import requests
from django.db import connections

from ops import idempotency
from ops.models import IdempotencyRecord, OpsLog
from tests.ops.conftest import BOOTSTRAP_KEY, TRANSACTIONAL_DB, mutations

pytestmark = TRANSACTIONAL_DB

WEB = "/ops/namespaces/prod/deployments/web/scale"
N = 20


def test_twenty_concurrent_claims_of_one_key_have_exactly_one_winner():
    barrier = threading.Barrier(N)

    def claim(_: int) -> str:
        barrier.wait()
        try:
            outcome = idempotency.claim(key_name="alice", key="race", fingerprint="f" * 64)
        except idempotency.IdempotencyInFlight:
            return "in flight"
        finally:
            connections.close_all()
        return type(outcome).__name__

    with ThreadPoolExecutor(N) as pool:
        outcomes = sorted(pool.map(claim, range(N)))

    assert outcomes == ["Claim"] + ["in flight"] * (N - 1)
    assert IdempotencyRecord.objects.using("audit").count() == 1


def test_twenty_concurrent_identical_scales_patch_the_cluster_once(live_server, cluster):
    # The PATCH takes a while, so most duplicates arrive while the first is in flight.
    cluster.faults.add(method="PATCH", path=r"/deployments/web/scale$", delay=0.5)
    barrier = threading.Barrier(N)

    def post(_: int) -> requests.Response:
        barrier.wait()
        return requests.post(
            f"{live_server.url}{WEB}",
            json={"replicas": 7},
            headers={"X-API-Key": BOOTSTRAP_KEY, "Idempotency-Key": "stampede"},
            timeout=30,
        )

    with ThreadPoolExecutor(N) as pool:
        responses = list(pool.map(post, range(N)))

    replayed = [r for r in responses if r.headers.get("Idempotent-Replayed") == "true"]
    in_flight = [r for r in responses if r.status_code == 409]
    [executed] = [r for r in responses if r not in replayed and r not in in_flight]
    assert executed.status_code == 200
    assert executed.json()["replicas"] == 7
    assert all(r.json()["code"] == "idempotency_in_flight" for r in in_flight)
    assert all(r.status_code == 200 and r.content == executed.content for r in replayed)
    patches = [m for m in mutations(cluster) if (m.resource, m.name) == ("deployments", "web")]
    assert [(p.method, p.subresource) for p in patches] == [("PATCH", "scale")]
    assert cluster.get("deployments", "prod", "web")["spec"]["replicas"] == 7
    # Every attempt has its row: one execution, one per replay, one per refusal.
    rows = list(OpsLog.objects.using("audit").filter(actor="bootstrap"))
    assert len(rows) == N
    codes = sorted(str(r.code) for r in rows)
    assert codes == sorted(
        ["None"]
        + ["idempotent_replay"] * len(replayed)
        + ["idempotency_in_flight"] * len(in_flight)
    )
    assert [r.status for r in rows if r.code is None] == ["success"]
