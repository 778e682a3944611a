"""Django settings for ApiOps: the one place the environment is read.

Every value comes from an environment variable (or a secret file, see
:mod:`apiops_site.secrets`) through a strict helper: a malformed value stops the process with
``ImproperlyConfigured`` naming the variable, instead of limping along with a default.
Application settings live in one dict, ``APIOPS``; modules read ``settings.APIOPS[...]`` at call
time so tests can override them.
"""

from __future__ import annotations

import contextlib
import ipaddress
import re
from datetime import timedelta
from pathlib import Path

import environ
from django.core.exceptions import ImproperlyConfigured

from apiops_site.log import register_secret
from apiops_site.notify_config import parse_notify_targets
from apiops_site.secrets import DEFAULT_SECRETS_DIR, read_secret

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = BASE_DIR / "var"

env = environ.Env()

_DNS1123_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")


def _strict(name: str, parse, default):
    """Read ``name`` with a django-environ parser; any malformed value is ImproperlyConfigured."""
    if name not in env.ENVIRON or env.ENVIRON[name].strip() == "":
        return default
    try:
        return parse(name)
    except (ValueError, TypeError) as exc:
        raise ImproperlyConfigured(f"{name}={env.ENVIRON[name]!r} is not valid: {exc}") from exc


def _env_bool(name: str, default: bool) -> bool:
    raw = env.ENVIRON.get(name, "").strip().lower()
    if raw == "":
        return default
    if raw in {"1", "true", "yes", "on"}:
        return True
    if raw in {"0", "false", "no", "off"}:
        return False
    raise ImproperlyConfigured(f"{name}={raw!r} is not a boolean (use true or false)")


def _env_int(name: str, default: int, *, minimum: int = 0) -> int:
    value = _strict(name, lambda n: int(env.str(n).strip()), default)
    if value < minimum:
        raise ImproperlyConfigured(f"{name}={value} must be at least {minimum}")
    return value


def _env_float(name: str, default: float, *, minimum: float = 0.0) -> float:
    value = _strict(name, lambda n: float(env.str(n).strip()), default)
    if not value >= minimum:  # also rejects NaN
        raise ImproperlyConfigured(f"{name}={value} must be at least {minimum}")
    return value


def _env_list(name: str, default: list[str]) -> list[str]:
    raw = env.ENVIRON.get(name)
    if raw is None:
        return list(default)
    return [item.strip() for item in raw.split(",") if item.strip()]


# --- environment kind -------------------------------------------------------------------------
ENV = env.str("ENV", default="local").strip().lower()
if ENV not in {"local", "staging", "prod"}:
    raise ImproperlyConfigured(f"ENV={ENV!r} must be one of local, staging, prod")

DEBUG = _env_bool("OPS_DEBUG", False)

SECRET_KEY = read_secret("secret-key", "OPS_SECRET_KEY")
if SECRET_KEY is None:
    if ENV != "local":
        raise ImproperlyConfigured(f"ENV={ENV} needs OPS_SECRET_KEY (or the secret-key file)")
    SECRET_KEY = "local-development-only-not-a-secret"  # noqa: S105 - never used outside ENV=local
register_secret(SECRET_KEY)
# A token given for Vault (apiops_site.vault) must not reach a log line either.
register_secret(env.ENVIRON.get("VAULT_TOKEN", "").strip())

ALLOWED_HOSTS = _env_list("OPS_ALLOWED_HOSTS", ["127.0.0.1", "localhost", "[::1]"])

# --- application settings ---------------------------------------------------------------------
_namespaces = _env_list("OPS_ALLOWED_NAMESPACES", ["prod", "staging"])
for _ns in _namespaces:
    if len(_ns) > 63 or not _DNS1123_LABEL.match(_ns):
        raise ImproperlyConfigured(
            f"OPS_ALLOWED_NAMESPACES: {_ns!r} is not a DNS-1123 label (a Kubernetes namespace)"
        )

_proxies = []
for _cidr in _env_list("OPS_TRUSTED_PROXIES", []):
    try:
        _proxies.append(ipaddress.ip_network(_cidr, strict=False))
    except ValueError as exc:
        raise ImproperlyConfigured(f"OPS_TRUSTED_PROXIES: {_cidr!r} is not a CIDR: {exc}") from exc

