"""The audit log's admin: the list people read, its filters, search and date drill-down, the
detail page with the request body as escaped JSON, read-only enforcement for a superuser, and
the CSV export of exactly the filtered list (CSV-injection safe)."""

from __future__ import annotations

import csv
import io
import json
from datetime import datetime, timedelta

from django.contrib.admin.templatetags.admin_list import date_hierarchy
from django.db import connections
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from ops.admin import OpsLogAdmin
from ops.models import OpsLog
from tests.admin.conftest import DB

pytestmark = DB

LIST = "/admin/ops/opslog/"
EXPORT = "/admin/ops/opslog/export.csv"


def shown_names(response) -> list[str]:
    """Resource names in the result rows of a changelist page."""
    return sorted(row.resource_name for row in response.context["cl"].result_list)


def export_rows(response) -> list[dict[str, str]]:
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/csv")
    assert response.streaming
    text = b"".join(response.streaming_content).decode()
    return list(csv.DictReader(io.StringIO(text)))


def test_the_list_shows_time_actor_ip_action_kind_namespace_name_status_and_short_error(
    admin_client, row
):
    long_error = "The Kubernetes API refused: " + "x" * 200
    row(
        actor="cli:alice",
        source_ip="local",
        name="postgres",
        kind="statefulset",
        namespace="staging",
        status="error",
        error=long_error,
    )

    response = admin_client.get(LIST)

    assert response.status_code == 200
    html = response.content.decode()
    for text in ("cli:alice", "local", "scale", "statefulset", "staging", "postgres"):
        assert text in html
    assert 'class="ops-status ops-status-error"' in html
    assert "The Kubernetes API refused: xxx" in html
    assert "x" * 200 not in html.replace(f'title="{long_error}"', "")


def test_a_row_without_an_actor_reads_as_no_valid_key(admin_client, row):
    row(actor=None, status="denied", error="Invalid API key.")

    assert "(no valid key)" in admin_client.get(LIST).content.decode()


def test_filters_by_status_action_kind_namespace_and_actor_narrow_the_list(admin_client, row):
    row(name="a", status="success", namespace="prod", actor="alice")
    row(name="b", status="denied", namespace="kube-system", actor="bob")
    row(name="c", status="error", namespace="staging", action="delete", kind="pod", actor="bob")

    assert shown_names(admin_client.get(LIST, {"status__exact": "denied"})) == ["b"]
    assert shown_names(admin_client.get(LIST, {"namespace": "staging"})) == ["c"]
    assert shown_names(admin_client.get(LIST, {"action": "delete"})) == ["c"]
    assert shown_names(admin_client.get(LIST, {"resource_kind": "deployment"})) == ["a", "b"]
    assert shown_names(admin_client.get(LIST, {"actor": "bob"})) == ["b", "c"]
    filters = admin_client.get(LIST).context["cl"].filter_specs
    titles = {spec.title for spec in filters}
    assert {"status", "action", "resource kind", "namespace", "actor"} <= titles


def filter_choices(response, title: str) -> list[str]:
    """The choices one list filter offers, as displayed ("All" left out)."""
    [spec] = [s for s in response.context["cl"].filter_specs if s.title == title]
    return [c["display"] for c in spec.choices(response.context["cl"])][1:]


def test_value_filters_never_run_a_distinct_over_the_table(admin_client, row):
    row(actor="alice")
    columns = ("actor", "namespace", "action", "resource_kind")

    with (
        CaptureQueriesContext(connections["audit"]) as audit,
        CaptureQueriesContext(connections["default"]) as default,
    ):
        response = admin_client.get(LIST)
        response.render()

    assert response.status_code == 200
    sql = [q["sql"] for q in [*audit.captured_queries, *default.captured_queries]]
    distinct = [q for q in sql if "DISTINCT" in q and any(f'"ops_log"."{c}"' in q for c in columns)]
    assert distinct == []


