"""The production manifests in k8s/: rendered by kustomize, validated, and held to policy.

Rendering uses the real kubectl (kustomize built in) and validation the real
``python -m kubernetes_validate --strict`` with the schemas it ships, so nothing here needs
the network. The policy tests also prove the policy itself bites: each known-bad change to
the rendered objects must be reported.
"""

from __future__ import annotations

import copy
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from .manifests import (
    EXPECTED_RULES,
    K8S,
    Doc,
    allowed_namespaces,
    by_kind,
    container_env,
    granted,
    kubectl,
    load,
    policy_problems,
    render,
)

pytestmark = [
    pytest.mark.kubectl,
    pytest.mark.skipif(kubectl() is None, reason="kubectl is not installed (it renders k8s/)"),
]

# The validator's default (newest schemas it ships) and the kubectl/kind generation in use.
KUBERNETES_VERSIONS = (None, "1.32.0")


@pytest.fixture(scope="module")
def rendered() -> str:
    return render(K8S)


@pytest.fixture
def docs(rendered: str) -> list[Doc]:
    return load(rendered)


def validate(path: Path, version: str | None) -> subprocess.CompletedProcess[str]:
    args = [sys.executable, "-m", "kubernetes_validate", "--strict", "--quiet"]
    if version:
        args += ["--kubernetes-version", version]
    # Options before the file names: the CLI takes everything after the first file as files.
    args.append(str(path))
    return subprocess.run(args, capture_output=True, text=True, timeout=120, check=False)


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS, ids=["newest", "1.32"])
def test_kustomize_output_validates_strictly_against_the_kubernetes_schemas(
    rendered, tmp_path, version
):
    path = tmp_path / "all.yaml"
    path.write_text(rendered, encoding="utf-8")

    result = validate(path, version)

    assert result.returncode == 0, result.stdout + result.stderr


def test_strict_validation_rejects_an_unknown_field(rendered, tmp_path):
    """Guards the test above: the validator really is strict about fields."""
    path = tmp_path / "bad.yaml"
    path.write_text(
        rendered.replace(
            "enableServiceLinks: false", "enableServiceLinks: false\n      hostnetwork: true", 1
        ),
        encoding="utf-8",
    )

    result = validate(path, None)

    assert result.returncode != 0
    assert "hostnetwork" in result.stdout + result.stderr


def test_rendered_manifests_meet_the_deployment_policy(docs):
    assert policy_problems(docs) == []


def test_every_allowed_namespace_has_one_role_and_binding_with_the_same_minimal_rules(docs):
    namespaces = allowed_namespaces(docs)
    assert namespaces == ["prod", "staging"]
    expected = {(ns, *rule) for ns in namespaces for rule in EXPECTED_RULES}

    assert granted(docs) == expected
    assert sorted(r["metadata"]["namespace"] for r in by_kind(docs, "Role")) == namespaces
    assert sorted(b["metadata"]["namespace"] for b in by_kind(docs, "RoleBinding")) == namespaces


def test_pods_get_prod_environment_and_the_vault_secrets_directory(docs):
    for dep in by_kind(docs, "Deployment"):
        for container in dep["spec"]["template"]["spec"]["containers"]:
            env = container_env(docs, container)
            assert env["ENV"] == "prod"
            assert env["OPS_SECRETS_DIR"] == "/vault/secrets"
            assert env["OPS_ALLOWED_NAMESPACES"] == "prod,staging"
            assert "apiops.ops.svc" in env["OPS_ALLOWED_HOSTS"].split(",")


def test_vault_agent_renders_each_secret_before_the_migrate_init_container(docs):
    api = next(d for d in by_kind(docs, "Deployment") if d["metadata"]["name"] == "apiops")
    annotations = api["spec"]["template"]["metadata"]["annotations"]
    init = [c["name"] for c in api["spec"]["template"]["spec"]["initContainers"]]

    assert init == ["migrate"]
    assert annotations["vault.hashicorp.com/agent-init-first"] == "true"
    for name in ("api-key", "db-url", "secret-key"):
        assert annotations[f"vault.hashicorp.com/agent-inject-perms-{name}"] == "0400"
        assert annotations[f"vault.hashicorp.com/error-on-missing-key-{name}"] == "true"


# --- the policy reports what it must ---------------------------------------------------------


def _role(docs: list[Doc]) -> Doc:
    return by_kind(docs, "Role")[0]


def _api_container(docs: list[Doc]) -> Doc:
    api = next(d for d in by_kind(docs, "Deployment") if d["metadata"]["name"] == "apiops")
    return api["spec"]["template"]["spec"]["containers"][0]


def _add_cluster_role(docs):
    docs.append({"kind": "ClusterRole", "metadata": {"name": "apiops"}, "rules": []})


def _wildcard_verb(docs):
    _role(docs)["rules"][0]["verbs"] = ["*"]


def _grant_secrets(docs):
    _role(docs)["rules"].append({"apiGroups": [""], "resources": ["secrets"], "verbs": ["get"]})


def _grant_watch(docs):
    _role(docs)["rules"][2]["verbs"].append("watch")


def _bind_default_account(docs):
    by_kind(docs, "RoleBinding")[0]["subjects"][0]["name"] = "default"


def _writable_root(docs):
    _api_container(docs)["securityContext"]["readOnlyRootFilesystem"] = False


def _escalation(docs):
    del _api_container(docs)["securityContext"]["allowPrivilegeEscalation"]


def _keep_capabilities(docs):
    _api_container(docs)["securityContext"]["capabilities"] = {"drop": ["NET_RAW"]}


def _run_as_root(docs):
    _api_container(docs)["securityContext"]["runAsUser"] = 0


def _no_limits(docs):
    del _api_container(docs)["resources"]["limits"]


