"""The Kubernetes gateway: the only module that imports ``kubernetes``.

Everything that talks to the cluster goes through here, so this is where the client's
behaviour is pinned down:

* The client is built from ``APIOPS["KUBECONFIG"]`` (``load_kube_config(config_file=...,
  client_configuration=...)``, never the process-global default) or the in-cluster service
  account. A developer's ``KUBECONFIG`` is ignored on purpose. The client is cached per
  kubeconfig path and file version; :func:`reset_client` drops it.
* urllib3's own retries are switched off (they retry GET/PUT/DELETE on 429/503 but never PATCH,
  and turn hangs into ``MaxRetryError``). Instead one loop here retries 429, 5xx and connection
  failures for every verb, PATCH included, with exponential backoff and jitter, honouring
  ``Retry-After`` up to a cap, and a bounded number of attempts. A read timeout is not retried:
  the server may be working on it, and the caller should hear about it now (504).
* A retry must be harmless even when the first attempt was carried out and only its answer
  was lost. Reads and absolute PATCHes are; a DELETE by name is not (it would delete the
  replacement a controller created meanwhile). So deletes read the object first and send its
  uid as a precondition with every attempt, and a retry that finds it gone or replaced
  counts as done by the earlier attempt (:func:`_delete_object`).
* Every call carries ``_request_timeout`` and ``User-Agent: apiops/<version>``; inside
  :func:`audited` (an audited operation) also ``Audit-ID: <the row's audit_id>`` and, with
  ``OPS_IMPERSONATE``, ``Impersonate-User: apiops:<actor>``, so the API server's own audit log
  names our row (``manage.py audit_reconcile``).
* Every HTTP request (each retry included) is counted and timed for ``/metrics``
  (:func:`_measured_client_class`), by verb, resource type and status.
* Failures become :class:`K8sError` subclasses raised ``from`` the client's exception; nothing of
  the client's exception types leaks upward, and results are small frozen dataclasses.
"""

from __future__ import annotations

import functools
import importlib
import json
import logging
import math
import random
import threading
import time
import urllib.parse
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import urllib3
from django.conf import settings

from ops import __version__, metrics

if TYPE_CHECKING:
    from kubernetes.client.exceptions import ApiException


class _LazyModule:
    """A module imported on first attribute access: ``kubernetes`` (and pydantic with it)
    costs every process a few hundred milliseconds at start-up, which a ``manage.py`` command
    that never reaches the cluster (``--help``, ``ops_audit``) should not pay."""

    def __init__(self, name: str) -> None:
        self._name = name

    def __getattr__(self, attr: str):
        return getattr(importlib.import_module(self._name), attr)


def preload() -> None:
    """Import the client library now: a server does it before its first request, not in it."""
    for name in ("kubernetes.client", "kubernetes.config", "pydantic"):
        importlib.import_module(name)


client = _LazyModule("kubernetes.client")
config = _LazyModule("kubernetes.config")
_client_errors = _LazyModule("kubernetes.client.exceptions")
_config_errors = _LazyModule("kubernetes.config.config_exception")
_pydantic = _LazyModule("pydantic")

logger = logging.getLogger(__name__)

T = TypeVar("T")

DEPLOYMENT = "deployment"
STATEFULSET = "statefulset"
SCALABLE_KINDS = (DEPLOYMENT, STATEFULSET)

_RETRYABLE_STATUS = frozenset({429, 500, 502, 503, 504})

#: The ``dryRun`` query value of a server-side dry run: the API server runs validation and
#: admission, answers as if it had acted, and persists nothing.
DRY_RUN_ALL = "All"


# --- errors -----------------------------------------------------------------------------------


class K8sError(Exception):
    """The Kubernetes API failed or refused; ``status`` is its HTTP status (None: no answer).

    ``maybe_applied`` is False only when the request certainly was not carried out (it never
    left: no connection; or the server refused it before acting: 429, a 4xx answer). After a
    lost answer or a 5xx it is True: the server may have done it without our hearing so.
    """

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        reason: str | None = None,
        retry_after: float | None = None,
        maybe_applied: bool = True,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.reason = reason
        self.retry_after = retry_after
        self.maybe_applied = maybe_applied


class K8sNotFound(K8sError):
    """404: the object (or its namespace) does not exist."""


class K8sConflict(K8sError):
    """409: a conflicting write, or the object already exists."""


class K8sForbidden(K8sError):
    """401/403: our service account may not do this."""


class K8sInvalid(K8sError):
    """400/422: the API server rejected the request as invalid."""


class K8sUnavailable(K8sError):
    """429, 5xx, or no connection at all, after the retries ran out."""


class K8sTimeout(K8sError):
    """No answer within the request timeout (or the API server's own 504)."""


# --- results ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class ScaleInfo:
    """The ``/scale`` subresource of a Deployment or StatefulSet."""

    kind: str
    namespace: str
    name: str
    spec_replicas: int
    status_replicas: int
    selector: str


@dataclass(frozen=True)
class StatefulSetInfo:
    """What a job needs of a StatefulSet: spec, selector, claim templates, progress."""

    namespace: str
    name: str
    uid: str
    replicas: int  # spec.replicas; absent means 0 here (the caller decides what that means)
    label_selector: str  # spec.selector rendered as a label selector string
    claim_templates: tuple[str, ...]  # names of spec.volumeClaimTemplates
    generation: int
    observed_generation: int
    status_replicas: int
    ready_replicas: int
    current_replicas: int
    updated_replicas: int
    resource_version: str = ""
    #: The controller ownerReference ("Cluster postgresql.cnpg.io/v1 pg-main"), if any: an
    #: operator that reconciles this set and would undo (or fight) what we do to it.
    controller_owner: str | None = None
    #: Labels of the pod template (every pod of the set carries them).
    template_labels: dict[str, str] = field(default_factory=dict)
    #: Each volumeClaimTemplate by name, as a claim body: ``{"labels": ..., "spec": ...}``
    #: (the labels the StatefulSet controller gives its claims: the template's and the
    #: selector's), for a claim made in the controller's place (a restore).
    claim_template_bodies: dict[str, dict] = field(default_factory=dict)

    def pvc_names(self, ordinal: int) -> list[str]:
        """The claim names of pod ``<name>-<ordinal>``: ``<template>-<sts>-<ordinal>``."""
        return [f"{tpl}-{self.name}-{ordinal}" for tpl in self.claim_templates]


