"""Per-kind defaulting, decoding checks and validation, as the real API server applies them.

Three layers, in the order the apiserver runs them:

1. decoding: wrong JSON types in fields we model are a 400 `cannot be handled as a <Kind>`
   (Go's json decoder refuses them before anything else happens);
2. defaulting: the fields the apiserver fills in (restartPolicy, podManagementPolicy, ...), so
   objects read back are as complete as a real cluster's and the 37.x models accept them;
3. validation: 422 Invalid with `details.causes`, with the field paths and messages of
   pkg/apis/{core,apps,autoscaling}/validation.

All of it works on plain dicts and never touches stored objects. Kinds added later live in
modules of their own and plug in through a `KindRules` each (`configkinds.RULES`: ConfigMaps
and Endpoints); the building blocks shared by all kinds are in `validation.py`.
"""

from __future__ import annotations

import re
from typing import Any

from . import configkinds, snapshotkinds
from . import resources as R
from .errors import ApiError, bad_request, cause, invalid
from .selectors import labels_match, selector_from_label_selector
from .validation import (
    BOOL,
    INT32,
    INT64,
    INTSTR,
    META,
    SLIST,
    SMAP,
    STR,
    KindRules,
    dns_label_errors,
    forbid,
    go_pointer,
    inv,
    meta_causes,
    q,
    req,
    unsupported,
)

# --- decoding --------------------------------------------------------------------------------

_CONTAINER = {
    "_": "Container",
    "name": STR,
    "image": STR,
    "command": SLIST,
    "args": SLIST,
    "ports": [{"_": "ContainerPort", "containerPort": INT32, "name": STR, "protocol": STR}],
    "env": [{"_": "EnvVar", "name": STR, "value": STR}],
    "volumeMounts": [{"_": "VolumeMount", "name": STR, "mountPath": STR}],
}
_POD_SPEC = {
    "_": "PodSpec",
    "containers": [_CONTAINER],
    "initContainers": [_CONTAINER],
    "volumes": [
        {
            "_": "Volume",
            "name": STR,
            "persistentVolumeClaim": {"_": "PersistentVolumeClaimVolumeSource", "claimName": STR},
        }
    ],
    "nodeName": STR,
    "restartPolicy": STR,
    "terminationGracePeriodSeconds": INT64,
    "serviceAccountName": STR,
}
_TEMPLATE = {"_": "PodTemplateSpec", "metadata": META, "spec": _POD_SPEC}
_LABEL_SELECTOR = {
    "_": "LabelSelector",
    "matchLabels": SMAP,
    "matchExpressions": [
        {"_": "LabelSelectorRequirement", "key": STR, "operator": STR, "values": SLIST}
    ],
}
_PVC_SPEC = {
    "_": "PersistentVolumeClaimSpec",
    "accessModes": SLIST,
    "storageClassName": STR,
    "volumeName": STR,
    "volumeMode": STR,
    "resources": {"_": "VolumeResourceRequirements", "requests": SMAP, "limits": SMAP},
    "dataSource": {"_": "TypedLocalObjectReference", "apiGroup": STR, "kind": STR, "name": STR},
    "dataSourceRef": {
        "_": "TypedObjectReference",
        "apiGroup": STR,
        "kind": STR,
        "name": STR,
        "namespace": STR,
    },
}

# Kinds whose rules live in modules of their own.
KIND_RULES: dict[str, KindRules] = {**configkinds.RULES, **snapshotkinds.RULES}

