"""The REST semantics of the API server: get, list, watch setup, create, update, patch, delete.

`Api.handle` takes a decoded HTTP request and returns a `Response` or, for watches, a
`WatchPlan` that the HTTP layer streams. Every write builds a new object from a copy, checks
it completely (decoding, defaulting, validation, versions) and only then stores it, so a
refused request never leaves anything half-written.
"""

from __future__ import annotations

import json
import random
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import yaml

from . import kinds, openapi, protobuf, schema, tables
from . import resources as R
from .errors import (
    ApiError,
    already_exists,
    bad_request,
    cause,
    conflict,
    forbidden,
    internal,
    invalid,
    method_not_allowed,
    no_route,
    not_acceptable,
    not_found,
    stale,
    unsupported_media_type,
)
from .patch import APPLY_PATCH, JSON_PATCH, PATCH_TYPES, STRATEGIC_MERGE_PATCH, apply_patch
from .requestinfo import RequestInfo
from .selectors import (
    FieldReq,
    Requirement,
    fields_match,
    format_label_selector,
    labels_match,
    parse_field_selector,
    parse_label_selector,
)
from .store import Store
from .util import clone, random_suffix, rfc3339

BODY_TYPES = [
    "application/json",
    "application/yaml",
    "application/vnd.kubernetes.protobuf",
    "application/cbor",
]
PVC_PROTECTION = "kubernetes.io/pvc-protection"
# The NamespaceLifecycle admission plugin refuses to delete these.
IMMORTAL_NAMESPACES = ("default", "kube-system", "kube-public")
FOREGROUND = "foregroundDeletion"
MAX_WATCH_TIMEOUT = 365 * 24 * 3600  # seconds; a larger timeoutSeconds is clamped to it
ORPHAN = "orphan"

# Fields a fieldSelector may use, per resource (pkg/registry/*/strategy.go GetAttrs).
_FIELDS = {
    "pods": {
        "spec.nodeName",
        "spec.restartPolicy",
        "spec.schedulerName",
        "spec.serviceAccountName",
        "spec.hostNetwork",
        "status.phase",
        "status.podIP",
        "status.nominatedNodeName",
    },
    "namespaces": {"status.phase"},
    "nodes": {"spec.unschedulable"},
    "statefulsets": set(),
    "deployments": set(),
    "persistentvolumeclaims": set(),
    "horizontalpodautoscalers": set(),
}


@dataclass
class Response:
    """A complete (non-streaming) answer."""

    status: int
    body: Any
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class WatchPlan:
    """Everything the HTTP layer needs to stream a watch."""

    rt: R.ResourceType
    namespace: str | None
    labels: list[Requirement]
    fields: list[FieldReq]
    since: int | None  # None: start with synthetic ADDED events for current objects
    timeout: float
    bookmarks: bool
    initial_events_end: bool
    table: bool


@dataclass
class DeleteOptions:
    grace: int | None = None
    propagation: str | None = None
    dry_run: bool = False
    uid: str | None = None
    resource_version: str | None = None


def _q(query: Mapping[str, list[str]], name: str) -> str | None:
    values = query.get(name)
    return values[-1] if values else None


def media_type(header: str | None) -> str:
    """The bare media type of a Content-Type header, lower-cased."""
    return (header or "").split(";", 1)[0].strip().lower()


def wants_table(accept: str | None) -> bool:
    """Whether the Accept header asks for a meta.k8s.io Table (kubectl get)."""
    return bool(accept) and any(
        "as=table" in part.replace(" ", "").lower() for part in accept.split(",")
    )


def _check_acceptable(accept: str | None) -> None:
    if not accept:
        return
    for part in accept.split(","):
        mt = media_type(part)
        if mt in (
            "",
            "*/*",
            "application/*",
            "application/json",
            "application/yaml",
        ) or mt.endswith("+json"):
            return
    raise not_acceptable()


