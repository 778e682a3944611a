"""Render the k8s/ kustomizations and judge them against ApiOps's deployment policy.

``policy_problems(docs)`` returns every rule the rendered objects break (empty = compliant):
it is the same policy ``checks/deploy.sh`` applies, made stricter where the issue asks for
more (exact Vault paths, seccomp, /tmp, one Role and RoleBinding per allowed namespace).
``granted(docs)`` flattens the Roles into (namespace, apiGroup, resource, verb) tuples, the
form an RBAC test compares with the API calls kubesim recorded.
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[2]
K8S = REPO / "k8s"
LOCAL = K8S / "local"

APP_UID = 10001
SERVICE_ACCOUNT = "apiops"
APP_NAMESPACE = "ops"
SECRETS_DIR = "/vault/secrets"

# file name in /vault/secrets -> (Vault KV v2 API path, key inside the secret)
VAULT_FILES = {
    "api-key": ("secret/data/ops-api", "api_key"),
    "db-url": ("secret/data/ops-api-db", "db_url"),
    "secret-key": ("secret/data/ops-api", "secret_key"),
}

# What ops/k8s.py calls, per allowed namespace. The RBAC test proves it against kubesim;
# this pins it so a widened Role cannot slip in unnoticed.
EXPECTED_RULES = {
    ("apps", "statefulsets/scale", "get"),
    ("apps", "statefulsets/scale", "patch"),
    ("apps", "deployments/scale", "get"),
    ("apps", "deployments/scale", "patch"),
    ("apps", "statefulsets", "get"),
    ("apps", "statefulsets", "patch"),  # rollout-restart
    ("apps", "deployments", "get"),
    ("apps", "deployments", "patch"),
    ("", "pods", "get"),
    ("", "pods", "list"),
    ("", "pods", "delete"),
    ("", "persistentvolumeclaims", "get"),
    ("", "persistentvolumeclaims", "delete"),
    ("", "persistentvolumeclaims", "create"),  # a restore from a snapshot
    ("", "configmaps", "get"),  # Patroni's leader record: pg-rebuild's primary guard
    ("", "endpoints", "get"),
    ("snapshot.storage.k8s.io", "volumesnapshots", "get"),  # pg-backup
    ("snapshot.storage.k8s.io", "volumesnapshots", "create"),
}

Doc = dict[str, Any]


def kubectl() -> str | None:
    """Path of the kubectl binary, or None."""
    return shutil.which("kubectl")


def render(directory: Path = K8S) -> str:
    """``kubectl kustomize <directory>`` as text; raises CalledProcessError on failure."""
    exe = kubectl()
    if exe is None:
        raise FileNotFoundError("kubectl")
    result = subprocess.run(
        [exe, "kustomize", str(directory)],
        check=True,
        capture_output=True,
        text=True,
        timeout=120,
    )
    return result.stdout


def load(text: str) -> list[Doc]:
    """The non-empty YAML documents of a rendered stream."""
    return [d for d in yaml.safe_load_all(text) if d]


def by_kind(docs: Iterable[Doc], kind: str) -> list[Doc]:
    return [d for d in docs if d.get("kind") == kind]


def config_data(docs: list[Doc]) -> dict[str, str]:
    """The data of the apiops-config ConfigMap (name carries kustomize's hash suffix)."""
    maps = [
        d for d in by_kind(docs, "ConfigMap") if d["metadata"]["name"].startswith("apiops-config")
    ]
    if len(maps) != 1:
        raise AssertionError(f"expected one apiops-config ConfigMap, found {len(maps)}")
    return maps[0].get("data", {})


def allowed_namespaces(docs: list[Doc]) -> list[str]:
    raw = config_data(docs).get("OPS_ALLOWED_NAMESPACES", "")
    return [item.strip() for item in raw.split(",") if item.strip()]


def granted(docs: Iterable[Doc]) -> set[tuple[str, str, str, str]]:
    """Every (namespace, apiGroup, resource, verb) the Roles grant."""
    out = set()
    for role in by_kind(docs, "Role"):
        ns = role["metadata"].get("namespace", "")
        for rule in role.get("rules") or []:
            for group in rule.get("apiGroups", []):
                for resource in rule.get("resources", []):
                    for verb in rule.get("verbs", []):
                        out.add((ns, group, resource, verb))
    return out


def container_env(docs: list[Doc], container: Doc) -> dict[str, str]:
    """A container's environment with ConfigMap references resolved."""
    data = config_data(docs)
    env: dict[str, str] = {}
    for src in container.get("envFrom", []):
        ref = src.get("configMapRef", {}).get("name", "")
        if ref.startswith("apiops-config"):
            env.update(data)
    for item in container.get("env", []):
        if "value" in item:
            env[item["name"]] = item["value"]
        elif "configMapKeyRef" in item.get("valueFrom", {}):
            env[item["name"]] = data.get(item["valueFrom"]["configMapKeyRef"]["key"], "")
    return env


def policy_problems(docs: list[Doc]) -> list[str]:
    """Every way the rendered objects break ApiOps's deployment policy."""
    problems: list[str] = []
    problems += _rbac_problems(docs)
    problems += _workload_problems(docs)
    problems += _service_problems(docs)
    return problems


def _rbac_problems(docs: list[Doc]) -> list[str]:
    problems = []
    for kind in ("ClusterRole", "ClusterRoleBinding"):
        if by_kind(docs, kind):
            problems.append(f"cluster-wide RBAC: {kind}")
    accounts = [
        d
        for d in by_kind(docs, "ServiceAccount")
        if d["metadata"]["name"] == SERVICE_ACCOUNT
        and d["metadata"].get("namespace") == APP_NAMESPACE
    ]
    if len(accounts) != 1:
        problems.append(f"expected ServiceAccount {APP_NAMESPACE}/{SERVICE_ACCOUNT}")
    namespaces = allowed_namespaces(docs)
    roles = by_kind(docs, "Role")
    bindings = by_kind(docs, "RoleBinding")
    role_ns = sorted(r["metadata"].get("namespace", "") for r in roles)
    binding_ns = sorted(b["metadata"].get("namespace", "") for b in bindings)
    if role_ns != sorted(namespaces):
        problems.append(f"Roles are in {role_ns}, OPS_ALLOWED_NAMESPACES is {namespaces}")
    if binding_ns != sorted(namespaces):
        problems.append(f"RoleBindings are in {binding_ns}, OPS_ALLOWED_NAMESPACES is {namespaces}")
    for role in roles:
        where = f"Role {role['metadata'].get('namespace')}/{role['metadata']['name']}"
        rules = role.get("rules") or []
        for rule in rules:
            for key in ("verbs", "resources", "apiGroups"):
                if "*" in rule.get(key, []):
                    problems.append(f"{where}: wildcard in {key}")
            if "secrets" in rule.get("resources", []):
                problems.append(f"{where}: grants secrets")
            if rule.get("resourceNames") or rule.get("nonResourceURLs"):
                problems.append(f"{where}: unexpected resourceNames/nonResourceURLs")
        flat = {
            (g, r, v)
            for rule in rules
            for g in rule.get("apiGroups", [])
            for r in rule.get("resources", [])
            for v in rule.get("verbs", [])
        }
        if flat != EXPECTED_RULES:
            extra = sorted(flat - EXPECTED_RULES)
            missing = sorted(EXPECTED_RULES - flat)
            problems.append(f"{where}: rules differ (extra {extra}, missing {missing})")
    for binding in bindings:
        where = f"RoleBinding {binding['metadata'].get('namespace')}/{binding['metadata']['name']}"
        ref = binding.get("roleRef", {})
        if ref.get("kind") != "Role" or ref.get("name") != "apiops":
            problems.append(f"{where}: roleRef is not Role apiops")
        subjects = binding.get("subjects") or []
        wanted = [{"kind": "ServiceAccount", "name": SERVICE_ACCOUNT, "namespace": APP_NAMESPACE}]
        if subjects != wanted:
            problems.append(f"{where}: subjects {subjects} are not only {wanted[0]}")
    return problems


def _security_problems(where: str, pod: Doc, container: Doc) -> list[str]:
    problems = []
    sc = {**pod.get("securityContext", {}), **container.get("securityContext", {})}
    if sc.get("runAsNonRoot") is not True:
        problems.append(f"{where}: runAsNonRoot is not true")
    uid = sc.get("runAsUser")
    if not isinstance(uid, int) or uid == 0:
        problems.append(f"{where}: runAsUser {uid!r} is not a numeric non-root uid")
    if sc.get("readOnlyRootFilesystem") is not True:
        problems.append(f"{where}: readOnlyRootFilesystem is not true")
    if sc.get("allowPrivilegeEscalation") is not False:
        problems.append(f"{where}: allowPrivilegeEscalation is not false")
    if sc.get("privileged"):
        problems.append(f"{where}: privileged")
    caps = sc.get("capabilities", {})
    if "ALL" not in caps.get("drop", []) or caps.get("add"):
        problems.append(f"{where}: capabilities are not exactly 'drop ALL'")
    if sc.get("seccompProfile", {}).get("type") != "RuntimeDefault":
        problems.append(f"{where}: seccompProfile is not RuntimeDefault")
    resources = container.get("resources", {})
    for part in ("requests", "limits"):
        got = resources.get(part, {})
        if not (got.get("cpu") and got.get("memory")):
            problems.append(f"{where}: {part} lack cpu or memory")
    mounts = {m["mountPath"]: m["name"] for m in container.get("volumeMounts", [])}
    volumes = {v["name"]: v for v in pod.get("volumes", [])}
    if "emptyDir" not in volumes.get(mounts.get("/tmp", ""), {}):
        problems.append(f"{where}: /tmp is not an emptyDir")
    return problems


def _workload_problems(docs: list[Doc]) -> list[str]:
    problems = []
    deployments = by_kind(docs, "Deployment")
    names = {d["metadata"]["name"]: d for d in deployments}
    if set(names) < {"apiops", "apiops-worker"}:
        return [f"expected Deployments apiops and apiops-worker, found {sorted(names)}"]
    data = config_data(docs)
    hosts = [h.strip() for h in data.get("OPS_ALLOWED_HOSTS", "").split(",") if h.strip()]
    images = set()
    for name in ("apiops", "apiops-worker"):
        dep = names[name]
        template = dep["spec"]["template"]
        pod = template["spec"]
        if dep["metadata"].get("namespace") != APP_NAMESPACE:
            problems.append(f"{name}: not in namespace {APP_NAMESPACE}")
        if pod.get("serviceAccountName") != SERVICE_ACCOUNT:
            problems.append(f"{name}: serviceAccountName is not {SERVICE_ACCOUNT}")
        if pod.get("hostNetwork") or pod.get("hostPID") or pod.get("hostIPC"):
            problems.append(f"{name}: shares a host namespace")
        problems += _vault_problems(name, template.get("metadata", {}).get("annotations", {}))
        for container in pod.get("initContainers", []) + pod["containers"]:
            where = f"{name}/{container['name']}"
            images.add(container.get("image"))
            problems += _security_problems(where, pod, container)
            env = container_env(docs, container)
            if env.get("ENV") != "prod":
                problems.append(f"{where}: ENV is {env.get('ENV')!r}, not prod")
            if env.get("OPS_SECRETS_DIR") != SECRETS_DIR:
                problems.append(f"{where}: OPS_SECRETS_DIR is not {SECRETS_DIR}")
            for var in ("OPS_ALLOWED_NAMESPACES", "OPS_ALLOWED_HOSTS"):
                if not env.get(var):
                    problems.append(f"{where}: {var} is not set")
            if any("secretKeyRef" in e.get("valueFrom", {}) for e in container.get("env", [])):
                problems.append(f"{where}: reads a Kubernetes Secret (secrets come from Vault)")
    api = names["apiops"]["spec"]["template"]["spec"]["containers"][0]
    for probe, path in (("livenessProbe", "/health/live"), ("readinessProbe", "/health/ready")):
        get = api.get(probe, {}).get("httpGet", {})
        if get.get("path") != path:
            problems.append(f"apiops: {probe} does not GET {path}")
        probe_hosts = [
            h["value"] for h in get.get("httpHeaders", []) if h["name"].lower() == "host"
        ]
        if probe_hosts and probe_hosts[0] not in hosts:
            problems.append(f"apiops: {probe} Host {probe_hosts[0]} is not in OPS_ALLOWED_HOSTS")
    worker = names["apiops-worker"]["spec"]["template"]["spec"]["containers"][0]
    command = worker.get("command") or []
    if command[:3] != ["python", "-m", "jobs.worker"]:
        problems.append(f"apiops-worker: command is {command}, not the jobs.worker supervisor")
    elif _option(command, "--stop-grace", 3.0) >= pod_grace(names["apiops-worker"]):
        problems.append(
            "apiops-worker: --stop-grace is not under terminationGracePeriodSeconds: the "
            "kubelet would kill the cluster before its supervisor does"
        )
    liveness = worker.get("livenessProbe", {}).get("exec", {}).get("command", [])
    if liveness[:3] != ["python", "manage.py", "jobs_health"]:
        problems.append("apiops-worker: livenessProbe does not run manage.py jobs_health")
    if len(images) != 1:
        problems.append(f"API, migrations and worker should run one image, found {sorted(images)}")
    return problems


def _option(command: list[str], name: str, default: float) -> float:
    """The value of ``name VALUE`` in ``command``, or ``default``."""
    return float(command[command.index(name) + 1]) if name in command else default


def pod_grace(deployment: Doc) -> float:
    """A Deployment's terminationGracePeriodSeconds (Kubernetes' default: 30)."""
    return float(deployment["spec"]["template"]["spec"].get("terminationGracePeriodSeconds", 30))


def _vault_problems(name: str, annotations: dict[str, str]) -> list[str]:
    problems = []
    prefix = "vault.hashicorp.com/"
    if annotations.get(prefix + "agent-inject") != "true":
        return [f"{name}: no Vault agent injection"]
    if not annotations.get(prefix + "role"):
        problems.append(f"{name}: no Vault role")
    for file, (path, key) in VAULT_FILES.items():
        if annotations.get(f"{prefix}agent-inject-secret-{file}") != path:
            problems.append(f"{name}: {file} is not injected from {path}")
        template = annotations.get(f"{prefix}agent-inject-template-{file}", "")
        if f'secret "{path}"' not in template or f".Data.data.{key}" not in template:
            problems.append(f"{name}: template for {file} does not render {path} {key}")
    return problems


def _service_problems(docs: list[Doc]) -> list[str]:
    services = by_kind(docs, "Service")
    if not services:
        return ["no Service"]
    problems = []
    api = next((d for d in by_kind(docs, "Deployment") if d["metadata"]["name"] == "apiops"), None)
    for svc in services:
        spec = svc["spec"]
        if spec.get("type", "ClusterIP") != "ClusterIP":
            problems.append(f"Service {svc['metadata']['name']}: type {spec.get('type')}")
        if api is not None and svc["metadata"]["name"] == "apiops":
            labels = api["spec"]["template"]["metadata"]["labels"]
            if not spec.get("selector") or any(
                labels.get(k) != v for k, v in spec["selector"].items()
            ):
                problems.append("Service apiops does not select the API pods")
            ports = {
                p.get("name")
                for c in api["spec"]["template"]["spec"]["containers"]
                for p in c.get("ports", [])
            }
            for port in spec.get("ports", []):
                target = port.get("targetPort")
                if isinstance(target, str) and target not in ports:
                    problems.append(f"Service apiops targets port {target!r} the pods do not name")
    return problems