SCHEMAS: dict[str, dict[str, Any]] = {
    **{kind: rules.schema for kind, rules in KIND_RULES.items()},
    "Namespace": {"_": "Namespace", "metadata": META},
    "Node": {"_": "Node", "metadata": META},
    "Pod": {"_": "Pod", "metadata": META, "spec": _POD_SPEC},
    "PersistentVolumeClaim": {"_": "PersistentVolumeClaim", "metadata": META, "spec": _PVC_SPEC},
    "StatefulSet": {
        "_": "StatefulSet",
        "metadata": META,
        "spec": {
            "_": "StatefulSetSpec",
            "replicas": INT32,
            "selector": _LABEL_SELECTOR,
            "template": _TEMPLATE,
            "serviceName": STR,
            "podManagementPolicy": STR,
            "minReadySeconds": INT32,
            "ordinals": {"_": "StatefulSetOrdinals", "start": INT32},
            "updateStrategy": {
                "_": "StatefulSetUpdateStrategy",
                "type": STR,
                "rollingUpdate": {
                    "_": "RollingUpdateStatefulSetStrategy",
                    "partition": INT32,
                    "maxUnavailable": INTSTR,
                },
            },
            "volumeClaimTemplates": [
                {"_": "PersistentVolumeClaim", "metadata": META, "spec": _PVC_SPEC}
            ],
        },
    },
    "Deployment": {
        "_": "Deployment",
        "metadata": META,
        "spec": {
            "_": "DeploymentSpec",
            "replicas": INT32,
            "selector": _LABEL_SELECTOR,
            "template": _TEMPLATE,
            "paused": BOOL,
            "minReadySeconds": INT32,
            "strategy": {
                "_": "DeploymentStrategy",
                "type": STR,
                "rollingUpdate": {
                    "_": "RollingUpdateDeployment",
                    "maxSurge": INTSTR,
                    "maxUnavailable": INTSTR,
                },
            },
        },
    },
    "HorizontalPodAutoscaler": {
        "_": "HorizontalPodAutoscaler",
        "metadata": META,
        "spec": {
            "_": "HorizontalPodAutoscalerSpec",
            "minReplicas": INT32,
            "maxReplicas": INT32,
            "scaleTargetRef": {
                "_": "CrossVersionObjectReference",
                "kind": STR,
                "name": STR,
                "apiVersion": STR,
            },
        },
    },
    "Scale": {
        "_": "Scale",
        "metadata": META,
        "spec": {"_": "ScaleSpec", "replicas": INT32},
    },
}


def _json_type(value: Any, gotype: str = "int64") -> str:
    """How Go's json names a value it cannot store: a number is "number 1.5" only when the
    target is an integer (it was the value that did not fit), else just "number"."""
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, (int, float)):
        return f"number {value}" if gotype.startswith(("int", "uint")) else "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"


def _type_error(
    kind: str, version: str, value: Any, struct: str, path: str, gotype: str
) -> ApiError:
    return bad_request(
        f'{kind} in version "{version}" cannot be handled as a {kind}: json: cannot unmarshal '
        f"{_json_type(value, gotype)} into Go struct field {struct}.{path} of type {gotype}"
    )


def _check(schema: Any, value: Any, kind: str, version: str, struct: str, path: str) -> None:
    if value is None:
        return
    if isinstance(schema, dict):
        if not isinstance(value, dict):
            raise _type_error(kind, version, value, struct, path, "v1." + schema["_"])
        for key, sub in schema.items():
            if key != "_" and key in value:
                _check(
                    sub, value[key], kind, version, schema["_"], f"{path}.{key}" if path else key
                )
        return
    if isinstance(schema, list):
        if not isinstance(value, list):
            raise _type_error(kind, version, value, struct, path, "[]v1." + schema[0].get("_", ""))
        for item in value:
            _check(schema[0], item, kind, version, struct, path)
        return
    if schema == INTSTR:
        # IntOrString.UnmarshalJSON decodes a non-string into an int32 itself, so Go reports
        # the error without the field's path.
        if isinstance(value, str) or (
            isinstance(value, int) and not isinstance(value, bool) and -(2**31) <= value < 2**31
        ):
            return
        raise bad_request(
            f'{kind} in version "{version}" cannot be handled as a {kind}: json: cannot '
            f"unmarshal {_json_type(value, INT32)} into Go value of type int32"
        )
    ok = {
        INT32: lambda v: isinstance(v, int) and not isinstance(v, bool) and -(2**31) <= v < 2**31,
        INT64: lambda v: isinstance(v, int) and not isinstance(v, bool),
        STR: lambda v: isinstance(v, str),
        BOOL: lambda v: isinstance(v, bool),
        SMAP: lambda v: isinstance(v, dict) and all(isinstance(x, str) for x in v.values()),
        SLIST: lambda v: isinstance(v, list) and all(isinstance(x, str) for x in v),
    }[schema](value)
    if not ok:
        gotype = {SMAP: "map[string]string", SLIST: "[]string"}.get(schema, schema)
        raise _type_error(kind, version, value, struct, path, gotype)


_STRUCT_META = (
    'struct { APIVersion string "json:\\"apiVersion,omitempty\\""; '
    'Kind string "json:\\"kind,omitempty\\"" }'
)


