"""k8s/local: the kind setup script and the manifests it applies.

The script needs Docker and kind, which are not here, so it is never run end to end; its
``render`` mode is (kubectl only), and the result is validated strictly and checked for what
the local stack promises: no Vault, the secret files mounted where Vault Agent would put them,
ApiOps's PostgreSQL, and a demo StatefulSet ``postgres`` with claim template ``data`` in
``prod``. The script itself must pass ``bash -n`` and, where installed, shellcheck.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys

import pytest

from .manifests import LOCAL, VAULT_FILES, by_kind, config_data, kubectl, load, policy_problems

SETUP = LOCAL / "setup.sh"


def test_setup_script_is_valid_bash():
    result = subprocess.run(["bash", "-n", str(SETUP)], capture_output=True, text=True, check=False)

    assert result.returncode == 0, result.stderr


@pytest.mark.skipif(shutil.which("shellcheck") is None, reason="shellcheck is not installed")
def test_setup_script_is_shellcheck_clean():
    result = subprocess.run(["shellcheck", str(SETUP)], capture_output=True, text=True, check=False)

    assert result.returncode == 0, result.stdout


def test_setup_script_refuses_unknown_commands():
    result = subprocess.run(
        ["bash", str(SETUP), "destroy-everything"], capture_output=True, text=True, check=False
    )

    assert result.returncode != 0
    assert "usage" in result.stderr


def test_readme_says_it_needs_docker_and_was_not_run_here():
    text = (LOCAL / "README.md").read_text(encoding="utf-8")

    assert "needs Docker" in text
    assert "has **not been run**" in text


needs_kubectl = pytest.mark.skipif(kubectl() is None, reason="kubectl is not installed")


@pytest.fixture(scope="module")
def local_rendered() -> str:
    if kubectl() is None:
        pytest.skip("kubectl is not installed")
    result = subprocess.run(
        ["bash", str(SETUP), "render"], capture_output=True, text=True, timeout=120, check=True
    )
    return result.stdout


@pytest.fixture
def local_docs(local_rendered: str) -> list[dict]:
    return load(local_rendered)


@needs_kubectl
@pytest.mark.kubectl
def test_local_manifests_validate_strictly(local_rendered, tmp_path):
    path = tmp_path / "local.yaml"
    path.write_text(local_rendered, encoding="utf-8")

    result = subprocess.run(
        [sys.executable, "-m", "kubernetes_validate", "--strict", "--quiet", str(path)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )

    assert result.returncode == 0, result.stdout + result.stderr


@needs_kubectl
@pytest.mark.kubectl
def test_local_stack_mounts_a_secret_where_vault_agent_would_write(local_docs):
    for dep in by_kind(local_docs, "Deployment"):
        if not dep["metadata"]["name"].startswith("apiops"):
            continue
        template = dep["spec"]["template"]
        assert template["metadata"]["annotations"]["vault.hashicorp.com/agent-inject"] == "false"
        volumes = {v["name"]: v for v in template["spec"]["volumes"]}
        assert volumes["vault-secrets"]["secret"]["secretName"] == "apiops-secrets"
        # group-readable only: the pods' fsGroup is the app's gid
        assert volumes["vault-secrets"]["secret"]["defaultMode"] == 0o440
        for c in template["spec"].get("initContainers", []) + template["spec"]["containers"]:
            mounts = {m["mountPath"]: m for m in c["volumeMounts"]}
            assert mounts["/vault/secrets"]["name"] == "vault-secrets"
            assert mounts["/vault/secrets"]["readOnly"] is True


def test_setup_script_creates_the_secret_files_the_application_reads():
    text = SETUP.read_text(encoding="utf-8")
    block = text[text.index("create secret generic apiops-secrets") :]
    block = block[: block.index("kube apply")]

    keys = set(re.findall(r"--from-literal=([a-z-]+)=", block))

    assert keys == set(VAULT_FILES)
    assert "@postgres.ops.svc:5432/apiops" in block


@needs_kubectl
@pytest.mark.kubectl
def test_local_stack_has_apiops_database_and_a_demo_statefulset_to_operate_on(local_docs):
    services = {
        (s["metadata"]["namespace"], s["metadata"]["name"]) for s in by_kind(local_docs, "Service")
    }
    assert ("ops", "postgres") in services
    namespaces = {n["metadata"]["name"] for n in by_kind(local_docs, "Namespace")}
    assert {"ops", "prod", "staging"} <= namespaces
    sts = by_kind(local_docs, "StatefulSet")
    assert [(s["metadata"]["namespace"], s["metadata"]["name"]) for s in sts] == [
        ("prod", "postgres")
    ]
    templates = [t["metadata"]["name"] for t in sts[0]["spec"]["volumeClaimTemplates"]]
    assert templates == ["data"]
    assert sts[0]["spec"]["persistentVolumeClaimRetentionPolicy"]["whenScaled"] == "Retain"


@needs_kubectl
@pytest.mark.kubectl
def test_local_stack_keeps_production_rbac_and_hardening_but_drops_vault(local_docs):
    problems = policy_problems(local_docs)

    # The differences are exactly the intended ones: no Vault, ENV=staging.
    assert problems, "the local overlay should differ from production"
    for problem in problems:
        assert "no Vault agent injection" in problem or "ENV is 'staging'" in problem, problem
    data = config_data(local_docs)
    assert "localhost" in data["OPS_ALLOWED_HOSTS"].split(",")


@needs_kubectl
@pytest.mark.kubectl
def test_every_pod_in_namespace_ops_meets_the_restricted_pod_security_basics(local_docs):
    """Namespace ops enforces 'restricted': the local PostgreSQL must pass it too."""
    for dep in by_kind(local_docs, "Deployment"):
        if dep["metadata"]["namespace"] != "ops":
            continue
        pod = dep["spec"]["template"]["spec"]
        for c in pod.get("initContainers", []) + pod["containers"]:
            sc = {**pod.get("securityContext", {}), **c.get("securityContext", {})}
            where = f"{dep['metadata']['name']}/{c['name']}"
            assert sc.get("runAsNonRoot") is True, where
            assert sc.get("allowPrivilegeEscalation") is False, where
            assert sc.get("capabilities", {}).get("drop") == ["ALL"], where
            assert sc.get("seccompProfile", {}).get("type") == "RuntimeDefault", where


@needs_kubectl
@pytest.mark.kubectl
def test_local_stack_runs_the_image_setup_script_builds(local_docs):
    built = re.search(r"^IMAGE=(\S+)$", SETUP.read_text(encoding="utf-8"), re.MULTILINE).group(1)
    images = {
        c["image"]
        for dep in by_kind(local_docs, "Deployment")
        if dep["metadata"]["name"].startswith("apiops")
        for c in dep["spec"]["template"]["spec"].get("initContainers", [])
        + dep["spec"]["template"]["spec"]["containers"]
    }

    assert images == {built}
