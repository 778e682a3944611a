"""`KubeSim`: the simulator as one object — server, store, controllers, faults, request log."""

from __future__ import annotations

import json
import logging
import os
import tempfile
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any, TypeVar

import yaml

from . import resources as R
from .api import Api, DeleteOptions, merge_update
from .auditlog import TOKEN_USERS, AuditLog
from .controllers import HOST_IP, NODE_NAME, Controllers, Knobs
from .errors import ApiError, not_found
from .faults import Faults
from .patch import JSON_PATCH, MERGE_PATCH, STRATEGIC_MERGE_PATCH
from .requestlog import RequestLog
from .selectors import fields_match, labels_match, parse_field_selector, parse_label_selector
from .server import KubeHTTPServer, json_body
from .snapshots import Restore
from .store import Store
from .util import clone, rfc3339

log = logging.getLogger("kubesim")
T = TypeVar("T")

PATCH_CONTENT_TYPES = {
    "strategic": STRATEGIC_MERGE_PATCH,
    "merge": MERGE_PATCH,
    "json": JSON_PATCH,
}
# Namespaces every cluster has from the start.
BUILTIN_NAMESPACES = ("default", "kube-system", "kube-public", "kube-node-lease")


def node_manifest() -> dict[str, Any]:
    """The one node pods are scheduled to: Ready, with a kind-like capacity and version."""
    now = rfc3339()
    conditions = [
        (
            "MemoryPressure",
            "False",
            "KubeletHasSufficientMemory",
            "kubelet has sufficient memory available",
        ),
        ("DiskPressure", "False", "KubeletHasNoDiskPressure", "kubelet has no disk pressure"),
        ("PIDPressure", "False", "KubeletHasSufficientPID", "kubelet has sufficient PID available"),
        ("Ready", "True", "KubeletReady", "kubelet is posting ready status"),
    ]
    capacity = {"cpu": "8", "ephemeral-storage": "100Gi", "memory": "32Gi", "pods": "110"}
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": NODE_NAME,
            "labels": {
                "kubernetes.io/hostname": NODE_NAME,
                "kubernetes.io/os": "linux",
                "kubernetes.io/arch": "amd64",
                "node-role.kubernetes.io/control-plane": "",
            },
        },
        "spec": {"podCIDR": "10.244.0.0/24", "podCIDRs": ["10.244.0.0/24"]},
        "status": {
            "capacity": capacity,
            "allocatable": capacity,
            "conditions": [
                {
                    "type": t,
                    "status": st,
                    "lastHeartbeatTime": now,
                    "lastTransitionTime": now,
                    "reason": reason,
                    "message": message,
                }
                for t, st, reason, message in conditions
            ],
            "addresses": [
                {"type": "InternalIP", "address": HOST_IP},
                {"type": "Hostname", "address": NODE_NAME},
            ],
            "nodeInfo": {
                "machineID": "kubesim",
                "systemUUID": "kubesim",
                "bootID": "kubesim",
                "kernelVersion": "6.1.0",
                "osImage": "kubesim",
                "containerRuntimeVersion": "containerd://1.7.24",
                "kubeletVersion": R.SERVER_VERSION["gitVersion"],
                "kubeProxyVersion": R.SERVER_VERSION["gitVersion"],
                "operatingSystem": "linux",
                "architecture": "amd64",
            },
        },
    }


def kubeconfig_text(url: str) -> str:
    """A kubeconfig with one cluster, user and context named `kubesim`."""
    doc = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "kubesim", "cluster": {"server": url}}],
        "users": [{"name": "kubesim", "user": {"token": "kubesim"}}],
        "contexts": [
            {
                "name": "kubesim",
                "context": {"cluster": "kubesim", "user": "kubesim", "namespace": "default"},
            }
        ],
        "current-context": "kubesim",
        "preferences": {},
    }
    return yaml.safe_dump(doc, sort_keys=False)