class Api:
    """Request semantics over a Store. Thread-safe: every operation holds the store lock."""

    def __init__(self, store: Store, server_address: str = "127.0.0.1") -> None:
        self.store = store
        self.server_address = server_address

    # --- entry point ---------------------------------------------------------------------

    def handle(
        self,
        method: str,
        path: str,
        query: Mapping[str, list[str]],
        headers: Mapping[str, str],
        body: bytes,
        info: RequestInfo,
    ) -> Response | WatchPlan:
        """Serve one request. Raises ApiError for refusals."""
        if not info.is_resource:
            return self._non_resource(method, path)
        _check_acceptable(headers.get("Accept"))
        rt = R.lookup(info.api_group, info.api_version, info.resource)
        if rt is None:
            raise no_route()
        if info.subresource and info.subresource not in rt.subresources:
            raise no_route()
        if info.subresource == "finalize" and method != "PUT":
            raise method_not_allowed()
        if rt.namespaced:
            if info.name and not info.namespace:
                raise no_route()
        elif info.namespace and rt is not R.NAMESPACES:
            raise no_route()
        namespace = info.namespace if rt.namespaced else ""
        verb = info.verb
        table = wants_table(headers.get("Accept"))
        if verb == "get":
            return Response(
                200, self._get(rt, namespace, info.name, info.subresource, query, table)
            )
        if verb in ("list", "watch"):
            if method != "GET":
                raise method_not_allowed()
            ns = namespace if rt.namespaced and info.namespace else None
            if verb == "watch":
                return self._watch_plan(rt, ns, query, table)
            return Response(200, self.list_body(rt, ns, query, table))
        content_type = headers.get("Content-Type")
        if verb == "create":
            if info.name:
                raise method_not_allowed()
            obj = self._decode_body(content_type, body)
            return self.create(rt, namespace, obj, query)
        if verb == "update":
            if not info.name:
                raise method_not_allowed()
            obj = self._decode_body(content_type, body)
            return self.update(rt, namespace, info.name, info.subresource, obj, query)
        if verb == "patch":
            if not info.name:
                raise method_not_allowed()
            return self.patch(rt, namespace, info.name, info.subresource, content_type, body, query)
        if verb == "delete":
            if info.subresource:
                raise method_not_allowed()
            opts = self._delete_options(content_type, body, query)
            return self.delete(rt, namespace, info.name, opts)
        if verb == "deletecollection":
            if "deletecollection" not in rt.verbs:
                raise method_not_allowed()
            opts = self._delete_options(content_type, body, query)
            return self.delete_collection(rt, namespace if info.namespace else None, opts, query)
        raise method_not_allowed()

    def _non_resource(self, method: str, path: str) -> Response:
        if method not in ("GET", "HEAD"):
            raise method_not_allowed() if self._known_path(path) else no_route()
        p = "/" + path.strip("/")
        if p == "/version":
            return Response(200, R.SERVER_VERSION)
        if p == "/api":
            return Response(200, R.api_versions(self.server_address))
        if p == "/apis":
            return Response(200, R.api_group_list())
        if p == "/openapi/v3":
            return Response(200, openapi.index())
        if p.startswith("/openapi/v3/"):
            doc = openapi.document(p[len("/openapi/v3/") :])
            if doc:
                return Response(200, doc)
        if p in ("/healthz", "/livez", "/readyz"):
            return Response(200, b"ok", {"Content-Type": "text/plain; charset=utf-8"})
        parts = p.strip("/").split("/")
        if parts[0] == "api" and len(parts) == 2:
            doc = R.resource_list("", parts[1])
            if doc:
                return Response(200, doc)
        if parts[0] == "apis" and len(parts) == 2:
            doc = R.api_group(parts[1])
            if doc:
                return Response(200, doc)
        if parts[0] == "apis" and len(parts) == 3:
            doc = R.resource_list(parts[1], parts[2])
            if doc:
                return Response(200, doc)
        raise no_route()

    def _known_path(self, path: str) -> bool:
        return "/" + path.strip("/") in ("/version", "/api", "/apis", "/api/v1", "/apis/apps/v1")

    # --- decoding --------------------------------------------------------------------------

    def _decode_body(self, content_type: str | None, body: bytes) -> Any:
        mt = media_type(content_type)
        if mt in ("", "application/json"):
            try:
                return json.loads(body.decode("utf-8") if body else "")
            except (UnicodeDecodeError, json.JSONDecodeError) as e:
                raise bad_request(
                    f"couldn't get version/kind; json parse error: {_json_error(e)}"
                ) from None
        if mt == "application/vnd.kubernetes.protobuf":
            try:
                return protobuf.decode(body)
            except (protobuf.Undecodable, UnicodeDecodeError) as e:
                raise ApiError(
                    415,
                    "UnsupportedMediaType",
                    f"kubesim cannot decode this protobuf body: {e}",
                    {},
                ) from None
        if mt in ("application/yaml", "text/yaml", "application/x-yaml"):
            try:
                return yaml.safe_load(body.decode("utf-8"))
            except (UnicodeDecodeError, yaml.YAMLError) as e:
                raise bad_request(f"error converting YAML to JSON: {e}") from None
        raise unsupported_media_type(mt, BODY_TYPES)

    def _check_type_meta(self, obj: Any, kind: str, api_version: str) -> None:
        kinds.check_decodable(kind, api_version.rsplit("/", 1)[-1], obj)
        got_av, got_kind = obj.get("apiVersion"), obj.get("kind")
        if got_av not in (None, "") and got_av != api_version:
            raise bad_request(
                f"the API version in the data ({got_av}) does not match the expected API "
                f"version ({api_version})"
            )
        if got_kind not in (None, "") and got_kind != kind:
            raise bad_request(
                f"the kind in the data ({got_kind}) does not match the expected kind ({kind})"
            )

    def _dry_run(self, values: list[str] | None, options_kind: str) -> bool:
        values = [v for v in (values or []) if v != ""]
        if not values:
            return False
        if values != ["All"]:
            shown = _go_strings(values)
            raise invalid(
                options_kind,
                "meta.k8s.io",
                "",
                [
                    cause(
                        "NotSupported",
                        "dryRun",
                        f'Unsupported value: {shown}: supported values: "All"',
                    )
                ],
            )
        return True

    # --- reads -------------------------------------------------------------------------------

    def _require(self, rt: R.ResourceType, namespace: str, name: str) -> dict[str, Any]:
        obj = self.store.get(rt.plural, namespace, name)
        if obj is None:
            raise not_found(rt.plural, rt.group, name)
        return obj

    def _get(
        self,
        rt: R.ResourceType,
        namespace: str,
        name: str,
        sub: str,
        query: Mapping[str, list[str]],
        table: bool,
    ) -> Any:
        obj = self._require(rt, namespace, name)
        if sub == "scale":
            return scale_of(rt, obj)
        if table and not sub:
            return tables.table(rt, [obj], str(self.store.rv), _q(query, "includeObject"))
        return obj

    def _selectors(
        self, rt: R.ResourceType, query: Mapping[str, list[str]]
    ) -> tuple[list[Requirement], list[FieldReq]]:
        label_reqs = parse_label_selector(_q(query, "labelSelector") or "")
        allowed = {"metadata.name", "metadata.namespace"} | _FIELDS.get(rt.plural, set())
        field_reqs = parse_field_selector(_q(query, "fieldSelector") or "", allowed.__contains__)
        return label_reqs, field_reqs

    def select(
        self,
        rt: R.ResourceType,
        namespace: str | None,
        label_reqs: list[Requirement],
        field_reqs: list[FieldReq],
    ) -> list[dict[str, Any]]:
        """Stored objects matching namespace and selectors (read-only references)."""
        return [
            o
            for o in self.store.list(rt.plural, namespace)
            if labels_match(label_reqs, o["metadata"].get("labels")) and fields_match(field_reqs, o)
        ]

    def list_body(
        self,
        rt: R.ResourceType,
        namespace: str | None,
        query: Mapping[str, list[str]],
        table: bool = False,
    ) -> dict[str, Any]:
        """A `<Kind>List` (or a Table) for a list request."""
        label_reqs, field_reqs = self._selectors(rt, query)
        with self.store.lock:
            items = self.select(rt, namespace, label_reqs, field_reqs)
            rv = str(self.store.rv)
        if table:
            return tables.table(rt, items, rv, _q(query, "includeObject"))
        return {
            "kind": rt.list_kind,
            "apiVersion": rt.api_version,
            "metadata": {"resourceVersion": rv},
            "items": [
                o if rt.custom else {k: v for k, v in o.items() if k not in ("kind", "apiVersion")}
                for o in items
            ],
        }

    def _watch_plan(
        self,
        rt: R.ResourceType,
        namespace: str | None,
        query: Mapping[str, list[str]],
        table: bool,
    ) -> WatchPlan:
        label_reqs, field_reqs = self._selectors(rt, query)
        rv_text = _q(query, "resourceVersion") or ""
        send_initial = (_q(query, "sendInitialEvents") or "").lower() == "true"
        since: int | None
        if rv_text in ("", "0") or send_initial:
            since = None
        else:
            try:
                since = int(rv_text)
            except ValueError:
                raise bad_request(f'invalid resource version "{rv_text}"') from None
        timeout_text = _q(query, "timeoutSeconds")
        if timeout_text:
            try:
                seconds = int(timeout_text)
                if not -(2**63) <= seconds < 2**63:  # Go parses it as an int64
                    raise ValueError(timeout_text)
            except ValueError:
                raise bad_request(f'invalid value for timeoutSeconds: "{timeout_text}"') from None
            # Longer than anything waits for: the same as for ever, and short enough for
            # Python's timed waits (which overflow past ~292 years, as Go's Duration does).
            timeout = float(min(seconds, MAX_WATCH_TIMEOUT))
        else:
            # The real server closes watches after a random 30 to 60 minutes.
            timeout = random.uniform(1800, 3600)
        bookmarks = (_q(query, "allowWatchBookmarks") or "").lower() == "true"
        return WatchPlan(
            rt,
            namespace,
            label_reqs,
            field_reqs,
            since,
            timeout,
            bookmarks,
            send_initial and bookmarks,
            table,
        )

    # --- create ------------------------------------------------------------------------------

    def _check_namespace_open(self, rt: R.ResourceType, namespace: str, name: str) -> None:
        if not rt.namespaced:
            return
        ns = self.store.get("namespaces", "", namespace)
        if ns is None:
            raise not_found("namespaces", "", namespace)
        if ns["metadata"].get("deletionTimestamp"):
            err = forbidden(
                rt.plural,
                rt.group,
                name,
                f"unable to create new content in namespace {namespace} "
                "because it is being terminated",
            )
            err.details = dict(
                err.details or {},
                causes=[
                    {
                        "reason": "NamespaceTerminating",
                        "message": f"namespace {namespace} is being terminated",
                        "field": "metadata.namespace",
                    }
                ],
            )
            raise err

    def create(
        self,
        rt: R.ResourceType,
        namespace: str,
        obj: Any,
        query: Mapping[str, list[str]],
    ) -> Response:
        """POST to a collection."""
        self._check_type_meta(obj, rt.kind, rt.api_version)
        dry = self._dry_run(query.get("dryRun"), "CreateOptions")
        obj = clone(obj)
        obj["apiVersion"], obj["kind"] = rt.api_version, rt.kind
        warnings = schema.check_fields(
            rt.kind, rt.api_version, obj, schema.mode_of(query.get("fieldValidation"))
        )
        meta = obj.get("metadata")
        if meta is None:
            meta = obj["metadata"] = {}
        if rt.namespaced:
            if meta.get("namespace") and meta["namespace"] != namespace:
                raise bad_request(NS_MISMATCH)
            meta["namespace"] = namespace
        else:
            meta.pop("namespace", None)
        if meta.get("resourceVersion"):
            raise internal("resourceVersion should not be set on objects to be created")
        if not meta.get("name") and meta.get("generateName"):
            meta["name"] = meta["generateName"] + random_suffix()
        for key in (
            "uid",
            "creationTimestamp",
            "deletionTimestamp",
            "deletionGracePeriodSeconds",
            "generation",
            "managedFields",
            "selfLink",
        ):
            meta.pop(key, None)
        kinds.apply_defaults(rt, obj, creating=True)
        kinds.validate(rt, obj)
        kinds.canonicalize(rt, obj)
        with self.store.lock:
            name = meta["name"]
            self._check_namespace_open(rt, namespace, name)
            if self.store.get(rt.plural, namespace, name) is not None:
                raise already_exists(rt.plural, rt.group, name)
            meta["uid"] = str(uuid.uuid4())
            meta["creationTimestamp"] = rfc3339()
            if rt.has_generation:
                meta["generation"] = 1
            if rt is R.PVCS and PVC_PROTECTION not in (meta.get("finalizers") or []):
                meta["finalizers"] = [*(meta.get("finalizers") or []), PVC_PROTECTION]
            obj = _ordered(obj)
            headers = schema.warning_header(warnings)
            if dry:
                return Response(201, obj, headers)
            stored = self.store.put(rt.plural, obj)
            return Response(201, stored, headers)

    # --- update ------------------------------------------------------------------------------

    def update(
        self,
        rt: R.ResourceType,
        namespace: str,
        name: str,
        sub: str,
        obj: Any,
        query: Mapping[str, list[str]],
    ) -> Response:
        """PUT to an object or its status/scale/finalize subresource."""
        if sub == "scale":
            self._check_type_meta(obj, "Scale", "autoscaling/v1")
        else:
            self._check_type_meta(obj, rt.kind, rt.api_version)
        dry = self._dry_run(query.get("dryRun"), "UpdateOptions")
        meta = obj.get("metadata") or {}
        if meta.get("name") != name:
            raise _name_mismatch(meta.get("name"), name)
        if rt.namespaced and meta.get("namespace") and meta["namespace"] != namespace:
            raise bad_request(NS_MISMATCH)
        obj = clone(obj)
        kind, api_version = (
            ("Scale", "autoscaling/v1") if sub == "scale" else (rt.kind, rt.api_version)
        )
        obj["apiVersion"], obj["kind"] = api_version, kind
        mode = schema.mode_of(query.get("fieldValidation"))
        headers = schema.warning_header(schema.check_fields(kind, api_version, obj, mode))
        with self.store.lock:
            current = self._require(rt, namespace, name)
            self._check_rv(rt, current, meta.get("resourceVersion"))
            if sub == "scale":
                resp = self._write_scale(rt, current, obj, dry)
            else:
                resp = self._write(rt, current, obj, sub, dry)
            resp.headers.update(headers)
            return resp

    def _check_rv(self, rt: R.ResourceType, current: dict[str, Any], rv: Any) -> None:
        if rv in (None, ""):
            return
        if not isinstance(rv, str) or not rv.isdigit():
            raise bad_request(f'invalid resourceVersion: "{rv}"')
        if rv != current["metadata"]["resourceVersion"]:
            raise stale(rt.plural, rt.group, current["metadata"]["name"])

    def _write(
        self,
        rt: R.ResourceType,
        current: dict[str, Any],
        new: dict[str, Any],
        sub: str,
        dry: bool,
    ) -> Response:
        """Finish an update: merge server-owned fields, validate, bump versions, store."""
        new = merge_update(rt, current, new, sub)
        kinds.apply_defaults(rt, new, creating=False)
        kinds.validate(rt, new)
        kinds.validate_update(rt, current, new)
        kinds.canonicalize(rt, new)
        cur_meta, new_meta = current["metadata"], new["metadata"]
        if cur_meta.get("deletionTimestamp"):
            added = set(new_meta.get("finalizers") or []) - set(cur_meta.get("finalizers") or [])
            if added:
                raise invalid(
                    rt.kind,
                    rt.group,
                    cur_meta["name"],
                    [
                        cause(
                            "Forbidden",
                            "metadata.finalizers",
                            "Forbidden: no new finalizers can be added if the object is being "
                            f"deleted, found new finalizers {_go_strings(sorted(added))}",
                        )
                    ],
                )
        if rt.has_generation and _spec_of(rt, current) != _spec_of(rt, new):
            new_meta["generation"] = int(cur_meta.get("generation") or 1) + 1
        new = _ordered(new)
        if _same(current, new):
            return Response(200, current)  # a no-op write changes nothing, not even the version
        if dry:
            return Response(200, new)
        if (
            new_meta.get("deletionTimestamp")
            and not new_meta.get("finalizers")
            and _gone_when_free(rt, new)
        ):
            final = self.store.remove(rt.plural, new_meta.get("namespace", ""), new_meta["name"])
            return Response(200, final)
        return Response(200, self.store.put(rt.plural, new))

    def _write_scale(
        self, rt: R.ResourceType, current: dict[str, Any], scale: dict[str, Any], dry: bool
    ) -> Response:
        replicas = (scale.get("spec") or {}).get("replicas", 0)
        if replicas is None:
            replicas = 0
        if replicas < 0:
            raise invalid(
                "Scale",
                "autoscaling",
                current["metadata"]["name"],
                [
                    cause(
                        "Invalid",
                        "spec.replicas",
                        f"Invalid value: {replicas}: must be greater than or equal to 0",
                    )
                ],
            )
        new = clone(current)
        new.setdefault("spec", {})["replicas"] = replicas
        resp = self._write(rt, current, new, "", dry)
        return Response(200, scale_of(rt, resp.body))

    # --- patch -------------------------------------------------------------------------------

    def patch(
        self,
        rt: R.ResourceType,
        namespace: str,
        name: str,
        sub: str,
        content_type: str | None,
        body: bytes,
        query: Mapping[str, list[str]],
    ) -> Response:
        """PATCH an object or a subresource with any of the accepted patch types."""
        mt = media_type(content_type)
        accepted = [t for t in PATCH_TYPES if not (rt.custom and t == STRATEGIC_MERGE_PATCH)]
        if mt not in accepted:
            raise unsupported_media_type(mt, accepted)
        try:
            text = body.decode("utf-8")
            patch_doc = yaml.safe_load(text) if mt == APPLY_PATCH else json.loads(text)
        except (UnicodeDecodeError, json.JSONDecodeError, yaml.YAMLError) as e:
            if mt == JSON_PATCH:
                raise bad_request(_json_error(e)) from None
            raise bad_request(f"error decoding patch: {_json_error(e)}") from None
        dry = self._dry_run(query.get("dryRun"), "PatchOptions")
        mode = schema.mode_of(query.get("fieldValidation"))
        with self.store.lock:
            current = self.store.get(rt.plural, namespace, name)
            if current is None:
                if mt == APPLY_PATCH and not sub:
                    return self._apply_create(rt, namespace, name, patch_doc, query)
                raise not_found(rt.plural, rt.group, name)
            if sub == "scale":
                before = scale_of(rt, current)
                patched = apply_patch(mt, before, patch_doc)
                self._check_type_meta(patched, "Scale", "autoscaling/v1")
                warnings = schema.check_fields("Scale", "autoscaling/v1", patched, mode)
                self._check_rv(rt, current, (patched.get("metadata") or {}).get("resourceVersion"))
                resp = self._write_scale(rt, current, patched, dry)
                resp.headers.update(schema.warning_header(warnings))
                return resp
            patched = apply_patch(mt, current, patch_doc)
            self._check_type_meta(patched, rt.kind, rt.api_version)
            warnings = schema.check_fields(rt.kind, rt.api_version, patched, mode)
            pmeta = patched.get("metadata") or {}
            if pmeta.get("name") != name:
                raise _name_mismatch(pmeta.get("name"), name)
            self._check_rv(rt, current, pmeta.get("resourceVersion"))
            resp = self._write(rt, current, patched, sub, dry)
            resp.headers.update(schema.warning_header(warnings))
            return resp

    def _apply_create(
        self,
        rt: R.ResourceType,
        namespace: str,
        name: str,
        doc: Any,
        query: Mapping[str, list[str]],
    ) -> Response:
        if not isinstance(doc, dict):
            raise bad_request("error decoding YAML: the applied configuration must be an object")
        self._check_type_meta(doc, rt.kind, rt.api_version)
        meta = doc.setdefault("metadata", None) or {}
        doc["metadata"] = meta
        if meta.get("name") not in (None, name):
            raise _name_mismatch(meta.get("name"), name)
        meta["name"] = name
        resp = self.create(rt, namespace, doc, query)
        return resp

    # --- delete ------------------------------------------------------------------------------

    def _delete_options(
        self, content_type: str | None, body: bytes, query: Mapping[str, list[str]]
    ) -> DeleteOptions:
        opts = DeleteOptions()
        if body and body.strip():
            doc = self._decode_body(content_type, body)
            kinds.check_delete_options(doc)
            kind = doc.get("kind")
            if kind not in (None, "", "DeleteOptions"):
                raise bad_request(f"expected DeleteOptions, got {kind}")
            opts.grace = doc.get("gracePeriodSeconds")
            opts.propagation = doc.get("propagationPolicy")
            if doc.get("orphanDependents") is True and not opts.propagation:
                opts.propagation = "Orphan"
            dry = doc.get("dryRun") or []
            pre = doc.get("preconditions") or {}
            opts.uid = pre.get("uid")
            opts.resource_version = pre.get("resourceVersion")
        else:
            grace_text = _q(query, "gracePeriodSeconds")
            if grace_text not in (None, ""):
                try:
                    opts.grace = int(grace_text)
                except ValueError:
                    raise bad_request(
                        f'invalid value for gracePeriodSeconds: "{grace_text}"'
                    ) from None
            opts.propagation = _q(query, "propagationPolicy") or None
            if (_q(query, "orphanDependents") or "").lower() == "true" and not opts.propagation:
                opts.propagation = "Orphan"
            dry = query.get("dryRun") or []
        causes = []
        dry = [d for d in dry if d != ""]
        if dry and dry != ["All"]:
            shown = _go_strings(dry)
            causes.append(
                cause(
                    "NotSupported", "dryRun", f'Unsupported value: {shown}: supported values: "All"'
                )
            )
        policies = ["Foreground", "Background", "Orphan", "nil"]
        if opts.propagation not in (None, "Foreground", "Background", "Orphan"):
            causes.append(
                cause(
                    "NotSupported",
                    "propagationPolicy",
                    f"Unsupported value: {json.dumps(opts.propagation)}: supported values: "
                    + ", ".join(json.dumps(p) for p in policies),
                )
            )
        if causes:
            raise invalid("DeleteOptions", "meta.k8s.io", "", causes)
        opts.dry_run = bool(dry)
        if opts.grace is not None and opts.grace < 0:
            opts.grace = 1  # as the apiserver does with a negative grace period
        return opts

    def delete(
        self, rt: R.ResourceType, namespace: str, name: str, opts: DeleteOptions
    ) -> Response:
        """DELETE one object: immediately, gracefully or pending finalizers."""
        with self.store.lock:
            current = self._require(rt, namespace, name)
            meta = current["metadata"]
            if opts.uid and opts.uid != meta.get("uid"):
                raise conflict(
                    rt.plural,
                    rt.group,
                    name,
                    f"Precondition failed: UID in precondition: {opts.uid}, "
                    f"UID in object meta: {meta.get('uid')}",
                )
            if opts.resource_version and opts.resource_version != meta.get("resourceVersion"):
                raise conflict(
                    rt.plural,
                    rt.group,
                    name,
                    "Precondition failed: ResourceVersion in precondition: "
                    f"{opts.resource_version}, ResourceVersion in object meta: "
                    f"{meta.get('resourceVersion')}",
                )
            return self._delete_locked(rt, current, opts)

    def _delete_locked(
        self, rt: R.ResourceType, current: dict[str, Any], opts: DeleteOptions
    ) -> Response:
        meta = current["metadata"]
        now = time.time()
        new = clone(current)
        nmeta = new["metadata"]
        finalizers = list(nmeta.get("finalizers") or [])
        grace = 0
        if rt is R.PODS:
            spec = current.get("spec") or {}
            phase = (current.get("status") or {}).get("phase")
            grace = (
                opts.grace
                if opts.grace is not None
                else int(spec.get("terminationGracePeriodSeconds", 30))
            )
            if not spec.get("nodeName") or phase in ("Succeeded", "Failed"):
                grace = 0
        if rt is R.NAMESPACES:
            if meta["name"] in IMMORTAL_NAMESPACES:
                raise forbidden("namespaces", "", meta["name"], "this namespace may not be deleted")
            if not meta.get("deletionTimestamp"):
                nmeta["deletionTimestamp"] = rfc3339(now)
                nmeta["deletionGracePeriodSeconds"] = 0
                new["status"] = dict(new.get("status") or {}, phase="Terminating")
                return self._store_deletion(rt, new, opts)
            return Response(200, current)
        if rt.has_generation and opts.propagation in ("Foreground", "Orphan"):
            marker = FOREGROUND if opts.propagation == "Foreground" else ORPHAN
            if marker not in finalizers:
                finalizers.append(marker)
        if meta.get("deletionTimestamp"):
            # Already being deleted: only a shorter grace period changes anything.
            old_grace = int(meta.get("deletionGracePeriodSeconds") or 0)
            if rt is R.PODS and grace < old_grace:
                if grace == 0 and not finalizers:
                    return self._remove(rt, current, opts)
                nmeta["deletionGracePeriodSeconds"] = grace
                nmeta["deletionTimestamp"] = rfc3339(now + grace)
                return self._store_deletion(rt, new, opts)
            if finalizers != list(meta.get("finalizers") or []):
                nmeta["finalizers"] = finalizers
                return self._store_deletion(rt, new, opts)
            return Response(200, current)
        if grace > 0 or finalizers:
            nmeta["deletionTimestamp"] = rfc3339(now + grace)
            nmeta["deletionGracePeriodSeconds"] = grace
            if finalizers:
                nmeta["finalizers"] = finalizers
            if rt.has_generation:
                nmeta["generation"] = int(meta.get("generation") or 1) + 1
            return self._store_deletion(rt, new, opts)
        return self._remove(rt, current, opts)

    def _store_deletion(
        self, rt: R.ResourceType, new: dict[str, Any], opts: DeleteOptions
    ) -> Response:
        if opts.dry_run:
            return Response(200, new)
        return Response(200, self.store.put(rt.plural, new))

    def _remove(self, rt: R.ResourceType, current: dict[str, Any], opts: DeleteOptions) -> Response:
        meta = current["metadata"]
        if opts.dry_run:
            final = current
        else:
            final = self.store.remove(rt.plural, meta.get("namespace", ""), meta["name"])
        if rt in (R.PODS, R.PVCS, R.NAMESPACES):
            return Response(200, final)  # these registries return the deleted object
        details = {
            "name": meta["name"],
            "group": rt.group,
            "kind": rt.plural,
            "uid": meta.get("uid"),
        }
        if not rt.group:
            details.pop("group")
        return Response(
            200,
            {
                "kind": "Status",
                "apiVersion": "v1",
                "metadata": {},
                "status": "Success",
                "details": details,
            },
        )

    def delete_collection(
        self,
        rt: R.ResourceType,
        namespace: str | None,
        opts: DeleteOptions,
        query: Mapping[str, list[str]],
    ) -> Response:
        """DELETE on a collection: every matching object, answered with the list."""
        label_reqs, field_reqs = self._selectors(rt, query)
        with self.store.lock:
            items = []
            for obj in self.select(rt, namespace, label_reqs, field_reqs):
                resp = self._delete_locked(rt, obj, opts)
                body = resp.body if resp.body.get("kind") != "Status" else obj
                items.append({k: v for k, v in body.items() if k not in ("kind", "apiVersion")})
            return Response(
                200,
                {
                    "kind": rt.list_kind,
                    "apiVersion": rt.api_version,
                    "metadata": {"resourceVersion": str(self.store.rv)},
                    "items": items,
                },
            )


