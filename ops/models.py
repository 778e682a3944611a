"""Tables of the ops app: the audit log (``ops_log``) and the API keys (``ops_api_key``)."""

from __future__ import annotations

import hashlib
import hmac
import secrets
import uuid
from dataclasses import dataclass
from datetime import timedelta

from django.contrib.postgres.fields import ArrayField
from django.contrib.postgres.functions import RandomUUID
from django.db import models
from django.db.models import Q
from django.utils import timezone

from ops.chain import seal
from ops.validation import api_key_name_problem

KEY_PREFIX = "ops"
_PREFIX_LEN = 8


class OpsLogStatus(models.TextChoices):
    """Outcome of one attempted operation."""

    SUCCESS = "success", "success"
    ERROR = "error", "error"
    DENIED = "denied", "denied"
    # Written before the Kubernetes call and replaced by the outcome right after it. A row that
    # stays "pending" records an attempt whose outcome could not be written (the audit
    # database failed mid-operation, or the process died): exactly what an auditor must see.
    PENDING = "pending", "pending"


class OpsLogOrigin(models.TextChoices):
    """Which door the attempt came through."""

    API = "api", "api"
    CLI = "cli", "cli"
    JOB = "job", "job"
    ADMIN = "admin", "admin"
    SYSTEM = "system", "system"  # the service itself (e.g. the workers expiring approvals)


class OpsLogQuerySet(models.QuerySet):
    """Audit rows; created in bulk with their row hashes like one by one."""

    def bulk_create(self, objs, *args, **kwargs):
        objs = list(objs)
        for obj in objs:
            seal(obj)
        return super().bulk_create(objs, *args, **kwargs)


class OpsLog(models.Model):
    """One row per attempted operation, whatever its outcome (the seed's ``ops_log``).

    Written through the ``audit`` database alias (see :mod:`ops.audit`), never through the
    request transaction, so a rolled-back request keeps its row.
    """

    # Nullable text columns follow the seed schema: NULL means "none", e.g. no actor on a 401.
    id = models.BigAutoField(primary_key=True)
    ts = models.DateTimeField(default=timezone.now)
    actor = models.TextField(null=True, blank=True)  # noqa: DJ001
    source_ip = models.TextField(null=True, blank=True)  # noqa: DJ001
    action = models.TextField()
    resource_kind = models.TextField()
    namespace = models.TextField()
    resource_name = models.TextField()
    request_body = models.JSONField(null=True, blank=True)
    status = models.TextField(choices=OpsLogStatus.choices)
    error_message = models.TextField(null=True, blank=True)  # noqa: DJ001
    # Added columns: the job a step's row belongs to, where the attempt came from, the answer.
    job_id = models.TextField(null=True, blank=True, db_index=True)  # noqa: DJ001
    origin = models.TextField(choices=OpsLogOrigin.choices, default=OpsLogOrigin.API)
    code = models.TextField(null=True, blank=True)  # noqa: DJ001 - machine-readable error
    # Which of the actor's API keys was used (its prefix): a name may hold several during a
    # rotation's overlap. NULL for the bootstrap key, commands and job steps.
    key_prefix = models.TextField(null=True, blank=True)  # noqa: DJ001
    http_status = models.PositiveSmallIntegerField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    # A dry run: every check of the real request, a plan, nothing changed in the cluster.
    dry_run = models.BooleanField(default=False, db_default=False)
    # The provable audit (see ops/chain.py): an id the Kubernetes API server records as the
    # auditID of every request made for this row, and the hash chain over finished rows,
    # whose position and chain hash only the database trigger sets.
    audit_id = models.UUIDField(
        default=uuid.uuid4, db_default=RandomUUID(), unique=True, editable=False
    )
    row_hash = models.CharField(max_length=64, null=True, blank=True, editable=False)  # noqa: DJ001
    chain_seq = models.BigIntegerField(null=True, blank=True, unique=True, editable=False)
    chain_hash = models.CharField(max_length=64, null=True, blank=True, editable=False)  # noqa: DJ001

    objects = OpsLogQuerySet.as_manager()

    class Meta:
        db_table = "ops_log"
        ordering = ["-ts", "-id"]
        indexes = [
            # GET /ops/audit reads a page's ids from an index alone, then those rows (see
            # ops.pagination). Newest first, holding the filter columns: a walk that checks
            # them on the index entries, without reading the table.
            models.Index(
                fields=["-ts", "-id"],
                name="ops_log_ts_cover_idx",
                include=["namespace", "status", "action", "actor"],
            ),
            # Every combination of the equality filters, few distinct values first: a
            # combination that leaves out a leading column is a skip scan (PostgreSQL 18) over
            # that column's values, so a rare combination is counted and collected at once.
            models.Index(
                fields=["status", "action", "namespace", "actor", "-ts"],
                name="ops_log_filters_idx",
                include=["id"],
            ),
            # One namespace or one actor newest first, even when its rows are all months old.
            models.Index(fields=["namespace", "-ts"], name="ops_log_ns_ts_id_idx", include=["id"]),
            models.Index(fields=["actor", "-ts"], name="ops_log_actor_ts_id_idx", include=["id"]),
            # The admin's search: an object name or a source IP by its start (LIKE 'x%').
            models.Index(
                fields=["resource_name"],
                name="ops_log_name_prefix_idx",
                opclasses=["text_pattern_ops"],
            ),
            models.Index(
                fields=["source_ip"], name="ops_log_ip_prefix_idx", opclasses=["text_pattern_ops"]
            ),
            # Failed authentications per source IP in a time window (the 401 throttle).
            models.Index(
                fields=["source_ip", "ts"],
                name="ops_log_authfail_idx",
                condition=Q(status="denied", actor__isnull=True),
            ),
            # Finished rows that are not in the chain (written around the trigger): few.
            models.Index(
                fields=["id"], name="ops_log_unchained_idx", condition=Q(chain_seq__isnull=True)
            ),
        ]

    def __str__(self) -> str:
        return (
            f"{self.ts:%Y-%m-%d %H:%M:%S} {self.actor} {self.action} {self.resource_kind} "
            f"{self.namespace}/{self.resource_name}: {self.status}"
        )

    def save(self, *args, **kwargs) -> None:
        """Saved with its ``row_hash`` (a finished row), which the trigger chains."""
        seal(self)
        super().save(*args, **kwargs)


