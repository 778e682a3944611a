"""Structured logs: JSON lines, a request id shared by a request's lines and its response
header, one access line per request, and no secret in a log line or an error body.

The in-process tests attach the project's formatter and filter to a buffer; the last test
runs ENV=prod in a subprocess and reads what the real LOGGING configuration writes to stderr.
"""

from __future__ import annotations

import io
import json
import logging

import pytest

from apiops_site.log import (
    REDACTED,
    JsonFormatter,
    PlainFormatter,
    RequestIdFilter,
    redact,
    register_secret,
    request_id_from,
)
from tests.ops.conftest import BOOTSTRAP_KEY, CLIENT_IP, DB
from tests.site.support import run_python, token, write_secrets


class Captured:
    """What the root logger wrote through the project's JSON formatter."""

    def __init__(self) -> None:
        self.stream = io.StringIO()

    @property
    def text(self) -> str:
        return self.stream.getvalue()

    def lines(self) -> list[dict]:
        return [json.loads(line) for line in self.text.splitlines() if line.strip()]

    def access(self) -> list[dict]:
        return [line for line in self.lines() if line["logger"] == "apiops.request"]


@pytest.fixture
def captured():
    """Every record at DEBUG and above, rendered as the production handler renders it."""
    out = Captured()
    handler = logging.StreamHandler(out.stream)
    handler.setFormatter(JsonFormatter())
    handler.addFilter(RequestIdFilter())
    root = logging.getLogger()
    level = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    try:
        yield out
    finally:
        root.removeHandler(handler)
        root.setLevel(level)


def record(message: str, *args, exc_info=None, **extra) -> logging.LogRecord:
    rec = logging.LogRecord("apiops.test", logging.WARNING, __file__, 1, message, args, exc_info)
    for key, value in extra.items():
        setattr(rec, key, value)
    return rec


# --- formatter and redaction --------------------------------------------------------------------


def test_a_record_is_one_line_of_json_with_its_extras():
    line = JsonFormatter().format(record("two\nlines %s", "arg", status=201, actor="ci"))

    assert "\n" not in line
    entry = json.loads(line)
    assert entry["message"] == "two\nlines arg"
    assert entry["level"] == "WARNING"
    assert entry["logger"] == "apiops.test"
    assert entry["status"] == 201
    assert entry["actor"] == "ci"
    assert entry["request_id"] is None
    assert entry["time"].endswith("+00:00")


def test_the_request_object_django_attaches_is_never_rendered():
    from django.test import RequestFactory

    request = RequestFactory().get("/x", HTTP_X_API_KEY="should-not-appear-0123456789")

    line = JsonFormatter().format(record("Not Found: /x", request=request, status_code=404))

    assert "should-not-appear" not in line
    assert json.loads(line)["status_code"] == 404


def test_registered_secrets_and_url_passwords_are_scrubbed_everywhere_in_the_line():
    secret = token("registered-")
    register_secret(secret)
    try:
        raise RuntimeError(f"cannot connect with {secret}")
    except RuntimeError:
        import sys

        exc_info = sys.exc_info()
    url = "postgresql://apiops:hunter2-not-registered@db:5432/apiops"

    line = JsonFormatter().format(
        record("using %s and %s", secret, url, exc_info=exc_info, dsn=url, nested={"k": secret})
    )

    assert secret not in line
    assert "hunter2" not in line
    entry = json.loads(line)
    assert entry["message"] == (
        f"using {REDACTED} and postgresql://apiops:{REDACTED}@db:5432/apiops"
    )
    assert entry["dsn"] == f"postgresql://apiops:{REDACTED}@db:5432/apiops"
    assert entry["nested"] == {"k": REDACTED}
    assert f"cannot connect with {REDACTED}" in entry["exc"]


def test_a_secret_with_json_special_characters_leaves_valid_json():
    secret = 'a"b\\c' + token("")
    register_secret(secret)

    line = JsonFormatter().format(record("value %s", secret))

    assert json.loads(line)["message"] == f"value {REDACTED}"


