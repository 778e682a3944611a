"""``manage.py audit_reconcile --apiserver-log FILE`` against kubesim's real API-server audit
log: a row whose mutation the API server logged with its audit_id is confirmed; a successful
row with no such event is unconfirmed; a mutation made with our credentials around ApiOps is
an orphan (exit 1, named), while one by somebody else is none of our business."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
from django.core.management import call_command
from kubernetes import client

from kubesim.pytest_plugin import FAST
from kubesim.sim import KubeSim
from ops import k8s, services
from ops.actors import Actor
from tests.ops.conftest import DB, audit_log

pytestmark = DB

ALICE = Actor(name="alice", source_ip="local", origin="cli")


@pytest.fixture
def sim(tmp_path: Path, apiops):
    with KubeSim(**FAST, audit_log_path=tmp_path / "apiserver.log") as sim:
        sim.load_file("kubesim/demo.yaml")
        sim.wait_for(lambda: sim.get("pods", "prod", "postgres-0"), timeout=20)
        apiops(KUBECONFIG=sim.kubeconfig_path)
        k8s.reset_client()
        yield sim
        k8s.reset_client()


def _reconcile(sim) -> tuple[int, str]:
    out = io.StringIO()
    try:
        call_command("audit_reconcile", "--apiserver-log", sim.audit_log.path, stdout=out)
    except SystemExit as e:
        return int(e.code), out.getvalue()
    return 0, out.getvalue()


def _apps_with_token(sim, token: str) -> client.AppsV1Api:
    """A client of ``sim`` that is not ApiOps, authenticating with ``token``."""
    cfg = client.Configuration(host=sim.url, api_key={"BearerToken": f"Bearer {token}"})
    return client.AppsV1Api(client.ApiClient(cfg))


def test_our_operations_are_confirmed(sim):
    services.deployment_scale(actor=ALICE, namespace="prod", name="web", replicas=2)
    services.pod_delete(actor=ALICE, namespace="prod", name="postgres-0")

    code, out = _reconcile(sim)

    scale, delete = audit_log()
    assert code == 0, out
    assert f"confirmed   row {scale.pk} (audit_id {scale.audit_id})" in out
    assert f"confirmed   row {delete.pk} (audit_id {delete.audit_id})" in out
    assert "2 confirmed, 0 unconfirmed, 0 orphan(s)" in out
    assert "our users: kubesim" in out


def test_a_row_the_api_server_never_logged_is_unconfirmed(sim):
    services.deployment_scale(actor=ALICE, namespace="prod", name="web", replicas=2)
    services.deployment_scale(actor=ALICE, namespace="staging", name="web", replicas=2)
    first, second = audit_log()
    # The API server's log lost the second operation's events (or it never reached it).
    path = Path(sim.audit_log.path)
    kept = [line for line in path.read_text().splitlines() if str(second.audit_id) not in line]
    path.write_text("\n".join(kept) + "\n")

    code, out = _reconcile(sim)

    assert code == 0, out
    assert f"confirmed   row {first.pk} " in out
    assert f"unconfirmed row {second.pk} (audit_id {second.audit_id})" in out
    assert "1 confirmed, 1 unconfirmed, 0 orphan(s)" in out


def test_a_mutation_with_our_credentials_and_no_row_is_an_orphan(sim):
    services.deployment_scale(actor=ALICE, namespace="prod", name="web", replicas=2)
    # Someone uses ApiOps's token directly, around ApiOps; and someone else changes a thing.
    sim.token_users["ops-team"] = "ops-team"
    _apps_with_token(sim, "kubesim").patch_namespaced_deployment_scale(
        "web", "staging", {"spec": {"replicas": 5}}
    )
    _apps_with_token(sim, "ops-team").patch_namespaced_deployment_scale(
        "web", "staging", {"spec": {"replicas": 1}}
    )
    orphan_id = next(
        json.loads(line)["auditID"]
        for line in Path(sim.audit_log.path).read_text().splitlines()
        if '"verb":"patch"' in line and '"namespace":"staging"' in line
    )

    code, out = _reconcile(sim)

    assert code == 1
    assert f"orphan      auditID {orphan_id}: patch deployments/scale staging/web by kubesim" in out
    assert "1 confirmed, 0 unconfirmed, 1 orphan(s)" in out
    assert "ops-team" not in out.split("orphan")[1].splitlines()[0]


def test_a_configured_username_makes_orphans_without_any_row(sim, apiops):
    apiops(K8S_AUDIT_USERS=("kubesim",))
    _apps_with_token(sim, "kubesim").patch_namespaced_deployment_scale(
        "web", "prod", {"spec": {"replicas": 4}}
    )

    code, out = _reconcile(sim)

    assert code == 1
    assert "0 confirmed, 0 unconfirmed, 1 orphan(s)" in out


def test_dry_runs_are_neither_orphans_nor_expected_to_be_confirmed(sim):
    """A dry run's requests (dryRun=All) change nothing: not mutations to account for."""
    services.deployment_scale(actor=ALICE, namespace="prod", name="web", replicas=2)
    services.deployment_scale(actor=ALICE, namespace="prod", name="web", replicas=4, dry_run=True)
    services.pod_delete(actor=ALICE, namespace="prod", name="postgres-0", dry_run=True)
    dry_events = [
        line for line in Path(sim.audit_log.path).read_text().splitlines() if "dryRun=All" in line
    ]

    code, out = _reconcile(sim)

    assert len(dry_events) == 2
    assert code == 0, out
    assert "1 confirmed, 0 unconfirmed, 0 orphan(s)" in out
