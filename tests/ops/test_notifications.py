"""Notifications in one process: the outbox written with the caller's transaction, the event
and namespace filters, what a real local receiver gets (signed webhook JSON, Slack and Teams
shapes), retries with backoff until delivered, giving up and retrying from the admin, the
lockout event, ``notify_test``, and URLs and secrets kept out of errors, logs and pages."""

from __future__ import annotations

import hashlib
import hmac
import logging
from datetime import datetime

import pytest
from django.core.management import CommandError, call_command
from django.db import transaction

from ops import metrics, notifications
from ops.models import NotificationDelivery, NotificationEvent, NotificationTarget
from tests.ops.conftest import TRANSACTIONAL_DB
from tests.ops.receiver import Receiver

# Committed for real: deliveries are claimed by comparing with the database clock (now()),
# which stands still inside one test transaction.
pytestmark = TRANSACTIONAL_DB

SECRET = "hook-secret-0123456789"


def target(name: str, url: str, kind: str = "webhook", **extra) -> dict:
    return {
        "name": name,
        "kind": kind,
        "url": url,
        "secret": SECRET if kind == "webhook" else "",
        "events": ("job.*",),
        "namespaces": (),
        **extra,
    }


@pytest.fixture
def receiver():
    with Receiver() as r:
        yield r


@pytest.fixture
def fast_notify(apiops):
    apiops(
        NOTIFY_TIMEOUT=2.0,
        NOTIFY_BACKOFF=0.01,
        NOTIFY_BACKOFF_MAX=0.02,
        NOTIFY_MAX_ATTEMPTS=12,
        NOTIFY_CONCURRENCY=2,
        NOTIFY_TARGETS=(),
    )
    return apiops


def job_data(job_id: str = "2026-01-01T00:00:00+00:00_pg-rebuild_0123abcd") -> dict:
    return {"job_id": job_id, "type": "pg-rebuild", "target": {"name": "postgres"}}


def deliver_all(rounds: int = 50) -> None:
    """Send everything due, again and again while retries come due, in this thread."""
    import time

    for _ in range(rounds):
        notifications.deliver_due()
        if not NotificationDelivery.objects.filter(status="pending").exists():
            return
        time.sleep(0.02)


def test_each_wanted_event_reaches_each_target_once_signed(fast_notify, receiver):
    fast_notify(NOTIFY_TARGETS=(target("a", receiver.url), target("b", receiver.url + "/b")))

    event = notifications.notify("job.failed", "prod", job_data())
    deliver_all()

    got = receiver.wait_for(2)
    assert sorted(r.path for r in got) == ["/hook", "/hook/b"]
    for r in got:
        body = r.json()
        assert body == {
            "id": str(event.id),
            "event": "job.failed",
            "occurred_at": body["occurred_at"],
            "data": job_data(),
        }
        datetime.fromisoformat(body["occurred_at"].replace("Z", "+00:00"))
        assert r.headers["X-ApiOps-Event"] == "job.failed"
        want = "sha256=" + hmac.new(SECRET.encode(), r.body, hashlib.sha256).hexdigest()
        assert r.headers["X-ApiOps-Signature"] == want
        assert r.headers["Content-Type"] == "application/json"
    assert set(NotificationDelivery.objects.values_list("status", flat=True)) == {"delivered"}
    notifications.deliver_due()
    assert len(receiver.received) == 2  # nothing is sent twice


def test_filters_choose_the_targets_by_event_pattern_and_namespace(fast_notify, receiver):
    fast_notify(
        NOTIFY_TARGETS=(
            target("jobs-prod", receiver.url, namespaces=("prod",)),
            target("auth", receiver.url, events=("auth.*",)),
            target("everything", receiver.url, events=("*",)),
        )
    )

    prod = notifications.notify("job.succeeded", "prod", job_data())
    staging = notifications.notify("job.succeeded", "staging", job_data())
    lockout = notifications.notify("auth.lockout", "", {"source_ip": "192.0.2.1"})

    def names(event):
        return set(event.deliveries.values_list("target_name", flat=True))

    assert names(prod) == {"jobs-prod", "everything"}
    assert names(staging) == {"everything"}
    assert names(lockout) == {"auth", "everything"}


