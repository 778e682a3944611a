"""The docs page, the browsable API and the admin lists in a real headless Chromium, with every
request to another host blocked (offline): Swagger UI renders our schema with no
Content-Security-Policy violation (console messages and ``securitypolicyviolation`` events are
listened to); a staff user logged in to the admin scales a StatefulSet from the browsable API
with their session (CSRF token and all), which kubesim receives and the audit log records as
``admin:<username>``; at 1280 px the audit list shows Status and Error and the jobs list
Duration and Actor without scrolling. Screenshots land in var/screenshots/.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from urllib.parse import urlsplit

import pytest
from django.contrib.auth import get_user_model
from django.db import connections
from django.utils import timezone

from jobs.models import JobStatus
from ops.models import OpsLog
from tests.admin.conftest import make_job, make_row
from tests.browser.test_admin_browser import CHROMIUM, CHROMIUM_ARGS, PASSWORD, shot

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(
        not CHROMIUM.exists(), reason=f"{CHROMIUM} not installed (apt-get install -y chromium)"
    ),
    pytest.mark.django_db(databases=["default", "audit"], transaction=True),
]

# Listens for CSP violations in the page (they are also console errors in Chromium).
VIOLATIONS = """
window.__cspViolations = [];
document.addEventListener("securitypolicyviolation", (e) => {
  window.__cspViolations.push(e.violatedDirective + " " + e.blockedURI);
});
"""


@pytest.fixture
def watched_page(live_server):
    """A 1280 px wide page that may reach only the live server; what it tried elsewhere, its
    console errors and its CSP violations are recorded."""
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed")
    ours = urlsplit(live_server.url).netloc
    seen = {"elsewhere": [], "console": []}
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True
        )
        try:
            context = browser.new_context(viewport={"width": 1280, "height": 900})
            context.add_init_script(VIOLATIONS)

            def route(r):
                if urlsplit(r.request.url).netloc in (ours, ""):
                    r.continue_()
                else:  # offline: nothing but this service answers
                    seen["elsewhere"].append(r.request.url)
                    r.abort()

            context.route("**/*", route)
            page = context.new_page()
            page.set_default_timeout(20_000)
            page.on(
                "console",
                lambda m: seen["console"].append(m.text) if m.type in ("error", "warning") else 0,
            )
            yield page, seen
        finally:
            browser.close()


@pytest.fixture
def operator():
    user = get_user_model().objects.create_superuser("operator", "op@example.org", PASSWORD)
    return user


def log_in(page, base: str) -> None:
    page.goto(f"{base}/admin/login/?next=/admin/")
    page.fill("#id_username", "operator")
    page.fill("#id_password", PASSWORD)
    page.click("input[type=submit]")
    page.wait_for_url(f"{base}/admin/")


def off_the_loop(query):
    """Run an ORM ``query`` in a thread of its own: Django refuses ORM calls in this one while
    Playwright's event loop runs here."""
    with ThreadPoolExecutor(1) as pool:
        try:
            return pool.submit(query).result()
        finally:
            pool.submit(connections.close_all).result()


def csp_violations(page) -> list[str]:
    return page.evaluate("window.__cspViolations")


def test_the_docs_render_offline_with_no_csp_violation(live_server, operator, watched_page):
    page, seen = watched_page
    log_in(page, live_server.url)

    page.goto(f"{live_server.url}/api/docs/")
    page.wait_for_selector(".swagger-ui .info .title")
    page.wait_for_selector(".opblock-summary-path")

    assert "ApiOps" in page.inner_text(".swagger-ui .info .title")
    paths = page.locator(".opblock-summary-path").all_inner_texts()
    assert any("/ops/namespaces/{namespace}/statefulsets/{name}/scale" in p for p in paths)
    assert csp_violations(page) == []
    assert [m for m in seen["console"] if "Content Security Policy" in m] == []
    assert seen["elsewhere"] == []
    shot(page, "10-docs")


def test_a_staff_user_scales_from_the_browsable_api(
    live_server, operator, watched_page, cluster, apiops
):
    page, seen = watched_page
    log_in(page, live_server.url)

    page.goto(f"{live_server.url}/ops/")
    assert "/ops/audit" in page.inner_text("body")
    page.goto(f"{live_server.url}/ops/namespaces/prod/statefulsets/postgres/scale")
    page.fill("#id__content", '{"replicas": 2}')
    page.click("#post-generic-content-form button")
    page.wait_for_selector("text=previous_replicas")
    shot(page, "11-browsable-api-scale")

    assert "HTTP 200 OK" in page.inner_text(".response-info")
    assert cluster.get("statefulsets", "prod", "postgres")["spec"]["replicas"] == 2
    rows = off_the_loop(
        lambda: list(
            OpsLog.objects.using("audit").filter(action="scale").values_list("actor", "status")
        )
    )
    assert ("admin:operator", "success") in rows
    assert csp_violations(page) == []
    assert seen["elsewhere"] == []


def columns_in_view(page, headers: list[str]) -> dict[str, bool]:
    """For each column class: whether its header ends inside the viewport and the results
    table needs no horizontal scrolling."""
    width = page.viewport_size["width"]
    scrolls = page.evaluate(
        "(() => { const r = document.querySelector('#changelist .results');"
        " return r.scrollWidth > r.clientWidth; })()"
    )
    found = {}
    for column in headers:
        box = page.locator(f"#result_list th.column-{column}").bounding_box()
        found[column] = box is not None and box["x"] + box["width"] <= width and not scrolls
    return found


@pytest.fixture
def crowded_lists():
    """Audit rows and jobs with long values in every column (written before the browser
    starts: Django refuses ORM calls while Playwright's event loop runs in this thread)."""
    now = timezone.now()
    make_row(
        actor="deploy-bot-with-a-long-name",
        namespace="staging",
        name="postgres-replica-with-a-long-name",
        kind="statefulset",
        status="denied",
        error="Namespace 'kube-system' is not in the allowed namespaces of this key.",
        source_ip="2001:db8:ffff:ffff:ffff:ffff:ffff:fff0",
        ts=now - timedelta(minutes=4),
    )
    make_row(actor="admin:operator", ts=now - timedelta(minutes=2))
    make_job(status=JobStatus.FAILED, steps_done=2, failed_detail="timed out", name="billing-db")
    make_job(status=JobStatus.RUNNING, steps_done=3, name="orders")


def test_the_admin_lists_show_their_key_columns_at_1280_px(
    live_server, operator, crowded_lists, watched_page
):
    page, _ = watched_page
    log_in(page, live_server.url)

    page.goto(f"{live_server.url}/admin/ops/opslog/")
    page.wait_for_selector("#result_list")
    shot(page, "12-audit-1280")
    audit = columns_in_view(page, ["status_badge", "error_short"])

    page.goto(f"{live_server.url}/admin/jobs/job/")
    page.wait_for_selector("#result_list")
    shot(page, "13-jobs-1280")
    jobs = columns_in_view(page, ["duration", "actor"])

    assert audit == {"status_badge": True, "error_short": True}
    assert jobs == {"duration": True, "actor": True}
    assert csp_violations(page) == []