class AuditChainHead(models.Model):
    """The head of the audit chain: one row (id 1), its size and last chain hash.

    Only the ``ops_log_guard`` trigger writes it, under its row lock; that lock is what makes
    concurrent finishers form one chain. :mod:`ops.chain` explains the hashes.
    """

    id = models.PositiveSmallIntegerField(primary_key=True)
    size = models.BigIntegerField()
    head = models.CharField(max_length=64)

    class Meta:
        db_table = "ops_log_chain"

    def __str__(self) -> str:
        return f"{self.size} rows, head {self.head}"


def hash_key(raw: str) -> str:
    """sha256 of an API key: keys are 256-bit random, so a fast hash is enough (no stretching)."""
    return hashlib.sha256(raw.encode("utf-8", "surrogatepass")).hexdigest()


def keys_equal(a: str, b: str) -> bool:
    """Constant-time comparison of two raw keys (compares their hashes: equal lengths)."""
    return hmac.compare_digest(hash_key(a), hash_key(b))


@dataclass(frozen=True)
class NewKey:
    """A freshly created key: ``raw`` is shown once and never stored."""

    key: ApiKey
    raw: str


class ApiKeyQuerySet(models.QuerySet):
    """Lookups of API keys."""

    def usable(self) -> ApiKeyQuerySet:
        """Active keys that have not expired."""
        now = timezone.now()
        return self.filter(active=True).filter(Q(expires_at__isnull=True) | Q(expires_at__gt=now))

    def for_raw_key(self, raw: str) -> ApiKey | None:
        """The usable key whose secret is ``raw``, or None (constant-time hash comparison)."""
        parts = raw.split("_", 2)
        if len(parts) != 3 or parts[0] != KEY_PREFIX or len(parts[1]) != _PREFIX_LEN:
            return None
        candidate = self.usable().filter(prefix=parts[1]).first()
        if candidate is None or not hmac.compare_digest(candidate.key_hash, hash_key(raw)):
            return None
        return candidate