class KubeSim:
    """A local Kubernetes API server with controllers, for tests and the sandbox.

    Use as a context manager (`with KubeSim(ready_delay=0.05) as sim:`) or call `start()` and
    `stop()`. All delays are in seconds; `tick` is only the safety-net period of the controller
    loop, which otherwise runs a pass on every change and when a timer is due.
    """

    def __init__(
        self,
        port: int = 0,
        *,
        host: str = "127.0.0.1",
        ready_delay: float = 1.0,
        termination_delay: float = 1.0,
        tick: float = 1.0,
        hpa_interval: float = 1.0,
        observe_delay: float = 0.0,
        snapshot_delay: float = 1.0,
        bookmark_interval: float = 1.0,
        history_size: int = 20000,
        request_log_size: int = 100_000,
        error_log_size: int = 1000,
        kubeconfig_path: str | os.PathLike[str] | None = None,
        load: Iterable[str | os.PathLike[str]] = (),
        audit_log_path: str | os.PathLike[str] | None = None,
    ) -> None:
        self.host = host
        self._requested_port = port
        self.bookmark_interval = bookmark_interval
        self.store = Store(history_size=history_size)
        self.api = Api(self.store)
        self.knobs = Knobs(
            ready_delay=ready_delay,
            termination_delay=termination_delay,
            tick=tick,
            hpa_interval=hpa_interval,
            observe_delay=observe_delay,
        )
        self.controllers = Controllers(
            self.store, self.api, self.knobs, error_log_size=error_log_size
        )
        self.controllers.snapshots.delay = snapshot_delay
        self.faults = Faults()
        self.requests = RequestLog(request_log_size)
        #: The API-server audit log (auditlog.py), when a path is given; token -> username.
        self.audit_log = AuditLog(os.fspath(audit_log_path)) if audit_log_path else None
        self.token_users = dict(TOKEN_USERS)
        self.stopping = threading.Event()
        self._kubeconfig_arg = os.fspath(kubeconfig_path) if kubeconfig_path else None
        self._tmpdir: tempfile.TemporaryDirectory[str] | None = None
        self._server: KubeHTTPServer | None = None
        self._serve_thread: threading.Thread | None = None
        self.kubeconfig_path = ""
        self.url = ""
        self.port = 0
        for ns in BUILTIN_NAMESPACES:
            self.api.create(R.NAMESPACES, "", {"metadata": {"name": ns}}, {})
        self.api.create(R.NODES, "", node_manifest(), {})
        for path in load:
            self.load_file(path)

    # --- lifecycle -------------------------------------------------------------------------------

    def start(self) -> KubeSim:
        """Bind, serve and start the controllers; returns self.

        A stopped simulator can be started again: it keeps its objects and serves them on
        the port it had (as an API server that restarts keeps its address and its etcd).
        """
        if self._server is not None:
            return self
        self.stopping.clear()
        self._server = KubeHTTPServer((self.host, self.port or self._requested_port), self)
        self.port = self._server.server_address[1]
        self.url = f"http://{self.host}:{self.port}"
        self.api.server_address = f"{self.host}:{self.port}"
        if self._kubeconfig_arg:
            self.kubeconfig_path = self._kubeconfig_arg
            parent = os.path.dirname(os.path.abspath(self.kubeconfig_path))
            os.makedirs(parent, exist_ok=True)
        else:
            self._tmpdir = tempfile.TemporaryDirectory(prefix="kubesim-")
            self.kubeconfig_path = os.path.join(self._tmpdir.name, "kubeconfig")
        with open(self.kubeconfig_path, "w", encoding="utf-8") as f:
            f.write(kubeconfig_text(self.url))
        self._serve_thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name="kubesim-http",
            daemon=True,
        )
        self._serve_thread.start()
        self.controllers.start()
        return self

    def stop(self) -> None:
        """Stop serving, end open watches and hanging requests, stop the controllers."""
        if self._server is None:
            return
        self.stopping.set()
        self.store.touch()
        self._server.wait_streams_ended(timeout=2.0)  # watches end with their last chunk
        self._server.shutdown()
        self._server.close_all()
        self._server.server_close()
        self.controllers.stop()
        if self._serve_thread:
            self._serve_thread.join(timeout=5)
        self._server = None
        if self._tmpdir is not None:
            self._tmpdir.cleanup()
            self._tmpdir = None

    def __enter__(self) -> KubeSim:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # --- objects ---------------------------------------------------------------------------------

    def apply(self, yaml_text: str) -> list[dict[str, Any]]:
        """Create or replace every object of a multi-document YAML text, in order.

        Replacing keeps the object's identity (uid) and goes through the same validation as
        an update; an invalid document raises ApiError and leaves later ones unapplied.
        """
        applied = []
        for doc in yaml.safe_load_all(yaml_text):
            if doc is None:
                continue
            items = doc.get("items", []) if doc.get("kind") == "List" else [doc]
            for item in items:
                applied.append(self._apply_one(item))
        return applied

    def _apply_one(self, doc: dict[str, Any]) -> dict[str, Any]:
        key = (doc.get("apiVersion", ""), doc.get("kind", ""))
        rt = R.BY_KIND.get(key)
        if rt is None:
            raise ValueError(f"kubesim does not serve {key[1]} in {key[0]}")
        doc = clone(doc)
        meta = doc.setdefault("metadata", {})
        meta.pop("resourceVersion", None)
        ns = (meta.get("namespace") or "default") if rt.namespaced else ""
        with self.store.lock:
            current = self.store.get(rt.plural, ns, meta.get("name", ""))
            if current is None:
                return clone(self.api.create(rt, ns, doc, {}).body)
            body = self.api._write(
                rt, current, merge_update(rt, current, doc, ""), "", dry=False
            ).body
            return clone(body)

    def load_file(self, path: str | os.PathLike[str]) -> list[dict[str, Any]]:
        """`apply` the contents of a YAML file."""
        with open(path, encoding="utf-8") as f:
            return self.apply(f.read())

    def get(self, resource: str, namespace: str | None, name: str) -> dict[str, Any] | None:
        """A copy of a stored object, or None. `resource` may be a plural, kind or short name."""
        rt = R.resolve(resource)
        obj = self.store.get(rt.plural, (namespace or "") if rt.namespaced else "", name)
        return clone(obj) if obj is not None else None

    def list(
        self,
        resource: str,
        namespace: str | None = None,
        label_selector: str | None = None,
        field_selector: str | None = None,
    ) -> list[dict[str, Any]]:
        """Copies of matching objects (terminating ones included), sorted by namespace/name."""
        rt = R.resolve(resource)
        labels = parse_label_selector(label_selector or "")
        fields = parse_field_selector(field_selector or "", lambda _f: True)
        with self.store.lock:
            objs = self.store.list(rt.plural, namespace if rt.namespaced else None)
            return [
                clone(o)
                for o in objs
                if labels_match(labels, o["metadata"].get("labels")) and fields_match(fields, o)
            ]

    def delete(
        self,
        resource: str,
        namespace: str | None,
        name: str,
        grace_period_seconds: int | None = None,
    ) -> dict[str, Any]:
        """Delete as a client would (graceful for pods, Terminating for protected PVCs)."""
        rt = R.resolve(resource)
        return self.api.delete(
            rt,
            namespace or "" if rt.namespaced else "",
            name,
            DeleteOptions(grace=grace_period_seconds),
        ).body

    def create(self, resource: str, namespace: str | None, obj: dict[str, Any]) -> dict[str, Any]:
        """Create an object as a client's POST does (defaulted, validated, a new
        resourceVersion); returns a copy of it, raises ApiError where the API would refuse.

        The namespace is `namespace`, else the object's, else `default`.
        """
        rt = R.resolve(resource)
        ns = ""
        if rt.namespaced:
            ns = namespace or (obj.get("metadata") or {}).get("namespace") or "default"
        return clone(self.api.create(rt, ns, obj, {}).body)

    def patch(
        self,
        resource: str,
        namespace: str | None,
        name: str,
        patch: dict[str, Any] | list[Any],
        patch_type: str = "strategic",
    ) -> dict[str, Any]:
        """PATCH an object as a client does: `patch_type` is "strategic" (kubectl's default),
        "merge" (what kubectl label/annotate send) or "json" (a list of operations). Returns
        a copy of the result; raises ApiError where the API would refuse."""
        rt = R.resolve(resource)
        content_type = PATCH_CONTENT_TYPES[patch_type]
        body = json.dumps(patch).encode()
        ns = (namespace or "default") if rt.namespaced else ""
        return clone(self.api.patch(rt, ns, name, "", content_type, body, {}).body)

    def wait_for(
        self, predicate: Callable[[], T], timeout: float = 5.0, message: str | None = None
    ) -> T:
        """Re-evaluate `predicate` on every change until it returns something truthy.

        Raises AssertionError (with `message`) after `timeout` seconds.
        """
        deadline = time.monotonic() + timeout
        with self.store.changed:
            while True:
                result = predicate()
                if result:
                    return result
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise AssertionError(message or f"condition not met within {timeout} s")
                self.store.changed.wait(min(remaining, 0.05))

    def wait_passes(self, count: int = 1, timeout: float = 5.0) -> int:
        """Wait for `count` complete controller passes that started after this call (see
        `Controllers.wait_passes`): the way to assert what the controllers did not do."""
        return self.controllers.wait_passes(count, timeout)

    def compact(self) -> int:
        """Drop the watch history: watches from older resourceVersions get 410 Expired."""
        return self.store.compact()

    def api_client(self) -> Any:
        """A `kubernetes.client.ApiClient` for this simulator (own Configuration, not the
        global default one)."""
        from kubernetes import client, config

        cfg = client.Configuration()
        config.load_kube_config(config_file=self.kubeconfig_path, client_configuration=cfg)
        return client.ApiClient(cfg)

    # --- knobs -----------------------------------------------------------------------------------

    def set_delays(
        self,
        ready_delay: float | None = None,
        termination_delay: float | None = None,
        tick: float | None = None,
        observe_delay: float | None = None,
        snapshot_delay: float | None = None,
    ) -> None:
        """Change how long pods take to become Ready and to terminate, how long the
        workload controllers take to notice a spec change and the CSI driver to cut a
        snapshot."""
        if ready_delay is not None:
            self.knobs.ready_delay = ready_delay
        if termination_delay is not None:
            self.knobs.termination_delay = termination_delay
        if tick is not None:
            self.knobs.tick = tick
        if observe_delay is not None:
            self.knobs.observe_delay = observe_delay
        if snapshot_delay is not None:
            self.controllers.snapshots.delay = snapshot_delay
        self.controllers.kick()

    def pod_never_ready(self, namespace: str, name: str, never: bool = True) -> None:
        """That pod (now or when created) stays Running but not Ready; False undoes it."""
        if never:
            self.knobs.never_ready.add((namespace, name))
        else:
            self.knobs.never_ready.discard((namespace, name))
        self.controllers.kick()

    def pods_never_ready(self, namespace: str, selector: str, never: bool = True) -> None:
        """Every pod of `namespace` matching the label `selector` (now or when created) stays
        Running but not Ready, for pods whose names are not known in advance (a
        Deployment's); False undoes it. A malformed selector is an ApiError (400)."""
        if never:
            reqs = parse_label_selector(selector)
            self.knobs.never_ready_selectors[(namespace, selector)] = reqs
        else:
            self.knobs.never_ready_selectors.pop((namespace, selector), None)
        self.controllers.kick()

    def stuck_finalizer(self, namespace: str, name: str, stuck: bool = True) -> None:
        """That PVC keeps its pvc-protection finalizer (stays Terminating) until undone."""
        if stuck:
            self.knobs.stuck_finalizers.add((namespace, name))
        else:
            self.knobs.stuck_finalizers.discard((namespace, name))
        self.controllers.kick()

    def slow_termination(self, namespace: str, name: str, seconds: float | None) -> None:
        """That pod takes `seconds` (bounded by its grace period) to terminate; None undoes."""
        if seconds is None:
            self.knobs.slow_termination.pop((namespace, name), None)
        else:
            self.knobs.slow_termination[(namespace, name)] = seconds
        self.controllers.kick()

    def fail_snapshot(
        self, namespace: str, name: str, message: str | None = None, fail: bool = True
    ) -> None:
        """The CSI driver fails to cut that VolumeSnapshot (now or when created): its status
        gets the error and readyToUse false, as the snapshotter reports a CreateSnapshot
        error; `fail=False` undoes it and the retried snapshot becomes ready."""
        failing = self.controllers.snapshots.failing
        if fail:
            failing[(namespace, name)] = message or "kubesim: snapshot creation failed"
        else:
            failing.pop((namespace, name), None)
        self.controllers.kick()

    def restored_from(self, namespace: str, claim: str) -> Restore | None:
        """Where a claim provisioned from a VolumeSnapshot got its data (snapshot, content,
        snapshotted claim), or None. Not in the API: a real cluster keeps only the claim's
        `spec.dataSource`, which kubesim keeps too."""
        pvc = self.get("persistentvolumeclaims", namespace, claim)
        if pvc is None:
            return None
        return self.controllers.snapshots.restores.get(pvc["metadata"]["uid"])

    # --- admin endpoint --------------------------------------------------------------------------

    def admin(
        self, method: str, sub: str, query: dict[str, list[str]], body: bytes
    ) -> tuple[int, Any]:
        """Serve `/_kubesim/<sub>`: the request log, faults, knobs and run-time loading."""
        parts = [p for p in sub.strip("/").split("/") if p]
        route = (method, parts[0] if parts else "")
        data = json_body(body) if route != ("POST", "apply") else None
        if route == ("GET", "") or route == ("GET", "healthz"):
            return 200, {
                "url": self.url,
                "resourceVersion": str(self.store.rv),
                "paused": self.controllers.paused,
            }
        if route == ("GET", "requests"):
            return 200, {"items": [r.as_dict() for r in self.requests]}
        if route == ("DELETE", "requests"):
            self.requests.clear()
            return 200, {"items": []}
        if route == ("GET", "faults"):
            return 200, {"items": [r.as_dict() for r in self.faults.rules]}
        if route == ("POST", "faults"):
            rule = self.faults.add_from_dict(data or {})
            return 201, rule.as_dict()
        if route == ("DELETE", "faults"):
            if len(parts) > 1:
                if not self.faults.remove(int(parts[1])):
                    raise not_found("faults", "kubesim", parts[1])
            else:
                self.faults.clear()
            return 200, {"items": [r.as_dict() for r in self.faults.rules]}
        if route == ("POST", "apply"):
            text = body.decode("utf-8")
            try:
                applied = self.apply(text)
            except yaml.YAMLError as e:
                raise ValueError(f"not YAML: {e}") from None
            return 200, {
                "items": [
                    {
                        "apiVersion": o["apiVersion"],
                        "kind": o["kind"],
                        "namespace": o["metadata"].get("namespace", ""),
                        "name": o["metadata"]["name"],
                    }
                    for o in applied
                ]
            }
        if route == ("POST", "controllers"):
            action = parts[1] if len(parts) > 1 else ""
            if action == "pause":
                self.controllers.pause()
            elif action == "resume":
                self.controllers.resume()
            else:
                raise ValueError("use /_kubesim/controllers/pause or /_kubesim/controllers/resume")
            return 200, {"paused": self.controllers.paused}
        if route == ("POST", "delays"):
            self.set_delays(**(data or {}))
            return 200, {
                "ready_delay": self.knobs.ready_delay,
                "termination_delay": self.knobs.termination_delay,
                "tick": self.knobs.tick,
                "observe_delay": self.knobs.observe_delay,
                "snapshot_delay": self.controllers.snapshots.delay,
            }
        if (
            method in ("POST", "DELETE")
            and len(parts) == 4
            and parts[0] in ("pods", "persistentvolumeclaims", "volumesnapshots")
        ):
            _, ns, name, knob = parts
            on = method == "POST"
            if (parts[0], knob) == ("pods", "never-ready"):
                self.pod_never_ready(ns, name, on)
            elif (parts[0], knob) == ("persistentvolumeclaims", "stuck-finalizer"):
                self.stuck_finalizer(ns, name, on)
            elif (parts[0], knob) == ("volumesnapshots", "fail"):
                self.fail_snapshot(ns, name, (data or {}).get("message"), on)
            elif (parts[0], knob) == ("pods", "slow-termination"):
                self.slow_termination(
                    ns, name, float((data or {}).get("seconds", 0)) if on else None
                )
            else:
                raise ValueError(f"unknown knob {knob} for {parts[0]}")
            return 200, {"namespace": ns, "name": name, knob: on}
        if route == ("POST", "compact"):
            return 200, {"compactedResourceVersion": str(self.compact())}
        raise ApiError(
            404, "NotFound", f"no kubesim admin route {method} /_kubesim/{sub.strip('/')}", {}
        )
