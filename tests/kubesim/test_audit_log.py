"""kubesim's API-server audit log (``--audit-log``): one ``audit.k8s.io/v1`` Event a line at
stage ResponseComplete, whose auditID is the client's ``Audit-ID`` when sent (and echoed in
the ``Audit-Id`` response header), the user of the bearer token, the impersonated user, the
object, the answer's code; the real kubectl works against it, and ``python -m kubesim
--audit-log`` writes it."""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import pytest
from kubesim_helpers import deployment_yaml

from kubesim.pytest_plugin import FAST
from kubesim.sim import KubeSim

BEARER = {"Authorization": "Bearer kubesim"}


@pytest.fixture
def audit_path(tmp_path: Path) -> Path:
    return tmp_path / "audit.log"


@pytest.fixture
def kubesim(audit_path: Path):
    """The simulator of this module's tests, writing its audit log."""
    with KubeSim(**FAST, audit_log_path=audit_path) as sim:
        sim.apply(deployment_yaml(replicas=1))
        yield sim


def events(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_a_client_audit_id_is_the_events_audit_id_and_is_echoed(raw, audit_path):
    audit_id = str(uuid.uuid4())
    status, headers, _ = raw(
        "PATCH",
        "/apis/apps/v1/namespaces/default/deployments/web/scale",
        json.dumps({"spec": {"replicas": 2}}),
        headers={
            **BEARER,
            "Audit-ID": audit_id,
            "Content-Type": "application/merge-patch+json",
            "User-Agent": "apiops/0.1.0",
            "Impersonate-User": "apiops:alice",
        },
    )

    assert status == 200
    assert headers["audit-id"] == audit_id
    [event] = events(audit_path)
    assert event["kind"] == "Event"
    assert event["apiVersion"] == "audit.k8s.io/v1"
    assert event["stage"] == "ResponseComplete"
    assert event["auditID"] == audit_id
    assert event["verb"] == "patch"
    assert event["user"] == {"username": "kubesim", "groups": ["system:authenticated"]}
    assert event["impersonatedUser"] == {"username": "apiops:alice"}
    assert event["userAgent"] == "apiops/0.1.0"
    assert event["objectRef"] == {
        "resource": "deployments",
        "subresource": "scale",
        "namespace": "default",
        "name": "web",
        "apiGroup": "apps",
        "apiVersion": "v1",
    }
    assert event["responseStatus"]["code"] == 200
    assert event["requestURI"] == "/apis/apps/v1/namespaces/default/deployments/web/scale"
    assert event["requestReceivedTimestamp"] <= event["stageTimestamp"]


def test_without_an_audit_id_the_server_makes_one_and_names_who_asked(kubesim, raw, audit_path):
    kubesim.token_users["other-token"] = "someone-else"
    _, first, _ = raw("GET", "/api/v1/namespaces/default/pods/missing", headers=BEARER)
    raw("GET", "/api/v1/namespaces", headers={"Authorization": "Bearer other-token"})
    raw("GET", "/version")

    one, two, three = events(audit_path)
    assert one["auditID"] == first["audit-id"]
    assert uuid.UUID(one["auditID"])
    assert one["responseStatus"]["code"] == 404
    assert one["objectRef"] == {
        "resource": "pods",
        "namespace": "default",
        "name": "missing",
        "apiVersion": "v1",
    }
    assert "impersonatedUser" not in one
    assert two["user"]["username"] == "someone-else"
    assert two["verb"] == "list"
    assert three["user"]["username"] == "system:anonymous"
    assert "objectRef" not in three
    assert len({one["auditID"], two["auditID"], three["auditID"]}) == 3


@pytest.mark.kubectl
def test_kubectl_works_and_its_requests_are_in_the_log(kubectl, audit_path):
    kubectl("get", "deploy", "web")
    kubectl("scale", "deploy", "web", "--replicas=2")

    log = events(audit_path)
    scale = [e for e in log if e["verb"] == "patch"]
    assert len(scale) == 1
    assert scale[0]["userAgent"].startswith("kubectl")
    # kubectl sends no bearer token to a plain-HTTP server: it is the anonymous user here,
    # unlike the Python client with the same kubeconfig.
    assert scale[0]["user"]["username"] == "system:anonymous"
    assert scale[0]["objectRef"]["name"] == "web"
    assert all(uuid.UUID(e["auditID"]) for e in log)


def test_python_m_kubesim_writes_the_audit_log(tmp_path):
    log = tmp_path / "audit.log"
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "kubesim",
            "--kubeconfig",
            str(tmp_path / "kc"),
            "--audit-log",
            str(log),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        line = proc.stdout.readline()
        assert "listening on" in line
        url = line.split()[-1]
        import urllib.request

        with urllib.request.urlopen(f"{url}/api/v1/namespaces", timeout=10) as resp:  # noqa: S310
            assert resp.status == 200
    finally:
        proc.terminate()
        proc.wait(timeout=10)
    [event] = events(log)
    assert (event["verb"], event["objectRef"]["resource"]) == ("list", "namespaces")