def check_decodable(kind: str, version: str, obj: Any) -> None:
    """Raise the 400 Go's decoder would for an object whose modelled fields have wrong types."""
    if not isinstance(obj, dict):
        raise bad_request(
            "couldn't get version/kind; json parse error: json: cannot unmarshal "
            f"{_json_type(obj, 'struct')} into Go value of type {_STRUCT_META}"
        )
    schema = SCHEMAS.get(kind)
    if schema:
        _check(schema, obj, kind, version, schema["_"], "")


# DeleteOptions fields: (Go type, check).
_DELETE_OPTION_FIELDS: dict[str, tuple[str, Any]] = {
    "kind": ("string", lambda v: isinstance(v, str)),
    "apiVersion": ("string", lambda v: isinstance(v, str)),
    "gracePeriodSeconds": (
        "int64",
        lambda v: isinstance(v, int) and not isinstance(v, bool) and -(2**63) <= v < 2**63,
    ),
    "orphanDependents": ("bool", lambda v: isinstance(v, bool)),
    "propagationPolicy": ("v1.DeletionPropagation", lambda v: isinstance(v, str)),
}
_PRECONDITION_FIELDS = {"uid": "types.UID", "resourceVersion": "string"}


def check_delete_options(doc: Any) -> None:
    """Raise the 400 the apiserver answers for a DeleteOptions body Go cannot decode.

    The DELETE handler passes the decoder's error on as a BadRequest without the `cannot be
    handled as` preamble that object bodies get, e.g. `json: cannot unmarshal string into Go
    struct field DeleteOptions.dryRun of type []string`.
    """

    def fail(value: Any, struct: str, path: str, gotype: str) -> ApiError:
        return bad_request(
            f"json: cannot unmarshal {_json_type(value, gotype)} into Go struct field "
            f"{struct}.{path} of type {gotype}"
        )

    if not isinstance(doc, dict):
        raise bad_request(
            "couldn't get version/kind; json parse error: json: cannot unmarshal "
            f"{_json_type(doc, 'struct')} into Go value of type {_STRUCT_META}"
        )
    for key, (gotype, ok) in _DELETE_OPTION_FIELDS.items():
        value = doc.get(key)
        if value is not None and not ok(value):
            raise fail(value, "DeleteOptions", key, gotype)
    dry = doc.get("dryRun")
    if dry is not None:
        if not isinstance(dry, list):
            raise fail(dry, "DeleteOptions", "dryRun", "[]string")
        for item in dry:
            if item is not None and not isinstance(item, str):
                raise fail(item, "DeleteOptions", "dryRun", "string")
    pre = doc.get("preconditions")
    if pre is not None:
        if not isinstance(pre, dict):
            raise fail(pre, "DeleteOptions", "preconditions", "v1.Preconditions")
        for key, gotype in _PRECONDITION_FIELDS.items():
            value = pre.get(key)
            if value is not None and not isinstance(value, str):
                raise fail(value, "Preconditions", f"preconditions.{key}", gotype)


# --- defaulting ------------------------------------------------------------------------------


def _default_container(c: dict[str, Any]) -> None:
    c.setdefault("resources", {})
    c.setdefault("terminationMessagePath", "/dev/termination-log")
    c.setdefault("terminationMessagePolicy", "File")
    image = c.get("image") or ""
    tail = image.rsplit("/", 1)[-1]
    untagged_or_latest = "@" not in image and (":" not in tail or tail.endswith(":latest"))
    c.setdefault("imagePullPolicy", "Always" if untagged_or_latest else "IfNotPresent")
    for port in c.get("ports") or []:
        if isinstance(port, dict):
            port.setdefault("protocol", "TCP")


def default_pod_spec(spec: dict[str, Any]) -> None:
    """Fill a PodSpec as SetDefaults_PodSpec and the defaulting admission plugins do."""
    spec.setdefault("restartPolicy", "Always")
    spec.setdefault("terminationGracePeriodSeconds", 30)
    spec.setdefault("dnsPolicy", "ClusterFirst")
    spec.setdefault("securityContext", {})
    spec.setdefault("schedulerName", "default-scheduler")
    for c in (spec.get("containers") or []) + (spec.get("initContainers") or []):
        if isinstance(c, dict):
            _default_container(c)
    for v in spec.get("volumes") or []:
        if isinstance(v, dict) and not any(k for k in v if k != "name"):
            v["emptyDir"] = {}


def _default_template(tpl: dict[str, Any]) -> None:
    meta = tpl.setdefault("metadata", {})
    if isinstance(meta, dict):
        meta.setdefault("creationTimestamp", None)
    spec = tpl.setdefault("spec", {})
    if isinstance(spec, dict):
        default_pod_spec(spec)