def test_no_target_wants_it_no_row(fast_notify, receiver):
    fast_notify(NOTIFY_TARGETS=(target("a", receiver.url, events=("approval.*",)),))

    assert notifications.notify("job.started", "prod", job_data()) is None
    assert NotificationEvent.objects.count() == 0


def test_an_unknown_event_name_is_a_programming_error(fast_notify):
    with pytest.raises(ValueError, match="unknown notification event"):
        notifications.notify("job.exploded", "prod", {})


def test_approval_events_are_accepted_names(fast_notify, receiver):
    fast_notify(NOTIFY_TARGETS=(target("a", receiver.url, events=("approval.*",)),))

    for event in (
        "approval.requested",
        "approval.approved",
        "approval.rejected",
        "approval.expired",
    ):
        assert notifications.notify(event, "prod", {"approval_id": "1", "operation": "scale"})


def test_the_event_exists_only_if_the_callers_transaction_commits(fast_notify, receiver):
    fast_notify(NOTIFY_TARGETS=(target("a", receiver.url),))

    def change_that_fails() -> None:
        with transaction.atomic():
            notifications.notify("job.failed", "prod", job_data("rolled-back"))
            raise RuntimeError("the change failed")

    with pytest.raises(RuntimeError):
        change_that_fails()
    with transaction.atomic():
        kept = notifications.notify("job.failed", "prod", job_data("kept"))

    assert list(NotificationEvent.objects.values_list("id", flat=True)) == [kept.id]
    deliver_all()
    assert [r.json()["data"]["job_id"] for r in receiver.wait_for(1)] == ["kept"]


def test_a_receiver_failing_five_times_gets_the_event_on_the_sixth_attempt(fast_notify, receiver):
    fast_notify(NOTIFY_TARGETS=(target("flaky", receiver.url),))
    receiver.statuses = [500, 503, 502, 500, 429]
    failed = metrics.NOTIFICATIONS.labels("webhook", "failed")._value.get()
    delivered = metrics.NOTIFICATIONS.labels("webhook", "delivered")._value.get()

    event = notifications.notify("job.succeeded", "prod", job_data())
    deliver_all()

    got = receiver.wait_for(6)
    assert len(got) == 6
    assert {r.json()["id"] for r in got} == {str(event.id)}  # the same id every time
    [delivery] = NotificationDelivery.objects.all()
    assert (delivery.status, delivery.attempts, delivery.last_error) == ("delivered", 6, "")
    assert metrics.NOTIFICATIONS.labels("webhook", "failed")._value.get() - failed == 5
    assert metrics.NOTIFICATIONS.labels("webhook", "delivered")._value.get() - delivered == 1


def test_the_pause_between_attempts_doubles_up_to_the_cap(fast_notify):
    fast_notify(NOTIFY_BACKOFF=2.0, NOTIFY_BACKOFF_MAX=300.0)

    assert [notifications.backoff(n) for n in (1, 2, 3, 4, 9, 10)] == [2, 4, 8, 16, 300, 300]


def test_after_the_last_attempt_it_is_undeliverable_then_retryable(
    fast_notify, receiver, admin_client
):
    fast_notify(NOTIFY_TARGETS=(target("down", receiver.url),), NOTIFY_MAX_ATTEMPTS=3)
    receiver.statuses = [500, 500, 500]

    notifications.notify("job.failed", "prod", job_data())
    deliver_all()

    [delivery] = NotificationDelivery.objects.all()
    assert (delivery.status, delivery.attempts) == ("undeliverable", 3)
    assert delivery.last_error == "HTTP 500: no"
    page = admin_client.get("/admin/ops/notificationdelivery/")
    assert b"undeliverable" in page.content
    assert b"HTTP 500: no" in page.content

    response = admin_client.post(
        "/admin/ops/notificationdelivery/",
        {"action": "retry_now", "_selected_action": [delivery.pk]},
    )
    assert response.status_code == 302
    delivery.refresh_from_db()
    assert (delivery.status, delivery.attempts) == ("pending", 0)
    deliver_all()
    delivery.refresh_from_db()
    assert delivery.status == "delivered"
    assert len(receiver.received) == 4