@dataclass(frozen=True)
class PodInfo:
    """A pod as a waiting step sees it."""

    namespace: str
    name: str
    uid: str
    phase: str
    ready: bool
    terminating: bool
    node_name: str | None
    claim_names: tuple[str, ...] = field(default=())
    labels: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class PvcInfo:
    """A PersistentVolumeClaim; ``terminating`` once a deletion is pending on its finalizers."""

    namespace: str
    name: str
    uid: str
    phase: str
    terminating: bool
    finalizers: tuple[str, ...]
    #: The VolumeSnapshot the claim was restored from (``spec.dataSource``), if any.
    data_source: str | None = None


# --- the client -------------------------------------------------------------------------------

USER_AGENT = f"apiops/{__version__}"
#: Headers every request of the current audited operation carries (see :func:`audited`).
_operation_headers: ContextVar[dict[str, str] | None] = ContextVar(
    "apiops_operation_headers", default=None
)


@contextmanager
def audited(*, audit_id: str, actor: str | None) -> Iterator[None]:
    """Within the block, every request carries ``Audit-ID: audit_id`` and, with
    ``APIOPS["IMPERSONATE"]``, ``Impersonate-User: apiops:<actor>``."""
    headers = {"Audit-ID": str(audit_id)}
    if _conf().get("IMPERSONATE") and actor:
        headers["Impersonate-User"] = f"apiops:{actor}"
    token = _operation_headers.set(headers)
    try:
        yield
    finally:
        _operation_headers.reset(token)


_client_lock = threading.Lock()
_cached: tuple[tuple[str, int], client.ApiClient] | None = None


def _conf() -> dict[str, Any]:
    return settings.APIOPS


_KEY_RECHECK = 1.0  # seconds between two looks at the kubeconfig file
_key_seen: tuple[str | None, float, tuple[str, int]] | None = None


def _cache_key() -> tuple[str, int]:
    """Which kubeconfig (and which version of it) the client is for. The file is looked at
    again at most once a second: resolving and stat-ing it on every call cost more than a
    scale's JSON."""
    global _key_seen
    path = _conf()["KUBECONFIG"]
    now = time.monotonic()
    seen = _key_seen
    if seen is not None and seen[0] == path and now - seen[1] < _KEY_RECHECK:
        return seen[2]
    if not path:
        key = ("<in-cluster>", 0)
    else:
        try:
            key = (str(Path(path).resolve()), Path(path).stat().st_mtime_ns)
        except OSError:
            key = (str(path), -1)
    _key_seen = (path, now, key)
    return key


def _build_client(path: str | None) -> client.ApiClient:
    cfg = client.Configuration()
    try:
        if path:
            config.load_kube_config(
                config_file=path, client_configuration=cfg, persist_config=False
            )
        else:
            config.load_incluster_config(client_configuration=cfg)
    except (_config_errors.ConfigException, OSError, ValueError) as e:
        where = f"kubeconfig {path}" if path else "the in-cluster service account"
        raise K8sUnavailable(f"cannot load {where}: {e}") from e
    cfg.retries = False  # one retry policy, ours (see the module docstring)
    if cfg.refresh_api_key_hook is not None:
        _refresh_at_most_once_a_second(cfg)
    api = _measured_client_class()(configuration=cfg)
    api.user_agent = USER_AGENT
    return api


_REFRESH_INTERVAL = 1.0  # seconds


def _refresh_at_most_once_a_second(cfg: Any) -> None:
    """Run the loaders' credential refresh hook of ``cfg`` at most once a second.

    The client runs it before every request; besides re-reading an expired token (kubeconfig
    credentials are renewed five minutes before they expire, the in-cluster token file once a
    minute) it sets the configuration's host again, which reads every proxy variable of the
    environment: tens of microseconds per request for nothing new. The hook installs a new
    one of itself each time it runs; that one is kept behind this gate too.
    """
    state = {"hook": cfg.refresh_api_key_hook, "last": -math.inf}

    def refresh(configuration: Any) -> None:
        now = time.monotonic()
        if now - state["last"] < _REFRESH_INTERVAL:
            return
        state["last"] = now
        state["hook"](configuration)
        if configuration.refresh_api_key_hook is not refresh:
            state["hook"] = configuration.refresh_api_key_hook
            configuration.refresh_api_key_hook = refresh

    cfg.refresh_api_key_hook = refresh