_kubeconfig = env.ENVIRON.get("OPS_KUBECONFIG", "").strip() or None

_api_key = read_secret("api-key", "OPS_API_KEY")
_api_key_actor = env.str("OPS_API_KEY_ACTOR", default="bootstrap").strip()
if not _api_key_actor or len(_api_key_actor) > 150:
    raise ImproperlyConfigured("OPS_API_KEY_ACTOR must be a non-empty name of at most 150 chars")
if _api_key is not None and len(_api_key) < 16:
    raise ImproperlyConfigured("OPS_API_KEY is too short: use at least 16 characters")
register_secret(_api_key)

# PostgreSQL URL (the db-url secret file, Vault, or OPS_DB_URL); None means the embedded
# development server under var/ (see the database section below).
_db_url = read_secret("db-url", "OPS_DB_URL")


def _audit_signing_key() -> str | None:
    """The Ed25519 key (PEM) that signs audit checkpoints (manage.py audit_checkpoint): the
    audit-signing-key secret file, Vault, or OPS_AUDIT_SIGNING_KEY; under ENV=local also the
    one `make run` generates in var/. Read on first use, not at start: a process that signs
    nothing never asks Vault for it. None: checkpoints cannot be signed (nor checked with it).
    """
    pem = read_secret("audit-signing-key", "OPS_AUDIT_SIGNING_KEY")
    if pem is None and ENV == "local":
        with contextlib.suppress(OSError, UnicodeDecodeError):
            pem = (VAR_DIR / "audit-signing-key").read_text(encoding="utf-8").strip() or None
    register_secret(pem)
    return pem