# --- helpers -----------------------------------------------------------------------------------

NS_MISMATCH = (
    "the namespace of the provided object does not match the namespace sent on the request"
)


def _name_mismatch(got: Any, name: str) -> ApiError:
    return bad_request(
        f"the name of the object ({got or ''}) does not match the name on the URL ({name})"
    )


def _go_strings(values: list[str]) -> str:
    """A []string as Go's %#v prints it."""
    return "[]string{" + ", ".join(json.dumps(v) for v in values) + "}"


def _json_error(e: Exception) -> str:
    if isinstance(e, json.JSONDecodeError):
        return f"invalid character at offset {e.pos}: {e.msg}"
    return str(e)


def _spec_of(rt: R.ResourceType, obj: dict[str, Any]) -> Any:
    """What a change of bumps the generation: the spec, or for a custom resource everything
    but metadata and status (a VolumeSnapshotClass has no spec)."""
    if rt.custom:
        return {k: v for k, v in obj.items() if k not in ("metadata", "status")}
    return obj.get("spec")


def _gone_when_free(rt: R.ResourceType, obj: dict[str, Any]) -> bool:
    """Whether an object with deletionTimestamp and no finalizers should go away now.

    A pod being gracefully deleted stays until its kubelet confirms (grace > 0 and still
    scheduled); everything else disappears once its last finalizer is removed.
    """
    if rt is R.PODS:
        grace = int(obj["metadata"].get("deletionGracePeriodSeconds") or 0)
        return grace == 0 or not (obj.get("spec") or {}).get("nodeName")
    if rt is R.NAMESPACES:
        return not (obj.get("spec") or {}).get("finalizers")
    return True


