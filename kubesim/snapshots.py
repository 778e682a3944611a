"""The snapshot controller and the CSI driver's snapshotter sidecar, and what the
external-provisioner checks before it restores a claim from a VolumeSnapshot.

Follows kubernetes-csi/external-snapshotter (pkg/common-controller, pkg/sidecar-controller)
where callers can observe it:

- A VolumeSnapshot without `volumeSnapshotClassName` gets the default class (annotation
  `snapshot.storage.kubernetes.io/is-default-class: "true"`) of its claim's CSI driver written
  into its spec; none, or several, is a `status.error` (`Failed to set default snapshot class
  with error cannot find default snapshot class`). Every claim here is provisioned by one CSI
  driver, `CSI_DRIVER`.
- The claim must exist and be Bound, else `status.error` with the controller's message and
  `readyToUse: false`; it gets the finalizer `snapshot.storage.kubernetes.io/pvc-as-source-
  protection` until no snapshot of it is still being cut.
- The controller creates the VolumeSnapshotContent `snapcontent-<snapshot uid>` and binds the
  snapshot to it (`boundVolumeSnapshotContentName`, `readyToUse: false`); the sidecar of the
  class's driver cuts the snapshot after `delay` seconds and fills the content's status
  (`snapshotHandle`, `creationTime` in ns, `restoreSize` in bytes, `readyToUse`), which the
  controller copies to the snapshot (`restoreSize` as a quantity, `1Gi`). A snapshot told to
  fail (`failing`) gets the CSI error instead and stays not ready (retried: undoing the knob
  lets it become ready). A class naming another driver has no sidecar here: never ready.
- Finalizers: `volumesnapshot-as-source-protection` and, once bound,
  `volumesnapshot-bound-protection` on the snapshot; `volumesnapshotcontent-bound-protection`
  on the content. Deleting a snapshot deletes its content when the policy is Delete (Retain
  keeps it) and then lets the snapshot go, unless a Pending claim is being restored from it.
- A claim with a VolumeSnapshot data source is provisioned only from a snapshot of its
  namespace that is readyToUse, not being deleted and no larger than the claim; until then it
  stays Pending with no condition (the external-provisioner reports only Events).

Not modelled: pre-provisioned snapshots (`source.volumeSnapshotContentName` is accepted and
left alone), group snapshots, secrets, Events.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from . import resources as R
from .api import Api, DeleteOptions
from .snapshotkinds import DEFAULT_CLASS_ANNOTATION, binary_quantity, quantity_bytes
from .snapshotkinds import snapshot_source as claim_snapshot_source
from .store import Store
from .util import clone, rfc3339

CSI_DRIVER = "hostpath.csi.k8s.io"
AS_SOURCE = "snapshot.storage.kubernetes.io/volumesnapshot-as-source-protection"
BOUND = "snapshot.storage.kubernetes.io/volumesnapshot-bound-protection"
CONTENT_BOUND = "snapshot.storage.kubernetes.io/volumesnapshotcontent-bound-protection"
PVC_AS_SOURCE = "snapshot.storage.kubernetes.io/pvc-as-source-protection"
UPDATE_FAILED = "snapshot controller failed to update"

Save = Callable[[R.ResourceType, dict[str, Any], dict[str, Any]], None]
Guard = Callable[..., None]


@dataclass(frozen=True)
class Restore:
    """Where a claim's volume came from: the snapshot, its content and the snapshotted claim."""

    snapshot: str
    content: str
    source_claim: str


def _go_quote(text: str) -> str:
    """Go's %q of a string."""
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _terminating(obj: dict[str, Any]) -> bool:
    return bool(obj["metadata"].get("deletionTimestamp"))


def _with_finalizer(obj: dict[str, Any], name: str, present: bool) -> dict[str, Any]:
    new = clone(obj)
    fins = [f for f in new["metadata"].get("finalizers") or [] if f != name]
    if present:
        fins.append(name)
    if fins:
        new["metadata"]["finalizers"] = fins
    else:
        new["metadata"].pop("finalizers", None)
    return new


