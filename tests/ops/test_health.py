"""Health probes: live always answers; ready reports the database and Kubernetes separately
and answers 503 naming what failed, and shows the jobs pump's last run as information only.
Neither needs a key."""

from __future__ import annotations

from datetime import timedelta

from django.db.models.functions import Now

from jobs.dispatch import pump
from jobs.models import JobPump
from tests.ops.conftest import DB, TRANSACTIONAL_DB

pytestmark = DB


def test_live_answers_200_without_a_key(anon):
    response = anon.get("/health/live")

    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


def test_ready_answers_200_when_database_and_kubernetes_answer(anon, empty_cluster):
    response = anon.get("/health/ready")

    assert response.status_code == 200
    assert response.json()["checks"] == {"database": {"ok": True}, "kubernetes": {"ok": True}}
    assert [r.path.rstrip("/") for r in empty_cluster.requests] == ["/version"]


def test_ready_is_503_naming_kubernetes_when_the_api_server_fails(anon, empty_cluster):
    empty_cluster.faults.add(method="GET", path=r"^/version/?$", status=503)

    response = anon.get("/health/ready")

    assert response.status_code == 503
    body = response.json()
    assert body["detail"] == "not ready: kubernetes"
    assert body["checks"]["database"] == {"ok": True}
    assert body["checks"]["kubernetes"]["ok"] is False


def test_ready_is_503_when_the_api_server_hangs(anon, empty_cluster, apiops):
    apiops(K8S_PING_TIMEOUT=0.2)
    empty_cluster.faults.add(method="GET", path=r"^/version/?$", hang=True)

    response = anon.get("/health/ready")

    assert response.status_code == 503
    assert response.json()["checks"]["kubernetes"]["ok"] is False


def test_ready_is_503_when_no_cluster_is_configured_and_only_the_log_names_the_file(
    anon, apiops, tmp_path, caplog
):
    missing = str(tmp_path / "missing.kubeconfig")
    apiops(KUBECONFIG=missing)

    response = anon.get("/health/ready")

    assert response.status_code == 503
    assert response.json()["checks"]["kubernetes"]["error"].startswith("unavailable")
    assert missing not in response.content.decode()
    assert missing in caplog.text


def test_ready_does_not_tell_anonymous_callers_where_the_api_server_is(
    anon, empty_cluster, apiops, caplog
):
    apiops(K8S_PING_TIMEOUT=0.2)
    empty_cluster.faults.add(method="GET", path=r"^/version/?$", hang=True)
    address = empty_cluster.url.split("://", 1)[1]

    response = anon.get("/health/ready")

    assert response.status_code == 503
    assert response.json()["checks"]["kubernetes"]["error"].startswith("timed out")
    assert address not in response.content.decode()
    assert address.split(":")[0] not in response.content.decode()


@TRANSACTIONAL_DB
def test_ready_is_503_naming_the_database_when_it_is_gone(anon, empty_cluster, dead_audit_db):
    response = anon.get("/health/ready")

    assert response.status_code == 503
    body = response.json()
    assert body["detail"] == "not ready: database"
    assert body["checks"]["kubernetes"] == {"ok": True}
    assert body["info"] == {"jobs_pump": {"error": "database unavailable"}}


def test_ready_shows_when_the_jobs_pump_last_ran(anon, empty_cluster):
    pump()
    last_run_at = JobPump.objects.get().last_run_at

    response = anon.get("/health/ready")

    assert response.status_code == 200
    info = response.json()["info"]["jobs_pump"]
    assert info["last_run_at"] == last_run_at.isoformat().replace("+00:00", "Z")
    assert 0 <= info["age_seconds"] < 60


def test_a_late_or_missing_pump_leaves_the_web_pod_ready(anon, empty_cluster):
    never = anon.get("/health/ready")
    pump()
    JobPump.objects.update(last_run_at=Now() - timedelta(hours=2))
    late = anon.get("/health/ready")

    assert never.status_code == 200
    assert never.json()["status"] == "ok"
    assert never.json()["info"]["jobs_pump"] == {"last_run_at": None, "age_seconds": None}
    assert late.status_code == 200
    assert late.json()["status"] == "ok"
    # Two hours, plus however long the request took to read it (the update used the test
    # transaction's start as now()): more than a rounding step on a busy machine.
    assert 7200.0 <= late.json()["info"]["jobs_pump"]["age_seconds"] < 7260.0
