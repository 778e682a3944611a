"""Bad input gets the status and reason a real API server answers, as a Status body, and never
changes what is stored: malformed JSON, unknown resources, wrong content types, invalid names,
wrong field types and methods a resource does not support."""

from __future__ import annotations

import json
import socket

import pytest
from kubesim_helpers import deployment_yaml

DEPLOY = "/apis/apps/v1/namespaces/default/deployments"


@pytest.fixture
def frozen(kubesim):
    """A deployment in a paused cluster, and a check that nothing at all was written."""
    kubesim.apply(deployment_yaml())
    kubesim.controllers.pause()
    before_rv = kubesim.store.rv
    before = kubesim.get("deployments", "default", "web")

    def unchanged() -> None:
        assert kubesim.store.rv == before_rv
        assert kubesim.get("deployments", "default", "web") == before

    return unchanged


def _is_status(body, code, reason):
    assert body["kind"] == "Status"
    assert body["apiVersion"] == "v1"
    assert body["status"] == "Failure"
    assert body["code"] == code
    assert body["reason"] == reason
    assert "Traceback" not in body["message"]


def test_malformed_json_on_create_is_a_bad_request(raw, frozen):
    status, headers, body = raw(
        "POST", DEPLOY, b'{"metadata": {', {"Content-Type": "application/json"}
    )
    assert status == 400
    assert headers["content-type"] == "application/json"
    _is_status(body, 400, "BadRequest")
    assert body["message"].startswith("couldn't get version/kind; json parse error")
    frozen()


def test_malformed_json_patch_is_a_bad_request(raw, frozen):
    for ctype in (
        "application/merge-patch+json",
        "application/strategic-merge-patch+json",
        "application/json-patch+json",
    ):
        status, _, body = raw("PATCH", f"{DEPLOY}/web/scale", b"{not json", {"Content-Type": ctype})
        assert status == 400, ctype
        _is_status(body, 400, "BadRequest")
    frozen()


def test_patch_with_an_unsupported_content_type_is_415(raw, frozen):
    status, _, body = raw(
        "PATCH",
        f"{DEPLOY}/web/scale",
        b'{"spec":{"replicas":5}}',
        {"Content-Type": "application/json"},
    )
    assert status == 415
    _is_status(body, 415, "UnsupportedMediaType")
    assert body["message"].startswith("the body of the request was in an unknown format")
    assert "application/strategic-merge-patch+json" in body["message"]
    frozen()


def test_create_with_a_text_body_is_415(raw, frozen):
    status, _, body = raw("POST", DEPLOY, b"name: web", {"Content-Type": "text/plain"})
    assert status == 415
    _is_status(body, 415, "UnsupportedMediaType")
    frozen()


def test_unknown_resource_is_the_generic_not_found(raw, frozen):
    status, _, body = raw("GET", "/apis/apps/v1/namespaces/default/widgets")
    assert status == 404
    _is_status(body, 404, "NotFound")
    assert body["message"] == "the server could not find the requested resource"
    status, _, body = raw("POST", "/api/v1/namespaces/default/widgets", {"metadata": {"name": "w"}})
    assert status == 404
    frozen()


def test_unknown_subresource_is_not_found(raw, frozen):
    status, _, body = raw("GET", f"{DEPLOY}/web/logs")
    assert status == 404
    _is_status(body, 404, "NotFound")
    frozen()


def test_methods_a_resource_does_not_serve_are_405(raw, frozen):
    for method, path in [
        ("POST", f"{DEPLOY}/web"),
        ("PUT", DEPLOY),
        ("PATCH", DEPLOY),
        ("DELETE", f"{DEPLOY}/web/scale"),
        ("DELETE", "/api/v1/namespaces"),
    ]:
        status, _, body = raw(method, path, b"{}", {"Content-Type": "application/merge-patch+json"})
        assert status == 405, (method, path)
        _is_status(body, 405, "MethodNotAllowed")
    frozen()


_CONTAINERS = {"containers": [{"name": "c", "image": "x"}]}
_TEMPLATE = {"metadata": {"labels": {"app": "a"}}, "spec": _CONTAINERS}


