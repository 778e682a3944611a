"""Admin for the ops tables: the audit log (read-only by construction) and the API keys.

The audit log is evidence, so its admin cannot add, change or delete a row, for superusers
too: the permissions say no, and Django then serves view-only pages without a Save button and
answers 403 to any write. Its list can be exported as CSV exactly as filtered on screen.

API keys can be created (the raw key is shown on the page that answers the creation, once,
and exists nowhere else), scoped and revoked; the hash never appears.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator
from datetime import datetime, timedelta
from functools import reduce
from operator import or_
from urllib.parse import urlencode

from django import forms
from django.conf import settings
from django.contrib import admin, messages
from django.contrib.admin.options import IncorrectLookupParameters
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.db import transaction
from django.db.models import Max, Q, QuerySet
from django.http import HttpResponseRedirect, StreamingHttpResponse
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone
from django.utils.cache import add_never_cache_headers
from django.utils.functional import cached_property
from django.utils.html import format_html, format_html_join

from ops.actors import admin_actor
from ops.api_keys import api_key_create, api_key_revoke
from ops.audit import Target, record
from ops.chain import canonical
from ops.cli import fmt_time
from ops.extensions import audit_values, operations
from ops.models import KEY_PREFIX, ApiKey, OpsLog, OpsLogStatus
from ops.pagination import capped_count
from ops.policy import ALL_OPERATIONS, APPROVE
from ops.selectors import audit_rows
from ops.validation import api_key_name_problem, namespace_problem

#: Cells starting with one of these are formulas to a spreadsheet (CSV injection): prefixed
#: with a quote so they are shown as text.
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
_ERROR_SHORT = 80
_EXPORT_CHUNK = 2000
CSV_COLUMNS = [
    "id",
    "ts",
    "actor",
    "source_ip",
    "origin",
    "action",
    "resource_kind",
    "namespace",
    "resource_name",
    "status",
    "http_status",
    "code",
    "error_message",
    "request_body",
    "job_id",
    "finished_at",
    "audit_id",
    # The hash chain (ops/chain.py), for re-verification away from the database (README):
    # "hashed" is the row's canonical JSON exactly as hashed into row_hash.
    "chain_seq",
    "row_hash",
    "chain_hash",
    "hashed",
]


class ReadOnlyAdminMixin:
    """No add, change or delete — for superusers too. Viewing stays allowed."""

    def has_add_permission(self, request, obj=None) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False


class AuditPaginator(Paginator):
    """Counts exactly up to ``OPS_AUDIT_COUNT_CAP`` rows, then the planner's estimate, so the
    list of a table with millions of rows does not scan it on every page."""

    @cached_property
    def count(self) -> int:
        return capped_count(self.object_list, settings.APIOPS["AUDIT_COUNT_CAP"])[0]


class DrillDownQuerySet(QuerySet):
    """Audit rows whose date drill-down finds its years, months or days by skipping down the
    ``ts`` index — one ``max(ts)`` below the last bucket found, per bucket — instead of
    Django's ``SELECT DISTINCT date_trunc(...)``, which reads and sorts every row."""

    def datetimes(self, field_name, kind, order="ASC", tzinfo=None):
        if field_name != "ts" or kind not in ("year", "month", "day"):
            return super().datetimes(field_name, kind, order, tzinfo)
        zone = tzinfo or timezone.get_current_timezone()
        rows, found, upper = self.order_by(), [], None
        while True:
            below = rows if upper is None else rows.filter(ts__lt=upper)
            last = below.aggregate(last=Max("ts"))["last"]
            if last is None:
                break
            local = last.astimezone(zone)
            month = 1 if kind == "year" else local.month
            day = local.day if kind == "day" else 1
            upper = timezone.make_aware(datetime(local.year, month, day), zone)
            found.append(upper)
        return found if order == "DESC" else found[::-1]


def audit_search(rows: QuerySet, term: str) -> QuerySet:
    """The admin's search: rows whose actor or namespace is ``term``, or whose object name or
    source IP starts with it (``orders``, ``203.0.113.``). Each is an index lookup; a substring
    search (``icontains``) would read every row of a table of millions.

    The matches are first collected through each column's index, up to the count cap: when
    few match (a rare name, a typo), the page is read through their ids — walking the
    newest-first index in search of them would read the whole table for a term nothing
    matches. When many match, that walk finds a page at once, and the plain condition is used.
    """
    branches = [
        Q(actor=term),
        Q(namespace=term),
        Q(source_ip__startswith=term),
        Q(resource_name__startswith=term),
    ]
    cap = settings.APIOPS["AUDIT_COUNT_CAP"]
    ids: set[int] = set()
    for branch in branches:
        ids.update(rows.filter(branch).order_by().values_list("pk", flat=True)[: cap + 1])
        if len(ids) > cap:
            return rows.filter(reduce(or_, branches))
    return rows.filter(pk__in=sorted(ids))