_TOP_ORDER = ("kind", "apiVersion", "metadata", "spec", "status")
_META_ORDER = (
    "name",
    "generateName",
    "namespace",
    "uid",
    "resourceVersion",
    "generation",
    "creationTimestamp",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
    "labels",
    "annotations",
    "ownerReferences",
    "finalizers",
)


def _ordered(obj: dict[str, Any]) -> dict[str, Any]:
    """Key order as Go's encoder writes it, so output reads like a real server's."""
    out = {k: obj[k] for k in _TOP_ORDER if k in obj}
    out.update({k: v for k, v in obj.items() if k not in out})
    meta = out.get("metadata")
    if isinstance(meta, dict):
        m = {k: meta[k] for k in _META_ORDER if k in meta}
        m.update({k: v for k, v in meta.items() if k not in m})
        out["metadata"] = m
    return out


def _same(a: dict[str, Any], b: dict[str, Any]) -> bool:
    ma = {k: v for k, v in a["metadata"].items() if k != "resourceVersion"}
    mb = {k: v for k, v in b["metadata"].items() if k != "resourceVersion"}
    return ma == mb and {k: v for k, v in a.items() if k != "metadata"} == {
        k: v for k, v in b.items() if k != "metadata"
    }


_SERVER_META = (
    "uid",
    "creationTimestamp",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
    "generation",
)