@pytest.mark.parametrize(
    ("path", "body", "prefix", "rule"),
    [
        (
            "/api/v1/namespaces/default/pods",
            {"metadata": {"name": "Bad_Name"}, "spec": _CONTAINERS},
            'Pod "Bad_Name"',
            "RFC 1123 subdomain",
        ),
        (
            "/api/v1/namespaces",
            {"metadata": {"name": "UPPER"}},
            'Namespace "UPPER"',
            "RFC 1123 label",
        ),
        (
            DEPLOY,
            {
                "metadata": {"name": "web."},
                "spec": {"selector": {"matchLabels": {"app": "a"}}, "template": _TEMPLATE},
            },
            'Deployment.apps "web."',
            "RFC 1123 subdomain",
        ),
    ],
)
def test_invalid_names_are_422_with_a_cause_on_metadata_name(
    raw, kubesim, path, body, prefix, rule
):
    before = kubesim.store.rv
    name = body["metadata"]["name"]
    status, _, resp = raw("POST", path, body)
    assert status == 422
    _is_status(resp, 422, "Invalid")
    assert resp["message"].startswith(
        f'{prefix} is invalid: metadata.name: Invalid value: "{name}": a lowercase {rule}'
    )
    assert resp["details"]["name"] == name
    assert resp["details"]["causes"] == [
        {
            "reason": "FieldValueInvalid",
            "message": resp["details"]["causes"][0]["message"],
            "field": "metadata.name",
        }
    ]
    assert kubesim.store.rv == before


def test_missing_name_is_required(raw, kubesim):
    status, _, body = raw(
        "POST",
        "/api/v1/namespaces/default/pods",
        {"spec": {"containers": [{"name": "c", "image": "x"}]}},
    )
    assert status == 422
    assert body["details"]["causes"][0] == {
        "reason": "FieldValueRequired",
        "message": "Required value: name or generateName is required",
        "field": "metadata.name",
    }


def test_a_pod_without_containers_is_invalid(raw, kubesim):
    status, _, body = raw(
        "POST", "/api/v1/namespaces/default/pods", {"metadata": {"name": "p"}, "spec": {}}
    )
    assert status == 422
    assert body["message"] == 'Pod "p" is invalid: spec.containers: Required value'
    assert kubesim.get("pods", "default", "p") is None


def test_a_workload_whose_selector_misses_its_template_is_invalid(raw, kubesim):
    dep = {
        "metadata": {"name": "bad"},
        "spec": {
            "selector": {"matchLabels": {"app": "a"}},
            "template": {
                "metadata": {"labels": {"app": "b"}},
                "spec": {"containers": [{"name": "c", "image": "x"}]},
            },
        },
    }
    status, _, body = raw("POST", DEPLOY, dep)
    assert status == 422
    assert body["details"]["causes"][0]["field"] == "spec.template.metadata.labels"
    assert "`selector` does not match template `labels`" in body["message"]


def test_a_wrong_field_type_is_a_bad_request_not_a_crash(raw, frozen):
    status, _, body = raw(
        "PATCH",
        f"{DEPLOY}/web",
        {"spec": {"replicas": "three"}},
        {"Content-Type": "application/merge-patch+json"},
    )
    assert status == 400
    _is_status(body, 400, "BadRequest")
    assert body["message"] == (
        'Deployment in version "v1" cannot be handled as a Deployment: json: cannot unmarshal '
        "string into Go struct field DeploymentSpec.spec.replicas of type int32"
    )
    frozen()


def test_a_json_patch_on_a_missing_path_is_unprocessable(raw, frozen):
    status, _, body = raw(
        "PATCH",
        f"{DEPLOY}/web",
        [{"op": "replace", "path": "/spec/nothing/here", "value": 1}],
        {"Content-Type": "application/json-patch+json"},
    )
    assert status == 422
    _is_status(body, 422, "Invalid")
    frozen()


def test_a_json_patch_test_failure_applies_nothing(raw, frozen):
    status, _, _ = raw(
        "PATCH",
        f"{DEPLOY}/web",
        [
            {"op": "replace", "path": "/spec/replicas", "value": 7},
            {"op": "test", "path": "/spec/replicas", "value": 99},
        ],
        {"Content-Type": "application/json-patch+json"},
    )
    assert status == 422
    frozen()


def test_a_body_of_another_kind_is_a_bad_request(raw, frozen):
    status, _, body = raw(
        "PUT", f"{DEPLOY}/web", {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "web"}}
    )
    assert status == 400
    _is_status(body, 400, "BadRequest")
    frozen()