def csv_cell(value: object) -> str:
    """A value as a CSV cell that no spreadsheet will run as a formula."""
    if value is None:
        return ""
    text = value.isoformat() if hasattr(value, "isoformat") else str(value)
    return "'" + text if text.startswith(_FORMULA_START) else text


class _Echo:
    """A file-like object whose write returns what it was given (for streaming csv.writer)."""

    def write(self, value: str) -> str:
        return value


def csv_lines(rows) -> Iterator[str]:
    """The header, then one line per audit row, fetched in chunks (a server-side cursor)."""
    writer = csv.writer(_Echo())
    yield writer.writerow(CSV_COLUMNS)
    for row in rows.iterator(chunk_size=_EXPORT_CHUNK):
        values = {name: getattr(row, name) for name in CSV_COLUMNS if name != "hashed"}
        if row.request_body is not None:
            values["request_body"] = json.dumps(row.request_body, sort_keys=True)
        values["hashed"] = canonical(row).decode("ascii") if row.row_hash else None
        yield writer.writerow([csv_cell(values[name]) for name in CSV_COLUMNS])


#: The audit columns whose list filters offer values (see :class:`BoundedValuesFilter`).
_VALUE_FILTER_FIELDS = ("action", "resource_kind", "namespace", "actor")


def _known_values(field_path: str) -> set[str]:
    """Values the code writes into ``field_path``, offered even when no recent row has them."""
    from ops import services

    if field_path == "namespace":
        return set(settings.APIOPS["ALLOWED_NAMESPACES"])
    if field_path == "action":
        return {services.ACTION_SCALE, services.ACTION_DELETE} | audit_values("action")
    if field_path == "resource_kind":
        return {
            services.KIND_DEPLOYMENT,
            services.KIND_STATEFULSET,
            services.KIND_POD,
            services.KIND_PVC,
        } | audit_values("resource_kind")
    return set()  # actor: key names and OS users, known only from the rows


def _recent_values(request, model_admin) -> dict[str, set]:
    """The values of the filtered columns in the newest ``filter_window_rows`` rows.

    One query for the four filters, read through the ``-ts`` index and kept on the request.
    """
    cached = getattr(request, "_ops_recent_filter_values", None)
    if cached is None:
        rows = (
            model_admin.get_queryset(request)
            .order_by("-ts", "-id")
            .values_list(*_VALUE_FILTER_FIELDS)[: model_admin.filter_window_rows]
        )
        cached = {name: set() for name in _VALUE_FILTER_FIELDS}
        for row in rows:
            for name, value in zip(_VALUE_FILTER_FIELDS, row, strict=True):
                cached[name].add(value)
        request._ops_recent_filter_values = cached
    return cached


class BoundedValuesFilter(admin.AllValuesFieldListFilter):
    """Django's "all values" filter (same parameters, ``actor__isnull`` included) without its
    ``SELECT DISTINCT`` over the whole table, which scans millions of audit rows on every
    page of the list.

    The choices are the values the code knows (allowed namespaces, actions, kinds), those of
    the newest rows (``OpsLogAdmin.filter_window_rows``), and whatever is selected now. An
    older value not offered can still be filtered on through the URL or found with search.
    """

    def __init__(self, field, request, params, model, model_admin, field_path):
        # The parent builds a lazy DISTINCT queryset as its choices; it is replaced unrun.
        super().__init__(field, request, params, model, model_admin, field_path)
        values = _recent_values(request, model_admin)[field_path] | _known_values(field_path)
        values |= set(self.lookup_val or [])
        choices: list[str | None] = sorted(v for v in values if v is not None)
        if field.null:
            choices.append(None)  # the "empty" choice, e.g. rows of requests without a key
        self.lookup_choices = choices