@functools.cache
def _measured_client_class() -> type:
    """The client class counting and timing each HTTP request it sends (answer read
    included); made on first use, as the client library is imported then."""
    rest = importlib.import_module("kubernetes.client.rest")

    def measured(method: str, url: str, send: Callable[[], Any]) -> Any:
        """``send()``'s answer, read; the request counted and timed (answer read included)."""
        started = time.perf_counter()
        code = "<error>"  # no answer: refused, reset, timed out
        try:
            response = send()
            code = str(response.status)
            response.read()
            return response
        finally:
            metrics.observe_kubernetes_request(method, url, code, time.perf_counter() - started)

    class _MeasuredApiClient(client.ApiClient):
        _server_pool: tuple[str, Any] | None = None

        def call_api(self, method, url, *args, **kwargs):
            parent = super().call_api
            return measured(method, url, lambda: parent(method, url, *args, **kwargs))

        def json_call(self, method, path, headers, body, timeout):
            """``method path`` (a JSON body or none) to the API server, answered as call_api
            answers: sent as the client's RESTClientObject sends such a call (the body as JSON,
            ``timeout`` as urllib3's total timeout, a TLS failure as ApiException 0), on its own
            connection pool for the server, with its settings (TLS, retries) — without finding
            that pool again for every request (parsing the URL, normalising the pool key) or
            dispatching on the content type. Counted and timed like call_api. Behind a proxy,
            or with the client's own read retries on, it is call_api."""
            host = self.configuration.host
            pool = self._pool_for(host)
            if pool is None:
                return self.call_api(
                    method, host + path, header_params=headers, body=body, _request_timeout=timeout
                )

            def send():
                return rest.RESTResponse(
                    pool.urlopen(
                        method,
                        path,
                        body=None if body is None else json.dumps(body),
                        headers=headers,
                        timeout=urllib3.Timeout(total=timeout),
                        assert_same_host=False,
                        redirect=False,
                        preload_content=False,
                    )
                )

            try:
                return measured(method, host + path, send)
            except urllib3.exceptions.SSLError as e:
                raise _client_errors.ApiException(
                    status=0, reason=f"{type(e).__name__}\n{e}"
                ) from e

        def _pool_for(self, host: str):
            """The pool the client's RESTClientObject would send to ``host`` through (kept while
            the configured host stays the same), or None when it would do more than that."""
            if self._server_pool is None or self._server_pool[0] != host:
                manager = self.rest_client.pool_manager
                direct = not isinstance(manager, urllib3.ProxyManager) and not getattr(
                    self.configuration, "client_go_retries", False
                )
                self._server_pool = (host, manager.connection_from_url(host) if direct else None)
            return self._server_pool[1]

    return _MeasuredApiClient


def api_client() -> client.ApiClient:
    """The shared ApiClient for the configured cluster (built on first use, then cached)."""
    global _cached
    key = _cache_key()
    with _client_lock:
        if _cached is not None and _cached[0] == key:
            return _cached[1]
        old = _cached
        built = _build_client(_conf()["KUBECONFIG"])
        _cached = (key, built)
    if old is not None:
        old[1].close()
    return built


def reset_client() -> None:
    """Forget the cached client (the next call builds one from the current settings)."""
    global _cached, _key_seen
    with _client_lock:
        old, _cached, _key_seen = _cached, None, None
    if old is not None:
        old[1].close()


# --- error mapping and the retry loop ----------------------------------------------------------


def _status_message(exc: ApiException) -> tuple[str, str | None]:
    """The message and reason of a Kubernetes ``Status`` body, else the HTTP reason."""
    body = exc.body
    if isinstance(body, bytes):
        body = body.decode("utf-8", "replace")
    if body:
        try:
            data = json.loads(body)
        except ValueError:
            data = None
        if isinstance(data, dict) and data.get("message"):
            return str(data["message"]), data.get("reason")
    return (exc.reason or f"HTTP {exc.status}"), None


def _retry_after(exc: ApiException) -> float | None:
    headers = exc.headers or {}
    value = headers.get("Retry-After") if hasattr(headers, "get") else None
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None  # an HTTP-date; rare from the API server, use our own backoff


def _from_api_exception(exc: ApiException, what: str) -> K8sError:
    status = exc.status or 0
    message, reason = _status_message(exc)
    kwargs = {
        "status": status,
        "reason": reason,
        "retry_after": _retry_after(exc),
        # A 4xx is a decision not to act (429: API Priority and Fairness rejected it before
        # it ran); a 5xx may come after the change was made (e.g. a 504 from etcd).
        "maybe_applied": status == 0 or status >= 500,
    }
    if status == 404:
        return K8sNotFound(message, **kwargs)
    if status == 409:
        return K8sConflict(message, **kwargs)
    if status in (401, 403):
        return K8sForbidden(message, **kwargs)
    if status in (400, 422):
        return K8sInvalid(message, **kwargs)
    if status == 504:
        return K8sTimeout(f"{what}: the API server timed out: {message}", **kwargs)
    if status == 429 or status >= 500:
        return K8sUnavailable(f"{what}: HTTP {status}: {message}", **kwargs)
    if status == 0:
        return K8sUnavailable(f"{what}: {message}", **kwargs)
    return K8sError(f"{what}: HTTP {status}: {message}", **kwargs)


def _from_urllib3(exc: urllib3.exceptions.HTTPError, what: str) -> K8sError:
    cause: BaseException = exc
    if isinstance(exc, urllib3.exceptions.MaxRetryError) and exc.reason is not None:
        cause = exc.reason
    if isinstance(cause, urllib3.exceptions.ReadTimeoutError):
        return K8sTimeout(f"{what}: no answer within the timeout")
    if isinstance(cause, urllib3.exceptions.NewConnectionError):
        # Refused or unresolvable (a ConnectTimeoutError subclass in urllib3 2): never sent.
        return K8sUnavailable(
            f"{what}: cannot reach the API server: {type(cause).__name__}: {cause}",
            maybe_applied=False,
        )
    if isinstance(cause, urllib3.exceptions.ConnectTimeoutError):
        return K8sUnavailable(f"{what}: connection timed out", maybe_applied=False)
    # Reset, closed or garbled after the request went out: it may have been carried out.
    return K8sUnavailable(f"{what}: cannot reach the API server: {type(cause).__name__}: {cause}")


def _retryable(err: K8sError, *, retry_conflict: bool) -> bool:
    if isinstance(err, K8sTimeout) and err.status is None:
        return False  # our read timeout: the request may be in progress; report it now
    if err.status is None:
        return isinstance(err, K8sUnavailable)  # connection refused/reset/dropped
    if err.status == 409:
        return retry_conflict
    return err.status in _RETRYABLE_STATUS