def test_the_plain_format_is_scrubbed_too():
    secret = token("plain-")
    register_secret(secret)

    line = PlainFormatter().format(record("key %s in https://u:pw123@h/", secret))

    assert secret not in line
    assert "pw123" not in line
    assert "[None]" in line  # the request id slot, outside a request


def test_short_values_are_not_registered_so_logs_stay_readable():
    register_secret("pw")

    assert redact("pwd and pw") == "pwd and pw"


@pytest.mark.parametrize(
    ("sent", "kept"),
    [
        ("0f8fad5b-d9cb-469f-a165-70867728950e", True),
        ("ingress.req:42_x", True),
        ("", False),
        ("has space", False),
        ("line\nbreak", False),
        ('quote"d', False),
        ("-leading-dash", False),
        ("x" * 129, False),
    ],
)
def test_a_callers_request_id_is_kept_only_when_it_is_a_short_token(sent, kept):
    got = request_id_from(sent)

    assert (got == sent) is kept
    if not kept:
        assert len(got) == 32
        assert got.isalnum()


# --- requests -----------------------------------------------------------------------------------


def test_a_request_gets_an_id_in_the_response_header_and_on_its_access_line(anon, captured):
    response = anon.get("/health/live")

    assert response.status_code == 200
    request_id = response["X-Request-ID"]
    (line,) = captured.access()
    assert line["request_id"] == request_id
    assert line["method"] == "GET"
    assert line["path"] == "/health/live"
    assert line["status"] == 200
    assert line["duration_ms"] >= 0
    assert line["source_ip"] == CLIENT_IP
    assert line["actor"] is None
    assert line["level"] == "INFO"


def test_a_sane_request_id_from_the_caller_is_kept_and_echoed(anon, captured):
    response = anon.get("/health/live", HTTP_X_REQUEST_ID="edge-7f3a9c")

    assert response["X-Request-ID"] == "edge-7f3a9c"
    assert captured.access()[0]["request_id"] == "edge-7f3a9c"


def test_an_unusable_request_id_from_the_caller_is_replaced(anon, captured):
    response = anon.get("/health/live", HTTP_X_REQUEST_ID="<script>alert(1)</script>")

    assert response["X-Request-ID"] != "<script>alert(1)</script>"
    assert captured.access()[0]["request_id"] == response["X-Request-ID"]
    assert "script" not in captured.text


def test_the_query_string_is_not_logged(anon, captured):
    anon.get("/health/live?api_key=looks-like-a-key-0123456789")

    assert captured.access()[0]["path"] == "/health/live"
    assert "looks-like-a-key" not in captured.text


@DB
def test_every_line_of_a_request_carries_its_id_django_error_line_included(
    anon, apiops, captured, tmp_path
):
    apiops(KUBECONFIG=str(tmp_path / "missing.kubeconfig"))

    response = anon.get("/health/ready")

    assert response.status_code == 503
    lines = captured.lines()
    loggers = {line["logger"] for line in lines}
    # Django logs its "Service Unavailable" line after the middleware has returned.
    assert {"apiops.request", "django.request"} <= loggers
    assert {line["request_id"] for line in lines} == {response["X-Request-ID"]}
    assert captured.access()[0]["level"] == "ERROR"


@DB
def test_the_access_line_names_the_actor_of_the_api_key(api, captured):
    response = api.get("/ops/audit")

    assert response.status_code == 200
    (line,) = captured.access()
    assert line["actor"] == "bootstrap"
    assert line["source_ip"] == CLIENT_IP
    assert line["request_id"] == response["X-Request-ID"]
    assert BOOTSTRAP_KEY not in captured.text


@DB
def test_the_access_line_names_the_admin_user_of_a_session(admin_client, captured):
    response = admin_client.get("/admin/")

    assert response.status_code == 200
    assert captured.access()[0]["actor"] == "admin"