@admin.register(OpsLog)
class OpsLogAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    """The audit log: filter, search, read, export. Never written from here."""

    list_display = [
        "time",
        "actor_display",
        "source_ip",
        "operation",
        "target",
        "status_badge",
        "error_short",
    ]
    list_display_links = ["time"]
    # status and origin offer their field choices; the free-valued columns take theirs from
    # known values and the newest rows, never from a DISTINCT over the whole table.
    list_filter = [
        "status",
        ("action", BoundedValuesFilter),
        ("resource_kind", BoundedValuesFilter),
        ("namespace", BoundedValuesFilter),
        ("actor", BoundedValuesFilter),
        "origin",
    ]
    filter_window_rows = 5000
    # Facet counts ("Show counts") would count every filter value over the whole table.
    show_facets = admin.ShowFacets.NEVER
    search_fields = ["resource_name", "actor", "source_ip", "namespace"]
    search_help_text = "An actor or namespace, or the start of an object name or source IP."
    date_hierarchy = "ts"
    ordering = ["-ts", "-id"]
    list_per_page = 50
    show_full_result_count = False
    paginator = AuditPaginator
    fieldsets = [
        ("Attempt", {"fields": ["time", "finished", "actor_display", "source_ip", "origin"]}),
        ("Target", {"fields": ["action", "resource_kind", "namespace", "resource_name", "job"]}),
        ("Outcome", {"fields": ["status_badge", "http_status", "code", "error_message"]}),
        ("Request body", {"fields": ["request_body_json"]}),
    ]
    readonly_fields = [
        "time",
        "finished",
        "actor_display",
        "source_ip",
        "origin",
        "action",
        "resource_kind",
        "namespace",
        "resource_name",
        "job",
        "status_badge",
        "http_status",
        "code",
        "error_message",
        "request_body_json",
    ]

    def get_queryset(self, request):
        # Read where the rows are written (the audit connection): see ops.selectors.
        rows = audit_rows()
        return DrillDownQuerySet(model=rows.model, query=rows.query, using=rows.db)

    def get_search_results(self, request, queryset, search_term):
        term = search_term.strip()
        if not term:
            return queryset, False
        return audit_search(queryset, term), False

    @admin.display(description="time (UTC)", ordering="ts")
    def time(self, row: OpsLog) -> str:
        return fmt_time(row.ts)

    @admin.display(description="finished (UTC)", ordering="finished_at")
    def finished(self, row: OpsLog) -> str:
        return fmt_time(row.finished_at)

    @admin.display(description="actor", ordering="actor")
    def actor_display(self, row: OpsLog) -> str:
        return row.actor or "(no valid key)"

    @admin.display(description="operation", ordering="action")
    def operation(self, row: OpsLog) -> str:
        return f"{row.action} {row.resource_kind}"

    @admin.display(description="target", ordering="namespace")
    def target(self, row: OpsLog) -> str:
        if not row.namespace:
            return row.resource_name or "-"
        return f"{row.namespace}/{row.resource_name}" if row.resource_name else row.namespace

    @admin.display(description="status", ordering="status")
    def status_badge(self, row: OpsLog) -> str:
        return format_html('<span class="ops-status ops-status-{0}">{0}</span>', row.status)

    @admin.display(description="error")
    def error_short(self, row: OpsLog) -> str:
        text = " ".join((row.error_message or "").split())
        if len(text) > _ERROR_SHORT:
            return format_html('<span title="{}">{}…</span>', text, text[: _ERROR_SHORT - 1])
        return text or "-"

    @admin.display(description="job")
    def job(self, row: OpsLog) -> str:
        if not row.job_id:
            return "-"
        url = reverse("admin:jobs_job_changelist") + "?" + urlencode({"job_id": row.job_id})
        return format_html('<a href="{}">{}</a>', url, row.job_id)

    @admin.display(description="request body")
    def request_body_json(self, row: OpsLog) -> str:
        if row.request_body is None:
            return "-"
        text = json.dumps(row.request_body, indent=2, sort_keys=True, ensure_ascii=False)
        return format_html('<pre class="ops-json">{}</pre>', text)

    def get_urls(self):
        info = self.opts.app_label, self.opts.model_name
        export = path(
            "export.csv",
            self.admin_site.admin_view(self.export_csv_view),
            name="{}_{}_export".format(*info),
        )
        return [export, *super().get_urls()]

    def export_csv_view(self, request):
        """The changelist's rows — same filters, search, date drill-down — as a CSV stream."""
        if not self.has_view_permission(request):
            raise PermissionDenied
        try:
            changelist = self.get_changelist_instance(request)
        except IncorrectLookupParameters:
            url = reverse(f"admin:{self.opts.app_label}_{self.opts.model_name}_changelist")
            self.message_user(request, "The export's filters were not valid.", messages.ERROR)
            return HttpResponseRedirect(url)
        response = StreamingHttpResponse(
            csv_lines(changelist.queryset), content_type="text/csv; charset=utf-8"
        )
        stamp = timezone.now().strftime("%Y%m%dT%H%M%SZ")
        response["Content-Disposition"] = f'attachment; filename="ops_log-{stamp}.csv"'
        add_never_cache_headers(response)
        return response


