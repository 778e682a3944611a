"""django-q2's admin pages (Task queue), read-only for every user, superusers included.

django-q2's own admin lets a staff user add or change a Schedule — any importable function with
any arguments, run by the worker, which holds the cluster credentials, with no audit row — and
resubmit a Success or Failure (the same, from a past task), or edit and delete queued rows.
Operations and jobs start only through the audited services; these pages only show what the
queue did. So each of django-q2's admins is replaced by a subclass with no add, change or
delete permission and no actions (its resubmit action included): the lists and each row stay
readable, any write answers 403.

Imported by ``jobs/admin.py``. It imports ``django_q.admin`` first, so the replacement does
not depend on which app's admin module Django loads first.
"""

from __future__ import annotations

from django.contrib import admin
from django_q import admin as q_admin  # registers django-q2's admins, replaced below
from django_q.models import Failure, OrmQ, Schedule, Success

from ops.admin import ReadOnlyAdminMixin


class ReadOnlyQueueAdminMixin(ReadOnlyAdminMixin):
    """Nothing to write and no action to run, whatever the user's permissions."""

    actions = None


class ScheduleAdmin(ReadOnlyQueueAdminMixin, q_admin.ScheduleAdmin):
    """Schedules (the jobs pump's minute schedule): when each runs next, and its last run."""


class SuccessAdmin(ReadOnlyQueueAdminMixin, q_admin.TaskAdmin):
    """Tasks that succeeded (ticks and pumps are not saved: they record on the job rows)."""


class FailureAdmin(ReadOnlyQueueAdminMixin, q_admin.FailAdmin):
    """Tasks that failed, with their result."""


class QueueAdmin(ReadOnlyQueueAdminMixin, q_admin.QueueAdmin):
    """Queued tasks of the ORM broker, each with the time it becomes visible (``lock``)."""


READ_ONLY_ADMINS: dict[type, type[admin.ModelAdmin]] = {
    Schedule: ScheduleAdmin,
    Success: SuccessAdmin,
    Failure: FailureAdmin,
    OrmQ: QueueAdmin,
}

for _model, _model_admin in READ_ONLY_ADMINS.items():
    if admin.site.is_registered(_model):
        admin.site.unregister(_model)
    admin.site.register(_model, _model_admin)