def test_value_filters_offer_known_values_recent_values_and_the_selected_one(
    admin_client, row, settings, monkeypatch
):
    monkeypatch.setattr(OpsLogAdmin, "filter_window_rows", 2)
    settings.APIOPS = {**settings.APIOPS, "ALLOWED_NAMESPACES": ("prod", "staging")}
    old = timezone.now() - timedelta(days=30)
    row(name="old", ts=old, actor="old-bot", namespace="legacy")
    row(name="new-1", actor="bob", namespace="kube-system", action="delete", kind="pod")
    row(name="new-2", actor=None, status="denied")

    response = admin_client.get(LIST)

    assert filter_choices(response, "namespace") == ["kube-system", "prod", "staging"]
    assert filter_choices(response, "actor") == ["bob", "-"]  # "-": requests without a key
    assert {"scale", "delete", "pg-rebuild", "cancel", "retry"} <= set(
        filter_choices(response, "action")
    )
    assert {"deployment", "statefulset", "pod", "persistentvolumeclaim", "job"} <= set(
        filter_choices(response, "resource kind")
    )
    # Older than the window: not offered, still filterable, and offered once selected.
    selected = admin_client.get(LIST, {"actor": "old-bot"})
    assert shown_names(selected) == ["old"]
    assert "old-bot" in filter_choices(selected, "actor")
    without_key = admin_client.get(LIST, {"actor__isnull": "True"})
    assert shown_names(without_key) == ["new-2"]


def test_search_finds_rows_by_name_actor_and_ip(admin_client, row):
    row(name="orders-db", actor="alice", source_ip="198.51.100.4")
    row(name="web", actor="deploy-bot", source_ip="203.0.113.9")

    assert shown_names(admin_client.get(LIST, {"q": "orders"})) == ["orders-db"]
    assert shown_names(admin_client.get(LIST, {"q": "deploy-bot"})) == ["web"]
    assert shown_names(admin_client.get(LIST, {"q": "203.0.113"})) == ["web"]
    assert sorted(shown_names(admin_client.get(LIST, {"q": "prod"}))) == ["orders-db", "web"]


def test_search_matches_whole_values_and_prefixes_not_substrings(admin_client, row):
    row(name="orders-db", actor="alice")

    assert shown_names(admin_client.get(LIST, {"q": "db"})) == []
    assert shown_names(admin_client.get(LIST, {"q": "ali"})) == []
    assert shown_names(admin_client.get(LIST, {"q": "orders-"})) == ["orders-db"]


def test_the_date_hierarchy_lists_the_years_months_and_days_that_have_rows(admin_client, row):
    zone = timezone.get_current_timezone()
    for when in [(2020, 3, 1), (2021, 7, 4), (2021, 7, 9), (2021, 8, 30)]:
        row(name=f"r-{when}", ts=datetime(*when, 12, tzinfo=zone))
    row(name="now")

    def choices(**query):
        hierarchy = date_hierarchy(admin_client.get(LIST, query).context["cl"])
        return [c["title"] for c in hierarchy["choices"]]

    this_year = str(timezone.now().year)
    assert choices() == ["2020", "2021", this_year]
    assert choices(ts__year="2021") == ["July 2021", "August 2021"]
    assert choices(ts__year="2021", ts__month="7") == ["July 4", "July 9"]
    assert choices(ts__year="2021", status__exact="error") == []


def test_the_date_hierarchy_drills_down_by_year(admin_client, row):
    row(name="old", ts=datetime(2020, 3, 1, 12, tzinfo=timezone.get_current_timezone()))
    row(name="new")

    response = admin_client.get(LIST, {"ts__year": "2020"})

    assert shown_names(response) == ["old"]
    assert response.context["cl"].date_hierarchy == "ts"


def test_the_detail_page_shows_the_request_body_as_formatted_escaped_json(admin_client, row):
    entry = row(body={"replicas": 3, "note": "<script>alert(1)</script>"})

    response = admin_client.get(f"{LIST}{entry.pk}/change/")

    assert response.status_code == 200
    html = response.content.decode()
    assert '<pre class="ops-json">{\n  &quot;note&quot;: &quot;&lt;script&gt;' in html
    assert "&quot;replicas&quot;: 3\n}" in html
    assert "<script>alert(1)</script>" not in html


def test_a_superuser_gets_no_add_page_and_no_add_link(admin_client):
    assert admin_client.get(f"{LIST}add/").status_code == 403
    assert admin_client.post(f"{LIST}add/", {"action": "scale"}).status_code == 403
    assert f'href="{LIST}add/"' not in admin_client.get(LIST).content.decode()
    assert not OpsLog.objects.using("audit").exists()


def test_a_superuser_cannot_change_a_row_and_the_detail_page_has_no_save_button(admin_client, row):
    entry = row(status="denied", actor="mallory")
    url = f"{LIST}{entry.pk}/change/"

    page = admin_client.get(url).content.decode()
    response = admin_client.post(url, {"status": "success", "actor": "someone-else"})

    assert 'name="_save"' not in page
    assert 'name="_continue"' not in page
    assert response.status_code == 403
    entry.refresh_from_db(using="audit")
    assert (entry.status, entry.actor) == ("denied", "mallory")


