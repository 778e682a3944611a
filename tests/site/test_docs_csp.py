"""The docs page offline and locked down: Swagger UI's files are served by us (the
drf-spectacular-sidecar package), the page runs no inline script and loads nothing from another
host, every HTML page (admin, browsable API, docs) carries a Content-Security-Policy whose
scripts come from this origin only (a JSON answer carries the strictest one, a constant), and
a refused docs request is a JSON error."""

from __future__ import annotations

from html.parser import HTMLParser
from urllib.parse import urlsplit

import pytest
from django.contrib.auth import get_user_model
from django.test import Client

pytestmark = pytest.mark.django_db(databases=["default", "audit"])

# Attributes through which an HTML element loads something.
LOADS = {"script": "src", "link": "href", "img": "src", "iframe": "src", "source": "src"}


class Page(HTMLParser):
    """The URLs an HTML page loads, and the bodies of its inline scripts."""

    def __init__(self, html: str) -> None:
        super().__init__()
        self.loads: list[str] = []
        self.inline_scripts: list[str] = []
        self._in_script = False
        self.feed(html)

    def handle_starttag(self, tag, attrs):
        values = dict(attrs)
        if LOADS.get(tag) in values:
            self.loads.append(values[LOADS[tag]])
        self._in_script = tag == "script" and "src" not in values
        self._script_type = values.get("type", "text/javascript")

    def handle_endtag(self, tag):
        self._in_script = False

    def handle_data(self, data):
        # A JSON data block (the browsable API's CSRF token) is not a script that runs.
        if self._in_script and data.strip() and "json" not in self._script_type:
            self.inline_scripts.append(data.strip())


def policy(response) -> dict[str, list[str]]:
    header = response["Content-Security-Policy"]
    return {part.split()[0]: part.split()[1:] for part in header.split(";") if part.strip()}


def test_the_docs_page_loads_only_our_own_files_and_runs_no_inline_script(api):
    response = api.get("/api/docs/")

    assert response.status_code == 200
    page = Page(response.content.decode())
    assert page.inline_scripts == []
    assert page.loads, "the page loads Swagger UI"
    for url in page.loads:
        assert not urlsplit(url).netloc, f"loaded from another host: {url}"
    assert any(url.endswith("swagger-ui-bundle.js") for url in page.loads)
    # Each is served here: the start-up script, then the sidecar's files (after a static
    # file, the test client's request_finished closes the test's audit connection).
    for url in sorted(page.loads, key=lambda url: url.startswith("/static/")):
        served = api.get(url)
        assert served.status_code == 200, url
        served.close()


def test_the_docs_start_up_script_is_javascript_naming_our_schema(api):
    response = api.get("/api/docs/?script=")

    assert response.status_code == 200
    assert response["Content-Type"].startswith("application/javascript")
    assert '"/api/schema/"' in response.content.decode()
    assert '"validatorUrl": null' in response.content.decode()  # no badge from another host


@pytest.mark.parametrize("path", ["/api/docs/", "/api/schema/"])
def test_a_refused_docs_or_schema_request_is_a_json_error(anon, path):
    response = anon.get(path)

    assert response.status_code == 401
    assert response["Content-Type"] == "application/json"
    assert response.json()["code"] == "not_authenticated"
    assert "X-API-Key" in response["WWW-Authenticate"]


@pytest.mark.parametrize("path", ["/admin/login/", "/api/docs/", "/ops/", "/ops/audit"])
def test_every_page_has_a_policy_without_inline_or_foreign_scripts(api, path):
    response = api.get(path, HTTP_ACCEPT="text/html")

    assert response.status_code == 200
    rules = policy(response)
    assert rules["script-src"] == ["'self'"]
    assert rules["default-src"] == ["'self'"]
    assert rules["object-src"] == ["'none'"]
    assert rules["frame-ancestors"] == ["'none'"]
    for directive, sources in rules.items():
        assert all(s.startswith("'") or s == "data:" for s in sources), (directive, sources)


def test_the_admin_pages_of_a_logged_in_user_run_no_inline_script(apiops):
    user = get_user_model().objects.create_superuser("csp", password="csp-password-0123")
    client = Client()
    client.force_login(user)

    for path in ["/admin/", "/admin/ops/opslog/", "/admin/jobs/job/", "/admin/ops/apikey/add/"]:
        response = client.get(path)
        assert response.status_code == 200, path
        assert Page(response.content.decode()).inline_scripts == [], path
        assert policy(response)["script-src"] == ["'self'"]


def test_the_browsable_api_runs_no_inline_script(api):
    response = api.get("/ops/audit", HTTP_ACCEPT="text/html")

    assert response.status_code == 200
    page = Page(response.content.decode())
    assert page.inline_scripts == []
    assert all(not urlsplit(url).netloc for url in page.loads)


@pytest.mark.parametrize(
    ("method", "path"),
    [("get", "/ops/audit"), ("get", "/health/live"), ("post", "/ops/namespaces/x/pods/y")],
)
def test_a_json_answer_carries_the_strictest_policy(api, method, path):
    response = getattr(api, method)(path)

    assert response["Content-Type"].startswith("application/json")
    assert policy(response) == {"default-src": ["'none'"], "frame-ancestors": ["'none'"]}
