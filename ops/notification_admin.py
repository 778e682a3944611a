"""Admin pages of notifications: targets (URL and secret write-only) and deliveries (read-only,
failed ones retryable). Imported by :class:`ops.apps.OpsConfig`.

A target's URL and secret are credentials (a Slack or Teams webhook URL is all it takes to
post into a channel): the form takes them and never shows them back, not even as a password
field's value. Leaving them blank on a change keeps what is stored.
"""

from __future__ import annotations

from django import forms
from django.conf import settings
from django.contrib import admin, messages
from django.contrib.postgres.forms import SimpleArrayField

from ops.admin import ReadOnlyAdminMixin, checked_namespaces
from ops.notification_models import (
    DeliveryStatus,
    NotificationDelivery,
    NotificationEvent,
    NotificationTarget,
)
from ops.notifications import retry
from ops.validation import notify_url_problem


class NotificationTargetForm(forms.ModelForm):
    """URL and secret as write-only fields; events and namespaces as comma lists."""

    url = forms.CharField(
        required=False,
        widget=forms.PasswordInput(render_value=False, attrs={"autocomplete": "off"}),
        help_text="Write-only. Leave blank to keep the stored URL.",
    )
    secret = forms.CharField(
        required=False,
        widget=forms.PasswordInput(render_value=False, attrs={"autocomplete": "off"}),
        help_text="Webhook targets: the HMAC key of X-ApiOps-Signature. Write-only; leave "
        "blank to keep the stored one.",
    )
    clear_secret = forms.BooleanField(required=False, help_text="Remove the stored secret.")
    events = SimpleArrayField(
        forms.CharField(), help_text="Comma-separated patterns, e.g. job.*,auth.lockout"
    )
    namespaces = SimpleArrayField(
        forms.CharField(),
        required=False,
        help_text="Comma-separated; empty: events about any namespace (and about none).",
    )

    class Meta:
        model = NotificationTarget
        fields = [
            "name",
            "kind",
            "url",
            "secret",
            "clear_secret",
            "events",
            "namespaces",
            "enabled",
        ]

    def clean_name(self) -> str:
        name = self.cleaned_data["name"]
        if any(t["name"] == name for t in settings.APIOPS.get("NOTIFY_TARGETS", ())):
            raise forms.ValidationError("OPS_NOTIFY_TARGETS already has a target of this name.")
        return name

    def clean_url(self) -> str:
        url = self.cleaned_data["url"].strip()
        if not url:
            if not self.instance.pk:
                raise forms.ValidationError("A new target needs a URL.")
            return self.instance.url
        problem = notify_url_problem(url)
        if problem:
            raise forms.ValidationError(f"The URL {problem}.")
        return url

    def clean_namespaces(self) -> list[str]:
        return checked_namespaces(self.cleaned_data["namespaces"])

    def clean(self):
        cleaned = super().clean()
        if cleaned.get("clear_secret"):
            cleaned["secret"] = ""
        elif not cleaned.get("secret") and self.instance.pk:
            cleaned["secret"] = self.instance.secret
        return cleaned


@admin.register(NotificationTarget)
class NotificationTargetAdmin(admin.ModelAdmin):
    """Targets managed here; those of OPS_NOTIFY_TARGETS are configuration, not rows."""

    form = NotificationTargetForm
    list_display = ("name", "kind", "event_filter", "namespace_filter", "enabled", "has_secret")
    list_filter = ("kind", "enabled")
    search_fields = ("name",)

    @admin.display(description="events")
    def event_filter(self, obj: NotificationTarget) -> str:
        return ", ".join(obj.events)

    @admin.display(description="namespaces")
    def namespace_filter(self, obj: NotificationTarget) -> str:
        return ", ".join(obj.namespaces) or "all"

    @admin.display(description="secret", boolean=True)
    def has_secret(self, obj: NotificationTarget) -> bool:
        return bool(obj.secret)


@admin.register(NotificationDelivery)
class NotificationDeliveryAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    """Every delivery with its attempts and last error; undeliverable ones can be retried."""

    list_display = (
        "created_at",
        "event_name",
        "event_namespace",
        "target_name",
        "channel",
        "status",
        "attempts",
        "next_attempt_at",
        "last_error",
    )
    list_filter = ("status", "channel", "target_name")
    list_select_related = ("event",)
    search_fields = ("target_name", "event__event")
    date_hierarchy = "created_at"
    actions = ["retry_now"]
    readonly_fields = ("event_id_shown", "event_data")

    @admin.display(description="event", ordering="event__event")
    def event_name(self, obj: NotificationDelivery) -> str:
        return obj.event.event

    @admin.display(description="namespace")
    def event_namespace(self, obj: NotificationDelivery) -> str:
        return obj.event.namespace or "—"

    @admin.display(description="event id")
    def event_id_shown(self, obj: NotificationDelivery) -> str:
        return str(obj.event_id)

    @admin.display(description="data")
    def event_data(self, obj: NotificationDelivery) -> dict:
        return obj.event.data

    @admin.action(description="Retry the selected deliveries now")
    def retry_now(self, request, queryset) -> None:
        count = retry(queryset)
        self.message_user(
            request,
            f"{count} deliver{'y' if count == 1 else 'ies'} will be sent again.",
            messages.SUCCESS if count else messages.WARNING,
        )

    def has_change_permission(self, request, obj=None) -> bool:
        # The list's action needs it; the row itself stays read-only (no editable fields).
        return request.user.is_active and request.user.is_staff

    def get_readonly_fields(self, request, obj=None):
        return [f.name for f in self.model._meta.fields] + list(self.readonly_fields)

    def change_view(self, request, object_id, form_url="", extra_context=None):
        # Everything on the page is read-only: no Save buttons.
        extra_context = {**(extra_context or {}), "show_save": False}
        extra_context.update(show_save_and_continue=False, show_save_and_add_another=False)
        return super().change_view(request, object_id, form_url, extra_context)

    def changelist_view(self, request, extra_context=None):
        undeliverable = NotificationDelivery.objects.filter(
            status=DeliveryStatus.UNDELIVERABLE
        ).count()
        if undeliverable:
            messages.warning(
                request,
                f"{undeliverable} deliver{'y' if undeliverable == 1 else 'ies'} given up: "
                "filter on status undeliverable, check the last error, and retry.",
            )
        return super().changelist_view(request, extra_context)


@admin.register(NotificationEvent)
class NotificationEventAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    """The outbox: each event as written, with its id (the one receivers see)."""

    list_display = ("occurred_at", "event", "namespace", "id")
    list_filter = ("event",)
    date_hierarchy = "occurred_at"