def _namespace_choices(current: list[str] | None = None) -> list[tuple[str, str]]:
    names = list(settings.APIOPS["ALLOWED_NAMESPACES"])
    names += [ns for ns in current or [] if ns not in names]
    return [(ns, ns) for ns in names]


def _operation_choices() -> list[tuple[str, str]]:
    return [
        (ALL_OPERATIONS, "all: every operation"),
        *((op, op) for op in operations()),
        (APPROVE, "approve: approve or reject requests held for approval"),
    ]


def checked_namespaces(values: list[str]) -> list[str]:
    """``values`` when each is a namespace name, else a ValidationError naming the first bad one."""
    for ns in values:
        problem = namespace_problem(ns)
        if problem:
            raise forms.ValidationError(f"{ns!r}: {problem}")
    return values


class ApiKeyScopeForm(forms.ModelForm):
    """Scope, operations and expiry of a key. An empty scope means every allowed namespace;
    no operation ticked means every operation, without approve."""

    namespaces = forms.MultipleChoiceField(
        required=False,
        widget=forms.CheckboxSelectMultiple,
        help_text="Narrows OPS_ALLOWED_NAMESPACES for this key; none ticked: all of them.",
    )
    operations = forms.MultipleChoiceField(
        required=False,
        widget=forms.CheckboxSelectMultiple,
        help_text="What the key may request; none ticked: every operation, but not approve.",
    )

    class Meta:
        model = ApiKey
        fields = ["namespaces", "operations", "expires_at"]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["namespaces"].choices = _namespace_choices(self.instance.namespaces)
        self.fields["operations"].choices = _operation_choices()

    def clean_operations(self) -> list[str] | None:
        return self.cleaned_data["operations"] or None

    def clean_namespaces(self) -> list[str]:
        return checked_namespaces(self.cleaned_data["namespaces"])

    def clean_expires_at(self):
        value = self.cleaned_data.get("expires_at")
        if value is not None and value <= timezone.now():
            raise forms.ValidationError("Must be in the future.")
        return value


class ApiKeyCreateForm(ApiKeyScopeForm):
    """A new key: its name (the actor in the audit log), scope and expiry."""

    class Meta:
        model = ApiKey
        fields = ["name", "namespaces", "operations", "expires_at"]
        help_texts = {"name": "The actor written into the audit log for this key's requests."}

    def clean_name(self) -> str:
        name = self.cleaned_data["name"].strip()
        problem = api_key_name_problem(name)
        if problem:
            raise forms.ValidationError(problem)
        if name == settings.APIOPS["API_KEY_ACTOR"]:
            raise forms.ValidationError("This is the bootstrap key's actor name.")
        if ApiKey.objects.filter(name=name, active=True).exists():
            raise forms.ValidationError(
                "This name already has an active key; rotate it (the Rotate action keeps the "
                "old one working for 24 hours) or revoke it first."
            )
        return name


_KEY_TIMES = ["created_at", "last_used_at", "revoked_at"]
_KEY_CHANGE_FIELDS = [
    "name",
    "key_hint",
    "state",
    "namespaces",
    "operations",
    "expires_at",
    *_KEY_TIMES,
]


#: How long the admin's Rotate action keeps the old key working.
ROTATION_OVERLAP = timedelta(hours=24)