def test_a_put_whose_name_differs_from_the_url_is_a_bad_request(raw, frozen, kubesim):
    dep = kubesim.get("deployments", "default", "web")
    dep["metadata"]["name"] = "other"
    status, _, body = raw("PUT", f"{DEPLOY}/web", dep)
    assert status == 400
    assert (
        body["message"] == "the name of the object (other) does not match the name on the URL (web)"
    )
    frozen()


def test_a_malformed_label_selector_is_a_bad_request(raw):
    status, _, body = raw("GET", "/api/v1/namespaces/default/pods?labelSelector=app%20in%20db")
    assert status == 400
    _is_status(body, 400, "BadRequest")


def test_put_without_content_type_is_read_as_json(raw, kubesim):
    kubesim.apply(deployment_yaml())
    kubesim.controllers.pause()
    scale = raw("GET", f"{DEPLOY}/web/scale")[2]
    scale["spec"]["replicas"] = 6
    status, _, body = raw("PUT", f"{DEPLOY}/web/scale", json.dumps(scale).encode(), {})
    assert status == 200
    assert body["spec"]["replicas"] == 6


def test_strict_field_validation_refuses_unknown_fields(raw, kubesim):
    pod = {
        "metadata": {"name": "p"},
        "spec": {"containers": [{"name": "c", "image": "x", "imagePullPolicyy": "Always"}]},
    }
    status, _, body = raw("POST", "/api/v1/namespaces/default/pods?fieldValidation=Strict", pod)
    assert status == 400
    assert body["message"] == (
        'Pod in version "v1" cannot be handled as a Pod: strict decoding error: '
        'unknown field "spec.containers[0].imagePullPolicyy"'
    )
    assert kubesim.get("pods", "default", "p") is None


def test_unknown_fields_are_dropped_with_a_warning_by_default(raw, kubesim):
    pod = {
        "metadata": {"name": "p", "colour": "red"},
        "spec": {"containers": [{"name": "c", "image": "x"}]},
    }
    status, headers, body = raw("POST", "/api/v1/namespaces/default/pods", pod)
    assert status == 201
    assert headers["warning"] == '299 - "unknown field \\"metadata.colour\\""'
    assert "colour" not in body["metadata"]
    assert "colour" not in kubesim.get("pods", "default", "p")["metadata"]


def test_a_mistyped_field_deep_in_an_object_is_a_bad_request(raw, kubesim):
    pod = {
        "metadata": {"name": "p"},
        "spec": {"containers": [{"name": "c", "image": "x"}], "dnsPolicy": 5},
    }
    status, _, body = raw("POST", "/api/v1/namespaces/default/pods", pod)
    assert status == 400
    assert body["message"].startswith(
        'Pod in version "v1" cannot be handled as a Pod: json: cannot unmarshal number'
    )
    assert "spec.dnsPolicy" in body["message"]
    assert kubesim.get("pods", "default", "p") is None


def test_an_unknown_field_validation_mode_is_a_bad_request(raw, kubesim):
    pod = {"metadata": {"name": "p"}, "spec": {"containers": [{"name": "c", "image": "x"}]}}
    status, _, body = raw("POST", "/api/v1/namespaces/default/pods?fieldValidation=Loud", pod)
    assert status == 400
    assert body["message"].startswith("fieldValidation parameter unsupported: Loud")


PERCENT_MSG = (
    "a valid percent string must be a numeric string followed by an ending '%' (e.g. '1%',  or "
    "'93%', regex used for validation is '[0-9]+%')"
)


def _deployment(strategy):
    return {
        "metadata": {"name": "bad"},
        "spec": {
            "strategy": strategy,
            "selector": {"matchLabels": {"app": "a"}},
            "template": {
                "metadata": {"labels": {"app": "a"}},
                "spec": {"containers": [{"name": "c", "image": "x"}]},
            },
        },
    }


