"""Discovery documents: what kubectl and the client read to find resources, short names and
the /scale subresources."""

from __future__ import annotations

from kubernetes import client


def _resources(raw, path):
    status, _, body = raw("GET", path)
    assert status == 200
    return {r["name"]: r for r in body["resources"]}


def test_version_reports_a_1_32_server(kubesim_client):
    info = client.VersionApi(kubesim_client).get_code()
    assert (info.major, info.minor) == ("1", "32")
    assert info.git_version.startswith("v1.32.")


def test_core_group_lists_pods_pvcs_and_namespaces_with_short_names(raw):
    res = _resources(raw, "/api/v1")
    assert res["pods"]["shortNames"] == ["po"]
    assert res["pods"]["namespaced"] is True
    assert res["persistentvolumeclaims"]["shortNames"] == ["pvc"]
    assert res["namespaces"]["shortNames"] == ["ns"]
    assert res["namespaces"]["namespaced"] is False
    assert res["nodes"]["shortNames"] == ["no"]
    assert "deletecollection" in res["pods"]["verbs"]
    assert res["pods/status"]["verbs"] == ["get", "patch", "update"]


def test_apps_group_lists_workloads_and_their_scale_subresources(raw):
    res = _resources(raw, "/apis/apps/v1")
    assert res["statefulsets"]["shortNames"] == ["sts"]
    assert res["deployments"]["shortNames"] == ["deploy"]
    for kind in ("statefulsets", "deployments"):
        scale = res[f"{kind}/scale"]
        assert (scale["group"], scale["version"], scale["kind"]) == ("autoscaling", "v1", "Scale")
        assert scale["verbs"] == ["get", "patch", "update"]


def test_api_and_apis_roots_list_the_served_versions_and_groups(raw):
    status, _, api = raw("GET", "/api")
    assert status == 200
    assert api["kind"] == "APIVersions"
    assert api["versions"] == ["v1"]
    status, _, apis = raw("GET", "/apis")
    groups = {g["name"]: g for g in apis["groups"]}
    assert apis["kind"] == "APIGroupList"
    assert groups["apps"]["preferredVersion"]["groupVersion"] == "apps/v1"


def test_unknown_group_version_is_the_generic_not_found(raw):
    status, _, body = raw("GET", "/apis/batch/v1")
    assert status == 404
    assert body["reason"] == "NotFound"
    assert body["message"] == "the server could not find the requested resource"


def test_openapi_v3_tells_kubectl_that_fields_are_validated_server_side(raw):
    status, _, index = raw("GET", "/openapi/v3")
    assert status == 200
    url = index["paths"]["apis/apps/v1"]["serverRelativeURL"]
    status, _, doc = raw("GET", url)
    assert status == 200
    patch = doc["paths"]["/apis/apps/v1/namespaces/{namespace}/statefulsets/{name}"]["patch"]
    assert patch["x-kubernetes-group-version-kind"] == {
        "group": "apps",
        "version": "v1",
        "kind": "StatefulSet",
    }
    assert {"name": "fieldValidation", "in": "query"}.items() <= next(
        p for p in patch["parameters"] if p["name"] == "fieldValidation"
    ).items()