def _delay(attempt: int, err: K8sError) -> float:
    conf = _conf()
    cap = conf["K8S_RETRY_MAX_WAIT"]
    if err.retry_after is not None:
        return min(err.retry_after, cap)
    base = conf["K8S_BACKOFF"] * (2**attempt)
    return min(cap, base * (0.5 + random.random() / 2))


def _call(
    what: str,
    fn: Callable[..., T],
    *args: Any,
    retry_conflict: bool = False,
    timeout: float | None = None,
    retries: int | None = None,
    **kwargs: Any,
) -> T:
    """Run one client call with our timeout, retry policy and error mapping.

    Only for reads and idempotent writes (a PATCH to an absolute value): a retry after a lost
    answer must do no harm. Deletes go through :func:`_delete_object`.
    """
    conf = _conf()
    timeout = conf["K8S_TIMEOUT"] if timeout is None else timeout
    retries = conf["K8S_RETRIES"] if retries is None else retries
    attempt = 0
    while True:
        try:
            return _once(what, fn, args, kwargs, timeout)
        except K8sError as err:
            if attempt >= retries or not _retryable(err, retry_conflict=retry_conflict):
                raise
            _back_off(what, attempt, retries, err)
        attempt += 1


def _once(
    what: str, fn: Callable[..., T], args: tuple, kwargs: dict[str, Any], timeout: float
) -> T:
    """One client call; its failure raised as a :class:`K8sError` from the client's exception."""
    headers = _operation_headers.get()
    if headers:  # a copy: the client adds its own headers to the dict it is given
        kwargs = {**kwargs, "_headers": dict(headers)}
    try:
        return fn(*args, _request_timeout=timeout, **kwargs)
    except _client_errors.ApiException as e:
        raise _from_api_exception(e, what) from e
    except urllib3.exceptions.HTTPError as e:
        raise _from_urllib3(e, what) from e
    except (_pydantic.ValidationError, _client_errors.OpenApiException) as e:
        # The server answered something the client cannot parse: not worth retrying.
        raise K8sError(f"{what}: unexpected answer from the API server: {e}") from e


def _back_off(what: str, attempt: int, retries: int, err: K8sError) -> None:
    wait = _delay(attempt, err)
    logger.warning("%s failed (%s); retry %d/%d in %.2fs", what, err, attempt + 1, retries, wait)
    time.sleep(wait)


def _uid_precondition_failed(err: K8sError) -> bool:
    # The API server's wording (apimachinery storage preconditions), inside a 409 Conflict.
    return isinstance(err, K8sConflict) and "UID in precondition" in err.message


def _delete_object(
    *, what: str, fn: Callable[..., Any], namespace: str, name: str, uid: str, dry_run: bool = False
) -> None:
    """DELETE the object ``namespace/name`` only while it is still the incarnation ``uid``.

    Every attempt carries ``preconditions.uid``, so a retry can never delete a replacement
    with the same name (a StatefulSet recreates ``<sts>-<n>`` within moments). Retries follow
    :func:`_retryable`. When an earlier attempt may have been carried out without our hearing
    so (answer lost, 5xx), a retry answered 404 or "UID precondition failed" means that
    attempt did the work: success. On the first attempt, or after attempts that certainly
    did nothing (no connection, 429), both keep their meaning: someone else deleted or
    replaced the object (404 / 409).
    """
    if not uid:
        raise K8sError(f"{what}: the object has no uid; refusing a delete that cannot be pinned")
    conf = _conf()
    retries = conf["K8S_RETRIES"]
    body = client.V1DeleteOptions(preconditions=client.V1Preconditions(uid=uid))
    kwargs: dict[str, Any] = {"body": body}
    if dry_run:
        # In the body: an API server that gets a DeleteOptions body ignores the query's
        # parameters, so a dryRun only in the query would delete for real. (The query
        # carries it too, for whoever reads the request log.)
        body.dry_run = [DRY_RUN_ALL]
        kwargs["dry_run"] = DRY_RUN_ALL
    attempt = 0
    maybe_done = False
    while True:
        try:
            _once(what, fn, (name, namespace), kwargs, conf["K8S_TIMEOUT"])
            return
        except K8sError as err:
            if maybe_done and (isinstance(err, K8sNotFound) or _uid_precondition_failed(err)):
                logger.warning(
                    "%s: %s on a retry: the earlier unanswered attempt deleted uid %s",
                    what,
                    err.message,
                    uid,
                )
                return
            if attempt >= retries or not _retryable(err, retry_conflict=False):
                raise
            maybe_done = maybe_done or err.maybe_applied
            _back_off(what, attempt, retries, err)
        attempt += 1


# --- reads ------------------------------------------------------------------------------------


def _apps() -> client.AppsV1Api:
    return client.AppsV1Api(api_client())


def _core() -> client.CoreV1Api:
    return client.CoreV1Api(api_client())


def _check_kind(kind: str) -> None:
    if kind not in SCALABLE_KINDS:
        raise ValueError(f"kind must be one of {SCALABLE_KINDS}, not {kind!r}")


def _json_object(data: bytes) -> dict:
    """An answer's body as a dict (the client's error when it is not a JSON object)."""
    try:
        body = json.loads(data)
    except ValueError as e:
        raise _client_errors.OpenApiException(f"the answer is not JSON: {e}") from e
    if not isinstance(body, dict):
        raise _client_errors.OpenApiException("the answer is not a JSON object")
    return body


#: ``kubectl scale`` sends a strategic merge patch to ``/scale``; so do we.
STRATEGIC_MERGE_PATCH = "application/strategic-merge-patch+json"

_SCALE_PATHS = {
    DEPLOYMENT: "/apis/apps/v1/namespaces/{namespace}/deployments/{name}/scale",
    STATEFULSET: "/apis/apps/v1/namespaces/{namespace}/statefulsets/{name}/scale",
}


