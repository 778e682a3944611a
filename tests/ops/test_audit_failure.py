"""Fail closed: when the audit row cannot be written, the operation is not performed (503)
and kubesim sees no mutation. The audit connection is pointed at a database that does not
exist, so the failure is a real connection error, not a simulated one."""

from __future__ import annotations

import pytest

from ops import errors, services
from ops.actors import Actor
from tests.ops.conftest import TRANSACTIONAL_DB, mutations

pytestmark = TRANSACTIONAL_DB

STS = "/ops/namespaces/prod/statefulsets/postgres/scale"


def test_no_audit_database_means_503_and_no_scale(api, cluster, dead_audit_db):
    response = api.post(STS, {"replicas": 1}, format="json")

    assert response.status_code == 503
    assert response.json()["code"] == "audit_unavailable"
    assert mutations(cluster) == []
    assert cluster.get("statefulsets", "prod", "postgres")["spec"]["replicas"] == 3


def test_no_audit_database_means_no_delete(api, cluster, dead_audit_db):
    response = api.delete("/ops/namespaces/prod/persistentvolumeclaims/data-postgres-0")

    assert response.status_code == 503
    assert mutations(cluster) == []


def test_a_service_called_without_an_audit_database_raises_and_does_nothing(cluster, dead_audit_db):
    actor = Actor(name="alice", source_ip="local", origin="cli")

    with pytest.raises(errors.AuditUnavailable):
        services.deployment_scale(actor=actor, namespace="prod", name="web", replicas=5)

    assert list(cluster.requests) == []


def test_the_audit_log_comes_back_when_the_database_does(api, cluster, dead_audit_db):
    from django.db import connections

    assert api.post(STS, {"replicas": 1}, format="json").status_code == 503
    conn = connections["audit"]
    conn.close()
    conn.settings_dict["NAME"] = connections["default"].settings_dict["NAME"]

    assert api.post(STS, {"replicas": 1}, format="json").status_code == 200