def test_slack_and_teams_bodies_have_their_formats(fast_notify, receiver):
    fast_notify(
        NOTIFY_TARGETS=(
            target("slack", receiver.url + "/slack", kind="slack"),
            target("teams", receiver.url + "/teams", kind="teams"),
        )
    )
    data = {**job_data(), "error": {"code": "timeout", "detail": "pods <still> there & more"}}

    event = notifications.notify("job.failed", "prod", data)
    deliver_all()

    got = {r.path: r for r in receiver.wait_for(2)}
    slack = got["/hook/slack"].json()
    assert isinstance(slack["text"], str)
    assert "job.failed" not in slack["text"]
    assert "pods <still> there & more" in slack["text"]  # plain fallback text
    section, context = slack["blocks"]
    assert section["type"] == "section"
    assert section["text"]["type"] == "mrkdwn"
    assert "&lt;still&gt; there &amp; more" in section["text"]["text"]  # Slack's escaping
    assert context["type"] == "context"
    assert str(event.id) in context["elements"][0]["text"]
    assert "X-ApiOps-Signature" not in got["/hook/slack"].headers

    teams = got["/hook/teams"].json()
    assert teams["type"] == "message"
    [attachment] = teams["attachments"]
    assert attachment["contentType"] == "application/vnd.microsoft.card.adaptive"
    card = attachment["content"]
    assert (card["type"], card["version"]) == ("AdaptiveCard", "1.4")
    assert card["$schema"] == "http://adaptivecards.io/schemas/adaptive-card.json"
    kinds = [block["type"] for block in card["body"]]
    assert kinds == ["TextBlock", "TextBlock", "FactSet"]
    facts = {f["title"]: f["value"] for f in card["body"][2]["facts"]}
    assert facts["job_id"] == job_data()["job_id"]
    assert facts["event id"] == str(event.id)
    assert all(isinstance(f["value"], str) for f in card["body"][2]["facts"])


def test_errors_and_logs_never_show_the_url_or_the_secret(fast_notify, caplog):
    url = "http://127.0.0.1:9/services/T000/B000/XXXXsecretpath"
    fast_notify(NOTIFY_TARGETS=(target("gone", url),), NOTIFY_MAX_ATTEMPTS=1)
    caplog.set_level(logging.DEBUG)

    notifications.notify("job.failed", "prod", job_data())
    deliver_all()

    [delivery] = NotificationDelivery.objects.all()
    assert delivery.status == "undeliverable"
    assert delivery.last_error.startswith("cannot connect")
    for text in (delivery.last_error, caplog.text):
        assert "secretpath" not in text
        assert SECRET not in text


def test_admin_targets_keep_url_and_secret_write_only(fast_notify, admin_client, receiver):
    url = receiver.url + "/T000/SECRETPATH"
    response = admin_client.post(
        "/admin/ops/notificationtarget/add/",
        {
            "name": "chat",
            "kind": "webhook",
            "url": url,
            "secret": "admin-secret-value",
            "events": "job.*,auth.lockout",
            "namespaces": "prod",
            "enabled": "on",
        },
    )
    assert response.status_code == 302, response.content[:2000]
    row = NotificationTarget.objects.get(name="chat")
    assert (row.url, row.secret, row.events, row.namespaces) == (
        url,
        "admin-secret-value",
        ["job.*", "auth.lockout"],
        ["prod"],
    )

    for page in (
        "/admin/ops/notificationtarget/",
        f"/admin/ops/notificationtarget/{row.pk}/change/",
    ):
        content = admin_client.get(page).content
        assert b"SECRETPATH" not in content
        assert b"admin-secret-value" not in content

    # Blank URL and secret on a change keep what is stored.
    admin_client.post(
        f"/admin/ops/notificationtarget/{row.pk}/change/",
        {
            "name": "chat",
            "kind": "webhook",
            "url": "",
            "secret": "",
            "events": "job.*",
            "namespaces": "",
            "enabled": "on",
        },
    )
    row.refresh_from_db()
    assert (row.url, row.secret, row.events, row.namespaces) == (
        url,
        "admin-secret-value",
        ["job.*"],
        [],
    )

    event = notifications.notify("job.started", "staging", job_data())
    deliver_all()
    [got] = receiver.wait_for(1)
    assert got.path.endswith("/SECRETPATH")
    want = "sha256=" + hmac.new(b"admin-secret-value", got.body, hashlib.sha256).hexdigest()
    assert got.headers["X-ApiOps-Signature"] == want
    assert got.json()["id"] == str(event.id)