def _json_request(
    method: str, path: str, *, content_type: str | None = None, query: tuple = ()
) -> Callable[..., dict]:
    """A call of ``method path`` answering its JSON body as a dict, for the request path's
    own calls (a scale's GET and PATCH).

    It goes through the client's transport (its connection pool for the API server, TLS
    settings, credential refresh, our request metrics: ``_MeasuredApiClient.json_call``) with
    the headers its generated method would send (``Accept``, ``Content-Type``, ``User-Agent``,
    the bearer token), but skips that method: validating its arguments (pydantic) and building
    the request cost more CPU than the round trip to the API server. Non-2xx answers raise the
    client's ApiException, as its methods do. Called as :func:`_call` calls a client method
    (``_request_timeout``, and ``_headers`` inside :func:`audited`).
    """
    path_and_query = path + ("?" + urllib.parse.urlencode(query) if query else "")

    def send(body: Any = None, *, _request_timeout: float, _headers: dict | None = None) -> dict:
        api = api_client()
        headers = {"Accept": "application/json", **(_headers or {})}
        if content_type is not None:
            headers["Content-Type"] = content_type
        headers.update(api.default_headers)
        api.update_params_for_auth(headers, [], ["BearerToken"], path, method, body)
        response = api.json_call(method, path_and_query, headers, body, _request_timeout)
        if not 200 <= response.status <= 299:
            raise _client_errors.ApiException.from_response(
                http_resp=response, body=None, data=None
            )
        return _json_object(response.read())

    return send


def _scale_path(kind: str, namespace: str, name: str) -> str:
    quote = functools.partial(urllib.parse.quote, safe="")
    return _SCALE_PATHS[kind].format(namespace=quote(namespace), name=quote(name))


def _scale_info(kind: str, scale: dict) -> ScaleInfo:
    metadata = scale.get("metadata") or {}
    spec = scale.get("spec") or {}
    status = scale.get("status") or {}
    return ScaleInfo(
        kind=kind,
        namespace=metadata.get("namespace", ""),
        name=metadata.get("name", ""),
        spec_replicas=spec.get("replicas") or 0,
        status_replicas=status.get("replicas") or 0,
        selector=status.get("selector") or "",
    )


def scale_read(*, kind: str, namespace: str, name: str) -> ScaleInfo:
    """GET the ``/scale`` subresource of a Deployment or StatefulSet."""
    _check_kind(kind)
    fn = _json_request("GET", _scale_path(kind, namespace, name))
    return _scale_info(kind, _call(f"read {kind} {namespace}/{name} scale", fn))


def scale_patch(
    *,
    kind: str,
    namespace: str,
    name: str,
    replicas: int,
    resource_version: str | None = None,
    dry_run: bool = False,
) -> ScaleInfo:
    """PATCH ``spec.replicas`` on the ``/scale`` subresource (strategic merge, like kubectl).

    Setting an absolute value is idempotent, so the PATCH is retried like a read, 409 included.

    With ``resource_version`` (the workload's, as the caller read it) the PATCH carries it as
    a precondition: the API server refuses it (409, :class:`K8sConflict`) once the object has
    changed since that read, so a request that arrives late — its sender's worker killed, the
    job long moved on — changes nothing. A conflict is then not retried (the caller must read
    again and decide again), except that after an attempt that may have been carried out
    unheard (answer lost, 5xx), a conflict on a scale that now shows ``replicas`` counts as
    that attempt's success.

    ``dry_run``: a server-side dry run (``dryRun=All``); the answer shows the scale as it
    would be, nothing is stored.
    """
    _check_kind(kind)
    path = _scale_path(kind, namespace, name)
    what = f"scale {kind} {namespace}/{name}"
    if dry_run:
        body = {"spec": {"replicas": replicas}}
        if resource_version is not None:
            body["metadata"] = {"resourceVersion": resource_version}
        fn = _json_request(
            "PATCH", path, content_type=STRATEGIC_MERGE_PATCH, query=(("dryRun", DRY_RUN_ALL),)
        )
        return _scale_info(kind, _call(what, fn, body))
    fn = _json_request("PATCH", path, content_type=STRATEGIC_MERGE_PATCH)
    if resource_version is None:
        body = {"spec": {"replicas": replicas}}
        return _scale_info(kind, _call(what, fn, body, retry_conflict=True))
    body = {"metadata": {"resourceVersion": resource_version}, "spec": {"replicas": replicas}}
    conf = _conf()
    retries = conf["K8S_RETRIES"]
    attempt = 0
    maybe_done = False
    while True:
        try:
            return _scale_info(kind, _once(what, fn, (body,), {}, conf["K8S_TIMEOUT"]))
        except K8sError as err:
            if maybe_done and isinstance(err, K8sConflict):
                now = scale_read(kind=kind, namespace=namespace, name=name)
                if now.spec_replicas == replicas:
                    return now
            if attempt >= retries or not _retryable(err, retry_conflict=False):
                raise
            maybe_done = maybe_done or err.maybe_applied
            _back_off(what, attempt, retries, err)
        attempt += 1


def _label_selector(selector: Any) -> str:
    """Render a LabelSelector (matchLabels + matchExpressions) in the query-string grammar."""
    if selector is None:
        return ""
    parts = [f"{k}={v}" for k, v in sorted((selector.match_labels or {}).items())]
    for expr in selector.match_expressions or []:
        values = ",".join(sorted(expr.values or []))
        op = expr.operator
        if op == "In":
            parts.append(f"{expr.key} in ({values})")
        elif op == "NotIn":
            parts.append(f"{expr.key} notin ({values})")
        elif op == "Exists":
            parts.append(expr.key)
        elif op == "DoesNotExist":
            parts.append(f"!{expr.key}")
        else:
            raise K8sError(f"unknown label selector operator {op!r}")
    return ",".join(parts)