def _default_pvc_spec(spec: dict[str, Any]) -> None:
    spec.setdefault("volumeMode", "Filesystem")


def apply_defaults(rt: R.ResourceType, obj: dict[str, Any], creating: bool) -> None:
    """Mutate `obj` in place with the defaults the apiserver applies to `rt`."""
    meta = obj.setdefault("metadata", {})
    spec = obj.get("spec")
    rules = KIND_RULES.get(rt.kind)
    if rules is not None:
        rules.default(obj, creating)
    elif rt is R.NAMESPACES:
        meta.setdefault("labels", {})["kubernetes.io/metadata.name"] = meta.get("name", "")
        obj.setdefault("spec", {}).setdefault("finalizers", ["kubernetes"])
        if creating:
            obj["status"] = {"phase": "Active"}
    elif rt is R.PODS:
        spec = obj.setdefault("spec", {})
        default_pod_spec(spec)
        if creating:
            spec.setdefault("serviceAccountName", "default")
            spec.setdefault("serviceAccount", spec["serviceAccountName"])
            spec.setdefault("enableServiceLinks", True)
            spec.setdefault("priority", 0)
            spec.setdefault("preemptionPolicy", "PreemptLowerPriority")
            spec.setdefault(
                "tolerations",
                [
                    {
                        "key": f"node.kubernetes.io/{t}",
                        "operator": "Exists",
                        "effect": "NoExecute",
                        "tolerationSeconds": 300,
                    }
                    for t in ("not-ready", "unreachable")
                ],
            )
            obj["status"] = {"phase": "Pending", "qosClass": _qos_class(spec)}
    elif rt is R.PVCS:
        spec = obj.setdefault("spec", {})
        _default_pvc_spec(spec)
        snapshotkinds.pvc_normalize_data_sources(spec)
        if creating:
            spec.setdefault("storageClassName", "standard")
            obj["status"] = {"phase": "Pending"}
    elif rt is R.STATEFULSETS and isinstance(spec, dict):
        spec.setdefault("replicas", 1)
        spec.setdefault("podManagementPolicy", "OrderedReady")
        # SetDefaults_StatefulSet: RollingUpdate with partition 0.
        strategy = spec.get("updateStrategy")
        if not isinstance(strategy, dict):
            strategy = spec["updateStrategy"] = {}
        if not strategy.get("type"):
            strategy["type"] = "RollingUpdate"
        if strategy["type"] == "RollingUpdate":
            rolling = strategy.get("rollingUpdate")
            if not isinstance(rolling, dict):
                rolling = strategy["rollingUpdate"] = {}
            if rolling.get("partition") is None:
                rolling["partition"] = 0
        spec.setdefault("revisionHistoryLimit", 10)
        spec.setdefault(
            "persistentVolumeClaimRetentionPolicy",
            {"whenDeleted": "Retain", "whenScaled": "Retain"},
        )
        if isinstance(spec.get("template"), dict):
            _default_template(spec["template"])
        for tpl in spec.get("volumeClaimTemplates") or []:
            if isinstance(tpl, dict):
                tpl.setdefault("apiVersion", "v1")
                tpl.setdefault("kind", "PersistentVolumeClaim")
                tpl.setdefault("metadata", {}).setdefault("creationTimestamp", None)
                _default_pvc_spec(tpl.setdefault("spec", {}))
                tpl.setdefault("status", {"phase": "Pending"})
        if creating:
            obj["status"] = {"replicas": 0, "availableReplicas": 0}
    elif rt is R.DEPLOYMENTS and isinstance(spec, dict):
        spec.setdefault("replicas", 1)
        # SetDefaults_Deployment: a RollingUpdate strategy (also when only `rollingUpdate` is
        # given) with 25% for whichever bound is missing.
        strategy = spec.get("strategy")
        if not isinstance(strategy, dict):
            strategy = spec["strategy"] = {}
        if not strategy.get("type"):
            strategy["type"] = "RollingUpdate"
        if strategy["type"] == "RollingUpdate":
            rolling = strategy.get("rollingUpdate")
            if not isinstance(rolling, dict):
                rolling = strategy["rollingUpdate"] = {}
            for bound in ("maxUnavailable", "maxSurge"):
                if rolling.get(bound) is None:
                    rolling[bound] = "25%"
        spec.setdefault("revisionHistoryLimit", 10)
        spec.setdefault("progressDeadlineSeconds", 600)
        if isinstance(spec.get("template"), dict):
            _default_template(spec["template"])
        if creating:
            obj["status"] = {}
    elif rt is R.HPAS and isinstance(spec, dict):
        spec.setdefault("minReplicas", 1)
        spec.setdefault(
            "metrics",
            [
                {
                    "type": "Resource",
                    "resource": {
                        "name": "cpu",
                        "target": {"type": "Utilization", "averageUtilization": 80},
                    },
                }
            ],
        )
        if creating:
            obj["status"] = {"desiredReplicas": 0}