def test_admin_refuses_a_bad_url_and_an_environment_targets_name(fast_notify, admin_client):
    fast_notify(NOTIFY_TARGETS=(target("from-env", "http://127.0.0.1:9/"),))
    base = {"kind": "slack", "events": "job.*", "enabled": "on"}

    bad_url = admin_client.post(
        "/admin/ops/notificationtarget/add/", {**base, "name": "x", "url": "ftp://example.org/"}
    )
    taken = admin_client.post(
        "/admin/ops/notificationtarget/add/",
        {**base, "name": "from-env", "url": "https://example.org/"},
    )

    assert bad_url.status_code == taken.status_code == 200  # the form again, with its errors
    assert b"http:// or https://" in bad_url.content
    assert b"OPS_NOTIFY_TARGETS already has" in taken.content
    assert not NotificationTarget.objects.exists()


def test_notify_test_sends_a_test_event_or_says_why_not(fast_notify, receiver, capsys):
    fast_notify(NOTIFY_TARGETS=(target("ok", receiver.url, events=("approval.*",)),))

    call_command("notify_test", "ok")

    [got] = receiver.wait_for(1)
    assert got.json()["event"] == "notify.test"
    assert got.json()["data"]["target"] == "ok"
    assert "delivered event" in capsys.readouterr().out
    receiver.statuses = [500]
    with pytest.raises(CommandError, match="HTTP 500"):
        call_command("notify_test", "ok")
    with pytest.raises(CommandError, match="no notification target 'nope'"):
        call_command("notify_test", "nope")


def test_the_failure_that_reaches_the_limit_sends_one_lockout(fast_notify, receiver, anon):
    fast_notify(
        NOTIFY_TARGETS=(target("sec", receiver.url, events=("auth.*",)),),
        AUTH_FAILURE_LIMIT=3,
        AUTH_FAILURE_WINDOW=60,
    )
    lockouts = metrics.AUTH_LOCKOUTS._value.get()

    codes = [anon.get("/ops/audit", HTTP_X_API_KEY=f"wrong-{i}").status_code for i in range(5)]

    assert codes == [401, 401, 401, 429, 429]
    [event] = NotificationEvent.objects.all()
    assert (event.event, event.namespace) == ("auth.lockout", "")
    assert event.data == {"source_ip": "203.0.113.7", "failures": 3, "window_seconds": 60}
    assert metrics.AUTH_LOCKOUTS._value.get() - lockouts == 1
    deliver_all()
    assert receiver.wait_for(1)[0].json()["event"] == "auth.lockout"


def test_delivered_events_are_forgotten_after_a_month_the_others_kept(fast_notify, receiver):
    from datetime import timedelta

    from django.utils import timezone

    fast_notify(NOTIFY_TARGETS=(target("a", receiver.url),))
    old_done = notifications.notify("job.succeeded", "prod", job_data("old-done"))
    old_stuck = notifications.notify("job.failed", "prod", job_data("old-stuck"))
    recent = notifications.notify("job.started", "prod", job_data("recent"))
    NotificationDelivery.objects.filter(event=old_done).update(status="delivered")
    NotificationDelivery.objects.filter(event=recent).update(status="delivered")
    NotificationDelivery.objects.filter(event=old_stuck).update(status="undeliverable")
    NotificationEvent.objects.filter(pk__in=[old_done.pk, old_stuck.pk]).update(
        occurred_at=timezone.now() - timedelta(days=31)
    )

    assert notifications.prune() == 2  # the event and its delivery

    assert set(NotificationEvent.objects.values_list("pk", flat=True)) == {old_stuck.pk, recent.pk}


def test_a_delivery_page_is_read_only(fast_notify, receiver, admin_client):
    fast_notify(NOTIFY_TARGETS=(target("a", receiver.url),))
    notifications.notify("job.succeeded", "prod", job_data())
    [delivery] = NotificationDelivery.objects.all()

    page = admin_client.get(f"/admin/ops/notificationdelivery/{delivery.pk}/change/")

    assert page.status_code == 200
    assert b'name="_save"' not in page.content
    assert str(delivery.event_id).encode() in page.content
