"""Prometheus metrics: what every process counts, and what the database knows at scrape time.

Two kinds of values, each from where it is true:

* **Counted by the processes** (counters and histograms below): operations as their audit row
  gets its outcome, HTTP requests, Kubernetes requests (in the gateway), jobs ending, steps,
  pick-up delays, notification deliveries. The web server's workers and django-q2's workers are
  separate processes, so with ``PROMETHEUS_MULTIPROC_DIR`` set (``make run``, the container
  image, the tests' stacks) every process writes its values to files there and a scrape adds
  them up (prometheus-client's multiprocess mode); without it a scrape shows this process
  alone. The directory must be emptied before the processes start (``make run`` does).
* **Read from the database at scrape time** (:data:`DATABASE_GAUGES`): active jobs, pending
  approvals, the queue's oldest due task, the pump's last run, outstanding notifications.
  Other apps supply the values with :func:`register_gauge_source` (ops imports none of them);
  a gauge nobody supplies is still described, with no sample: never a made-up value.

Labels are bounded: operations, job types and steps are names the code registers, a namespace
outside ``OPS_ALLOWED_NAMESPACES`` is counted as ``_other``, HTTP requests are labelled with
their URL pattern, Kubernetes requests with the resource type. Never an object's name or id.

Every metric is described (``# HELP``, ``# TYPE``) from the first scrape, zero-valued where its
label values are known in advance.
"""

from __future__ import annotations

import hmac
import logging
import os
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from urllib.parse import urlsplit

from django.conf import settings
from django.db import Error as DatabaseError
from django.http import HttpRequest, HttpResponse, JsonResponse
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
)
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.multiprocess import MultiProcessCollector

from ops import extensions

logger = logging.getLogger(__name__)

#: The label value of a namespace outside the allowed list (not a DNS label: cannot clash).
OTHER = "_other"

OPERATION_STATUSES = ("success", "error", "denied")
JOB_END_STATUSES = ("success", "failed", "cancelled")
NOTIFICATION_CHANNELS = ("slack", "teams", "webhook")
#: ``delivered``: answered 2xx; ``failed``: an attempt failed (it is retried);
#: ``undeliverable``: given up after the last attempt (retryable from the admin).
NOTIFICATION_OUTCOMES = ("delivered", "failed", "undeliverable")