def _qos_class(spec: dict[str, Any]) -> str:
    containers = [c for c in spec.get("containers") or [] if isinstance(c, dict)]
    res = [c.get("resources") or {} for c in containers]
    if not any(r.get("requests") or r.get("limits") for r in res):
        return "BestEffort"
    guaranteed = all(
        (r.get("limits") or {}).get(k) is not None
        and (r.get("requests") or r.get("limits") or {}).get(k) == (r.get("limits") or {}).get(k)
        for r in res
        for k in ("cpu", "memory")
    )
    return "Guaranteed" if guaranteed else "Burstable"


# --- validation ----------------------------------------------------------------------------


def _validate_containers(path: str, spec: dict[str, Any]) -> list[dict[str, str]]:
    causes: list[dict[str, str]] = []
    containers = spec.get("containers")
    if not containers:
        causes.append(req(f"{path}.containers"))
        return causes
    seen: set[str] = set()
    for i, c in enumerate(containers):
        cpath = f"{path}.containers[{i}]"
        if not isinstance(c, dict):
            causes.append(inv(cpath, c, "must be an object"))
            continue
        cname = c.get("name") or ""
        if not cname:
            causes.append(req(f"{cpath}.name"))
        else:
            for why in dns_label_errors(cname):
                causes.append(inv(f"{cpath}.name", cname, why))
            if cname in seen:
                causes.append(cause("Duplicate", f"{cpath}.name", f"Duplicate value: {q(cname)}"))
            seen.add(cname)
        if not c.get("image"):
            causes.append(req(f"{cpath}.image"))
    return causes


def _validate_pod_spec(path: str, spec: Any, template: bool) -> list[dict[str, str]]:
    if not isinstance(spec, dict):
        return [req(path)]
    causes = _validate_containers(path, spec)
    policy = spec.get("restartPolicy")
    if template and policy != "Always":
        causes.append(unsupported(f"{path}.restartPolicy", policy, ["Always"]))
    elif policy not in ("Always", "OnFailure", "Never"):
        causes.append(
            unsupported(f"{path}.restartPolicy", policy, ["Always", "OnFailure", "Never"])
        )
    names: set[str] = set()
    for i, v in enumerate(spec.get("volumes") or []):
        vname = v.get("name") if isinstance(v, dict) else None
        if not vname:
            causes.append(req(f"{path}.volumes[{i}].name"))
            continue
        if vname in names:
            causes.append(
                cause("Duplicate", f"{path}.volumes[{i}].name", f"Duplicate value: {q(vname)}")
            )
        names.add(vname)
        pvc = v.get("persistentVolumeClaim")
        if isinstance(pvc, dict) and not pvc.get("claimName"):
            causes.append(req(f"{path}.volumes[{i}].persistentVolumeClaim.claimName"))
    grace = spec.get("terminationGracePeriodSeconds")
    if isinstance(grace, int) and grace < 0:
        causes.append(
            inv(
                f"{path}.terminationGracePeriodSeconds", grace, "must be greater than or equal to 0"
            )
        )
    return causes


def _validate_pvc_spec(path: str, spec: Any) -> list[dict[str, str]]:
    if not isinstance(spec, dict):
        return [req(path)]
    causes: list[dict[str, str]] = []
    modes = spec.get("accessModes")
    if not modes:
        causes.append(req(f"{path}.accessModes"))
    else:
        supported = ["ReadOnlyMany", "ReadWriteMany", "ReadWriteOnce", "ReadWriteOncePod"]
        for mode in modes:
            if mode not in supported:
                causes.append(unsupported(f"{path}.accessModes", mode, supported))
    requests = (spec.get("resources") or {}).get("requests") or {}
    if "storage" not in requests:
        causes.append(req(f"{path}.resources[storage]"))
    return causes + snapshotkinds.pvc_data_source_causes(path, spec)