def merge_update(
    rt: R.ResourceType, current: dict[str, Any], new: dict[str, Any], sub: str
) -> dict[str, Any]:
    """The object an update stores: the caller's fields plus what only the server owns.

    The main resource ignores `status`; `/status` changes only `status`; `/finalize`
    changes only `spec.finalizers` of a namespace.
    """
    if sub == "status":
        merged = clone(current)
        merged["status"] = new.get("status") if new.get("status") is not None else {}
        return merged
    if sub == "finalize":
        merged = clone(current)
        merged.setdefault("spec", {})["finalizers"] = list(
            (new.get("spec") or {}).get("finalizers") or []
        )
        return merged
    merged = new
    merged["apiVersion"], merged["kind"] = rt.api_version, rt.kind
    meta = merged.setdefault("metadata", {})
    cur_meta = current["metadata"]
    meta["name"] = cur_meta["name"]
    if rt.namespaced:
        meta["namespace"] = cur_meta.get("namespace", "")
    for key in _SERVER_META:
        if key in cur_meta:
            meta[key] = cur_meta[key]
        else:
            meta.pop(key, None)
    meta["resourceVersion"] = cur_meta["resourceVersion"]
    meta.pop("managedFields", None)
    if "status" in current:
        merged["status"] = clone(current["status"])
    else:
        merged.pop("status", None)
    if rt is R.NAMESPACES:
        merged["spec"] = clone(current.get("spec") or {})
    return merged


def scale_of(rt: R.ResourceType, obj: dict[str, Any]) -> dict[str, Any]:
    """The autoscaling/v1 Scale view of a Deployment or StatefulSet."""
    meta = obj["metadata"]
    spec = obj.get("spec") or {}
    replicas = spec.get("replicas") or 0
    scale_spec = {"replicas": replicas} if replicas else {}  # ScaleSpec.replicas is omitempty
    return {
        "kind": "Scale",
        "apiVersion": "autoscaling/v1",
        "metadata": {
            "name": meta["name"],
            "namespace": meta.get("namespace", ""),
            "uid": meta["uid"],
            "resourceVersion": meta["resourceVersion"],
            "creationTimestamp": meta["creationTimestamp"],
        },
        "spec": scale_spec,
        "status": {
            "replicas": int((obj.get("status") or {}).get("replicas") or 0),
            "selector": format_label_selector(spec.get("selector")),
        },
    }