def _no_vault(docs):
    api = next(d for d in by_kind(docs, "Deployment") if d["metadata"]["name"] == "apiops")
    api["spec"]["template"]["metadata"]["annotations"]["vault.hashicorp.com/agent-inject"] = "false"


def _wrong_vault_path(docs):
    api = next(d for d in by_kind(docs, "Deployment") if d["metadata"]["name"] == "apiops")
    api["spec"]["template"]["metadata"]["annotations"][
        "vault.hashicorp.com/agent-inject-secret-db-url"
    ] = "secret/data/other"


def _probe_host_not_allowed(docs):
    _api_container(docs)["readinessProbe"]["httpGet"]["httpHeaders"][0]["value"] = "10.0.0.1"


def _no_readiness(docs):
    del _api_container(docs)["readinessProbe"]


def _extra_allowed_namespace(docs):
    cm = next(d for d in by_kind(docs, "ConfigMap"))
    cm["data"]["OPS_ALLOWED_NAMESPACES"] += ",qa"


def _node_port(docs):
    by_kind(docs, "Service")[0]["spec"]["type"] = "NodePort"


def _worker_container(docs: list[Doc]) -> Doc:
    worker = next(
        d for d in by_kind(docs, "Deployment") if d["metadata"]["name"] == "apiops-worker"
    )
    return worker["spec"]["template"]["spec"]["containers"][0]


def _no_worker_liveness(docs):
    del _worker_container(docs)["livenessProbe"]


def _worker_is_bare_qcluster(docs):
    _worker_container(docs)["command"] = ["python", "manage.py", "qcluster"]


def _worker_stop_grace_too_long(docs):
    _worker_container(docs)["command"] = ["python", "-m", "jobs.worker", "--stop-grace", "90"]


def _secret_env(docs):
    _api_container(docs).setdefault("env", []).append(
        {"name": "OPS_API_KEY", "valueFrom": {"secretKeyRef": {"name": "x", "key": "k"}}}
    )


BREAKAGES: dict[str, tuple[Callable[[list[Doc]], None], str]] = {
    "cluster role": (_add_cluster_role, "cluster-wide RBAC"),
    "wildcard verb": (_wildcard_verb, "wildcard in verbs"),
    "secrets": (_grant_secrets, "grants secrets"),
    "an unused verb": (_grant_watch, "rules differ"),
    "binding to another account": (_bind_default_account, "subjects"),
    "writable root": (_writable_root, "readOnlyRootFilesystem"),
    "privilege escalation": (_escalation, "allowPrivilegeEscalation"),
    "capabilities kept": (_keep_capabilities, "capabilities"),
    "root uid": (_run_as_root, "runAsUser"),
    "no limits": (_no_limits, "limits lack"),
    "no vault": (_no_vault, "no Vault agent injection"),
    "wrong vault path": (_wrong_vault_path, "db-url is not injected"),
    "probe host": (_probe_host_not_allowed, "not in OPS_ALLOWED_HOSTS"),
    "no readiness probe": (_no_readiness, "readinessProbe"),
    "namespace without rbac": (_extra_allowed_namespace, "Roles are in"),
    "node port": (_node_port, "type NodePort"),
    "kubernetes secret in env": (_secret_env, "reads a Kubernetes Secret"),
    "no worker liveness probe": (_no_worker_liveness, "jobs_health"),
    "worker without its supervisor": (_worker_is_bare_qcluster, "jobs.worker supervisor"),
    "worker stop grace too long": (_worker_stop_grace_too_long, "--stop-grace"),
}


@pytest.mark.parametrize("breakage", sorted(BREAKAGES))
def test_the_policy_reports_each_known_bad_change(docs, breakage):
    mutate, expected = BREAKAGES[breakage]
    broken = copy.deepcopy(docs)
    mutate(broken)

    problems = policy_problems(broken)

    assert any(expected in p for p in problems), problems


# --- the allowed-namespace list is the one place ---------------------------------------------


@pytest.fixture
def k8s_copy(tmp_path: Path) -> Path:
    """A scratch copy of k8s/ (without local/) whose config.env a test may edit."""
    target = tmp_path / "k8s"
    shutil.copytree(K8S, target, ignore=shutil.ignore_patterns("local"))
    return target


def set_namespaces(k8s_dir: Path, value: str) -> None:
    env = k8s_dir / "config.env"
    lines = [
        f"OPS_ALLOWED_NAMESPACES={value}" if line.startswith("OPS_ALLOWED_NAMESPACES=") else line
        for line in env.read_text(encoding="utf-8").splitlines()
    ]
    env.write_text("\n".join(lines) + "\n", encoding="utf-8")


def test_renaming_a_namespace_in_config_env_moves_its_role_and_binding(k8s_copy):
    set_namespaces(k8s_copy, "prod,qa")

    docs = load(render(k8s_copy))

    assert allowed_namespaces(docs) == ["prod", "qa"]
    assert {ns for ns, *_ in granted(docs)} == {"prod", "qa"}
    assert sorted(b["metadata"]["namespace"] for b in by_kind(docs, "RoleBinding")) == [
        "prod",
        "qa",
    ]
    assert policy_problems(docs) == []


def test_a_list_shorter_than_the_rbac_slots_fails_to_render(k8s_copy):
    set_namespaces(k8s_copy, "prod")

    with pytest.raises(subprocess.CalledProcessError) as err:
        render(k8s_copy)

    assert "out of bounds" in err.value.stderr


def test_a_list_longer_than_the_rbac_slots_is_reported_by_the_policy(k8s_copy):
    set_namespaces(k8s_copy, "prod,staging,qa")

    docs = load(render(k8s_copy))

    assert any("Roles are in ['prod', 'staging']" in p for p in policy_problems(docs))