def statefulset_read(*, namespace: str, name: str) -> StatefulSetInfo:
    """GET a StatefulSet: replicas, selector, claim templates, generation and status."""
    sts = _call(
        f"read statefulset {namespace}/{name}",
        _apps().read_namespaced_stateful_set,
        name,
        namespace,
    )
    spec, status, meta = sts.spec, sts.status, sts.metadata
    templates = tuple(t.metadata.name for t in (spec.volume_claim_templates or []) if t.metadata)
    owner = next((o for o in (meta.owner_references or []) if o.controller), None)
    template_meta = spec.template.metadata if spec.template else None
    serialize = api_client().sanitize_for_serialization
    match_labels = dict((spec.selector.match_labels or {}) if spec.selector else {})
    bodies = {
        t.metadata.name: {
            "labels": {**match_labels, **(t.metadata.labels or {})},
            "spec": serialize(t.spec) if t.spec else {},
        }
        for t in (spec.volume_claim_templates or [])
        if t.metadata
    }
    return StatefulSetInfo(
        namespace=meta.namespace,
        name=meta.name,
        uid=meta.uid or "",
        replicas=spec.replicas if spec.replicas is not None else 0,
        label_selector=_label_selector(spec.selector),
        claim_templates=templates,
        generation=meta.generation or 0,
        observed_generation=(status.observed_generation or 0) if status else 0,
        status_replicas=(status.replicas or 0) if status else 0,
        ready_replicas=(status.ready_replicas or 0) if status else 0,
        current_replicas=(status.current_replicas or 0) if status else 0,
        updated_replicas=(status.updated_replicas or 0) if status else 0,
        resource_version=meta.resource_version or "",
        controller_owner=f"{owner.kind} {owner.api_version} {owner.name}" if owner else None,
        template_labels=dict((template_meta.labels or {}) if template_meta else {}),
        claim_template_bodies=bodies,
    )


def _pod_info(pod: Any) -> PodInfo:
    status = pod.status
    ready = any(
        c.type == "Ready" and c.status == "True" for c in ((status and status.conditions) or [])
    )
    claims = tuple(
        v.persistent_volume_claim.claim_name
        for v in ((pod.spec and pod.spec.volumes) or [])
        if v.persistent_volume_claim is not None
    )
    return PodInfo(
        namespace=pod.metadata.namespace,
        name=pod.metadata.name,
        uid=pod.metadata.uid or "",
        phase=(status.phase or "") if status else "",
        ready=ready,
        terminating=pod.metadata.deletion_timestamp is not None,
        node_name=pod.spec.node_name if pod.spec else None,
        claim_names=claims,
        labels=dict(pod.metadata.labels or {}),
    )


def pod_list(*, namespace: str, label_selector: str) -> list[PodInfo]:
    """List the pods matching ``label_selector`` (terminating ones included)."""
    pods = _call(
        f"list pods in {namespace} ({label_selector})",
        _core().list_namespaced_pod,
        namespace,
        label_selector=label_selector,
    )
    return [_pod_info(p) for p in pods.items]


def pod_read(*, namespace: str, name: str) -> PodInfo | None:
    """GET a pod; None when it does not exist."""
    try:
        pod = _call(f"read pod {namespace}/{name}", _core().read_namespaced_pod, name, namespace)
    except K8sNotFound:
        return None
    return _pod_info(pod)


def annotations_read(*, kind: str, namespace: str, name: str) -> dict[str, str] | None:
    """The annotations of a ConfigMap or an Endpoints object; None when it does not exist.

    Used for what other software records there (Patroni's leader key), never for data.
    """
    core = _core()
    fns = {
        "configmap": core.read_namespaced_config_map,
        "endpoints": core.read_namespaced_endpoints,
    }
    try:
        obj = _call(f"read {kind} {namespace}/{name}", fns[kind], name, namespace)
    except K8sNotFound:
        return None
    return dict(obj.metadata.annotations or {}) if obj.metadata else {}


def pvc_read(*, namespace: str, name: str) -> PvcInfo | None:
    """GET a PersistentVolumeClaim; None when it does not exist (gone from the API)."""
    try:
        pvc = _call(
            f"read persistentvolumeclaim {namespace}/{name}",
            _core().read_namespaced_persistent_volume_claim,
            name,
            namespace,
        )
    except K8sNotFound:
        return None
    return _pvc_info(pvc)


def _pvc_info(pvc: Any) -> PvcInfo:
    meta = pvc.metadata
    source = pvc.spec.data_source if pvc.spec else None
    return PvcInfo(
        namespace=meta.namespace,
        name=meta.name,
        uid=meta.uid or "",
        phase=(pvc.status.phase or "") if pvc.status else "",
        terminating=meta.deletion_timestamp is not None,
        finalizers=tuple(meta.finalizers or ()),
        data_source=source.name if source is not None and source.kind == "VolumeSnapshot" else None,
    )


@dataclass(frozen=True)
class ObjectMeta:
    """The identity and version of any object: enough to tell whether it was replaced
    (``uid``) or changed (``generation`` for a spec change, ``resource_version`` for any)."""

    kind: str  # Kubernetes kind: "Deployment", "StatefulSet", "Pod", "PersistentVolumeClaim"
    namespace: str
    name: str
    uid: str
    generation: int | None
    resource_version: str


def _readers() -> dict[str, Callable[..., Any]]:
    apps, core = _apps(), _core()
    return {
        "Deployment": apps.read_namespaced_deployment,
        "StatefulSet": apps.read_namespaced_stateful_set,
        "Pod": core.read_namespaced_pod,
        "PersistentVolumeClaim": core.read_namespaced_persistent_volume_claim,
    }