APIOPS = {
    "ENV": ENV,
    # Bootstrap key (OPS_API_KEY or the api-key secret file) and the actor name it acts as.
    "API_KEY": _api_key,
    "API_KEY_ACTOR": _api_key_actor,
    "ALLOWED_NAMESPACES": tuple(_namespaces),
    "MAX_REPLICAS": _env_int("OPS_MAX_REPLICAS", 100),
    "TRUSTED_PROXIES": tuple(_proxies),
    "SECRETS_DIR": env.str("OPS_SECRETS_DIR", default=DEFAULT_SECRETS_DIR),
    # A kubeconfig path; None means the in-cluster service account. KUBECONFIG is ignored.
    "KUBECONFIG": _kubeconfig,
    # Per-request timeout towards the Kubernetes API, seconds.
    "K8S_TIMEOUT": _env_float("OPS_K8S_TIMEOUT", 10.0, minimum=0.01),
    # Retries after the first attempt for 429/5xx/connection errors, with exponential backoff
    # from K8S_BACKOFF seconds; a Retry-After from the server is honoured up to K8S_RETRY_MAX_WAIT.
    "K8S_RETRIES": _env_int("OPS_K8S_RETRIES", 3),
    "K8S_BACKOFF": _env_float("OPS_K8S_BACKOFF", 0.2),
    "K8S_RETRY_MAX_WAIT": _env_float("OPS_K8S_RETRY_MAX_WAIT", 5.0),
    # Readiness probe's Kubernetes timeout (no retries there: a probe must answer quickly).
    "K8S_PING_TIMEOUT": _env_float("OPS_K8S_PING_TIMEOUT", 2.0, minimum=0.01),
    # Failed authentications from one source IP within the window before answering 429.
    "AUTH_FAILURE_LIMIT": _env_int("OPS_AUTH_FAILURE_LIMIT", 20, minimum=1),
    "AUTH_FAILURE_WINDOW": _env_int("OPS_AUTH_FAILURE_WINDOW", 60, minimum=1),
    # The audit list counts exactly up to this many rows, then reports the planner's estimate.
    "AUDIT_COUNT_CAP": _env_int("OPS_AUDIT_COUNT_CAP", 10000, minimum=1),
    # Database alias the audit log is written through: its own autocommit connection, so a
    # row survives the rollback of the request transaction.
    "AUDIT_DB": "audit",
    # The request path's statements as server-side prepared statements (ops.db); off behind a
    # pooler that does not keep one server session per client connection.
    "DB_PREPARED_STATEMENTS": _env_bool("OPS_DB_PREPARED_STATEMENTS", True),
    # Jobs (see jobs/conf.py): how long a wait step may take, the runner's lease on a job,
    # the pause between two checks of a wait (0.5 s keeps a wait at <= 2 requests/s), how long
    # one tick may poll before handing the worker back (0: one check per tick), how often the
    # pump rescues stranded jobs, and how many interruptions a step survives.
    "JOB_WAIT_TIMEOUT": _env_float("OPS_JOB_WAIT_TIMEOUT", 600.0, minimum=1.0),
    "JOB_LEASE_SECONDS": _env_float("OPS_JOB_LEASE_SECONDS", 10.0, minimum=1.0),
    "JOB_POLL_INTERVAL": _env_float("OPS_JOB_POLL_INTERVAL", 1.0, minimum=0.5),
    "JOB_TICK_BUDGET": _env_float("OPS_JOB_TICK_BUDGET", 0.0),
    "JOB_PUMP_INTERVAL": _env_float("OPS_JOB_PUMP_INTERVAL", 5.0, minimum=0.5),
    "JOB_MAX_INTERRUPTIONS": _env_int("OPS_JOB_MAX_INTERRUPTIONS", 3),
    # VolumeSnapshotClass of pg-backup's snapshots; None: the cluster's default class.
    "SNAPSHOT_CLASS": env.str("OPS_SNAPSHOT_CLASS", default="").strip() or None,
    # After how long the pump closes an audit row left "pending" (its process died between
    # the row and the outcome) as "outcome unknown".
    "AUDIT_PENDING_MAX_AGE": _env_float("OPS_AUDIT_PENDING_MAX_AGE", 900.0, minimum=60.0),
    # Change control: "<namespace>:<operation>" patterns ("prod:*", "*:pg-rebuild") whose
    # requests wait for a second key's approval, and how long such a request stays approvable.
    "APPROVAL_REQUIRED": tuple(_env_list("OPS_APPROVAL_REQUIRED", [])),
    "APPROVAL_TTL": _env_float("OPS_APPROVAL_TTL", 3600.0, minimum=1.0),
    # How long the answer to a request with an Idempotency-Key is kept for replay, seconds
    # (ops/idempotency.py); a claim without an answer holds for AUDIT_PENDING_MAX_AGE.
    "IDEMPOTENCY_TTL": _env_int("OPS_IDEMPOTENCY_TTL", 86400, minimum=1),
    # The checkpoints' signing key: its PEM, or a function that reads it (the default).
    "AUDIT_SIGNING_KEY": _audit_signing_key,
    # Kubernetes requests of an operation carry Impersonate-User: apiops:<actor> (the service
    # account needs the RBAC in k8s/impersonation-rbac.yaml).
    "IMPERSONATE": _env_bool("OPS_IMPERSONATE", False),
    # The API server's usernames of ApiOps's own credentials, for audit_reconcile's orphans;
    # empty: those seen on the requests its rows account for.
    "K8S_AUDIT_USERS": tuple(_env_list("OPS_K8S_AUDIT_USERS", [])),
}

for _pattern in APIOPS["APPROVAL_REQUIRED"]:
    if _pattern.count(":") != 1 or "" in _pattern.split(":"):
        raise ImproperlyConfigured(
            f"OPS_APPROVAL_REQUIRED: {_pattern!r} is not <namespace>:<operation> "
            "(either may be *, e.g. prod:* or *:pg-rebuild)"
        )

# --- metrics and notifications (ops/metrics.py, ops/notifications.py) --------------------------
# GET /metrics answers only with this bearer token (the metrics-token secret file wins).
_metrics_token = read_secret("metrics-token", "OPS_METRICS_TOKEN")
register_secret(_metrics_token)
# prometheus-client's multiprocess mode: every web and worker process writes its values there
# and a scrape adds them up. Read by prometheus-client itself; made here when missing (an
# emptyDir in a pod starts empty).
_metrics_dir = env.ENVIRON.get("PROMETHEUS_MULTIPROC_DIR", "").strip()
if _metrics_dir:
    try:
        Path(_metrics_dir).mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ImproperlyConfigured(
            f"PROMETHEUS_MULTIPROC_DIR={_metrics_dir} cannot be made: {exc.strerror}"
        ) from None
_notify_targets = parse_notify_targets(env.ENVIRON.get("OPS_NOTIFY_TARGETS"))
for _target in _notify_targets:
    register_secret(_target["url"], _target["secret"])
