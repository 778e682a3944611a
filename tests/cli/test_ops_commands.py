"""ops_scale, ops_delete_pod, ops_delete_pvc and ops_audit against kubesim: each attempt goes
through the API's services and writes one audit row as cli:<OS user> from local; bad
arguments, denied namespaces and Kubernetes errors are clear errors with exit codes."""

from __future__ import annotations

import os
import pwd
from datetime import timedelta

import pytest
from django.utils import timezone

from ops.models import OpsLog
from tests.cli.conftest import CLI_ACTOR, DB, fails, run

pytestmark = DB


def audit() -> list[OpsLog]:
    return list(OpsLog.objects.using("audit").order_by("id"))


def replicas(sim, resource: str, namespace: str, name: str) -> int:
    return sim.get(resource, namespace, name)["spec"]["replicas"]


def test_ops_scale_scales_a_statefulset_and_is_audited_as_the_os_user_from_local(demo):
    out = run("ops_scale", "prod", "statefulset", "postgres", "2")

    assert out.strip() == "statefulset prod/postgres scaled: 3 -> 2 replicas"
    assert replicas(demo, "statefulsets", "prod", "postgres") == 2
    (row,) = audit()
    assert (row.actor, row.source_ip, row.origin) == (CLI_ACTOR, "local", "cli")
    assert (row.action, row.resource_kind, row.namespace, row.resource_name) == (
        "scale",
        "statefulset",
        "prod",
        "postgres",
    )
    assert row.status == "success"
    assert row.request_body == {"replicas": 2}


def test_the_cli_actor_ignores_logname_and_user_from_the_environment(demo, monkeypatch):
    for variable in ("LOGNAME", "USER", "LNAME", "USERNAME"):
        monkeypatch.setenv(variable, "alice-the-auditor")

    run("ops_scale", "prod", "deployment", "web", "1")

    (row,) = audit()
    assert row.actor == f"cli:{pwd.getpwuid(os.geteuid()).pw_name}"
    assert "alice" not in row.actor


def test_ops_scale_scales_a_deployment(demo):
    run("ops_scale", "staging", "deployment", "web", "4")

    assert replicas(demo, "deployments", "staging", "web") == 4
    assert [r.status for r in audit()] == ["success"]


def test_a_namespace_outside_the_allowed_list_is_denied_audited_and_untouched(demo):
    error = fails("ops_scale", "kube-system", "deployment", "coredns", "0")

    assert error.returncode == 3
    assert "'kube-system' is not in the allowed namespaces" in str(error)
    assert "[namespace_denied]" in str(error)
    assert replicas(demo, "deployments", "kube-system", "coredns") == 2
    assert list(demo.requests.mutations()) == []
    (row,) = audit()
    assert (row.status, row.actor, row.source_ip) == ("denied", CLI_ACTOR, "local")


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("-3", "replicas: Must be at least 0."),
        ("101", "replicas: Must be at most 100."),
        ("two", "replicas: Must be an integer"),
        ("2.0", "replicas: Must be an integer"),
    ],
)
def test_replicas_are_checked_by_the_api_rules_and_the_refusal_is_audited(demo, value, message):
    error = fails("ops_scale", "prod", "statefulset", "postgres", value)

    assert error.returncode == 2
    assert message in str(error)
    assert replicas(demo, "statefulsets", "prod", "postgres") == 3
    (row,) = audit()
    assert (row.status, row.code, row.actor) == ("error", "invalid", CLI_ACTOR)


def test_a_malformed_name_is_refused_before_the_cluster_is_asked(demo):
    error = fails("ops_scale", "prod", "deployment", "Web_App", "1")

    assert error.returncode == 2
    assert "name: Must be a DNS-1123 subdomain" in str(error)
    assert list(demo.requests) == []


def test_an_unknown_kind_is_a_usage_error(demo):
    error = fails("ops_scale", "prod", "daemonset", "web", "1")

    assert "invalid choice: 'daemonset'" in str(error)
    assert audit() == []


def test_a_missing_object_is_not_found_with_exit_code_4(demo):
    error = fails("ops_scale", "prod", "deployment", "nope", "1")

    assert error.returncode == 4
    assert "[not_found]" in str(error)
    (row,) = audit()
    assert (row.status, row.http_status) == ("error", 404)