@pytest.mark.parametrize(
    ("rolling", "field", "message"),
    [
        (
            {"maxSurge": "abc%"},
            "spec.strategy.rollingUpdate.maxSurge",
            f'Invalid value: intstr.IntOrString{{Type:1, IntVal:0, StrVal:"abc%"}}: {PERCENT_MSG}',
        ),
        (
            {"maxUnavailable": -1},
            "spec.strategy.rollingUpdate.maxUnavailable",
            "Invalid value: -1: must be greater than or equal to 0",
        ),
        (
            {"maxUnavailable": "150%"},
            "spec.strategy.rollingUpdate.maxUnavailable",
            'Invalid value: intstr.IntOrString{Type:1, IntVal:0, StrVal:"150%"}: '
            "must not be greater than 100%",
        ),
        (
            {"maxUnavailable": 0, "maxSurge": "0%"},
            "spec.strategy.rollingUpdate.maxUnavailable",
            'Invalid value: intstr.IntOrString{Type:0, IntVal:0, StrVal:""}: '
            "may not be 0 when `maxSurge` is 0",
        ),
    ],
)
def test_malformed_rolling_update_bounds_are_invalid(raw, kubesim, rolling, field, message):
    status, _, body = raw("POST", DEPLOY, _deployment({"rollingUpdate": rolling}))
    assert status == 422
    _is_status(body, 422, "Invalid")
    assert body["details"]["causes"] == [
        {"reason": "FieldValueInvalid", "message": message, "field": field}
    ]
    assert body["message"] == f'Deployment.apps "bad" is invalid: {field}: {message}'
    assert kubesim.get("deployments", "default", "bad") is None


def test_a_rolling_update_bound_of_a_wrong_type_is_a_bad_request(raw, kubesim):
    status, _, body = raw("POST", DEPLOY, _deployment({"rollingUpdate": {"maxSurge": True}}))
    assert status == 400
    assert body["message"] == (
        'Deployment in version "v1" cannot be handled as a Deployment: json: cannot unmarshal '
        "bool into Go value of type int32"
    )


def test_a_partial_rolling_update_is_defaulted_like_the_real_server(raw, kubesim):
    status, _, body = raw("POST", DEPLOY, _deployment({"rollingUpdate": {"maxSurge": 2}}))
    assert status == 201
    assert body["spec"]["strategy"] == {
        "type": "RollingUpdate",
        "rollingUpdate": {"maxSurge": 2, "maxUnavailable": "25%"},
    }


def test_a_recreate_strategy_with_rolling_update_bounds_is_invalid(raw, kubesim):
    status, _, body = raw(
        "POST", DEPLOY, _deployment({"type": "Recreate", "rollingUpdate": {"maxSurge": 1}})
    )
    assert status == 422
    assert body["details"]["causes"] == [
        {
            "reason": "FieldValueForbidden",
            "message": "Forbidden: may not be specified when strategy `type` is 'Recreate'",
            "field": "spec.strategy.rollingUpdate",
        }
    ]


def test_patching_a_stored_deployment_to_a_malformed_bound_is_refused(raw, frozen):
    status, _, body = raw(
        "PATCH",
        f"{DEPLOY}/web",
        {"spec": {"strategy": {"rollingUpdate": {"maxSurge": "abc%"}}}},
        {"Content-Type": "application/strategic-merge-patch+json"},
    )
    assert status == 422
    assert body["details"]["causes"][0]["field"] == "spec.strategy.rollingUpdate.maxSurge"
    frozen()


def _statefulset(**spec):
    return {
        "metadata": {"name": "bad"},
        "spec": {
            "selector": {"matchLabels": {"app": "a"}},
            "template": {
                "metadata": {"labels": {"app": "a"}},
                "spec": {"containers": [{"name": "c", "image": "x"}]},
            },
            **spec,
        },
    }