APIOPS.update(
    {
        "METRICS_TOKEN": _metrics_token,
        # Targets from OPS_NOTIFY_TARGETS, beside those managed in the admin.
        "NOTIFY_TARGETS": _notify_targets,
        # One delivery attempt's timeout; the pause after a failed attempt doubles from
        # NOTIFY_BACKOFF up to NOTIFY_BACKOFF_MAX; after NOTIFY_MAX_ATTEMPTS it is given up
        # (shown in the admin, retryable there). Deliveries run NOTIFY_CONCURRENCY at a time in
        # each worker process, beside (never instead of) the jobs' ticks.
        "NOTIFY_TIMEOUT": _env_float("OPS_NOTIFY_TIMEOUT", 5.0, minimum=0.1),
        "NOTIFY_BACKOFF": _env_float("OPS_NOTIFY_BACKOFF", 2.0, minimum=0.01),
        "NOTIFY_BACKOFF_MAX": _env_float("OPS_NOTIFY_BACKOFF_MAX", 300.0, minimum=0.01),
        "NOTIFY_MAX_ATTEMPTS": _env_int("OPS_NOTIFY_MAX_ATTEMPTS", 12, minimum=1),
        "NOTIFY_CONCURRENCY": _env_int("OPS_NOTIFY_CONCURRENCY", 4, minimum=1),
    }
)

# django-q2 only delivers the jobs' ticks (jobs/dispatch.py); the job rows are the state.
# ORM broker: the queue is a table in our database. timeout (a tick's hard limit) is well under
# retry (when an unacknowledged task is delivered again); a killed worker's job is recovered
# by the pump once its lease lapses, long before retry. Failures are acknowledged (the runner
# records them on the job), attempts are finite, and nothing is prefetched beyond the workers.
_q_workers = _env_int("OPS_Q_WORKERS", 2, minimum=1)
Q_CLUSTER = {
    "name": "apiops",
    "orm": "default",
    "workers": _q_workers,
    "timeout": _env_int("OPS_Q_TIMEOUT", 120, minimum=10),
    "retry": _env_int("OPS_Q_RETRY", 900, minimum=30),
    "max_attempts": 3,
    "ack_failures": True,
    "queue_limit": _q_workers,
    "bulk": 1,
    "catch_up": False,
    "poll": _env_float("OPS_Q_POLL", 0.2, minimum=0.05),
    "save_limit": 1000,
    "label": "Task queue",
    # Workers are never recycled (never 2**62 tasks): jobs.worker replaces the whole cluster as
    # soon as one of its processes leaves it, because a killed one can leave a queue lock held
    # (django-q2 #23), so a recycled worker would restart the cluster every `recycle` tasks.
    "recycle": 2**62,
}
if Q_CLUSTER["timeout"] >= Q_CLUSTER["retry"]:
    raise ImproperlyConfigured("OPS_Q_TIMEOUT must be under OPS_Q_RETRY: tasks would run twice")
if APIOPS["JOB_TICK_BUDGET"] >= Q_CLUSTER["timeout"]:
    # A tick polls for up to its budget, plus its step's own calls: at or past the timeout,
    # django-q2 kills the worker mid-tick on every long wait (a crash loop by design).
    raise ImproperlyConfigured(
        f"OPS_JOB_TICK_BUDGET={APIOPS['JOB_TICK_BUDGET']:g} must be under "
        f"OPS_Q_TIMEOUT={Q_CLUSTER['timeout']}: every tick using its budget would be killed"
    )

# --- production guard rails -------------------------------------------------------------------


def _kubeconfig_is_kubesim(path: str) -> bool:
    """True when the kubeconfig's clusters or contexts are named after kubesim."""
    import yaml

    try:
        data = yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise ImproperlyConfigured(f"OPS_KUBECONFIG={path!r} cannot be read: {exc}") from exc
    names = [item.get("name", "") for item in data.get("clusters") or [] if isinstance(item, dict)]
    names += [item.get("name", "") for item in data.get("contexts") or [] if isinstance(item, dict)]
    return any("kubesim" in str(name) for name in names)