def test_a_failing_kubernetes_api_is_a_clear_error_and_audited(demo):
    demo.faults.add(method="PATCH", path=r"/deployments/web/scale$", status=503, times=10)

    error = fails("ops_scale", "prod", "deployment", "web", "1")

    assert error.returncode == 1
    assert "[kubernetes_unavailable]" in str(error)
    assert "Traceback" not in str(error)
    (row,) = audit()
    assert (row.status, row.code) == ("error", "kubernetes_unavailable")


def test_ops_delete_pod_deletes_it_and_audits_it(demo):
    pod = demo.list("pods", "prod", label_selector="app=web")[0]["metadata"]["name"]

    out = run("ops_delete_pod", "prod", pod)

    assert out.strip() == f"pod prod/{pod} deleted"
    assert ("DELETE", "pods", pod) in [
        (r.method, r.resource, r.name) for r in demo.requests.mutations()
    ]
    (row,) = audit()
    assert (row.action, row.resource_kind, row.resource_name, row.status) == (
        "delete",
        "pod",
        pod,
        "success",
    )
    assert (row.actor, row.source_ip) == (CLI_ACTOR, "local")


def test_ops_delete_pod_outside_the_allowed_namespaces_is_denied(demo):
    pod = demo.list("pods", "kube-system")[0]["metadata"]["name"]

    error = fails("ops_delete_pod", "kube-system", pod)

    assert error.returncode == 3
    assert demo.get("pods", "kube-system", pod) is not None
    assert [r.status for r in audit()] == ["denied"]


def test_ops_delete_pvc_deletes_the_claim_and_audits_it(demo):
    out = run("ops_delete_pvc", "staging", "data-postgres-2")

    assert out.strip() == "persistentvolumeclaim staging/data-postgres-2 deleted"
    pvc = demo.get("persistentvolumeclaims", "staging", "data-postgres-2")
    assert pvc is None or pvc["metadata"].get("deletionTimestamp")
    (row,) = audit()
    assert (row.resource_kind, row.status, row.actor) == (
        "persistentvolumeclaim",
        "success",
        CLI_ACTOR,
    )


def test_ops_delete_pvc_of_a_missing_claim_exits_4(demo):
    error = fails("ops_delete_pvc", "staging", "no-such-claim")

    assert error.returncode == 4
    assert [r.status for r in audit()] == ["error"]


def test_ops_audit_shows_the_rows_newest_first_as_a_table(demo):
    run("ops_scale", "prod", "statefulset", "postgres", "2")
    fails("ops_scale", "kube-system", "deployment", "coredns", "0")

    out = run("ops_audit", "--namespace", "prod")
    lines = out.splitlines()

    assert lines[0].split()[:4] == ["time", "(UTC)", "actor", "source"]
    assert set(lines[1]) <= {"-", " "}
    assert len(lines) == 3
    assert CLI_ACTOR in lines[2]
    assert "prod/postgres" in lines[2]
    assert "success" in lines[2]


def test_ops_audit_filters_by_status_actor_since_and_limit(demo):
    run("ops_scale", "prod", "statefulset", "postgres", "2")
    fails("ops_scale", "kube-system", "deployment", "coredns", "0")
    old = OpsLog.objects.using("audit").create(
        ts=timezone.now() - timedelta(days=3),
        actor="old-bot",
        source_ip="198.51.100.1",
        action="scale",
        resource_kind="deployment",
        namespace="staging",
        resource_name="web",
        status="success",
    )

    denied = run("ops_audit", "--status", "denied")
    recent = run("ops_audit", "--since", "1h")
    by_actor = run("ops_audit", "--actor", "old-bot")
    limited = run("ops_audit", "--limit", "1")

    assert "kube-system/coredns" in denied
    assert "prod/postgres" not in denied
    assert "old-bot" not in recent
    assert "kube-system/coredns" in recent
    assert f"{old.namespace}/{old.resource_name}" in by_actor
    assert CLI_ACTOR not in by_actor
    assert "the newest 1 rows" in limited


@pytest.mark.parametrize(
    "args",
    [["--since", "yesterday"], ["--since", "2025-13-45"], ["--limit", "0"]],
)
def test_ops_audit_refuses_malformed_filters(demo, args):
    error = fails("ops_audit", *args)

    assert error.returncode == 2


def test_ops_audit_with_nothing_to_show_says_so(demo):
    assert run("ops_audit", "--namespace", "staging").strip() == "no audit rows match"
