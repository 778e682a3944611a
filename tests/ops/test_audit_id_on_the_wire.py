"""Every Kubernetes request an audited operation sends carries ``Audit-ID: <its row's
audit_id>`` and ``User-Agent: apiops/<version>``, as kubesim received them (its request log
records the headers on the wire), for each primitive; with ``OPS_IMPERSONATE`` also
``Impersonate-User: apiops:<actor>``; and kubesim's API-server audit log names the row."""

from __future__ import annotations

import json

import pytest

from ops import __version__, k8s, services
from ops.actors import Actor
from ops.errors import NamespaceDenied
from ops.models import OpsLog
from tests.ops.conftest import DB, audit_log

pytestmark = DB

ALICE = Actor(name="alice", source_ip="10.0.0.9", origin="cli")
CLAIM_TEMPLATE = {
    "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}
}


def _snapshot_ready(cluster, name: str) -> None:
    cluster.wait_for(
        lambda: (
            (cluster.get("volumesnapshots", "prod", name) or {}).get("status", {}).get("readyToUse")
        ),
        timeout=10,
    )


PRIMITIVES = {
    "deployment_scale": lambda c: services.deployment_scale(
        actor=ALICE, namespace="prod", name="web", replicas=2
    ),
    "statefulset_scale": lambda c: services.statefulset_scale(
        actor=ALICE, namespace="prod", name="postgres", replicas=2
    ),
    "pod_delete": lambda c: services.pod_delete(actor=ALICE, namespace="prod", name="postgres-0"),
    "pvc_delete": lambda c: services.pvc_delete(
        actor=ALICE, namespace="prod", name="data-postgres-2"
    ),
    "workload_restart": lambda c: services.workload_restart(
        actor=ALICE,
        kind="deployment",
        namespace="prod",
        name="web",
        restarted_at="2026-01-01T00:00:00Z",
    ),
    "snapshot_create": lambda c: services.snapshot_create(
        actor=ALICE, namespace="prod", name="snap-1", claim="data-postgres-0", class_name=None
    ),
}


@pytest.mark.parametrize("primitive", sorted(PRIMITIVES))
def test_each_request_of_a_primitive_carries_its_rows_audit_id(cluster, primitive):
    PRIMITIVES[primitive](cluster)

    [row] = audit_log()
    assert row.status == "success"
    sent = list(cluster.requests)
    assert sent
    assert any(r.verb in ("patch", "delete", "create") for r in sent)
    assert {r.audit_id for r in sent} == {str(row.audit_id)}
    assert {r.user_agent for r in sent} == {f"apiops/{__version__}"}
    assert {r.impersonate_user for r in sent} == {""}


def test_a_claim_restored_from_a_snapshot_carries_its_rows_audit_id(cluster):
    services.snapshot_create(
        actor=ALICE, namespace="prod", name="snap-1", claim="data-postgres-0", class_name=None
    )
    _snapshot_ready(cluster, "snap-1")
    cluster.requests.clear()

    services.pvc_create_from_snapshot(
        actor=ALICE, namespace="prod", name="restored", template=CLAIM_TEMPLATE, snapshot="snap-1"
    )

    row = OpsLog.objects.using("audit").get(resource_name="restored")
    creates = [r for r in cluster.requests if r.verb == "create"]
    assert [r.resource for r in creates] == ["persistentvolumeclaims"]
    assert {r.audit_id for r in cluster.requests} == {str(row.audit_id)}


def test_two_operations_carry_two_audit_ids_and_reads_outside_them_none(cluster):
    services.deployment_scale(actor=ALICE, namespace="prod", name="web", replicas=2)
    k8s.pod_list(namespace="prod", label_selector="app=web")  # not an audited operation
    services.deployment_scale(actor=ALICE, namespace="staging", name="web", replicas=2)

    first, second = audit_log()
    ids = [r.audit_id for r in cluster.requests]
    assert first.audit_id != second.audit_id
    assert ids == [str(first.audit_id)] * 2 + [""] + [str(second.audit_id)] * 2


def test_with_impersonation_each_request_names_the_actor(cluster, apiops):
    apiops(IMPERSONATE=True)

    services.deployment_scale(actor=ALICE, namespace="prod", name="web", replicas=2)

    assert {r.impersonate_user for r in cluster.requests} == {"apiops:alice"}


def test_a_refused_operation_sends_nothing(cluster):
    with pytest.raises(NamespaceDenied):
        services.deployment_scale(actor=ALICE, namespace="kube-system", name="coredns", replicas=0)

    assert list(cluster.requests) == []


def test_the_api_servers_audit_log_names_the_row(tmp_path, apiops):
    from kubesim.sim import KubeSim

    log = tmp_path / "audit.log"
    with KubeSim(ready_delay=0.05, audit_log_path=log) as sim:
        sim.load_file("kubesim/demo.yaml")
        apiops(KUBECONFIG=sim.kubeconfig_path, IMPERSONATE=True)
        k8s.reset_client()
        try:
            services.deployment_scale(actor=ALICE, namespace="prod", name="web", replicas=2)
        finally:
            k8s.reset_client()

    [row] = audit_log()
    events = [json.loads(line) for line in log.read_text().splitlines()]
    mine = [e for e in events if e["auditID"] == str(row.audit_id)]
    assert [
        (e["verb"], e["objectRef"]["resource"], e["objectRef"].get("subresource")) for e in mine
    ] == [
        ("get", "deployments", "scale"),
        ("patch", "deployments", "scale"),
    ]
    patch = mine[1]
    assert patch["kind"] == "Event"
    assert patch["apiVersion"] == "audit.k8s.io/v1"
    assert patch["stage"] == "ResponseComplete"
    assert patch["user"]["username"] == "kubesim"
    assert patch["impersonatedUser"] == {"username": "apiops:alice"}
    assert patch["objectRef"]["namespace"] == "prod"
    assert patch["objectRef"]["name"] == "web"
    assert patch["responseStatus"]["code"] == 200
    assert patch["userAgent"] == f"apiops/{__version__}"


@pytest.mark.parametrize("primitive", ["deployment_scale", "pod_delete", "pvc_delete"])
def test_a_dry_runs_requests_carry_its_rows_audit_id_written_first(cluster, primitive):
    """A dry run is audited first like the real request, and its reads and dryRun=All
    calls name its row to the API server."""
    call = {
        "deployment_scale": lambda: services.deployment_scale(
            actor=ALICE, namespace="prod", name="web", replicas=2, dry_run=True
        ),
        "pod_delete": lambda: services.pod_delete(
            actor=ALICE, namespace="prod", name="postgres-0", dry_run=True
        ),
        "pvc_delete": lambda: services.pvc_delete(
            actor=ALICE, namespace="prod", name="data-postgres-2", dry_run=True
        ),
    }[primitive]

    call()

    [row] = audit_log()
    assert (row.status, row.dry_run) == ("success", True)
    sent = list(cluster.requests)
    assert [r.query.get("dryRun") for r in sent if r.verb in ("patch", "delete")] == ["All"]
    assert {r.audit_id for r in sent} == {str(row.audit_id)}
