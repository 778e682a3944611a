"""Admin for approvals: the requests held for approval, their plans, and the decision.

Listing and reading need the usual view permission. Deciding (approve or reject, with a
reason) needs the ``ops.decide_approval`` permission and goes through the same service as the
API (:func:`ops.approvals.decide`), as ``admin:<username>``: the same refusals (self-approval
included: a request made as ``admin:alice`` cannot be approved by alice), the same staleness
check and the same audit rows. Approvals are never edited or deleted here.
"""

from __future__ import annotations

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.http import HttpResponseRedirect
from django.urls import path, reverse
from django.utils.html import format_html

from ops.actors import admin_actor
from ops.admin import ReadOnlyAdminMixin
from ops.approvals import decide, effective_status
from ops.authentication import DECIDE_APPROVAL_PERMISSION as DECIDE_PERMISSION
from ops.cli import error_text, plan_lines
from ops.errors import OpsError
from ops.models import Approval, ApprovalStatus


class DecisionForm(forms.Form):
    """The reason every decision needs."""

    reason = forms.CharField(
        max_length=2000,
        widget=forms.Textarea(attrs={"rows": 3}),
        help_text="Why: a change ticket, a sentence. Kept with the approval and in the audit log.",
    )


@admin.register(Approval)
class ApprovalAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    """Requests held for approval; pending ones can be approved or rejected."""

    list_display = [
        "approval_id",
        "status_now",
        "operation",
        "object",
        "requested_by",
        "created_at",
        "expires_at",
        "decided_by",
    ]
    list_filter = ["status", "operation", "namespace"]
    search_fields = ["approval_id", "resource_name", "requested_by", "decided_by"]
    ordering = ["-created_at", "-id"]
    show_facets = admin.ShowFacets.NEVER
    change_form_template = "admin/ops/approval/change_form.html"

    @admin.display(description="status")
    def status_now(self, approval: Approval) -> str:
        return effective_status(approval)

    @admin.display(description="object")
    def object(self, approval: Approval) -> str:
        return f"{approval.resource_kind} {approval.namespace}/{approval.resource_name}"

    def get_urls(self):
        return [
            path(
                "<path:object_id>/decide/",
                self.admin_site.admin_view(self.decide_view),
                name="ops_approval_decide",
            ),
            *super().get_urls(),
        ]

    def change_view(self, request, object_id, form_url="", extra_context=None):
        approval = self.get_object(request, object_id)
        extra = {
            **(extra_context or {}),
            "plan_lines": plan_lines(approval.plan) if approval else [],
            "status_now": effective_status(approval) if approval else "",
            "can_decide": bool(
                approval
                and effective_status(approval) == ApprovalStatus.PENDING
                and request.user.has_perm(DECIDE_PERMISSION)
            ),
            "decision_form": DecisionForm(),
            "decide_url": reverse("admin:ops_approval_decide", args=[object_id]),
        }
        return super().change_view(request, object_id, form_url, extra_context=extra)

    def decide_view(self, request, object_id):
        """POST: approve or reject (the button pressed) with the form's reason."""
        if request.method != "POST":
            return HttpResponseRedirect(reverse("admin:ops_approval_change", args=[object_id]))
        if not request.user.has_perm(DECIDE_PERMISSION):
            raise PermissionDenied
        approval = self.get_object(request, object_id)
        if approval is None:
            return self._get_obj_does_not_exist_redirect(request, self.opts, object_id)
        form = DecisionForm(request.POST)
        change_url = reverse("admin:ops_approval_change", args=[object_id])
        if not form.is_valid():
            self.message_user(request, "A reason is required.", messages.ERROR)
            return HttpResponseRedirect(change_url)
        approve = "approve" in request.POST
        try:
            decided, outcome = decide(
                actor=admin_actor(request),
                approval_id=approval.approval_id,
                reason=form.cleaned_data["reason"],
                approve=approve,
            )
        except OpsError as error:
            self.message_user(request, error_text(error), messages.ERROR)
            return HttpResponseRedirect(change_url)
        if outcome is not None and outcome.job_id:
            job_url = reverse("admin:jobs_job_changelist") + f"?job_id={outcome.job_id}"
            note = format_html(' — job <a href="{}">{}</a> started', job_url, outcome.job_id)
        else:
            note = ""
        self.message_user(
            request,
            format_html("{} {}{}", decided.approval_id, decided.status, note),
            messages.SUCCESS,
        )
        return HttpResponseRedirect(change_url)