if ENV == "prod":
    if DEBUG:
        raise ImproperlyConfigured("ENV=prod refuses OPS_DEBUG=true")
    if _api_key is None:
        raise ImproperlyConfigured("ENV=prod needs OPS_API_KEY (or the api-key secret file)")
    if _kubeconfig is not None and _kubeconfig_is_kubesim(_kubeconfig):
        raise ImproperlyConfigured(f"ENV=prod refuses OPS_KUBECONFIG={_kubeconfig}: it is kubesim")
    if not _db_url:
        # Without a URL the embedded development server would start inside the pod: a
        # throwaway database, and an audit log that vanishes with the container.
        raise ImproperlyConfigured(
            "ENV=prod needs OPS_DB_URL (or the db-url secret file, or db_url in Vault)"
        )

# --- Django -----------------------------------------------------------------------------------
INSTALLED_APPS = [
    "apiops_site.apps.ApiOpsAdminConfig",  # django.contrib.admin, dashboard index
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django.contrib.postgres",
    "rest_framework",
    "django_filters",
    "drf_spectacular",
    "drf_spectacular_sidecar",  # Swagger UI's files, served from here (no CDN)
    "csp",
    "django_q",
    "axes",
    "ops",
    "jobs",
]

MIDDLEWARE = [
    # First, so every answer (redirects and refusals of the others included) has a request id
    # and one access line.
    "apiops_site.log.RequestLogMiddleware",
    # Times every answer, by URL pattern (apiops_http_request_duration_seconds).
    "ops.metrics.MetricsMiddleware",
    "django.middleware.security.SecurityMiddleware",
    # Content-Security-Policy on every answer: CONTENT_SECURITY_POLICY below on pages, a fixed
    # strict one on JSON (apiops_site/csp.py).
    "apiops_site.csp.CSPMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    # A database connection error around a view (the request transaction cannot begin or
    # commit) is a 503, as DRF's handler answers one inside a view: not a 500 with a traceback.
    "ops.middleware.DatabaseUnavailableMiddleware",
    # Stores the answer of a request with an Idempotency-Key once its view (and request
    # transaction) is done, or releases the key after a 5xx.
    "ops.idempotency.IdempotencyMiddleware",
    # Last, as django-axes asks: turns a lockout into its 429 page.
    "axes.middleware.AxesMiddleware",
]

# Admin logins: django-axes counts failures per username and address and locks that pair out
# for a while (429); every login, failure and lockout is also an ops_log row (ops/logins.py).
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
]
AXES_FAILURE_LIMIT = _env_int("OPS_ADMIN_LOGIN_FAILURE_LIMIT", 5, minimum=1)
AXES_COOLOFF_TIME = timedelta(seconds=_env_int("OPS_ADMIN_LOGIN_LOCKOUT", 900, minimum=1))
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_RESET_ON_SUCCESS = True
AXES_CLIENT_IP_CALLABLE = "ops.client_ip.client_ip"
AXES_DISABLE_ACCESS_LOG = True  # successful logins are ops_log rows already
AXES_VERBOSE = False
AXES_ENABLE_ADMIN = False  # lockouts are audit rows; `manage.py axes_reset_username` lifts one

ROOT_URLCONF = "apiops_site.urls"
WSGI_APPLICATION = "apiops_site.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

# --- database ---------------------------------------------------------------------------------
if _db_url:
    register_secret(_db_url)
    try:
        _default_db = env.db_url_config(_db_url)
    except (ValueError, KeyError) as exc:
        # The chain is dropped: its traceback could quote the URL, password included.
        raise ImproperlyConfigured(f"OPS_DB_URL is not a database URL: {exc}") from None
    register_secret(_default_db.get("PASSWORD"))
    if _default_db.get("ENGINE") != "django.db.backends.postgresql":
        raise ImproperlyConfigured("OPS_DB_URL must be a PostgreSQL URL (SQLite is not supported)")
else:
    # The embedded server under var/pgdata, started on the first connection.
    _default_db = {"ENGINE": "apiops_site.db", "NAME": "apiops", "USER": "postgres"}

