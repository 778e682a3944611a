"""Manifests and predicates shared by the kubesim tests (imported as a plain module)."""

from __future__ import annotations

from typing import Any

from kubernetes import watch


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


def events_until_marker(core: Any, rv: str, claims: bool = False) -> list[tuple[str, str, dict]]:
    """Pod (or, with `claims`, PVC) events in `default` since `rv`, as (type, name, object)
    in resourceVersion order, up to a marker object created now: all that happened before."""
    if claims:
        core.create_namespaced_persistent_volume_claim(
            "default",
            {
                "metadata": {"name": "zz-marker"},
                "spec": {
                    "accessModes": ["ReadWriteOnce"],
                    "resources": {"requests": {"storage": "1Gi"}},
                },
            },
        )
        list_fn = core.list_namespaced_persistent_volume_claim
    else:
        core.create_namespaced_pod(
            "default",
            {
                "metadata": {"name": "zz-marker"},
                "spec": {"containers": [{"name": "c", "image": "x"}]},
            },
        )
        list_fn = core.list_namespaced_pod
    out = []
    w = watch.Watch()
    for ev in w.stream(list_fn, "default", resource_version=rv, timeout_seconds=10):
        raw = ev["raw_object"]
        if raw["metadata"]["name"] == "zz-marker":
            w.stop()
            break
        out.append((ev["type"], raw["metadata"]["name"], raw))
    return out
