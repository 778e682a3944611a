"""Every attempt is a row, whatever the body: a lone surrogate (which PostgreSQL cannot store
as text), a body nested far past the JSON parser's depth, NUL characters — with a right key a
4xx with its audit row (the body stored escaped or cut, and saying so), with a wrong key a
401 row that the throttle counts. Hypothesis fuzzes bodies and keys with the rows counted,
one per request, and nothing sent to the cluster."""

from __future__ import annotations

import json
from base64 import b64encode

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from jobs.models import Job
from ops.models import OpsLog
from tests.ops.conftest import BOOTSTRAP_KEY, CLIENT_IP, DB, audit_log, mutations

pytestmark = DB

STS = "/ops/namespaces/prod/statefulsets/postgres/scale"
SURROGATE = '{"replicas": "\\ud800"}'
DEEP = "[" * 16000 + "]" * 16000


def _post(client, body: str, key: str | None):
    if key is None:
        client.credentials()
    else:
        client.credentials(HTTP_X_API_KEY=key)
    return client.generic("POST", STS, body, content_type="application/json")


def test_a_lone_surrogate_with_a_right_key_is_400_with_its_row_stored_escaped(api, cluster):
    response = _post(api, SURROGATE, BOOTSTRAP_KEY)

    assert response.status_code == 400
    assert response.json()["errors"]["replicas"]
    [row] = audit_log()
    assert (row.status, row.http_status, row.actor) == ("error", 400, "bootstrap")
    assert row.request_body["_escaped"] == {"replicas": "\\ud800"}
    assert "lone surrogates" in row.request_body["_note"]
    assert mutations(cluster) == []


def test_a_lone_surrogate_in_a_field_name_is_400_with_its_row(api, cluster):
    response = _post(api, '{"\\udfff": 1, "replicas": 1}', BOOTSTRAP_KEY)

    assert response.status_code == 400
    [row] = audit_log()
    assert row.request_body["_escaped"] == {"\\udfff": 1, "replicas": 1}
    assert "\\udfff" in row.error_message
    assert mutations(cluster) == []


def test_wrong_keys_with_a_lone_surrogate_are_rows_and_get_throttled(api, apiops, cluster):
    apiops(AUTH_FAILURE_LIMIT=3)

    answers = [_post(api, SURROGATE, "wrong-key").status_code for _ in range(4)]

    assert answers == [401, 401, 401, 429]
    rows = audit_log()
    assert [(r.status, r.code) for r in rows] == [("denied", "authentication_failed")] * 3 + [
        ("denied", "throttled")
    ]
    assert all(r.actor is None and r.source_ip == CLIENT_IP for r in rows)
    assert rows[0].request_body["_escaped"] == {"replicas": "\\ud800"}


def test_a_body_nested_16000_deep_is_400_with_its_row(api, cluster):
    response = _post(api, DEEP, BOOTSTRAP_KEY)

    assert response.status_code == 400
    assert response.json() == {
        "detail": "JSON parse error - the body is nested too deeply.",
        "code": "parse_error",
    }
    [row] = audit_log()
    assert (row.status, row.http_status, row.code) == ("error", 400, "parse_error")
    assert row.request_body["_raw"].startswith("[[[[")
    assert mutations(cluster) == []


def test_wrong_keys_with_a_deep_body_are_rows_and_get_throttled(api, apiops, cluster):
    apiops(AUTH_FAILURE_LIMIT=2)

    answers = [_post(api, DEEP, "wrong-key").status_code for _ in range(3)]

    assert answers == [401, 401, 429]
    assert len(audit_log()) == 3


def test_a_parseable_but_deep_body_is_stored_cut_and_says_so(api, cluster):
    body = json.dumps({"replicas": 1, "x": json.loads("[" * 200 + "]" * 200)})

    response = _post(api, body, BOOTSTRAP_KEY)

    assert response.status_code == 400
    [row] = audit_log()
    assert "nested deeper than 64 levels cut" in row.request_body["_note"]
    assert "<cut: nested deeper than 64 levels>" in json.dumps(row.request_body["_escaped"])


@pytest.mark.parametrize("body", [SURROGATE.replace("replicas", "namespace"), DEEP])
def test_a_job_start_with_a_hostile_body_is_400_with_its_row_and_no_job(api, cluster, body):
    response = api.generic("POST", "/ops/jobs/pg-rebuild", body, content_type="application/json")

    assert response.status_code == 400
    [row] = audit_log()
    assert (row.action, row.status, row.http_status) == ("pg-rebuild", "error", 400)
    assert not Job.objects.exists()
    assert mutations(cluster) == []


# --- fuzzing ----------------------------------------------------------------------------------

# The same 60 examples on every run; the fixtures (a client, kubesim) serve every example.
FUZZ = settings(
    max_examples=60,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=12,
)


@st.composite
def hostile_bodies(draw) -> str:
    """JSON text as a client can send it: with lone surrogates and NULs (escaped, as JSON
    allows), nested deep, or broken."""
    kind = draw(st.sampled_from(["json", "surrogate", "deep", "text"]))
    if kind == "json":  # never a valid scale: a field beside replicas that it does not take
        extra = {f"x-{draw(st.text(max_size=10))}": draw(_json)}
        return json.dumps({"replicas": 1, **extra})  # NaN and Infinity included, JSON refuses
    if kind == "surrogate":
        point = draw(st.integers(0xD800, 0xDFFF))
        where = draw(st.sampled_from(['{"replicas": "%s"}', '{"%s": 2}', '["%s"]', '"%s"']))
        return where % f"\\u{point:04x}"
    if kind == "deep":
        depth = draw(st.integers(900, 20000))
        opener = draw(st.sampled_from(["[", '{"a":']))
        closer = "]" if opener == "[" else "}"
        return opener * depth + "1" + closer * depth
    return draw(st.text(max_size=200))


@FUZZ
@given(body=hostile_bodies(), key=st.sampled_from([BOOTSTRAP_KEY, "wrong-key", None]))
def test_every_hostile_body_is_a_4xx_with_exactly_one_row_and_no_cluster_call(
    api, apiops, cluster, body, key
):
    before = OpsLog.objects.using("audit").count()

    response = _post(api, body, key)

    assert 400 <= response.status_code < 500, (response.status_code, response.content[:300])
    assert response.json()["code"]
    assert OpsLog.objects.using("audit").count() == before + 1
    row = OpsLog.objects.using("audit").latest("id")
    assert row.http_status == response.status_code
    assert row.status == ("error" if key == BOOTSTRAP_KEY else "denied")
    assert mutations(cluster) == []


@FUZZ
@given(cursor=st.text(max_size=80) | st.binary(max_size=60).map(lambda b: b64encode(b).decode()))
def test_no_cursor_makes_a_list_fail(api, cursor):
    for path in ("/ops/audit", "/ops/jobs"):
        response = api.get(path, {"cursor": cursor})

        assert response.status_code in (200, 400), (path, cursor, response.content[:300])