OPERATIONS = Counter(
    "apiops_operations",
    "Attempted operations by outcome, counted as their ops_log row is finished.",
    ["operation", "namespace", "status"],
)
HTTP_DURATION = Histogram(
    "apiops_http_request_duration_seconds",
    "Time to answer an HTTP request, by URL pattern.",
    ["method", "route", "status"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
K8S_REQUESTS = Counter(
    "apiops_kubernetes_requests",
    "Requests to the Kubernetes API by verb, resource and HTTP status (<error>: no answer).",
    ["verb", "resource", "code"],
)
K8S_DURATION = Histogram(
    "apiops_kubernetes_request_duration_seconds",
    "Time a Kubernetes API request took, answer read.",
    ["verb", "resource"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
AUDIT_WRITE_FAILURES = Counter(
    "apiops_audit_write_failures",
    "Audit rows that could not be written (an operation refused with 503, or an outcome "
    "left pending).",
)
JOBS = Counter("apiops_jobs", "Jobs that ended, by type and final status.", ["type", "status"])
JOB_STEP_DURATION = Histogram(
    "apiops_job_step_duration_seconds",
    "Time from a step's start to its end (success or failure), database clock.",
    ["type", "step"],
    buckets=(0.1, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600),
)
JOB_PICKUP = Histogram(
    "apiops_job_pickup_seconds",
    "How long a due job waited for a worker to claim it (next_run_at to claim).",
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300),
)
NOTIFICATIONS = Counter(
    "apiops_notifications",
    "Notification delivery attempts by channel and outcome.",
    ["channel", "outcome"],
)
AUTH_LOCKOUTS = Counter(
    "apiops_auth_lockouts",
    "Sources locked out (429) after too many failed authentications.",
)

for _channel in NOTIFICATION_CHANNELS:
    for _outcome in NOTIFICATION_OUTCOMES:
        NOTIFICATIONS.labels(_channel, _outcome)


# --- label values -------------------------------------------------------------------------

_PRIMITIVE_OPERATIONS = {
    ("scale", "deployment"): "scale",
    ("scale", "statefulset"): "scale",
    ("delete", "pod"): "delete-pod",
    ("delete", "persistentvolumeclaim"): "delete-pvc",
    ("restart", "deployment"): "restart",
    ("restart", "statefulset"): "restart",
    ("create", "volumesnapshot"): "create-snapshot",
    ("create", "persistentvolumeclaim"): "create-pvc",
}


def operation_label(action: str, resource_kind: str) -> str:
    """The ``operation`` label of an audit row: a primitive's name (``scale``,
    ``delete-pod``...), a registered operation or audit action (job types, ``cancel``...),
    else ``other``."""
    primitive = _PRIMITIVE_OPERATIONS.get((action, resource_kind))
    if primitive:
        return primitive
    if action in extensions.operations() or action in extensions.audit_values("action"):
        return action
    return "other"


def namespace_label(namespace: str) -> str:
    """An allowed namespace as itself, no namespace as "", any other as ``_other``."""
    if not namespace or namespace in settings.APIOPS["ALLOWED_NAMESPACES"]:
        return namespace or ""
    return OTHER


def count_operation(*, action: str, resource_kind: str, namespace: str, status: str) -> None:
    """Count one finished attempt (called where its audit row gets its final status)."""
    if status not in OPERATION_STATUSES:
        return
    OPERATIONS.labels(
        operation_label(action, resource_kind), namespace_label(namespace), status
    ).inc()


def preset_operations(names: Iterable[str]) -> None:
    """Zero-valued series for ``names`` in every allowed namespace and status, so dashboards
    and alerts see them from the first scrape."""
    for name in names:
        for namespace in settings.APIOPS["ALLOWED_NAMESPACES"]:
            for status in OPERATION_STATUSES:
                OPERATIONS.labels(name, namespace, status)


def preset_job_type(job_type: str, steps: Iterable[str]) -> None:
    """Zero-valued series for a job type: its ends by status and its steps' durations."""
    for status in JOB_END_STATUSES:
        JOBS.labels(job_type, status)
    for step in steps:
        JOB_STEP_DURATION.labels(job_type, step)


# --- Kubernetes requests (measured by ops.k8s) -------------------------------------------

_K8S_VERBS = {"POST": "create", "PUT": "update", "PATCH": "patch"}


def kubernetes_request_labels(method: str, url: str) -> tuple[str, str]:
    """``(verb, resource)`` of a Kubernetes API request, as the API server names them:
    ``GET .../namespaces/ns/pods/x`` -> ``("get", "pods")``, ``.../statefulsets/x/scale`` ->
    ``("get", "statefulsets/scale")``, ``GET /version`` -> ``("get", "version")``."""
    parts = [p for p in urlsplit(url).path.split("/") if p]
    if parts[:1] == ["api"]:
        rest = parts[2:]  # api/v1/...
    elif parts[:1] == ["apis"]:
        rest = parts[3:]  # apis/group/version/...
    else:
        rest = []  # /version, discovery
    if len(rest) >= 3 and rest[0] == "namespaces":
        rest = rest[2:]  # a namespaced resource: namespaces/<ns>/<resource>...
    if rest:
        resource, named = rest[0], len(rest) >= 2
        if len(rest) >= 3:
            resource += "/" + rest[2]  # a subresource: statefulsets/<name>/scale
    else:
        resource, named = (parts[0] if parts and parts[0] not in ("api", "apis") else ""), True
    method = method.upper()
    if method == "GET":
        verb = "get" if named else "list"
    elif method == "DELETE":
        verb = "delete" if named else "deletecollection"
    else:
        verb = _K8S_VERBS.get(method, method.lower())
    return verb, resource


def observe_kubernetes_request(method: str, url: str, code: str, seconds: float) -> None:
    """Count one Kubernetes API request and its duration."""
    verb, resource = kubernetes_request_labels(method, url)
    K8S_REQUESTS.labels(verb, resource, code).inc()
    K8S_DURATION.labels(verb, resource).observe(seconds)


# --- HTTP requests ------------------------------------------------------------------------

_METHODS = {"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"}


class MetricsMiddleware:
    """Time every HTTP request, labelled with its URL pattern (``unmatched`` for a 404 that
    matched none): never the path itself, which holds object names."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        """Pass the request on and observe how long the answer took."""
        started = time.perf_counter()
        response = self.get_response(request)
        match = getattr(request, "resolver_match", None)
        route = (match.route or match.view_name or "other") if match else "unmatched"
        method = request.method if request.method in _METHODS else "other"
        HTTP_DURATION.labels(method, route, str(response.status_code)).observe(
            time.perf_counter() - started
        )
        return response


# --- values read from the database at scrape time ---------------------------------------


@dataclass(frozen=True)
class DatabaseGauge:
    """A gauge whose value is read from the database when /metrics is scraped."""

    name: str
    documentation: str
    labelnames: tuple[str, ...] = ()


DATABASE_GAUGES = {
    gauge.name: gauge
    for gauge in (
        DatabaseGauge("apiops_jobs_active", "Jobs pending or running, by type.", ("type",)),
        DatabaseGauge("apiops_approvals_pending", "Approval requests waiting for a decision."),
        DatabaseGauge(
            "apiops_queue_due_tasks", "Tasks in the worker queue that are due and not taken."
        ),
        DatabaseGauge(
            "apiops_queue_oldest_due_seconds",
            "Age of the oldest due task nobody has taken (0 when none): a stalled queue grows.",
        ),
        DatabaseGauge(
            "apiops_jobs_pump_age_seconds",
            "Seconds since the jobs pump last ran, database clock (no sample: never ran).",
        ),
        DatabaseGauge(
            "apiops_workers_alive", "Job worker processes seen alive in the last 30 seconds."
        ),
        DatabaseGauge(
            "apiops_notifications_pending", "Notification deliveries waiting or being retried."
        ),
        DatabaseGauge(
            "apiops_notifications_undeliverable",
            "Notification deliveries given up on (retry them in the admin).",
        ),
        DatabaseGauge(
            "apiops_notifications_oldest_pending_seconds",
            "Age of the oldest notification not yet delivered (0 when none).",
        ),
    )
}

#: A source returns one value (a gauge without labels) or ``{label values: value}``.
GaugeSource = Callable[[], float | Mapping[tuple[str, ...], float] | None]
_gauge_sources: dict[str, GaugeSource] = {}


def register_gauge_source(name: str, source: GaugeSource) -> None:
    """Supply the values of the database gauge ``name`` (one of :data:`DATABASE_GAUGES`).

    ``source`` is called at every scrape, on the ``default`` database; it returns a number,
    ``{(label values...): number}`` for a gauge with labels, or None for "no sample". A source
    that raises a database error leaves its gauge without a sample for that scrape.
    """
    if name not in DATABASE_GAUGES:
        raise KeyError(f"{name} is not a declared database gauge")
    _gauge_sources[name] = source


def _database_families() -> list[Metric]:
    families = []
    for gauge in DATABASE_GAUGES.values():
        family = GaugeMetricFamily(gauge.name, gauge.documentation, labels=gauge.labelnames)
        source = _gauge_sources.get(gauge.name)
        try:
            value = source() if source else None
        except DatabaseError:
            logger.warning("metrics: %s could not be read from the database", gauge.name)
            value = None
        if isinstance(value, Mapping):
            for labels, number in sorted(value.items()):
                family.add_metric(list(labels), float(number))
        elif value is not None:
            family.add_metric([], float(value))
        families.append(family)
    return families


# --- the scrape -----------------------------------------------------------------------------

_PROCESS_METRICS = (
    OPERATIONS,
    HTTP_DURATION,
    K8S_REQUESTS,
    K8S_DURATION,
    AUDIT_WRITE_FAILURES,
    JOBS,
    JOB_STEP_DURATION,
    JOB_PICKUP,
    NOTIFICATIONS,
    AUTH_LOCKOUTS,
)


def multiprocess_dir() -> str | None:
    """The directory every process writes its values to, or None (single process)."""
    return os.environ.get("PROMETHEUS_MULTIPROC_DIR") or None


class _Scrape:
    """Everything one scrape shows: the processes' values, the database gauges, and an empty
    description for any metric nobody has touched yet."""

    def collect(self) -> Iterable[Metric]:
        path = multiprocess_dir()
        if path:
            counted = list(MultiProcessCollector(None, path=path).collect())
        else:
            counted = list(REGISTRY.collect())
        seen = {family.name for family in counted}
        for metric in _PROCESS_METRICS:
            for family in metric.describe():
                if family.name not in seen:
                    counted.append(family)
        yield from counted
        yield from _database_families()


def exposition() -> bytes:
    """The Prometheus text of one scrape."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Scrape())
    return generate_latest(registry)


def _refusal(status: int, code: str, detail: str) -> JsonResponse:
    response = JsonResponse({"detail": detail, "code": code}, status=status)
    if status == 401:
        response["WWW-Authenticate"] = 'Bearer realm="apiops-metrics"'
    return response


def metrics_view(request: HttpRequest) -> HttpResponse:
    """``GET /metrics`` with ``Authorization: Bearer <OPS_METRICS_TOKEN>``.

    Without a configured token nothing is shown (403 ``metrics_disabled``); a missing or
    wrong token is 401.
    """
    if request.method not in ("GET", "HEAD"):
        return _refusal(405, "method_not_allowed", f'Method "{request.method}" not allowed.')
    token = settings.APIOPS.get("METRICS_TOKEN")
    if not token:
        return _refusal(
            403, "metrics_disabled", "Metrics are off: set OPS_METRICS_TOKEN (or metrics-token)."
        )
    scheme, _, given = request.META.get("HTTP_AUTHORIZATION", "").partition(" ")
    if scheme.lower() != "bearer" or not given.strip():
        return _refusal(401, "not_authenticated", "Send Authorization: Bearer <metrics token>.")
    if not hmac.compare_digest(given.strip().encode(), token.encode()):
        return _refusal(401, "authentication_failed", "Invalid metrics token.")
    return HttpResponse(exposition(), content_type=CONTENT_TYPE_LATEST)