def test_a_superuser_cannot_delete_a_row_one_by_one_or_in_bulk(admin_client, row):
    entry = row()

    assert admin_client.get(f"{LIST}{entry.pk}/delete/").status_code == 403
    assert admin_client.post(f"{LIST}{entry.pk}/delete/", {"post": "yes"}).status_code == 403
    admin_client.post(
        LIST, {"action": "delete_selected", "_selected_action": [entry.pk], "post": "yes"}
    )

    assert OpsLog.objects.using("audit").filter(pk=entry.pk).exists()
    assert "delete_selected" not in admin_client.get(LIST).content.decode()


def test_the_export_link_carries_the_current_filters(admin_client, row):
    row()

    html = admin_client.get(LIST, {"status__exact": "denied", "q": "web"}).content.decode()

    assert f'href="{EXPORT}?status__exact=denied&amp;q=web"' in html


def test_the_export_contains_exactly_the_filtered_rows_with_every_column(admin_client, row):
    denied = row(
        name="web",
        status="denied",
        actor="bob",
        body={"replicas": 7},
        error="Namespace 'kube-system' is not in the allowed namespaces.",
        namespace="kube-system",
    )
    row(name="web", status="success")
    row(name="other", status="denied")

    rows = export_rows(admin_client.get(EXPORT, {"status__exact": "denied", "q": "web"}))

    assert len(rows) == 1
    (got,) = rows
    assert got["id"] == str(denied.pk)
    assert got["actor"] == "bob"
    assert got["namespace"] == "kube-system"
    assert got["status"] == "denied"
    assert got["error_message"].startswith("Namespace 'kube-system'")
    assert json.loads(got["request_body"]) == {"replicas": 7}
    assert datetime.fromisoformat(got["ts"]) == denied.ts


def test_the_export_follows_the_date_drill_down_and_streams_all_pages(admin_client, row):
    for i in range(60):  # more than one page of the list (50)
        row(name=f"w{i}", ts=timezone.now() - timedelta(minutes=i))
    row(name="old", ts=datetime(2020, 1, 1, tzinfo=timezone.get_current_timezone()))

    everything = export_rows(admin_client.get(EXPORT))
    old_only = export_rows(admin_client.get(EXPORT, {"ts__year": "2020"}))

    assert len(everything) == 61
    assert [r["resource_name"] for r in old_only] == ["old"]


def test_export_cells_that_a_spreadsheet_would_run_as_formulas_are_quoted(admin_client, row):
    row(
        actor='=HYPERLINK("http://evil.example")',
        source_ip="-2+3",
        name="@SUM(A1)",
        error="+cmd|' /C calc'!A0",
    )

    (got,) = export_rows(admin_client.get(EXPORT))

    assert got["actor"] == '\'=HYPERLINK("http://evil.example")'
    assert got["source_ip"] == "'-2+3"
    assert got["resource_name"] == "'@SUM(A1)"
    assert got["error_message"] == "'+cmd|' /C calc'!A0"
    assert got["namespace"] == "prod"


def test_the_export_needs_a_staff_login(client, row):
    row()

    response = client.get(EXPORT)

    assert response.status_code == 302
    assert "/admin/login/" in response["Location"]


def test_an_export_with_an_unknown_filter_goes_back_to_the_list(admin_client, row):
    row()

    response = admin_client.get(EXPORT, {"no_such_field": "1"})

    assert response.status_code == 302
    assert response["Location"].startswith(LIST)


def test_staff_without_the_view_permission_cannot_list_or_export(client, row, django_user_model):
    row()
    staff = django_user_model.objects.create_user("intern", password="x", is_staff=True)
    client.force_login(staff)

    assert client.get(LIST).status_code == 403
    assert client.get(EXPORT).status_code == 403


def test_search_finds_every_match_past_the_count_cap_too(admin_client, row, settings):
    settings.APIOPS = {**settings.APIOPS, "AUDIT_COUNT_CAP": 2}
    for i in range(4):
        row(name=f"db-{i}", actor="alice")
    row(name="other", actor="bob")

    assert sorted(shown_names(admin_client.get(LIST, {"q": "alice"}))) == [
        f"db-{i}" for i in range(4)
    ]
    assert shown_names(admin_client.get(LIST, {"q": "other"})) == ["other"]