class SnapshotController:
    """The snapshot controller and the sidecar; the caller holds the store lock."""

    def __init__(self, store: Store, api: Api, save: Save, due: Callable[[float], None]) -> None:
        self.store = store
        self.api = api
        self.save = save
        self.due = due
        self.delay = 1.0  # how long the CSI driver takes to cut a snapshot
        self.failing: dict[tuple[str, str], str] = {}  # (namespace, snapshot) -> CSI error
        self.restores: dict[str, Restore] = {}  # claim uid -> its source
        self._started: dict[str, float] = {}  # content uid -> when the sidecar began
        self._sizes: dict[str, int] = {}  # volume handle -> bytes when snapshotted

    # --- one pass -----------------------------------------------------------------------

    def reconcile(self, guarded: Guard) -> None:
        for vs in self.store.list(R.VOLUMESNAPSHOTS.plural):
            guarded("snapshot-controller", vs, self._snapshot, vs)
        for content in self.store.list(R.VOLUMESNAPSHOTCONTENTS.plural):
            guarded("csi-snapshotter", content, self._content, content)
        for pvc in self.store.list(R.PVCS.plural):
            if PVC_AS_SOURCE in (pvc["metadata"].get("finalizers") or []):
                guarded("snapshot-controller", pvc, self._release_claim, pvc)

    # --- VolumeSnapshot -----------------------------------------------------------------

    def _snapshot(self, vs: dict[str, Any]) -> None:
        if _terminating(vs):
            self._delete_snapshot(vs)
            return
        spec, status = vs.get("spec") or {}, vs.get("status") or {}
        if "persistentVolumeClaimName" not in (spec.get("source") or {}):
            return  # pre-provisioned: not modelled
        if AS_SOURCE not in (vs["metadata"].get("finalizers") or []):
            self.save(R.VOLUMESNAPSHOTS, vs, _with_finalizer(vs, AS_SOURCE, True))
            return
        bound = status.get("boundVolumeSnapshotContentName")
        if bound:
            self._sync_bound(vs, bound)
            return
        class_name = spec.get("volumeSnapshotClassName")
        if class_name is None:
            self._set_default_class(vs)
            return
        cls = self.store.get(R.VOLUMESNAPSHOTCLASSES.plural, "", class_name)
        if cls is None:
            why = f'volumesnapshotclass.snapshot.storage.k8s.io "{class_name}" not found'
            self._error(vs, f"Failed to get snapshot class with error {why}", ready=None)
            return
        self._create_content(vs, cls)

    def _claim_error(self, vs: dict[str, Any]) -> tuple[dict[str, Any] | None, str]:
        """The source claim, or why it cannot be snapshotted (getVolumeFromVolumeSnapshot)."""
        name = vs["spec"]["source"]["persistentVolumeClaimName"]
        pvc = self.store.get(R.PVCS.plural, vs["metadata"]["namespace"], name)
        if pvc is None:
            lister = _go_quote(f'persistentvolumeclaim "{name}" not found')
            return None, f"failed to retrieve PVC {name} from the lister: {lister}"
        if (pvc.get("status") or {}).get("phase") != "Bound":
            return pvc, (
                f"the PVC {name} is not yet bound to a PV, will not attempt to take a snapshot"
            )
        return pvc, ""

    def _set_default_class(self, vs: dict[str, Any]) -> None:
        _, why = self._claim_error(vs)
        if not why:
            defaults = [
                c
                for c in self.store.list(R.VOLUMESNAPSHOTCLASSES.plural)
                if (c["metadata"].get("annotations") or {}).get(DEFAULT_CLASS_ANNOTATION) == "true"
                and c.get("driver") == CSI_DRIVER
            ]
            if len(defaults) == 1:
                new = clone(vs)
                new["spec"]["volumeSnapshotClassName"] = defaults[0]["metadata"]["name"]
                meta = new["metadata"]
                meta["generation"] = int(meta.get("generation") or 1) + 1
                self.save(R.VOLUMESNAPSHOTS, vs, new)
                return
            why = (
                "cannot find default snapshot class"
                if not defaults
                else f"{len(defaults)} default snapshot classes were found"
            )
        self._error(vs, f"Failed to set default snapshot class with error {why}", ready=None)

    def _create_content(self, vs: dict[str, Any], cls: dict[str, Any]) -> None:
        meta = vs["metadata"]
        failed = "Failed to create snapshot content with error "
        pvc, why = self._claim_error(vs)
        if pvc is None:
            self._error(
                vs,
                f"{failed}{UPDATE_FAILED} {meta['name']} on API server: "
                "cannot get claim from snapshot",
                ready=False,
            )
            return
        if PVC_AS_SOURCE not in (pvc["metadata"].get("finalizers") or []):
            if _terminating(pvc):
                self._error(
                    vs,
                    f"{failed}{UPDATE_FAILED} {pvc['metadata']['name']} on API "
                    "server: cannot add finalizer on claim because it is being deleted",
                    ready=False,
                )
                return
            self.save(R.PVCS, pvc, _with_finalizer(pvc, PVC_AS_SOURCE, True))
        if why:
            quoted = _go_quote(why)
            self._error(
                vs,
                f"{failed}failed to get input parameters to create snapshot "
                f"{meta['name']}: {quoted}",
                ready=False,
            )
            return
        pvc_spec = pvc.get("spec") or {}
        handle = pvc_spec.get("volumeName") or f"pvc-{pvc['metadata']['uid']}"
        capacity = ((pvc.get("status") or {}).get("capacity") or {}).get("storage")
        requested = ((pvc_spec.get("resources") or {}).get("requests") or {}).get("storage")
        self._sizes[handle] = quantity_bytes(capacity or requested or "0")
        name = f"snapcontent-{meta['uid']}"
        if self.store.get(R.VOLUMESNAPSHOTCONTENTS.plural, "", name) is None:
            content = {
                "apiVersion": R.VOLUMESNAPSHOTCONTENTS.api_version,
                "kind": R.VOLUMESNAPSHOTCONTENTS.kind,
                "metadata": {"name": name},
                "spec": {
                    "deletionPolicy": cls.get("deletionPolicy"),
                    "driver": cls.get("driver"),
                    "source": {"volumeHandle": handle},
                    "sourceVolumeMode": pvc_spec.get("volumeMode") or "Filesystem",
                    "volumeSnapshotClassName": cls["metadata"]["name"],
                    "volumeSnapshotRef": {
                        "apiVersion": R.VOLUMESNAPSHOTS.api_version,
                        "kind": R.VOLUMESNAPSHOTS.kind,
                        "name": meta["name"],
                        "namespace": meta["namespace"],
                        "resourceVersion": meta["resourceVersion"],
                        "uid": meta["uid"],
                    },
                },
            }
            self.api.create(R.VOLUMESNAPSHOTCONTENTS, "", content, {})
        self._set_status(
            vs, dict(vs.get("status") or {}, boundVolumeSnapshotContentName=name, readyToUse=False)
        )

    def _sync_bound(self, vs: dict[str, Any], content_name: str) -> None:
        """updateSnapshotStatus: the content's status, copied; the bound finalizer."""
        content = self.store.get(R.VOLUMESNAPSHOTCONTENTS.plural, "", content_name)
        if content is None:
            self._error(vs, "VolumeSnapshotContent is missing", ready=False)
            return
        if BOUND not in (vs["metadata"].get("finalizers") or []):
            self.save(R.VOLUMESNAPSHOTS, vs, _with_finalizer(vs, BOUND, True))
            return
        cstatus = content.get("status") or {}
        status = dict(vs.get("status") or {})
        ready = bool(cstatus.get("readyToUse"))
        if "creationTime" in cstatus and "creationTime" not in status:
            status["creationTime"] = rfc3339(cstatus["creationTime"] / 1e9)
        if "restoreSize" in cstatus and "restoreSize" not in status:
            status["restoreSize"] = binary_quantity(cstatus["restoreSize"])
        status["readyToUse"] = ready
        if ready:
            status.pop("error", None)
        elif cstatus.get("error"):
            status["error"] = cstatus["error"]
        self._set_status(vs, status)

    def _delete_snapshot(self, vs: dict[str, Any]) -> None:
        """processSnapshotWithDeletionTimestamp: the content (policy Delete), then the
        finalizers, unless a claim is still being restored from the snapshot."""
        meta = vs["metadata"]
        fins = meta.get("finalizers") or []
        if AS_SOURCE not in fins and BOUND not in fins:
            return  # someone else's finalizers: not ours to remove
        content_name = (vs.get("status") or {}).get("boundVolumeSnapshotContentName")
        content = self.store.get(R.VOLUMESNAPSHOTCONTENTS.plural, "", content_name or "")
        policy = (content or {}).get("spec", {}).get("deletionPolicy")
        if content is not None and policy == "Delete" and not _terminating(content):
            self.api._delete_locked(R.VOLUMESNAPSHOTCONTENTS, content, DeleteOptions())
        if self._restoring_from(meta["namespace"], meta["name"]):
            return
        new = _with_finalizer(_with_finalizer(vs, AS_SOURCE, False), BOUND, False)
        self.save(R.VOLUMESNAPSHOTS, vs, new)

    def _restoring_from(self, namespace: str, name: str) -> bool:
        return any(
            claim_snapshot_source(pvc.get("spec") or {}) == name
            and (pvc.get("status") or {}).get("phase") == "Pending"
            for pvc in self.store.list(R.PVCS.plural, namespace)
        )

    def _error(self, vs: dict[str, Any], message: str, ready: bool | None) -> None:
        """updateSnapshotErrorStatusWithEvent: written only when the message changes."""
        status = dict(vs.get("status") or {})
        if (status.get("error") or {}).get("message") == message:
            return
        status["error"] = {"message": message, "time": rfc3339()}
        if ready is not None:
            status["readyToUse"] = ready
        self._set_status(vs, status)

    def _set_status(self, vs: dict[str, Any], status: dict[str, Any]) -> None:
        new = clone(vs)
        new["status"] = status
        self.save(R.VOLUMESNAPSHOTS, vs, new)

    def _release_claim(self, pvc: dict[str, Any]) -> None:
        """checkandRemovePVCFinalizer: once no live snapshot of the claim is still unready."""
        name = pvc["metadata"]["name"]
        for vs in self.store.list(R.VOLUMESNAPSHOTS.plural, pvc["metadata"]["namespace"]):
            source = ((vs.get("spec") or {}).get("source") or {}).get("persistentVolumeClaimName")
            unready = not (vs.get("status") or {}).get("readyToUse")
            if source == name and unready and not _terminating(vs):
                return
        self.save(R.PVCS, pvc, _with_finalizer(pvc, PVC_AS_SOURCE, False))

    # --- VolumeSnapshotContent (the snapshotter sidecar) --------------------------------

    def _content(self, content: dict[str, Any]) -> None:
        meta, spec = content["metadata"], content.get("spec") or {}
        ref = spec.get("volumeSnapshotRef") or {}
        vs = self.store.get(R.VOLUMESNAPSHOTS.plural, ref.get("namespace") or "", ref.get("name"))
        bound = vs is not None and vs["metadata"]["uid"] == ref.get("uid")
        if _terminating(content):
            if CONTENT_BOUND in (meta.get("finalizers") or []) and not (
                bound and not _terminating(vs or {"metadata": {}})
            ):
                self.save(
                    R.VOLUMESNAPSHOTCONTENTS,
                    content,
                    _with_finalizer(content, CONTENT_BOUND, False),
                )
            return
        if CONTENT_BOUND not in (meta.get("finalizers") or []):
            new = _with_finalizer(content, CONTENT_BOUND, True)
            self.save(R.VOLUMESNAPSHOTCONTENTS, content, new)
            return
        handle = (spec.get("source") or {}).get("volumeHandle")
        status = content.get("status") or {}
        if spec.get("driver") != CSI_DRIVER or not handle or status.get("readyToUse"):
            return
        failure = self.failing.get((ref.get("namespace") or "", ref.get("name") or ""))
        if failure is not None:
            grpc = f"rpc error: code = Internal desc = {failure}"
            message = (
                f"Failed to create snapshot: failed to take snapshot of the volume {handle}: "
                f"{_go_quote(grpc)}"
            )
            if (status.get("error") or {}).get("message") != message:
                new = clone(content)
                new["status"] = dict(
                    status, readyToUse=False, error={"message": message, "time": rfc3339()}
                )
                self.save(R.VOLUMESNAPSHOTCONTENTS, content, new)
            return
        now = time.monotonic()
        started = self._started.setdefault(meta["uid"], now)
        if now < started + self.delay:
            self.due(started + self.delay)
            return
        new = clone(content)
        new["status"] = {
            "creationTime": time.time_ns(),
            "readyToUse": True,
            "restoreSize": self._sizes.get(handle, 0),
            "snapshotHandle": str(uuid.uuid4()),
        }
        self.save(R.VOLUMESNAPSHOTCONTENTS, content, new)
        self._started.pop(meta["uid"], None)

    # --- restoring claims (the external-provisioner's checks) ---------------------------

    def can_provision(self, pvc: dict[str, Any]) -> bool:
        """Whether the provisioner can make a volume for this Pending claim now; records
        where a restored claim's data came from."""
        spec = pvc.get("spec") or {}
        ref = spec.get("dataSourceRef") or spec.get("dataSource")
        if not ref:
            return True
        namespace = pvc["metadata"]["namespace"]
        name = claim_snapshot_source(spec)
        if name is None:
            # A claim to clone needs its source Bound; any other kind needs a volume
            # populator, and none runs here.
            if ref.get("kind") != "PersistentVolumeClaim" or ref.get("apiGroup"):
                return False
            source = self.store.get(R.PVCS.plural, namespace, ref.get("name") or "")
            return source is not None and (source.get("status") or {}).get("phase") == "Bound"
        vs = self.store.get(R.VOLUMESNAPSHOTS.plural, namespace, name)
        if vs is None or _terminating(vs):
            return False
        status = vs.get("status") or {}
        requested = ((spec.get("resources") or {}).get("requests") or {}).get("storage") or "0"
        size = status.get("restoreSize")
        if not status.get("readyToUse") or (
            size and quantity_bytes(size) > quantity_bytes(requested)
        ):
            return False
        self.restores[pvc["metadata"]["uid"]] = Restore(
            snapshot=name,
            content=status.get("boundVolumeSnapshotContentName") or "",
            source_claim=((vs.get("spec") or {}).get("source") or {}).get(
                "persistentVolumeClaimName"
            )
            or "",
        )
        return True