@DB
def test_a_wrong_api_key_is_in_no_log_line_and_not_in_the_answer(anon, captured):
    wrong = token("wrong-key-")

    response = anon.get("/ops/audit", HTTP_X_API_KEY=wrong)

    assert response.status_code == 401
    assert wrong not in response.content.decode()
    assert wrong not in captured.text
    (line,) = captured.access()
    assert (line["status"], line["level"], line["actor"]) == (401, "WARNING", None)


# --- the production configuration, end to end --------------------------------------------------

SCRIPT = """
import json, logging, os, sys
import django
django.setup()
from django.test import Client
client = Client(raise_request_exception=False)
# Something logs the database URL by mistake: the configured handler must scrub it.
db_url = open(os.path.join(os.environ["OPS_SECRETS_DIR"], "db-url")).read().strip()
logging.getLogger("apiops.mistake").error("connecting to %s", db_url)
out = []
for path, headers in json.loads(sys.argv[1]):
    r = client.get(path, HTTP_HOST="apiops.example.org", **headers)
    out.append({"path": path, "status": r.status_code, "id": r.get("X-Request-ID"),
                "location": r.get("Location"), "hsts": r.get("Strict-Transport-Security"),
                "body": r.content.decode("utf-8", "replace")})
print(json.dumps(out))
"""


def test_production_logs_are_json_with_request_ids_and_no_secret(tmp_path, closed_port_url):
    port = closed_port_url.rsplit(":", 1)[1]
    db_user, db_password = "apiops_" + token("u")[:8].lower(), token("db-pw-")
    api_key, secret_key, wrong_key = token("api-key-"), token("sk-") * 2, token("wrong-")
    db_url = f"postgresql://{db_user}:{db_password}@127.0.0.1:{port}/apiops"
    secrets_dir = write_secrets(
        tmp_path / "secrets", api_key=api_key, db_url=db_url, secret_key=secret_key
    )
    https = {"HTTP_X_FORWARDED_PROTO": "https"}
    requests = [
        ["/health/live", {"HTTP_X_REQUEST_ID": "probe-1"}],
        ["/health/ready", {}],
        ["/ops/audit", {**https, "HTTP_X_API_KEY": wrong_key}],
        ["/ops/audit", {**https, "HTTP_X_API_KEY": api_key}],
        ["/ops/audit", {"HTTP_X_API_KEY": api_key}],  # plain HTTP: redirected
    ]

    result = run_python(
        ["-c", SCRIPT, json.dumps(requests)],
        tmp_path,
        ENV="prod",
        OPS_SECRETS_DIR=str(secrets_dir),
        OPS_ALLOWED_HOSTS="apiops.example.org",
    )

    assert result.returncode == 0, result.stderr[-3000:]
    answers = json.loads(result.stdout.strip().splitlines()[-1])
    lines = [json.loads(line) for line in result.stderr.splitlines() if line.strip()]
    access = [line for line in lines if line["logger"] == "apiops.request"]
    assert [a["id"] for a in answers] == [line["request_id"] for line in access]
    assert answers[0]["id"] == "probe-1"
    assert all(line["request_id"] for line in lines if line["logger"].startswith("django"))

    live, ready, wrong, right, plain = answers
    assert live["status"] == 200
    assert ready["status"] == 503
    assert json.loads(ready["body"])["checks"]["database"] == {
        "ok": False,
        "error": "default: unavailable (OperationalError)",
    }
    assert wrong["status"] >= 400
    assert right["status"] >= 400  # the database is down
    assert right["hsts"] == "max-age=31536000; includeSubDomains"
    assert plain["status"] == 301
    assert plain["location"] == "https://apiops.example.org/ops/audit"

    mistake = next(line for line in lines if line["logger"] == "apiops.mistake")
    assert mistake["message"] == f"connecting to {REDACTED}"
    bodies = "".join(a["body"] for a in answers)
    for value in (db_password, db_url, api_key, secret_key, wrong_key):
        assert value not in result.stderr
        assert value not in bodies
    for value in (db_user, "127.0.0.1", port):
        assert value not in bodies
