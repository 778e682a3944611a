"""django-q2's admin pages (Task queue) are read-only for everyone, superusers included: no
Schedule can be added, changed or deleted (a Schedule runs any importable function in the
worker, which holds the cluster credentials), no task can be resubmitted, no queued row edited
or deleted; the lists and each row stay readable."""

from __future__ import annotations

import uuid

import pytest
from django.contrib import admin
from django.test import RequestFactory
from django.utils import timezone
from django_q.models import Failure, OrmQ, Schedule, Success, Task
from django_q.tasks import async_task

from tests.admin.conftest import DB

pytestmark = DB

BASE = "/admin/django_q"
#: What an attacker's Schedule would run, were the add page to accept it.
EVIL = {
    "name": "not-ours",
    "func": "os.system",
    "args": "'touch /tmp/owned'",
    "kwargs": "",
    "schedule_type": Schedule.ONCE,
    "repeats": "-1",
    "next_run_0": "2030-01-01",
    "next_run_1": "00:00:00",
    "cluster": "",
    "hook": "",
    "minutes": "",
    "cron": "",
    "intended_date_kwarg": "",
}


def django_q_admins() -> list[admin.ModelAdmin]:
    return [ma for model, ma in admin.site._registry.items() if model._meta.app_label == "django_q"]


def make_task(*, success: bool, name: str) -> Task:
    now = timezone.now()
    return Task.objects.create(
        id=uuid.uuid4().hex,
        name=name,
        func="math.floor",
        args=(1.5,),
        started=now,
        stopped=now,
        success=success,
        result="boom" if not success else 1,
    )


@pytest.fixture
def schedule() -> Schedule:
    return Schedule.objects.create(
        name="visible", func="jobs.tasks.pump", schedule_type=Schedule.MINUTES, minutes=1
    )


def test_no_django_q_admin_lets_a_superuser_add_change_delete_or_run_an_action(admin_user):
    request = RequestFactory().get("/admin/")
    request.user = admin_user
    registered = django_q_admins()

    assert {type(ma).__module__ for ma in registered} == {"jobs.q_admin"}
    assert {ma.model for ma in registered} == {Schedule, Success, Failure, OrmQ}
    for model_admin in registered:
        assert model_admin.has_view_permission(request)
        assert not model_admin.has_add_permission(request)
        assert not model_admin.has_change_permission(request)
        assert not model_admin.has_delete_permission(request)
        assert model_admin.get_actions(request) == {}


def test_the_schedule_add_page_is_refused(admin_client):
    assert admin_client.get(f"{BASE}/schedule/add/").status_code == 403


def test_posting_a_new_schedule_creates_nothing(admin_client):
    before = Schedule.objects.count()

    response = admin_client.post(f"{BASE}/schedule/add/", EVIL)

    assert response.status_code == 403
    assert Schedule.objects.count() == before
    assert not Schedule.objects.filter(func="os.system").exists()


def test_a_schedule_is_shown_but_cannot_be_changed_or_deleted(admin_client, schedule):
    page = admin_client.get(f"{BASE}/schedule/{schedule.pk}/change/")
    changed = admin_client.post(f"{BASE}/schedule/{schedule.pk}/change/", EVIL)
    deleted = admin_client.post(f"{BASE}/schedule/{schedule.pk}/delete/", {"post": "yes"})

    assert page.status_code == 200
    assert "jobs.tasks.pump" in page.content.decode()
    assert 'name="_save"' not in page.content.decode()
    assert changed.status_code == 403
    assert deleted.status_code == 403
    schedule.refresh_from_db()
    assert schedule.func == "jobs.tasks.pump"


@pytest.mark.parametrize(("model", "success"), [("failure", False), ("success", True)])
def test_a_finished_task_is_listed_and_cannot_be_resubmitted_or_deleted(
    admin_client, model, success
):
    task = make_task(success=success, name=f"past-{model}")
    queued = OrmQ.objects.count()

    listing = admin_client.get(f"{BASE}/{model}/")
    resubmit = admin_client.post(
        f"{BASE}/{model}/", {"action": "resubmit_task", "_selected_action": [task.pk]}
    )
    delete = admin_client.post(f"{BASE}/{model}/{task.pk}/delete/", {"post": "yes"})

    assert listing.status_code == 200
    assert task.name in listing.content.decode()
    assert "resubmit_task" not in listing.content.decode()
    assert resubmit.status_code == 200  # the list again: there is no such action
    assert OrmQ.objects.count() == queued  # nothing queued again
    assert delete.status_code == 403
    assert Task.objects.filter(pk=task.pk).exists()


def test_a_queued_task_is_listed_and_cannot_be_changed_or_deleted(admin_client):
    async_task("math.floor", 1.5, task_name="queued-one")
    row = OrmQ.objects.get()

    listing = admin_client.get(f"{BASE}/ormq/")
    changed = admin_client.post(
        f"{BASE}/ormq/{row.pk}/change/", {"key": "other", "lock": "2030-01-01 00:00:00"}
    )
    deleted = admin_client.post(f"{BASE}/ormq/{row.pk}/delete/", {"post": "yes"})

    assert listing.status_code == 200
    assert "queued-one" in listing.content.decode()
    assert changed.status_code == 403
    assert deleted.status_code == 403
    row.refresh_from_db()
    assert row.key != "other"


def test_every_changelist_stays_readable(admin_client, schedule):
    for model in ("schedule", "success", "failure", "ormq"):
        assert admin_client.get(f"{BASE}/{model}/").status_code == 200, model