class ApiKeyManager(models.Manager.from_queryset(ApiKeyQuerySet)):
    """Creates keys; the raw secret only ever exists in the returned :class:`NewKey`."""

    def issue(
        self,
        *,
        name: str,
        namespaces: list[str] | None = None,
        expires_at=None,
        operations: list[str] | None = None,
    ) -> NewKey:
        """Create a key for actor ``name`` and return it with its raw secret (shown once).

        Raises ValueError for a name that could pass for another actor (see
        :func:`ops.validation.api_key_name_problem`); callers show their own message first.
        """
        problem = api_key_name_problem(name)
        if problem:
            raise ValueError(f"API key name: {problem}")
        prefix = secrets.token_hex(_PREFIX_LEN // 2)
        raw = f"{KEY_PREFIX}_{prefix}_{secrets.token_urlsafe(32)}"
        key = self.create(
            name=name,
            prefix=prefix,
            key_hash=hash_key(raw),
            namespaces=list(namespaces or []),
            expires_at=expires_at,
            operations=list(operations) if operations is not None else None,
        )
        return NewKey(key=key, raw=raw)

    def rotate(self, *, name: str, overlap: timedelta) -> tuple[NewKey, list[ApiKey]]:
        """Issue a new key for ``name`` (same namespace scope; the same lifetime as the newest
        key, if it had one) and make every other usable key of the name expire after
        ``overlap`` (sooner if it already expires sooner). Returns the new key and the old
        ones as updated. LookupError when ``name`` has no usable key. Call in a transaction.
        """
        old = list(self.usable().select_for_update().filter(name=name).order_by("-created_at"))
        if not old:
            raise LookupError(name)
        now = timezone.now()
        newest = old[0]
        lifetime = newest.expires_at - newest.created_at if newest.expires_at else None
        new = self.issue(
            name=name,
            namespaces=list(newest.namespaces),
            expires_at=now + lifetime if lifetime else None,
            operations=newest.operations,
        )
        until = now + overlap
        for key in old:
            if key.expires_at is None or key.expires_at > until:
                key.expires_at = until
                key.save(update_fields=["expires_at"])
        return new, old


class ApiKey(models.Model):
    """A named API key. The name is the actor written into the audit log.

    Only a sha256 of the key is stored; ``prefix`` (part of the key itself) finds the row
    without scanning. ``namespaces`` narrows the allowed namespaces; empty means all allowed.
    """

    name = models.CharField(max_length=150)
    prefix = models.CharField(max_length=_PREFIX_LEN, unique=True)
    key_hash = models.CharField(max_length=64)
    active = models.BooleanField(default=True)
    namespaces = ArrayField(models.CharField(max_length=63), default=list, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    expires_at = models.DateTimeField(null=True, blank=True)
    last_used_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)
    # What the key may ask for (SPEC "Key permissions"): operation names, ``all`` (every
    # operation) and ``approve``. NULL — every key made before permissions existed, and the
    # default — means every operation and not ``approve``.
    operations = ArrayField(models.CharField(max_length=63), null=True, blank=True)

    objects = ApiKeyManager()

    class Meta:
        db_table = "ops_api_key"
        # A name may hold several active keys: during a rotation's overlap, the old and the new.
        indexes = [models.Index(fields=["name"], name="ops_api_key_name_idx")]

    def __str__(self) -> str:
        return f"{self.name} ({KEY_PREFIX}_{self.prefix}_…)"


class ApprovalStatus(models.TextChoices):
    """Where a request held for approval stands."""

    PENDING = "pending", "pending"
    APPROVED = "approved", "approved"
    REJECTED = "rejected", "rejected"
    EXPIRED = "expired", "expired"
    STALE = "stale", "stale"


class Approval(models.Model):
    """A request held for a second person's approval (SPEC "Change control").

    It keeps what was asked (the operation and its validated input), the plan shown to the
    approver and its digest, and the state of every object the plan touches (uid, generation
    or resourceVersion): approving re-reads them and refuses with ``stale_approval`` when one
    was replaced or changed, so an approval given for one object can never act on another.
    """

    approval_id = models.CharField(max_length=40, unique=True)
    operation = models.TextField()  # scale, delete-pod, delete-pvc, or a job type's name
    namespace = models.TextField()
    resource_kind = models.TextField()
    resource_name = models.TextField()
    params = models.JSONField()  # the validated input the operation runs with
    plan = models.JSONField()
    plan_digest = models.TextField()
    # What the checks that run again when it is approved said at the request (a job's guards:
    # [{"code", "detail"}]), for the approver.
    warnings = models.JSONField(default=list, blank=True)
    status = models.TextField(choices=ApprovalStatus.choices, default=ApprovalStatus.PENDING)
    requested_by = models.TextField()  # the requester's key name (the audit actor)
    requested_from = models.TextField(null=True, blank=True)  # noqa: DJ001
    # The requester's scope when they asked; the operation runs with it once approved.
    requester_namespaces = ArrayField(models.CharField(max_length=63), null=True, blank=True)
    requester_origin = models.TextField(default=OpsLogOrigin.API)
    created_at = models.DateTimeField(default=timezone.now)
    expires_at = models.DateTimeField()
    decided_by = models.TextField(null=True, blank=True)  # noqa: DJ001
    decided_at = models.DateTimeField(null=True, blank=True)
    reason = models.TextField(null=True, blank=True)  # noqa: DJ001
    # What running it answered: {"status": http status, "body": {...}}; for a job, its id.
    outcome = models.JSONField(null=True, blank=True)
    job_id = models.TextField(null=True, blank=True)  # noqa: DJ001

    class Meta:
        db_table = "ops_approval"
        ordering = ["-created_at", "-id"]
        indexes = [
            models.Index(fields=["status", "-created_at"], name="ops_approval_status_idx"),
            # The workers' expiry sweep: pending ones by deadline.
            models.Index(
                fields=["expires_at"],
                name="ops_approval_due_idx",
                condition=Q(status="pending"),
            ),
        ]
        permissions = [("decide_approval", "Can approve or reject requests held for approval")]

    def __str__(self) -> str:
        return (
            f"{self.approval_id}: {self.operation} {self.namespace}/{self.resource_name} "
            f"({self.status})"
        )


class IdempotencyRecord(models.Model):
    """One ``Idempotency-Key`` of one API key name: its claim, then the answer to replay.

    The unique constraint on (key_name, idempotency_key) is what lets exactly one of several
    concurrent duplicates run (see :mod:`ops.idempotency`). ``completed_at`` NULL means the
    first request is still in flight; ``token`` names the request holding the claim.
    """

    key_name = models.CharField(max_length=150)
    idempotency_key = models.CharField(max_length=255)
    fingerprint = models.CharField(max_length=64)  # sha256 of method, path, query and body
    token = models.UUIDField()
    claimed_at = models.DateTimeField()
    completed_at = models.DateTimeField(null=True, blank=True)
    expires_at = models.DateTimeField(null=True, blank=True)
    response_status = models.PositiveSmallIntegerField(null=True, blank=True)
    response_content_type = models.TextField(null=True, blank=True)  # noqa: DJ001
    response_body = models.BinaryField(null=True, blank=True)

    class Meta:
        db_table = "ops_idempotency_key"
        constraints = [
            models.UniqueConstraint(
                fields=["key_name", "idempotency_key"], name="ops_idempotency_key_unique"
            )
        ]
        indexes = [models.Index(fields=["expires_at"], name="ops_idempotency_expires_idx")]

    def __str__(self) -> str:
        return f"{self.key_name}: {self.idempotency_key}"


# Notification targets, events and deliveries live in a module of their own; importing them
# here is what makes them part of the app.
from ops.notification_models import (  # noqa: E402, F401 - Django loads models from here
    NotificationDelivery,
    NotificationEvent,
    NotificationTarget,
)