def _validate_workload(rt: R.ResourceType, obj: dict[str, Any]) -> list[dict[str, str]]:
    spec = obj.get("spec")
    if not isinstance(spec, dict):
        return [req("spec")]
    causes: list[dict[str, str]] = []
    replicas = spec.get("replicas")
    if isinstance(replicas, int) and replicas < 0:
        causes.append(inv("spec.replicas", replicas, "must be greater than or equal to 0"))
    selector = spec.get("selector")
    template = spec.get("template")
    if not selector:
        causes.append(req("spec.selector"))
    elif not selector.get("matchLabels") and not selector.get("matchExpressions"):
        causes.append(inv("spec.selector", "", "empty selector is invalid for " + rt.singular))
    if not isinstance(template, dict):
        causes.append(req("spec.template"))
        return causes
    labels = (template.get("metadata") or {}).get("labels") or {}
    if selector and not labels_match(selector_from_label_selector(selector), labels):
        causes.append(
            inv(
                "spec.template.metadata.labels",
                labels,
                "`selector` does not match template `labels`",
            )
        )
    causes += _validate_pod_spec("spec.template.spec", template.get("spec"), template=True)
    if rt is R.DEPLOYMENTS:
        causes += _validate_deployment_strategy(spec)
    if rt is R.STATEFULSETS:
        causes += _validate_statefulset_extras(spec)
        policy = spec.get("podManagementPolicy")
        if policy not in ("OrderedReady", "Parallel"):
            causes.append(
                unsupported("spec.podManagementPolicy", policy, ["OrderedReady", "Parallel"])
            )
        for i, tpl in enumerate(spec.get("volumeClaimTemplates") or []):
            tpath = f"spec.volumeClaimTemplates[{i}]"
            tname = ((tpl or {}).get("metadata") or {}).get("name")
            if not tname:
                causes.append(req(f"{tpath}.metadata.name"))
            causes += _validate_pvc_spec(f"{tpath}.spec", (tpl or {}).get("spec"))
    return causes


PERCENT_MSG = (
    "a valid percent string must be a numeric string followed by an ending '%' (e.g. '1%',  or "
    "'93%', regex used for validation is '[0-9]+%')"
)
_PERCENT = re.compile(r"^[0-9]+%$")


def _go_intstr(value: int | str) -> str:
    """An intstr.IntOrString as field.Invalid prints it (Go's %#v of the struct)."""
    if isinstance(value, str):
        return f"intstr.IntOrString{{Type:1, IntVal:0, StrVal:{q(value)}}}"
    return f'intstr.IntOrString{{Type:0, IntVal:{value}, StrVal:""}}'


def _go_rolling_sts(rolling: Any) -> str:
    """A RollingUpdateStatefulSetStrategy as field.Invalid prints it (%#v of the struct)."""
    rolling = rolling if isinstance(rolling, dict) else {}
    partition = rolling.get("partition") or 0
    unavailable = go_pointer("intstr.IntOrString", rolling.get("maxUnavailable"))
    return (
        f"apps.RollingUpdateStatefulSetStrategy{{Partition:{partition}, "
        f"MaxUnavailable:{unavailable}}}"
    )


