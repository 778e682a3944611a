"""Idempotency-Key on the operations: replay of a finished request (success or error) without
executing it again, 409 while the first runs, 422 for another request under the same key, 400
for a malformed key, the key scoped to the API key's name, expiry and the purge, a claim left
by a dead request, 5xx answers released rather than kept, and one audit row per attempt —
checked against what reached kubesim."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from django.db import connections
from django.utils import timezone
from rest_framework.test import APIClient

from jobs.dispatch import pump
from ops import idempotency
from ops.models import ApiKey, IdempotencyRecord
from tests.ops.conftest import CLIENT_IP, DB, audit_log, mutations

pytestmark = DB

WEB = "/ops/namespaces/prod/deployments/web/scale"
POD = "/ops/namespaces/prod/pods/scratch-pod"
POD_YAML = """
apiVersion: v1
kind: Pod
metadata: {name: scratch-pod, namespace: prod}
spec: {containers: [{name: c, image: busybox}]}
"""


def scale(client: APIClient, key: str | None, replicas: int = 2, path: str = WEB, **extra):
    headers = {} if key is None else {"HTTP_IDEMPOTENCY_KEY": key}
    return client.post(path, {"replicas": replicas}, format="json", **headers, **extra)


def web_patches(cluster) -> list:
    return [m for m in mutations(cluster) if (m.resource, m.name) == ("deployments", "web")]


def records() -> list[IdempotencyRecord]:
    return list(IdempotencyRecord.objects.using("audit").order_by("id"))


def key_client(name: str) -> APIClient:
    client = APIClient(REMOTE_ADDR=CLIENT_IP)
    client.credentials(HTTP_X_API_KEY=ApiKey.objects.issue(name=name).raw)
    return client


# --- replay ------------------------------------------------------------------------------------


def test_a_repeated_scale_replays_the_stored_answer_and_patches_once(api, cluster):
    first = scale(api, "scale-1", replicas=4)
    again = scale(api, "scale-1", replicas=4)

    assert first.status_code == again.status_code == 200
    assert idempotency.REPLAYED_HEADER not in first
    assert again[idempotency.REPLAYED_HEADER] == "true"
    assert again.content == first.content
    assert again["Content-Type"] == first["Content-Type"] == "application/json"
    assert first.json()["previous_replicas"] == again.json()["previous_replicas"] == 2
    assert len(web_patches(cluster)) == 1
    assert cluster.get("deployments", "prod", "web")["spec"]["replicas"] == 4
    executed, replay = audit_log()
    assert (executed.status, executed.code, executed.http_status) == ("success", None, 200)
    assert (replay.status, replay.code, replay.http_status) == ("success", "idempotent_replay", 200)
    assert (replay.action, replay.namespace, replay.resource_name) == ("scale", "prod", "web")
    assert replay.request_body == {"replicas": 4}
    assert "replayed" in replay.error_message
    assert "nothing was executed" in replay.error_message


def test_an_error_is_replayed_too_even_once_the_object_exists(api, cluster):
    missing = api.delete(POD, HTTP_IDEMPOTENCY_KEY="del-1")
    assert missing.status_code == 404
    cluster.apply(POD_YAML)
    cluster.requests.clear()

    again = api.delete(POD, HTTP_IDEMPOTENCY_KEY="del-1")

    assert again.status_code == 404
    assert again[idempotency.REPLAYED_HEADER] == "true"
    assert again.json() == missing.json()
    assert list(cluster.requests) == []  # not even a read: nothing was executed
    assert cluster.get("pods", "prod", "scratch-pod") is not None
    assert [(r.status, r.code, r.http_status) for r in audit_log()] == [
        ("error", "not_found", 404),
        ("error", "idempotent_replay", 404),
    ]


def test_invalid_input_is_a_final_answer_replayed_as_such(api, cluster):
    first = scale(api, "bad-input", replicas=-1)
    again = scale(api, "bad-input", replicas=-1)

    assert first.status_code == again.status_code == 400
    assert again[idempotency.REPLAYED_HEADER] == "true"
    assert again.json() == first.json()
    assert mutations(cluster) == []
    assert [r.code for r in audit_log()] == ["invalid", "idempotent_replay"]


def test_the_same_body_in_another_form_is_the_same_request(api, cluster):
    assert scale(api, "form", replicas=3).status_code == 200
    spaced = api.generic(
        "POST",
        WEB,
        '{ "replicas" : 3.0 }',
        content_type="application/json",
        HTTP_IDEMPOTENCY_KEY="form",
    )

    # RFC 8785 canonical JSON: whitespace, and 3.0 against 3, do not make another request.
    assert spaced[idempotency.REPLAYED_HEADER] == "true"
    assert len(web_patches(cluster)) == 1


def test_requests_without_a_key_are_not_replayed(api, cluster):
    scale(api, None, replicas=3)
    response = scale(api, None, replicas=3)

    assert idempotency.REPLAYED_HEADER not in response
    assert len(web_patches(cluster)) == 2
    assert records() == []


# --- refusals ----------------------------------------------------------------------------------


def test_another_body_under_the_same_key_is_422_and_sends_nothing(api, cluster):
    scale(api, "reused", replicas=3)
    cluster.requests.clear()

    other_body = scale(api, "reused", replicas=5)
    other_path = scale(
        api, "reused", replicas=3, path="/ops/namespaces/prod/statefulsets/postgres/scale"
    )
    other_query = scale(api, "reused", replicas=3, path=f"{WEB}?dry_run=true")

    for response in (other_body, other_path, other_query):
        assert response.status_code == 422
        assert response.json()["code"] == "idempotency_key_reused"
        assert idempotency.REPLAYED_HEADER not in response
    assert list(cluster.requests) == []
    assert cluster.get("deployments", "prod", "web")["spec"]["replicas"] == 3
    rows = audit_log()
    assert len(rows) == 4
    assert [(r.status, r.code, r.http_status) for r in rows[1:]] == [
        ("error", "idempotency_key_reused", 422)
    ] * 3
    assert (rows[2].resource_kind, rows[2].resource_name) == ("statefulset", "postgres")


def test_a_request_while_the_first_still_runs_is_409_with_retry_after(api, cluster):
    body = json.dumps({"replicas": 2}).encode()
    idempotency.claim(
        key_name="bootstrap",
        key="running",
        fingerprint=idempotency.fingerprint(method="POST", path=WEB, query="", body=body),
    )

    response = scale(api, "running")

    assert response.status_code == 409
    assert response.json()["code"] == "idempotency_in_flight"
    assert response["Retry-After"] == "1"
    assert list(cluster.requests) == []
    [row] = audit_log()
    assert (row.status, row.code, row.http_status) == ("error", "idempotency_in_flight", 409)


@pytest.mark.parametrize(
    "key",
    ["k" * 256, "", '""', "caf\u00e9", "tab\there", "nul\x00"],
    ids=["256-chars", "empty", "empty-quoted", "non-ascii", "control-char", "nul"],
)
def test_a_malformed_key_is_400_audited_and_sends_nothing(api, cluster, key):
    response = scale(api, key)

    assert response.status_code == 400
    assert response.json()["code"] == "invalid_idempotency_key"
    assert list(cluster.requests) == []
    assert records() == []
    [row] = audit_log()
    assert (row.status, row.code, row.http_status, row.action) == (
        "error",
        "invalid_idempotency_key",
        400,
        "scale",
    )


def test_keys_of_1_and_255_printable_characters_are_accepted(api, cluster):
    assert scale(api, "x").status_code == 200
    assert scale(api, "~ !" * 85, replicas=3).status_code == 200
    assert len(web_patches(cluster)) == 2


def test_a_quoted_key_as_in_the_draft_is_the_same_key_unquoted(api, cluster):
    scale(api, '"8e03978e-40d5"', replicas=3)
    response = scale(api, "8e03978e-40d5", replicas=3)

    assert response[idempotency.REPLAYED_HEADER] == "true"
    assert [r.idempotency_key for r in records()] == ["8e03978e-40d5"]


def test_a_value_that_is_no_quoted_string_is_the_key_as_written():
    assert idempotency.parse_key('"in"side"') == '"in"side"'
    assert idempotency.parse_key('"open') == '"open'
    assert idempotency.parse_key('"a\\"b\\\\"') == 'a"b\\'


def test_without_a_valid_api_key_the_idempotency_key_is_not_looked_at(anon, cluster):
    response = scale(anon, "k" * 300)

    assert response.status_code == 401
    assert records() == []


# --- scope -------------------------------------------------------------------------------------


def test_the_same_key_under_another_key_name_is_another_request(api, cluster):
    deploy_bot = key_client("deploy-bot")
    scale(api, "shared", replicas=3)

    response = scale(deploy_bot, "shared", replicas=3)

    assert response.status_code == 200
    assert idempotency.REPLAYED_HEADER not in response
    assert len(web_patches(cluster)) == 2
    assert sorted(r.key_name for r in records()) == ["bootstrap", "deploy-bot"]


def test_a_rotated_key_of_the_same_name_replays(apiops, cluster):
    old = APIClient(REMOTE_ADDR=CLIENT_IP)
    old.credentials(HTTP_X_API_KEY=ApiKey.objects.issue(name="deploy-bot").raw)
    new_key, _ = ApiKey.objects.rotate(name="deploy-bot", overlap=timedelta(hours=1))
    new = APIClient(REMOTE_ADDR=CLIENT_IP)
    new.credentials(HTTP_X_API_KEY=new_key.raw)

    scale(old, "rotated", replicas=3)
    response = scale(new, "rotated", replicas=3)

    assert response[idempotency.REPLAYED_HEADER] == "true"
    assert len(web_patches(cluster)) == 1


# --- lifetime ----------------------------------------------------------------------------------


def test_the_answer_is_kept_for_the_configured_ttl(api, cluster, apiops):
    apiops(IDEMPOTENCY_TTL=120)
    scale(api, "ttl", replicas=3)

    [record] = records()
    assert record.expires_at - record.completed_at == timedelta(seconds=120)
    assert record.response_status == 200


def _expire(key: str) -> None:
    IdempotencyRecord.objects.using("audit").filter(idempotency_key=key).update(
        expires_at=timezone.now() - timedelta(seconds=1)
    )


def test_an_expired_key_can_be_used_again_and_runs_the_request(api, cluster):
    scale(api, "expiring", replicas=3)
    _expire("expiring")

    response = scale(api, "expiring", replicas=5)  # another body: the old answer is gone

    assert response.status_code == 200
    assert idempotency.REPLAYED_HEADER not in response
    assert cluster.get("deployments", "prod", "web")["spec"]["replicas"] == 5
    assert len(web_patches(cluster)) == 2
    [record] = records()
    assert record.expires_at > timezone.now()
    assert [r.code for r in audit_log()] == [None, None]


def test_the_pump_purges_expired_answers_and_dead_claims_only(api, cluster, apiops):
    apiops(AUDIT_PENDING_MAX_AGE=60.0)
    scale(api, "old", replicas=3)
    scale(api, "fresh", replicas=4)
    _expire("old")
    for key, age in (("dead-claim", 61), ("live-claim", 30)):
        idempotency.claim(key_name="bootstrap", key=key, fingerprint="0" * 64)
        IdempotencyRecord.objects.using("audit").filter(idempotency_key=key).update(
            claimed_at=timezone.now() - timedelta(seconds=age)
        )

    pump()  # the workers' periodic run

    assert sorted(r.idempotency_key for r in records()) == ["fresh", "live-claim"]


def test_a_claim_left_by_a_dead_request_is_free_after_the_lease(api, cluster, apiops):
    apiops(AUDIT_PENDING_MAX_AGE=60.0)
    body = json.dumps({"replicas": 2}).encode()
    print_ = idempotency.fingerprint(method="POST", path=WEB, query="", body=body)
    idempotency.claim(key_name="bootstrap", key="orphan", fingerprint=print_)
    IdempotencyRecord.objects.using("audit").update(
        claimed_at=timezone.now() - timedelta(seconds=59)
    )
    assert scale(api, "orphan").status_code == 409

    IdempotencyRecord.objects.using("audit").update(
        claimed_at=timezone.now() - timedelta(seconds=61)
    )
    response = scale(api, "orphan")

    assert response.status_code == 200
    assert idempotency.REPLAYED_HEADER not in response
    assert len(web_patches(cluster)) == 1
    [record] = records()
    assert record.response_status == 200


# --- 5xx: not kept ------------------------------------------------------------------------------


def test_a_kubernetes_failure_is_not_kept_and_the_retry_runs(api, cluster):
    cluster.faults.add(method="PATCH", path=r"/deployments/web/scale$", status=500, times=10)

    failed = scale(api, "flaky", replicas=3)
    assert failed.status_code == 502
    assert records() == []
    cluster.faults.clear()

    retried = scale(api, "flaky", replicas=3)

    assert retried.status_code == 200
    assert idempotency.REPLAYED_HEADER not in retried
    assert cluster.get("deployments", "prod", "web")["spec"]["replicas"] == 3
    assert [(r.status, r.http_status) for r in audit_log()] == [("error", 502), ("success", 200)]
    assert scale(api, "flaky", replicas=3)[idempotency.REPLAYED_HEADER] == "true"


def test_an_audit_outage_503_releases_the_key(api, cluster):
    with connections["audit"].cursor() as cursor:
        cursor.execute(
            "CREATE FUNCTION refuse_ops_log() RETURNS trigger LANGUAGE plpgsql AS "
            "$$ BEGIN RAISE EXCEPTION 'audit log refuses writes'; END $$"
        )
        cursor.execute(
            "CREATE TRIGGER refuse_ops_log BEFORE INSERT ON ops_log "
            "FOR EACH ROW EXECUTE FUNCTION refuse_ops_log()"
        )
    outage = scale(api, "outage", replicas=3)
    assert outage.status_code == 503
    assert outage.json()["code"] == "audit_unavailable"
    assert records() == []
    assert mutations(cluster) == []
    with connections["audit"].cursor() as cursor:
        cursor.execute("DROP TRIGGER refuse_ops_log ON ops_log")

    response = scale(api, "outage", replicas=3)

    assert response.status_code == 200
    assert idempotency.REPLAYED_HEADER not in response
    assert len(web_patches(cluster)) == 1
    [row] = audit_log()
    assert (row.status, row.code) == ("success", None)


# --- every door --------------------------------------------------------------------------------


def test_every_post_and_delete_route_under_ops_honours_the_key():
    from django.urls import URLPattern, URLResolver, get_resolver

    def routes(patterns, prefix=""):
        for p in patterns:
            if isinstance(p, URLResolver):
                yield from routes(p.url_patterns, prefix + str(p.pattern))
            elif isinstance(p, URLPattern):
                yield prefix + str(p.pattern), p.callback

    checked = 0
    for route, view in routes(get_resolver().url_patterns):
        cls = getattr(view, "cls", None) or getattr(view, "view_class", None)
        if not route.startswith("ops/") or cls is None:
            continue
        actions = getattr(view, "actions", None)
        methods = set(actions) if actions else {m for m in ("post", "delete") if hasattr(cls, m)}
        if methods & {"post", "delete"}:
            assert issubclass(cls, idempotency.IdempotentMixin), route
            checked += 1
    assert checked >= 8  # scale x2, delete x2, job types, job detail, cancel, retry


def test_the_fingerprint_ignores_query_order_and_json_form_but_not_values():
    def fp(query: str, body: bytes) -> str:
        return idempotency.fingerprint(method="POST", path=WEB, query=query, body=body)

    assert fp("a=1&b=2", b'{"x": 1, "y": [1]}') == fp("b=2&a=1", b'{"y":[1.0],"x":1}')
    assert fp("a=1", b"{}") != fp("a=2", b"{}")
    assert fp("", b'{"x": 1}') != fp("", b'{"x": 2}')
    assert fp("", b"not json") == fp("", b"not json") != fp("", b"not  json")
    assert fp("", b"") != fp("", b"{}")


def test_the_openapi_schema_documents_the_header_on_every_post_and_delete(api):
    schema = api.get("/api/schema/", HTTP_ACCEPT="application/json").json()

    operations = [
        (path, method, operation)
        for path, item in schema["paths"].items()
        for method, operation in item.items()
        if method in ("post", "delete")
    ]
    assert len(operations) >= 9
    for path, method, operation in operations:
        names = [p["name"] for p in operation.get("parameters", [])]
        assert "Idempotency-Key" in names, (method, path)
        assert {"409", "422"} <= set(operation["responses"]), (method, path)
        assert "Idempotent-Replayed" in operation["responses"]["409"]["headers"]