@pytest.mark.parametrize(
    ("spec", "field", "message"),
    [
        (
            {"ordinals": {"start": -3}},
            "spec.ordinals.start",
            "Invalid value: -3: must be greater than or equal to 0",
        ),
        (
            {"updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {"partition": -1}}},
            "spec.updateStrategy.rollingUpdate.partition",
            "Invalid value: -1: must be greater than or equal to 0",
        ),
        (
            {"updateStrategy": {"rollingUpdate": {"maxUnavailable": "x%"}}},
            "spec.updateStrategy.rollingUpdate.maxUnavailable",
            f'Invalid value: intstr.IntOrString{{Type:1, IntVal:0, StrVal:"x%"}}: {PERCENT_MSG}',
        ),
    ],
)
def test_malformed_statefulset_ordinals_and_update_strategy_are_invalid(
    raw, kubesim, spec, field, message
):
    status, _, body = raw(
        "POST", "/apis/apps/v1/namespaces/default/statefulsets", _statefulset(**spec)
    )
    assert status == 422
    assert body["details"]["causes"] == [
        {"reason": "FieldValueInvalid", "message": message, "field": field}
    ]
    assert kubesim.get("statefulsets", "default", "bad") is None


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (
            {"dryRun": "All"},
            "json: cannot unmarshal string into Go struct field DeleteOptions.dryRun of type "
            "[]string",
        ),
        (
            {"dryRun": 5},
            "json: cannot unmarshal number into Go struct field DeleteOptions.dryRun of type "
            "[]string",
        ),
        (
            {"dryRun": ["All", 5]},
            "json: cannot unmarshal number into Go struct field DeleteOptions.dryRun of type "
            "string",
        ),
        (
            {"preconditions": "x"},
            "json: cannot unmarshal string into Go struct field DeleteOptions.preconditions of "
            "type v1.Preconditions",
        ),
        (
            {"preconditions": [{"a": 1}]},
            "json: cannot unmarshal array into Go struct field DeleteOptions.preconditions of "
            "type v1.Preconditions",
        ),
        (
            {"preconditions": {"uid": 5}},
            "json: cannot unmarshal number into Go struct field Preconditions.preconditions.uid "
            "of type types.UID",
        ),
        (
            {"gracePeriodSeconds": 1.5},
            "json: cannot unmarshal number 1.5 into Go struct field "
            "DeleteOptions.gracePeriodSeconds of type int64",
        ),
        (
            {"propagationPolicy": ["Orphan"]},
            "json: cannot unmarshal array into Go struct field DeleteOptions.propagationPolicy "
            "of type v1.DeletionPropagation",
        ),
        (
            {"orphanDependents": "yes"},
            "json: cannot unmarshal string into Go struct field DeleteOptions.orphanDependents "
            "of type bool",
        ),
    ],
)
def test_a_delete_options_body_of_wrong_types_is_a_bad_request(raw, frozen, options, message):
    for path in (f"{DEPLOY}/web", DEPLOY):  # delete and deletecollection
        status, _, body = raw("DELETE", path, options)
        assert status == 400, (path, body)
        _is_status(body, 400, "BadRequest")
        assert body["message"] == message
    frozen()


def test_a_delete_options_body_that_is_not_an_object_is_a_bad_request(raw, frozen):
    status, _, body = raw("DELETE", f"{DEPLOY}/web", [1])
    assert status == 400
    assert body["message"].startswith(
        "couldn't get version/kind; json parse error: json: cannot unmarshal array into Go "
        "value of type struct {"
    )
    frozen()


@pytest.mark.parametrize(
    "head",
    [
        "Content-Length: abc\r\n",
        "Content-Length: -5\r\n",
        "Transfer-Encoding: chunked\r\n",  # followed by a chunk size that is not hex
    ],
)
def test_a_request_whose_body_cannot_be_framed_is_a_plain_400_then_closed(kubesim, head):
    with socket.create_connection(("127.0.0.1", kubesim.port), timeout=10) as sock:
        request = f"POST /api/v1/namespaces HTTP/1.1\r\nHost: kubesim\r\n{head}\r\nzz\r\n{{}}\r\n"
        sock.sendall(request.encode())
        answer = b""
        while chunk := sock.recv(4096):  # the server closes the connection after answering
            answer += chunk
    head_text, _, body = answer.partition(b"\r\n\r\n")
    assert head_text.split(b"\r\n")[0] == b"HTTP/1.1 400 Bad Request"
    assert b"Content-Type: text/plain; charset=utf-8" in head_text
    assert body == b"400 Bad Request"
    assert len(kubesim.requests) == 0  # it never reached the API


@pytest.mark.parametrize(
    ("method", "path", "content_type"),
    [
        ("PUT", "/api/v1/nodes/kubesim-node", "application/json"),
        ("PATCH", "/api/v1/namespaces/default/pods/new-pod", "application/apply-patch+yaml"),
        ("POST", "/api/v1/namespaces", "application/json"),
    ],
)
def test_metadata_that_is_not_an_object_is_a_bad_request(raw, kubesim, method, path, content_type):
    status, _, body = raw(method, path, b'{"metadata": ["x"]}', {"Content-Type": content_type})
    assert status == 400, body
    _is_status(body, 400, "BadRequest")
    assert "cannot unmarshal array into Go struct field" in body["message"]
    assert ".metadata of type v1.ObjectMeta" in body["message"]