def object_meta(*, kind: str, namespace: str, name: str) -> ObjectMeta | None:
    """GET an object's metadata (a Deployment, StatefulSet, Pod, PersistentVolumeClaim or
    VolumeSnapshot); None when it does not exist."""
    try:
        if kind == "VolumeSnapshot":
            meta = _snapshot_object(namespace, name).get("metadata") or {}
            return ObjectMeta(
                kind=kind,
                namespace=namespace,
                name=name,
                uid=meta.get("uid") or "",
                generation=meta.get("generation"),
                resource_version=meta.get("resourceVersion") or "",
            )
        read = _readers().get(kind)
        if read is None:
            raise ValueError(f"object_meta: unsupported kind {kind!r}")
        obj = _call(f"read {kind.lower()} {namespace}/{name}", read, name, namespace)
    except K8sNotFound:
        return None
    meta = obj.metadata
    return ObjectMeta(
        kind=kind,
        namespace=namespace,
        name=name,
        uid=meta.uid or "",
        generation=meta.generation,
        resource_version=meta.resource_version or "",
    )


def ping() -> str:
    """Cheapest authenticated call (``GET /version``); returns the server's git version.

    Used by readiness: one attempt with a short timeout, no retries.
    """
    info = _call(
        "GET /version",
        client.VersionApi(api_client()).get_code,
        timeout=_conf()["K8S_PING_TIMEOUT"],
        retries=0,
    )
    return info.git_version or ""


# --- mutations --------------------------------------------------------------------------------


def pod_delete(*, namespace: str, name: str, uid: str | None = None, dry_run: bool = False) -> None:
    """DELETE a pod (its own grace period applies): the one that exists now, not a successor.

    The DELETE is pinned to a uid (see :func:`_delete_object`): ``uid`` when the caller has
    already read the pod (a step that decided on what it saw), else the pod's uid read now.
    ``dry_run``: a server-side dry run (``dryRun=All``), nothing is deleted.
    """
    core = _core()
    if uid is None:
        pod = _call(f"read pod {namespace}/{name}", core.read_namespaced_pod, name, namespace)
        uid = pod.metadata.uid or ""
    _delete_object(
        what=f"delete pod {namespace}/{name}",
        fn=core.delete_namespaced_pod,
        namespace=namespace,
        name=name,
        uid=uid,
        dry_run=dry_run,
    )


def pvc_delete(*, namespace: str, name: str, uid: str | None = None, dry_run: bool = False) -> None:
    """DELETE a PersistentVolumeClaim (it may stay Terminating while a pod still uses it).

    Pinned to ``uid``, or to the uid read now, as :func:`pod_delete`; ``dry_run`` as there.
    """
    core = _core()
    if uid is None:
        pvc = _call(
            f"read persistentvolumeclaim {namespace}/{name}",
            core.read_namespaced_persistent_volume_claim,
            name,
            namespace,
        )
        uid = pvc.metadata.uid or ""
    _delete_object(
        what=f"delete persistentvolumeclaim {namespace}/{name}",
        fn=core.delete_namespaced_persistent_volume_claim,
        namespace=namespace,
        name=name,
        uid=uid,
        dry_run=dry_run,
    )


def warm_up() -> None:
    """Load the client's lazily imported API modules now (a second or more each on first use).

    Job workers call this when they start, so a worker's first job step does not pay for the
    import while it holds a job's lease.
    """
    _ = (client.CoreV1Api, client.AppsV1Api)


# --- workloads (rollouts) ---------------------------------------------------------------------

RESTARTED_AT = "kubectl.kubernetes.io/restartedAt"


@dataclass(frozen=True)
class Condition:
    """One status condition of a workload."""

    type: str
    status: str
    reason: str
    message: str


@dataclass(frozen=True)
class WorkloadInfo:
    """What a rollout needs of a Deployment or StatefulSet: its spec, progress and revisions,
    as ``kubectl rollout status`` reads them."""

    kind: str
    namespace: str
    name: str
    uid: str
    resource_version: str
    generation: int
    observed_generation: int
    replicas: int  # spec.replicas (absent: 1, the API server's default for both kinds)
    label_selector: str
    status_replicas: int
    updated_replicas: int
    ready_replicas: int
    available_replicas: int
    update_strategy: str  # RollingUpdate, Recreate (Deployment), OnDelete (StatefulSet)
    partition: int  # StatefulSet RollingUpdate partition (0 otherwise)
    current_revision: str
    update_revision: str
    conditions: tuple[Condition, ...]
    restarted_at: str | None  # the template annotation kubectl rollout restart sets

    def condition(self, type_: str) -> Condition | None:
        return next((c for c in self.conditions if c.type == type_), None)


def _workload_api(kind: str) -> tuple[Callable[..., Any], Callable[..., Any]]:
    _check_kind(kind)
    api = _apps()
    if kind == DEPLOYMENT:
        return api.read_namespaced_deployment, api.patch_namespaced_deployment
    return api.read_namespaced_stateful_set, api.patch_namespaced_stateful_set


def _workload_info(kind: str, obj: Any) -> WorkloadInfo:
    spec, status, meta = obj.spec, obj.status, obj.metadata
    strategy = spec.strategy if kind == DEPLOYMENT else spec.update_strategy
    rolling = getattr(strategy, "rolling_update", None) if strategy else None
    template_meta = spec.template.metadata if spec.template else None
    annotations = (template_meta.annotations or {}) if template_meta else {}
    return WorkloadInfo(
        kind=kind,
        namespace=meta.namespace,
        name=meta.name,
        uid=meta.uid or "",
        resource_version=meta.resource_version or "",
        generation=meta.generation or 0,
        observed_generation=(status.observed_generation or 0) if status else 0,
        replicas=spec.replicas if spec.replicas is not None else 1,
        label_selector=_label_selector(spec.selector),
        status_replicas=(status.replicas or 0) if status else 0,
        updated_replicas=(status.updated_replicas or 0) if status else 0,
        ready_replicas=(status.ready_replicas or 0) if status else 0,
        available_replicas=(status.available_replicas or 0) if status else 0,
        update_strategy=(strategy.type if strategy and strategy.type else "RollingUpdate"),
        partition=(getattr(rolling, "partition", None) or 0) if rolling else 0,
        current_revision=(getattr(status, "current_revision", None) or "") if status else "",
        update_revision=(getattr(status, "update_revision", None) or "") if status else "",
        conditions=tuple(
            Condition(c.type, c.status, c.reason or "", c.message or "")
            for c in ((status.conditions or []) if status else [])
        ),
        restarted_at=annotations.get(RESTARTED_AT),
    )