def _intstr_value(value: Any) -> int | None:
    """The number in an int or a valid percent string (getIntOrPercentValue)."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str) and _PERCENT.match(value):
        return int(value[:-1])
    return None


def _validate_int_or_percent(path: str, value: Any) -> list[dict[str, str]]:
    """ValidatePositiveIntOrPercent: a non-negative int or a `<digits>%` string."""
    if value is None:
        return []
    if isinstance(value, str):
        if not _PERCENT.match(value):
            return [cause("Invalid", path, f"Invalid value: {_go_intstr(value)}: {PERCENT_MSG}")]
        return []
    if isinstance(value, int) and value < 0:
        return [inv(path, value, "must be greater than or equal to 0")]
    return []


def _not_over_100_percent(path: str, value: Any) -> list[dict[str, str]]:
    if isinstance(value, str) and _PERCENT.match(value) and int(value[:-1]) > 100:
        return [
            cause(
                "Invalid",
                path,
                f"Invalid value: {_go_intstr(value)}: must not be greater than 100%",
            )
        ]
    return []


def _validate_deployment_strategy(spec: dict[str, Any]) -> list[dict[str, str]]:
    """ValidateDeploymentStrategy and ValidateRollingUpdateDeployment."""
    strategy = spec.get("strategy") or {}
    stype = strategy.get("type")
    rolling = strategy.get("rollingUpdate")
    path = "spec.strategy.rollingUpdate"
    if stype == "Recreate":
        if rolling is not None:
            return [forbid(path, "may not be specified when strategy `type` is 'Recreate'")]
        return []
    if stype != "RollingUpdate":
        shown = (
            f"apps.DeploymentStrategy{{Type:{q(stype or '')}, "
            f"RollingUpdate:{go_pointer('apps.RollingUpdateDeployment', rolling)}}}"
        )
        return [
            cause(
                "NotSupported",
                "spec.strategy",
                f'Unsupported value: {shown}: supported values: "Recreate", "RollingUpdate"',
            )
        ]
    if not isinstance(rolling, dict):
        return [
            cause("Required", path, "Required value: this should be defaulted and never be nil")
        ]
    surge, unavailable = rolling.get("maxSurge"), rolling.get("maxUnavailable")
    causes = _validate_int_or_percent(f"{path}.maxUnavailable", unavailable)
    causes += _validate_int_or_percent(f"{path}.maxSurge", surge)
    if _intstr_value(unavailable) == 0 and _intstr_value(surge) == 0:
        causes.append(
            cause(
                "Invalid",
                f"{path}.maxUnavailable",
                f"Invalid value: {_go_intstr(unavailable)}: may not be 0 when `maxSurge` is 0",
            )
        )
    causes += _not_over_100_percent(f"{path}.maxUnavailable", unavailable)
    return causes


def _validate_statefulset_extras(spec: dict[str, Any]) -> list[dict[str, str]]:
    """Ordinals and the update strategy (ValidateStatefulSetSpec)."""
    causes: list[dict[str, str]] = []
    start = (spec.get("ordinals") or {}).get("start")
    if isinstance(start, int) and start < 0:
        causes.append(inv("spec.ordinals.start", start, "must be greater than or equal to 0"))
    strategy = spec.get("updateStrategy") or {}
    stype = strategy.get("type")
    rolling = strategy.get("rollingUpdate")
    if stype == "OnDelete":
        if rolling is not None:
            causes.append(
                cause(
                    "Invalid",
                    "spec.updateStrategy.rollingUpdate",
                    f"Invalid value: {_go_rolling_sts(rolling)}: "
                    "only allowed for updateStrategy 'RollingUpdate'",
                )
            )
    elif stype != "RollingUpdate":
        causes.append(
            cause(
                "Invalid",
                "spec.updateStrategy",
                f"Invalid value: apps.StatefulSetUpdateStrategy{{Type:{q(stype or '')}, "
                "RollingUpdate:"
                f"{go_pointer('apps.RollingUpdateStatefulSetStrategy', rolling)}}}: "
                "must be 'RollingUpdate' or 'OnDelete'",
            )
        )
    elif isinstance(rolling, dict):
        path = "spec.updateStrategy.rollingUpdate"
        partition = rolling.get("partition")
        if isinstance(partition, int) and partition < 0:
            causes.append(inv(f"{path}.partition", partition, "must be greater than or equal to 0"))
        unavailable = rolling.get("maxUnavailable")
        causes += _validate_int_or_percent(f"{path}.maxUnavailable", unavailable)
        if _intstr_value(unavailable) == 0:
            causes.append(
                cause(
                    "Invalid",
                    f"{path}.maxUnavailable",
                    f"Invalid value: {_go_intstr(unavailable)}: cannot be 0",
                )
            )
        causes += _not_over_100_percent(f"{path}.maxUnavailable", unavailable)
    return causes


def _validate_hpa(obj: dict[str, Any]) -> list[dict[str, str]]:
    spec = obj.get("spec")
    if not isinstance(spec, dict):
        return [req("spec")]
    causes: list[dict[str, str]] = []
    ref = spec.get("scaleTargetRef") or {}
    if not ref.get("kind"):
        causes.append(req("spec.scaleTargetRef.kind"))
    if not ref.get("name"):
        causes.append(req("spec.scaleTargetRef.name"))
    max_r = spec.get("maxReplicas")
    min_r = spec.get("minReplicas")
    if not isinstance(max_r, int) or max_r < 1:
        causes.append(inv("spec.maxReplicas", max_r, "must be greater than or equal to 1"))
    if isinstance(min_r, int):
        if min_r < 1:
            causes.append(inv("spec.minReplicas", min_r, "must be greater than or equal to 1"))
        elif isinstance(max_r, int) and min_r > max_r:
            causes.append(
                inv("spec.minReplicas", min_r, "must be less than or equal to maxReplicas")
            )
    return causes


def validate(rt: R.ResourceType, obj: dict[str, Any]) -> None:
    """Raise 422 Invalid when a (defaulted) object fails its kind's validation."""
    meta = obj.get("metadata") or {}
    causes = meta_causes(rt, meta)
    if rt is R.PODS:
        causes += _validate_pod_spec("spec", obj.get("spec"), template=False)
    elif rt is R.PVCS:
        causes += _validate_pvc_spec("spec", obj.get("spec"))
    elif rt in (R.STATEFULSETS, R.DEPLOYMENTS):
        causes += _validate_workload(rt, obj)
    elif rt is R.HPAS:
        causes += _validate_hpa(obj)
    elif rt.kind in KIND_RULES:
        causes += KIND_RULES[rt.kind].validate(obj)
    if causes:
        raise invalid(rt.kind, rt.group, meta.get("name") or "", causes)


