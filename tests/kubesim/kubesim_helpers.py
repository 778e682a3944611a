"""Manifests and predicates shared by the kubesim tests (imported as a plain module)."""

from __future__ import annotations

from typing import Any


def statefulset_yaml(
    name: str = "pg",
    namespace: str = "default",
    replicas: int = 3,
    policy: str = "OrderedReady",
    claims: tuple[str, ...] = ("data",),
    template_labels: dict[str, str] | None = None,
) -> str:
    """A StatefulSet manifest with one volumeClaimTemplate per name in `claims`; the pod
    template carries `app: <name>` plus `template_labels`."""
    templates = "".join(
        f"""
    - metadata: {{name: {c}}}
      spec:
        accessModes: [ReadWriteOnce]
        resources: {{requests: {{storage: 1Gi}}}}"""
        for c in claims
    )
    labels = ", ".join(f"{k}: {v}" for k, v in {"app": name, **(template_labels or {})}.items())
    return f"""
apiVersion: apps/v1
kind: StatefulSet
metadata: {{name: {name}, namespace: {namespace}, labels: {{app: {name}}}}}
spec:
  serviceName: {name}
  replicas: {replicas}
  podManagementPolicy: {policy}
  selector: {{matchLabels: {{app: {name}}}}}
  template:
    metadata: {{labels: {{{labels}}}}}
    spec:
      containers: [{{name: db, image: "postgres:16"}}]
  volumeClaimTemplates:{templates if claims else " []"}
"""


def deployment_yaml(name: str = "web", namespace: str = "default", replicas: int = 2) -> str:
    return f"""
apiVersion: apps/v1
kind: Deployment
metadata: {{name: {name}, namespace: {namespace}, labels: {{app: {name}}}}}
spec:
  replicas: {replicas}
  selector: {{matchLabels: {{app: {name}}}}}
  template:
    metadata: {{labels: {{app: {name}}}}}
    spec:
      containers: [{{name: web, image: "nginx:1.27"}}]
"""


def pod_ready(pod: dict[str, Any] | None) -> bool:
    """Whether a pod dict has condition Ready=True."""
    if not pod:
        return False
    return any(
        c.get("type") == "Ready" and c.get("status") == "True"
        for c in (pod.get("status") or {}).get("conditions") or []
    )