_default_db.update(
    {
        "ATOMIC_REQUESTS": True,
        "CONN_MAX_AGE": _env_int("OPS_DB_CONN_MAX_AGE", 60),
        "CONN_HEALTH_CHECKS": True,
    }
)
_default_db.setdefault("OPTIONS", {}).setdefault("connect_timeout", 5)
DATABASES = {
    "default": _default_db,
    # Same database, separate connection in autocommit: audit rows and auth-failure counts are
    # committed immediately, whatever happens to the request transaction on "default".
    "audit": {**_default_db, "ATOMIC_REQUESTS": False, "OPTIONS": dict(_default_db["OPTIONS"])},
}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- i18n, static -----------------------------------------------------------------------------
LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "staticfiles"
# Serve app static files (admin, browsable API, Swagger UI) without a collectstatic step; the
# container image runs collectstatic, a checkout need not. WhiteNoise warns on every start when
# STATIC_ROOT is missing, so an empty one is made (it is git-ignored).
WHITENOISE_USE_FINDERS = True
with contextlib.suppress(OSError):
    STATIC_ROOT.mkdir(exist_ok=True)

# --- HTTPS ------------------------------------------------------------------------------------
# Outside ENV=local, ApiOps is served through a TLS-terminating ingress: cookies are Secure,
# plain HTTP is redirected to HTTPS and browsers are told to stay on HTTPS (HSTS). The kubelet
# probes the pod over plain HTTP, so /health/ is never redirected (a probe follows a redirect
# to another host and counts it as passed, whatever the application's state).
_deployed = ENV != "local"
SECURE_CONTENT_TYPE_NOSNIFF = True
X_FRAME_OPTIONS = "DENY"
SESSION_COOKIE_HTTPONLY = True
CSRF_COOKIE_HTTPONLY = True
SESSION_COOKIE_SECURE = _deployed
CSRF_COOKIE_SECURE = _deployed
SECURE_SSL_REDIRECT = _env_bool("OPS_SSL_REDIRECT", _deployed)
SECURE_REDIRECT_EXEMPT = [r"^health/"]
SECURE_HSTS_SECONDS = _env_int("OPS_HSTS_SECONDS", 31_536_000 if _deployed else 0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = _env_bool("OPS_HSTS_INCLUDE_SUBDOMAINS", True)
SECURE_HSTS_PRELOAD = _env_bool("OPS_HSTS_PRELOAD", False)
# Browsers' HSTS preload lists take registrable domains only (example.org, not
# apiops.example.org) and bind every subdomain of the organisation: that is decided for the
# whole domain, not by one service. So preload is opt-in and its reminder (W021) is silenced
# until then.
SILENCED_SYSTEM_CHECKS = [] if SECURE_HSTS_PRELOAD else ["security.W021"]

# The header the ingress sets to "https" for requests that arrived over TLS; without it every
# proxied request would look like plain HTTP and be redirected forever. The proxy must
# overwrite a client's own value (ingress-nginx and the common controllers do). An empty
# value turns it off (nothing in front of ApiOps, or a proxy that does not set it).
_proxy_header = env.ENVIRON.get("OPS_PROXY_SSL_HEADER")
if _proxy_header is None:
    _proxy_header = "X-Forwarded-Proto" if _deployed else ""
_proxy_header = _proxy_header.strip()
if _proxy_header and not re.fullmatch(r"[A-Za-z0-9-]+", _proxy_header):
    raise ImproperlyConfigured(f"OPS_PROXY_SSL_HEADER={_proxy_header!r} is not a header name")
SECURE_PROXY_SSL_HEADER = (
    ("HTTP_" + _proxy_header.upper().replace("-", "_"), "https") if _proxy_header else None
)

# --- DRF, OpenAPI -----------------------------------------------------------------------------
REST_FRAMEWORK = {
    # X-API-Key first (its 401 names the header); then the admin session of a staff user, so
    # the browsable API works in a browser (CSRF enforced; see ops/permissions.py).
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "ops.authentication.ApiKeyAuthentication",
        "ops.authentication.StaffSessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_RENDERER_CLASSES": [
        "rest_framework.renderers.JSONRenderer",
        "rest_framework.renderers.BrowsableAPIRenderer",
    ],
    "DEFAULT_PARSER_CLASSES": ["ops.parsers.StrictJSONParser"],
    "DEFAULT_FILTER_BACKENDS": ["ops.filters.StrictFilterBackend"],
    "DEFAULT_SCHEMA_CLASS": "ops.schema.AutoSchema",
    "EXCEPTION_HANDLER": "ops.handlers.exception_handler",
    "UNAUTHENTICATED_USER": None,
    # ASCII JSON (non-ASCII as \uXXXX escapes): an answer that quotes the caller's input (an
    # unknown field named "\ud800") stays encodable whatever characters it holds.
    "UNICODE_JSON": False,
}

SPECTACULAR_SETTINGS = {
    "TITLE": "ApiOps",
    "DESCRIPTION": "Audited, namespace-confined Kubernetes operations.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    # The schema and docs need the API key like every endpoint but /health, or (so a browser
    # can open /api/docs/) the admin session of a staff user. The key comes first: an
    # unauthenticated request gets its 401 with WWW-Authenticate. "Try it out" sends the key
    # given to Swagger UI's "Authorize" button, or else the staff session (with the
    # permissions of ops/permissions.py).
    "SERVE_PERMISSIONS": ["ops.authentication.IsApiKeyOrStaff"],
    "SERVE_AUTHENTICATION": [
        "ops.authentication.ApiKeyAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    # Swagger UI from the drf-spectacular-sidecar package (pinned), served by us: the docs
    # work offline and load nothing from another host (see CONTENT_SECURITY_POLICY).
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "SWAGGER_UI_SETTINGS": {
        "deepLinking": True,
        # No badge from the public validator service (another host).
        "validatorUrl": None,
        # The key stays in the page's memory, not in the browser's localStorage.
        "persistAuthorization": False,
        "displayRequestDuration": True,
    },
    # Jobs and audit rows both have a "status" field with different choices: name them apart.
    "ENUM_NAME_OVERRIDES": {
        "JobStatusEnum": "jobs.models.JobStatus",
        "OpsLogStatusEnum": "ops.models.OpsLogStatus",
    },
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",  # the default
        "ops.schema.idempotency_key_header",
    ],
}

# --- Content-Security-Policy (django-csp) ---------------------------------------------------
# Every page (admin, browsable API, docs) loads only from this origin, and runs no inline
# script: the admin's and the browsable API's scripts are files, and the docs page uses
# drf-spectacular's split view (its start-up script is a file too). Inline *styles* stay
# allowed: the admin and Swagger UI set style attributes, which only a nonce-less
# 'unsafe-inline' permits, and a style cannot run code. Images may be data: URLs (Swagger UI's
# icons).
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": ["'self'"],
        "script-src": ["'self'"],
        "style-src": ["'self'", "'unsafe-inline'"],
        "img-src": ["'self'", "data:"],
        "font-src": ["'self'"],
        "connect-src": ["'self'"],
        "object-src": ["'none'"],
        "base-uri": ["'self'"],
        "form-action": ["'self'"],
        "frame-ancestors": ["'none'"],
    }
}