def canonicalize(rt: R.ResourceType, obj: dict[str, Any]) -> None:
    """Rewrite a valid object in place into the form its registry stores (the strategy's
    Canonicalize: Endpoints subsets are repacked, empty ConfigMap maps dropped)."""
    rules = KIND_RULES.get(rt.kind)
    if rules is not None:
        rules.canonicalize(obj)


_STS_MUTABLE = (
    "replicas",
    "ordinals",
    "template",
    "updateStrategy",
    "persistentVolumeClaimRetentionPolicy",
    "minReadySeconds",
)


def validate_update(rt: R.ResourceType, old: dict[str, Any], new: dict[str, Any]) -> None:
    """Raise 422 for changes the kind forbids (immutable fields), after `validate`."""
    causes: list[dict[str, str]] = []
    name = old["metadata"]["name"]
    old_spec, new_spec = old.get("spec") or {}, new.get("spec") or {}
    if rt is R.STATEFULSETS:
        rest_old = {k: v for k, v in old_spec.items() if k not in _STS_MUTABLE}
        rest_new = {k: v for k, v in new_spec.items() if k not in _STS_MUTABLE}
        if rest_old != rest_new:
            causes.append(
                forbid(
                    "spec",
                    "updates to statefulset spec for fields other than 'replicas', 'ordinals', "
                    "'template', 'updateStrategy', 'persistentVolumeClaimRetentionPolicy' and "
                    "'minReadySeconds' are forbidden",
                )
            )
    elif rt is R.DEPLOYMENTS:
        if old_spec.get("selector") != new_spec.get("selector"):
            causes.append(inv("spec.selector", new_spec.get("selector"), "field is immutable"))
    elif rt is R.PVCS:
        strip = ("resources", "volumeAttributesClassName", "volumeName")
        if {k: v for k, v in old_spec.items() if k not in strip} != {
            k: v for k, v in new_spec.items() if k not in strip
        } or (
            old_spec.get("volumeName") and old_spec.get("volumeName") != new_spec.get("volumeName")
        ):
            causes.append(
                forbid(
                    "spec",
                    "spec is immutable after creation except resources.requests and "
                    "volumeAttributesClassName for bound claims",
                )
            )
    elif rt.kind in KIND_RULES:
        causes += KIND_RULES[rt.kind].validate_update(old, new)
    elif rt is R.PODS and _pod_spec_frozen(old_spec) != _pod_spec_frozen(new_spec):
        causes.append(
            forbid(
                "spec",
                "pod updates may not change fields other than `spec.containers[*].image`,"
                "`spec.initContainers[*].image`,`spec.activeDeadlineSeconds`,"
                "`spec.tolerations` (only additions to existing tolerations),"
                "`spec.terminationGracePeriodSeconds` (allow it to be set to 1 if it was "
                "previously negative)",
            )
        )
    if causes:
        raise invalid(rt.kind, rt.group, name, causes)


def _pod_spec_frozen(spec: dict[str, Any]) -> dict[str, Any]:
    frozen = {
        k: v
        for k, v in spec.items()
        if k not in ("activeDeadlineSeconds", "tolerations", "terminationGracePeriodSeconds")
    }
    for key in ("containers", "initContainers"):
        if isinstance(frozen.get(key), list):
            frozen[key] = [
                {k: v for k, v in c.items() if k != "image"} if isinstance(c, dict) else c
                for c in frozen[key]
            ]
    return frozen
