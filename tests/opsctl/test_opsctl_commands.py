"""opsctl's commands against a real server (``python -m opsctl`` from the checkout): each
command reaches the API and the cluster, ``-o json`` is the API's own JSON and ``-o yaml`` the
same data, and each kind of failure has its exit code with ``error: <detail> [<code>]`` on
stderr and no traceback."""

from __future__ import annotations

import json
import socket
from datetime import UTC, datetime, timedelta

import pytest
import yaml

from tests.opsctl.conftest import run_opsctl

# The stack's server and worker use the test database: have pytest-django create it.
pytestmark = pytest.mark.django_db(databases=["default", "audit"])


def ok(*args: str, env: dict[str, str]) -> str:
    result = run_opsctl(*args, env=env)
    assert result.returncode == 0, (args, result.stdout, result.stderr)
    return result.stdout


def refused(want: int, *args: str, env: dict[str, str]) -> str:
    result = run_opsctl(*args, env=env)
    assert result.returncode == want, (args, result.returncode, result.stdout, result.stderr)
    assert result.stderr.startswith("error: "), result.stderr
    assert "Traceback" not in result.stderr
    return result.stderr


def replicas(stack, namespace: str, name: str) -> int:
    return stack.sim.get("deployments", namespace, name)["spec"]["replicas"]


def test_scale_reaches_the_cluster_and_prints_what_changed(stack, user):
    out = ok("scale", "-n", "staging", "deployment", "web", "--replicas", "3", env=user)

    assert replicas(stack, "staging", "web") == 3
    assert "staging/web" in out
    assert "-> 3" in out


def test_scale_json_is_the_apis_answer(stack, user):
    out = ok(
        "-o", "json", "scale", "-n", "staging", "deployment", "web", "--replicas", "2", env=user
    )

    answer = json.loads(out)
    assert answer["replicas"] == 2
    assert answer["namespace"] == "staging"
    assert {"kind", "name", "previous_replicas"} <= set(answer)
    assert replicas(stack, "staging", "web") == 2


def test_output_format_is_also_accepted_after_the_command(stack, user):
    out = ok(
        "scale", "-n", "staging", "deployment", "web", "--replicas", "2", "-o", "yaml", env=user
    )

    assert yaml.safe_load(out)["replicas"] == 2


def test_a_namespace_the_key_may_not_touch_exits_3(stack, user):
    err = refused(
        3, "scale", "-n", "kube-system", "deployment", "coredns", "--replicas", "1", env=user
    )

    assert err.rstrip().endswith("]")


def test_a_missing_deployment_exits_4(stack, user):
    err = refused(
        4, "scale", "-n", "staging", "deployment", "no-such-web", "--replicas", "1", env=user
    )

    assert "[" in err


def test_bad_replicas_and_bad_names_exit_2_with_the_field_errors(stack, user):
    negative = refused(
        2, "scale", "-n", "staging", "deployment", "web", "--replicas", "-3", env=user
    )
    text = refused(
        2, "scale", "-n", "staging", "deployment", "web", "--replicas", "three", env=user
    )
    bad_name = refused(
        2, "scale", "-n", "staging", "deployment", "Bad_Name", "--replicas", "1", env=user
    )

    assert "replicas" in negative
    assert "replicas" in text  # passed on as a string, refused by the API
    assert "[invalid]" in bad_name or "[" in bad_name
    assert replicas(stack, "staging", "web") == 2


def test_a_usage_error_exits_2(user):
    result = run_opsctl("scale", "-n", "staging", "deployment", "web", env=user)

    assert result.returncode == 2
    assert "--replicas" in result.stderr


def test_a_wrong_key_exits_3(stack, user):
    err = refused(3, "job", "types", env={**user, "OPSCTL_KEY": "wrong-key-wrong-key"})

    assert "[" in err


def test_a_server_that_does_not_listen_exits_6(user):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # bound, never listening: connection refused

        err = refused(6, "job", "types", env={**user, "OPSCTL_SERVER": f"http://127.0.0.1:{port}"})

    assert "cannot connect" in err