def workload_read(*, kind: str, namespace: str, name: str) -> WorkloadInfo:
    """GET a Deployment or StatefulSet: spec, progress, revisions, conditions."""
    read, _ = _workload_api(kind)
    return _workload_info(kind, _call(f"read {kind} {namespace}/{name}", read, name, namespace))


def workload_restart(
    *, kind: str, namespace: str, name: str, restarted_at: str, resource_version: str | None = None
) -> WorkloadInfo:
    """Set the pod template's ``kubectl.kubernetes.io/restartedAt`` annotation, as
    ``kubectl rollout restart`` does (a strategic merge patch): the controller then replaces
    every pod. Setting a given value is idempotent, so the PATCH is retried like a read.

    With ``resource_version`` (the workload's, as the caller read it when it decided) the
    PATCH carries it: 409 (:class:`K8sConflict`, not retried) once the object has changed."""
    _, patch = _workload_api(kind)
    body: dict[str, Any] = {
        "spec": {"template": {"metadata": {"annotations": {RESTARTED_AT: restarted_at}}}}
    }
    if resource_version is not None:
        body["metadata"] = {"resourceVersion": resource_version}
    obj = _call(f"restart {kind} {namespace}/{name}", patch, name, namespace, body)
    return _workload_info(kind, obj)


# --- volume snapshots -------------------------------------------------------------------------

SNAPSHOT_GROUP = "snapshot.storage.k8s.io"
SNAPSHOT_VERSION = "v1"


@dataclass(frozen=True)
class SnapshotInfo:
    """A ``VolumeSnapshot`` (``snapshot.storage.k8s.io/v1``)."""

    namespace: str
    name: str
    uid: str
    source_claim: str | None
    class_name: str | None
    ready: bool
    restore_size: str | None
    content_name: str | None
    creation_time: str | None
    error: str | None
    annotations: dict[str, str] = field(default_factory=dict)


def _snapshot_info(obj: dict) -> SnapshotInfo:
    meta, spec, status = obj.get("metadata", {}), obj.get("spec", {}), obj.get("status") or {}
    error = (status.get("error") or {}).get("message")
    return SnapshotInfo(
        namespace=meta.get("namespace", ""),
        name=meta.get("name", ""),
        uid=meta.get("uid", ""),
        source_claim=(spec.get("source") or {}).get("persistentVolumeClaimName"),
        class_name=spec.get("volumeSnapshotClassName"),
        ready=status.get("readyToUse") is True,
        restore_size=status.get("restoreSize"),
        content_name=status.get("boundVolumeSnapshotContentName"),
        creation_time=status.get("creationTime"),
        error=error,
        annotations=dict(meta.get("annotations") or {}),
    )


def _custom() -> client.CustomObjectsApi:
    return client.CustomObjectsApi(api_client())


def _snapshot_object(namespace: str, name: str) -> dict:
    """GET a VolumeSnapshot as the API answers it (K8sNotFound when there is none)."""
    return _call(
        f"read volumesnapshot {namespace}/{name}",
        _custom().get_namespaced_custom_object,
        SNAPSHOT_GROUP,
        SNAPSHOT_VERSION,
        namespace,
        "volumesnapshots",
        name,
    )


def snapshot_read(*, namespace: str, name: str) -> SnapshotInfo | None:
    """GET a VolumeSnapshot; None when it does not exist."""
    try:
        obj = _snapshot_object(namespace, name)
    except K8sNotFound:
        return None
    return _snapshot_info(obj)


def snapshot_create(
    *,
    namespace: str,
    name: str,
    claim: str,
    class_name: str | None,
    annotations: dict[str, str] | None = None,
) -> SnapshotInfo:
    """POST a VolumeSnapshot of ``claim`` (the cluster's default class when ``class_name`` is
    None). Not retried after a lost answer: a second create of the same name is a 409, which
    the caller (who chose the name) reads as "already made"."""
    body = {
        "apiVersion": f"{SNAPSHOT_GROUP}/{SNAPSHOT_VERSION}",
        "kind": "VolumeSnapshot",
        "metadata": {"name": name, "namespace": namespace, "annotations": annotations or {}},
        "spec": {"source": {"persistentVolumeClaimName": claim}},
    }
    if class_name:
        body["spec"]["volumeSnapshotClassName"] = class_name
    obj = _call(
        f"create volumesnapshot {namespace}/{name}",
        _custom().create_namespaced_custom_object,
        SNAPSHOT_GROUP,
        SNAPSHOT_VERSION,
        namespace,
        "volumesnapshots",
        body,
        retries=0,
    )
    return _snapshot_info(obj)


def pvc_create_from_snapshot(
    *, namespace: str, name: str, template: dict, snapshot: str
) -> PvcInfo:
    """POST a claim ``name`` shaped by ``template`` (a volumeClaimTemplate's spec and labels)
    whose ``dataSource`` is the VolumeSnapshot ``snapshot``. Not retried after a lost answer
    (409 AlreadyExists tells the caller it was made)."""
    spec = dict(template.get("spec") or {})
    spec["dataSource"] = {"apiGroup": SNAPSHOT_GROUP, "kind": "VolumeSnapshot", "name": snapshot}
    body = {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": {"name": name, "namespace": namespace, "labels": template.get("labels") or {}},
        "spec": spec,
    }
    pvc = _call(
        f"create persistentvolumeclaim {namespace}/{name}",
        _core().create_namespaced_persistent_volume_claim,
        namespace,
        body,
        retries=0,
    )
    return _pvc_info(pvc)