# --- logging ----------------------------------------------------------------------------------
# One line per record on stderr: JSON outside ENV=local (for the cluster's log collector), a
# readable line in a terminal. Both carry the request id and scrub secrets (apiops_site/log.py).
# The access line per request comes from RequestLogMiddleware (logger apiops.request).
_log_format = env.str("OPS_LOG_FORMAT", default="json" if _deployed else "plain").strip().lower()
if _log_format not in {"json", "plain"}:
    raise ImproperlyConfigured(f"OPS_LOG_FORMAT={_log_format!r} must be json or plain")
_log_level = env.str("OPS_LOG_LEVEL", default="INFO").strip().upper()
if _log_level not in {"DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"}:
    raise ImproperlyConfigured(
        f"OPS_LOG_LEVEL={_log_level!r} must be DEBUG, INFO, WARNING, ERROR or CRITICAL"
    )
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {"request_id": {"()": "apiops_site.log.RequestIdFilter"}},
    "formatters": {
        "json": {"()": "apiops_site.log.JsonFormatter"},
        "plain": {"()": "apiops_site.log.PlainFormatter"},
    },
    "handlers": {
        "console": {
            "class": "logging.StreamHandler",
            "formatter": _log_format,
            "filters": ["request_id"],
        }
    },
    "root": {"handlers": ["console"], "level": _log_level},
    "loggers": {
        "kubernetes": {"level": "WARNING"},
        "axes": {"level": "WARNING"},
        "urllib3": {"level": "WARNING"},
        # Every 4xx is already on its access line; Django's own line would say it again.
        # 5xx stay, with their traceback.
        "django.request": {"level": "ERROR"},
    },
}