def test_a_server_that_never_answers_exits_7(user):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()  # accepts the connection, never answers
        port = s.getsockname()[1]

        err = refused(
            7,
            "--request-timeout",
            "0.5",
            "job",
            "types",
            env={**user, "OPSCTL_SERVER": f"http://127.0.0.1:{port}"},
        )

    assert "[timeout]" in err


def test_delete_pod_removes_it_then_a_missing_one_exits_4(stack, user):
    pod = next(
        p["metadata"]["name"]
        for p in stack.sim.list("pods", "staging")
        if p["metadata"]["name"].startswith("web-")
    )

    out = ok("delete", "-n", "staging", "pod", pod, env=user)
    refused(4, "delete", "-n", "staging", "pod", "no-such-pod", env=user)

    assert f"staging/{pod} deleted" in out
    assert stack.sim.get("pods", "staging", pod) is None or stack.sim.get("pods", "staging", pod)[
        "metadata"
    ].get("deletionTimestamp")


def test_delete_pvc_of_a_missing_claim_exits_4(user):
    err = refused(4, "delete", "-n", "staging", "pvc", "no-such-claim", env=user)

    assert "[" in err


def test_audit_json_yaml_and_table_show_the_filtered_rows(stack, user):
    ok("scale", "-n", "staging", "deployment", "web", "--replicas", "2", env=user)

    as_json = json.loads(ok("-o", "json", "audit", "-n", "staging", "--since", "1h", env=user))
    as_yaml = yaml.safe_load(ok("-o", "yaml", "audit", "-n", "staging", "--since", "1h", env=user))
    limited = run_opsctl("audit", "-n", "staging", "--action", "scale", "--limit", "1", env=user)
    table = limited.stdout

    assert as_json["results"]
    assert {r["namespace"] for r in as_json["results"]} == {"staging"}
    assert as_yaml["results"] == as_json["results"]
    lines = table.splitlines()
    assert lines[0].split()[:3] == ["TIME", "ACTOR", "ACTION"]
    assert len(lines) == 2
    assert "scale" in lines[1]
    assert limited.stderr.startswith("(1 of ")  # the rest is on later pages


def test_audit_since_a_future_iso_time_shows_nothing(user):
    later = (datetime.now(UTC) + timedelta(hours=1)).isoformat()

    answer = json.loads(ok("-o", "json", "audit", "--since", later, env=user))

    assert answer["results"] == []


def test_audit_with_a_malformed_since_exits_2(user):
    refused(2, "audit", "--since", "yesterday-ish", env=user)


def test_job_types_lists_the_registered_types(user):
    table = ok("job", "types", env=user)
    as_json = json.loads(ok("-o", "json", "job", "types", env=user))

    names = {t["type"] for t in as_json["types"]}
    assert {"pg-rebuild", "pg-backup", "rollout-restart"} <= names
    assert "pg-rebuild" in table
    assert "scale_sts_to_zero" in table


def test_job_start_refused_by_a_guard_exits_5_with_the_guards_code(user):
    err = refused(
        5,
        "job",
        "start",
        "pg-rebuild",
        "--param",
        "namespace=prod",
        "--param",
        "statefulset=postgres",
        "--param",
        "ordinal=2",
        "--param",
        "target_replicas=3",
        env=user,
    )

    assert "[primary_in_set]" in err


def test_job_get_of_an_unknown_job_exits_4(user):
    refused(4, "job", "get", "2025-01-15T10:30:00+00:00_pg-rebuild_00000000", env=user)


def test_job_start_with_a_malformed_param_exits_2(user):
    err = refused(2, "job", "start", "pg-backup", "--param", "namespace", env=user)

    assert "key=value" in err


def test_job_start_of_an_unknown_type_exits_4(user):
    refused(4, "job", "start", "no-such-type", "--param", "namespace=staging", env=user)