@admin.register(ApiKey)
class ApiKeyAdmin(admin.ModelAdmin):
    """Create (raw key shown once), scope, revoke. Keys are never deleted: history stays."""

    list_display = [
        "name",
        "key_hint",
        "scope",
        "operations_display",
        "state",
        "created_at",
        "expires_at",
        "last_used_at",
        "revoked_at",
    ]
    list_filter = ["active"]
    search_fields = ["name", "prefix"]
    ordering = ["-active", "name", "-created_at"]
    actions = ["revoke", "rotate"]
    readonly_fields = ["name", "key_hint", "state", *_KEY_TIMES]

    def has_delete_permission(self, request, obj=None) -> bool:
        return False

    def get_form(self, request, obj=None, change=False, **kwargs):
        kwargs["form"] = ApiKeyScopeForm if obj is not None else ApiKeyCreateForm
        return super().get_form(request, obj, change=change, **kwargs)

    def get_fields(self, request, obj=None):
        if obj is None:
            return ["name", "namespaces", "operations", "expires_at"]
        return _KEY_CHANGE_FIELDS

    def get_readonly_fields(self, request, obj=None):
        if obj is None:
            return []
        if not obj.active:  # a revoked key is history: nothing to edit
            return _KEY_CHANGE_FIELDS
        return self.readonly_fields

    @admin.display(description="key")
    def key_hint(self, key: ApiKey) -> str:
        return f"{KEY_PREFIX}_{key.prefix}_…"

    @admin.display(description="scope")
    def scope(self, key: ApiKey) -> str:
        return ", ".join(key.namespaces) if key.namespaces else "all allowed namespaces"

    @admin.display(description="operations")
    def operations_display(self, key: ApiKey) -> str:
        if key.operations is None:
            return "every operation"
        return ", ".join(key.operations)

    @admin.display(description="state")
    def state(self, key: ApiKey) -> str:
        if not key.active:
            return "revoked"
        if key.expires_at is not None and key.expires_at <= timezone.now():
            return "expired"
        return "active"

    def save_model(self, request, obj: ApiKey, form, change: bool) -> None:
        if change:
            super().save_model(request, obj, form, change)
            return
        new = api_key_create(
            actor=admin_actor(request),
            name=obj.name,
            namespaces=obj.namespaces,
            expires_at=obj.expires_at,
            operations=obj.operations,
        )
        # The form's instance becomes the saved row, so the admin's history entry and the
        # answer page refer to it; the raw key lives only on this request.
        obj.__dict__.update({k: v for k, v in new.key.__dict__.items() if k != "_state"})
        obj._state.adding = False
        obj._state.db = new.key._state.db
        request._apiops_new_raw_key = new.raw

    def response_add(self, request, obj: ApiKey, post_url_continue=None):
        """Show the raw key on this answer, once; no redirect, so it is stored nowhere."""
        raw = getattr(request, "_apiops_new_raw_key", None)
        if raw is None:
            return super().response_add(request, obj, post_url_continue)
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "title": f"API key for {obj.name}",
            "key": obj,
            "raw_key": raw,
            "scope": self.scope(obj),
            "changelist_url": reverse("admin:ops_apikey_changelist"),
            "change_url": reverse("admin:ops_apikey_change", args=[obj.pk]),
        }
        response = TemplateResponse(request, "admin/ops/apikey/created.html", context)
        add_never_cache_headers(response)
        return response

    @admin.action(
        description="Rotate the selected key (a new key; the old one works 24 more hours)",
        permissions=["change"],
    )
    def rotate(self, request, queryset):
        """A new key for the selected key's name, shown once; the old key(s) of the name
        expire after :data:`ROTATION_OVERLAP`. Audited as ``admin:<username>``."""
        names = sorted(set(queryset.values_list("name", flat=True)))
        if len(names) != 1:
            self.message_user(request, "Select the key of exactly one name.", messages.WARNING)
            return None
        name = names[0]
        with transaction.atomic():
            try:
                new, old = ApiKey.objects.rotate(name=name, overlap=ROTATION_OVERLAP)
            except LookupError:
                self.message_user(request, f"{name} has no usable key.", messages.WARNING)
                return None
            actor = admin_actor(request)
            record(
                actor_name=actor.name,
                source_ip=actor.source_ip,
                origin=actor.origin,
                target=Target(
                    "rotate",
                    "api_key",
                    "",
                    name,
                    {
                        "overlap": "24h",
                        "new_prefix": new.key.prefix,
                        "old_prefixes": [k.prefix for k in old],
                    },
                ),
                status=OpsLogStatus.SUCCESS,
            )
        self.log_change(request, new.key, f"Rotated; old keys expire at {old[0].expires_at}.")
        request._apiops_new_raw_key = new.raw
        return self.response_add(request, new.key)

    @admin.action(description="Revoke the selected API keys", permissions=["change"])
    def revoke(self, request, queryset) -> None:
        keys = api_key_revoke(actor=admin_actor(request), keys=queryset)
        for key in keys:
            self.log_change(request, key, "Revoked.")
        if keys:
            names = format_html_join(", ", "{}", ((k.name,) for k in keys))
            self.message_user(
                request,
                format_html(
                    "Revoked {} key(s): {}. Requests with them now get 401.", len(keys), names
                ),
                messages.SUCCESS,
            )
        else:
            self.message_user(request, "No active key was selected.", messages.WARNING)
