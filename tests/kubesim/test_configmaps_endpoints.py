"""ConfigMaps and Endpoints through the real `kubernetes` client: every verb, the typed 37.x
models, the three patch types, watches, discovery, the real validation errors, and the
canonical form the apiserver stores Endpoints in (repacked subsets)."""

from __future__ import annotations

import json

import pytest
from kubernetes import client, watch
from kubernetes.client.exceptions import ApiException


def _status(exc: ApiException) -> dict:
    return json.loads(exc.body)


def _leader_map(name: str = "pg-leader", leader: str = "pg-0", **extra) -> dict:
    return {
        "metadata": {
            "name": name,
            "labels": {"cluster-name": "pg"},
            "annotations": {"leader": leader, "ttl": "30"},
        },
        **extra,
    }


def _endpoints(name: str = "pg", *ips: str, port: int = 5432) -> dict:
    return {
        "metadata": {"name": name, "annotations": {"leader": "pg-0"}},
        "subsets": [
            {
                "addresses": [{"ip": ip} for ip in ips or ("10.244.0.5",)],
                "ports": [{"name": "postgresql", "port": port}],
            }
        ],
    }


def test_a_config_map_is_created_read_and_listed_as_typed_models(core):
    created = core.create_namespaced_config_map(
        "default", _leader_map(data={"config": "x"}, binaryData={"blob": "aGVsbG8="})
    )
    assert isinstance(created, client.V1ConfigMap)
    assert created.metadata.uid
    assert created.metadata.resource_version
    read = core.read_namespaced_config_map("pg-leader", "default")
    assert read.metadata.annotations == {"leader": "pg-0", "ttl": "30"}
    assert read.data == {"config": "x"}
    assert read.binary_data == {"blob": "aGVsbG8="}
    assert read.metadata.generation is None  # ConfigMaps have no generation
    listed = core.list_namespaced_config_map("default", label_selector="cluster-name=pg")
    assert isinstance(listed, client.V1ConfigMapList)
    assert [m.metadata.name for m in listed.items] == ["pg-leader"]
    assert core.list_namespaced_config_map("default", label_selector="cluster-name=x").items == []


def test_endpoints_deserialise_with_the_defaulted_protocol(core):
    core.create_namespaced_endpoints("default", _endpoints("pg", "10.244.0.5"))
    ep = core.read_namespaced_endpoints("pg", "default")
    assert isinstance(ep, client.V1Endpoints)
    port = ep.subsets[0].ports[0]
    assert (port.name, port.port, port.protocol) == ("postgresql", 5432, "TCP")
    assert ep.subsets[0].addresses[0].ip == "10.244.0.5"
    assert [e.metadata.name for e in core.list_namespaced_endpoints("default").items] == ["pg"]


def test_annotations_change_through_each_patch_type_with_a_new_version(core):
    rv = int(core.create_namespaced_config_map("default", _leader_map()).metadata.resource_version)
    strategic = core.patch_namespaced_config_map(
        "pg-leader", "default", {"metadata": {"annotations": {"leader": "pg-1"}}}
    )
    assert strategic.metadata.annotations == {"leader": "pg-1", "ttl": "30"}
    merged = core.patch_namespaced_config_map(
        "pg-leader",
        "default",
        {"metadata": {"annotations": {"ttl": None}}},
        _content_type="application/merge-patch+json",
    )
    assert merged.metadata.annotations == {"leader": "pg-1"}
    json_patched = core.patch_namespaced_config_map(  # a list body goes as a JSON patch
        "pg-leader",
        "default",
        [{"op": "replace", "path": "/metadata/annotations/leader", "value": "pg-2"}],
    )
    assert json_patched.metadata.annotations == {"leader": "pg-2"}
    versions = [rv] + [int(o.metadata.resource_version) for o in (strategic, merged, json_patched)]
    assert versions == sorted(set(versions))


def test_a_replace_with_a_stale_version_is_a_conflict(core):
    cm = core.create_namespaced_config_map("default", _leader_map())
    core.patch_namespaced_config_map("pg-leader", "default", {"data": {"k": "v"}})
    cm.data = {"k": "stale"}
    with pytest.raises(ApiException) as exc:
        core.replace_namespaced_config_map("pg-leader", "default", cm)
    assert exc.value.status == 409
    assert _status(exc.value)["message"] == (
        'Operation cannot be fulfilled on configmaps "pg-leader": the object has been '
        "modified; please apply your changes to the latest version and try again"
    )
    current = core.read_namespaced_config_map("pg-leader", "default")
    current.data = {"k": "fresh"}
    assert core.replace_namespaced_config_map("pg-leader", "default", current).data == {
        "k": "fresh"
    }


def test_delete_answers_a_status_and_deletecollection_takes_a_selector(core, kubesim):
    core.create_namespaced_config_map("default", _leader_map("a-leader"))
    core.create_namespaced_config_map("default", _leader_map("b-leader"))
    core.create_namespaced_config_map("default", {"metadata": {"name": "other"}})
    gone = core.delete_namespaced_config_map("a-leader", "default")
    assert (gone["kind"], gone["status"]) == ("Status", "Success")  # 37.x returns a dict
    assert gone["details"] == {
        "name": "a-leader",
        "kind": "configmaps",
        "uid": gone["details"]["uid"],
    }
    core.delete_collection_namespaced_config_map("default", label_selector="cluster-name=pg")
    assert [m["metadata"]["name"] for m in kubesim.list("configmaps", "default")] == ["other"]
    with pytest.raises(ApiException) as exc:
        core.read_namespaced_config_map("a-leader", "default")
    assert exc.value.status == 404
    assert _status(exc.value)["message"] == 'configmaps "a-leader" not found'


def test_a_watch_sees_an_annotation_change_and_the_delete(core):
    rv = core.create_namespaced_config_map("default", _leader_map()).metadata.resource_version
    core.patch_namespaced_config_map(
        "pg-leader", "default", {"metadata": {"annotations": {"leader": "pg-1"}}}
    )
    core.delete_namespaced_config_map("pg-leader", "default")
    seen = []
    w = watch.Watch()
    for ev in w.stream(
        core.list_namespaced_config_map, "default", resource_version=rv, timeout_seconds=5
    ):
        seen.append((ev["type"], ev["object"].metadata.annotations["leader"]))
        if ev["type"] == "DELETED":
            w.stop()
    assert seen == [("MODIFIED", "pg-1"), ("DELETED", "pg-1")]


def test_discovery_lists_both_kinds_with_short_names_and_every_verb(raw):
    status, _, body = raw("GET", "/api/v1")
    assert status == 200
    res = {r["name"]: r for r in body["resources"]}
    assert (res["configmaps"]["kind"], res["configmaps"]["shortNames"]) == ("ConfigMap", ["cm"])
    assert (res["endpoints"]["kind"], res["endpoints"]["shortNames"]) == ("Endpoints", ["ep"])
    assert res["endpoints"]["singularName"] == "endpoints"
    every = ["create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"]
    assert res["configmaps"]["verbs"] == every
    assert res["endpoints"]["verbs"] == every
    assert "configmaps/status" not in res
    assert "endpoints/status" not in res
    status, _, doc = raw("GET", "/openapi/v3/api/v1")
    assert "/api/v1/namespaces/{namespace}/configmaps/{name}" in doc["paths"]
    assert "/api/v1/namespaces/{namespace}/endpoints" in doc["paths"]


def test_a_bad_config_key_and_a_key_in_both_maps_are_invalid(raw):
    body = {
        "metadata": {"name": "bad"},
        "data": {"ok.key": "1", "no spaces": "2", "dup": "3"},
        "binaryData": {"dup": "aGk=", "..hidden": "aGk="},
    }
    status, _, resp = raw("POST", "/api/v1/namespaces/default/configmaps", body)
    assert status == 422
    assert resp["reason"] == "Invalid"
    causes = [(c["field"], c["message"]) for c in resp["details"]["causes"]]
    assert causes == [
        (
            "data[dup]",
            'Invalid value: "dup": duplicate of key present in binaryData',
        ),
        (
            "data[no spaces]",
            'Invalid value: "no spaces": a valid config key must consist of alphanumeric '
            "characters, '-', '_' or '.' (e.g. 'key.name',  or 'KEY_NAME',  or 'key-name', "
            "regex used for validation is '[-._a-zA-Z0-9]+')",
        ),
        ("binaryData[..hidden]", "Invalid value: \"..hidden\": must not start with '..'"),
    ]
    assert resp["message"].startswith('ConfigMap "bad" is invalid: [data[dup]: Invalid value')


def test_an_immutable_config_map_keeps_its_data(core):
    core.create_namespaced_config_map("default", _leader_map(data={"k": "v"}, immutable=True))
    core.patch_namespaced_config_map(
        "pg-leader", "default", {"metadata": {"annotations": {"leader": "pg-1"}}}
    )  # metadata may still change
    with pytest.raises(ApiException) as exc:
        core.patch_namespaced_config_map("pg-leader", "default", {"data": {"k": "w"}})
    assert exc.value.status == 422
    assert [(c["field"], c["message"]) for c in _status(exc.value)["details"]["causes"]] == [
        ("data", "Forbidden: field is immutable when `immutable` is set")
    ]
    assert core.read_namespaced_config_map("pg-leader", "default").data == {"k": "v"}


@pytest.mark.parametrize(
    ("subset", "expected"),
    [
        (
            {"ports": [{"port": 5432}]},
            [("subsets[0]", "Required value: must specify `addresses` or `notReadyAddresses`")],
        ),
        (
            {"addresses": [{"ip": "not-an-ip"}], "ports": [{"port": 5432}]},
            [
                (
                    "subsets[0].addresses[0].ip",
                    'Invalid value: "not-an-ip": must be a valid IP address, (e.g. 10.9.8.7 '
                    "or 2001:db8::ffff)",
                ),
                (
                    "subsets[0].addresses[0].ip",
                    'Invalid value: "not-an-ip": must be a valid IP address',
                ),
            ],
        ),
        (
            {"addresses": [{"ip": "127.0.0.1"}], "ports": [{"port": 5432}]},
            [
                (
                    "subsets[0].addresses[0].ip",
                    'Invalid value: "127.0.0.1": may not be in the loopback range '
                    "(127.0.0.0/8, ::1/128)",
                )
            ],
        ),
        (
            {
                "addresses": [{"ip": "10.0.0.1"}],
                "ports": [{"port": 0, "protocol": "HTTP"}, {"name": "b", "port": 1}],
            },
            [
                ("subsets[0].ports[0].name", "Required value"),
                (
                    "subsets[0].ports[0].port",
                    "Invalid value: 0: must be between 1 and 65535, inclusive",
                ),
                (
                    "subsets[0].ports[0].protocol",
                    'Unsupported value: "HTTP": supported values: "SCTP", "TCP", "UDP"',
                ),
            ],
        ),
    ],
)
def test_bad_endpoints_are_invalid_with_the_real_causes(raw, kubesim, subset, expected):
    body = {"metadata": {"name": "pg"}, "subsets": [subset]}
    status, _, resp = raw("POST", "/api/v1/namespaces/default/endpoints", body)
    assert status == 422
    assert [(c["field"], c["message"]) for c in resp["details"]["causes"]] == expected
    assert kubesim.get("endpoints", "default", "pg") is None


def test_endpoints_are_stored_repacked(core):
    body = {
        "metadata": {"name": "pg"},
        "subsets": [
            {"addresses": [{"ip": "10.0.0.2"}, {"ip": "10.0.0.1"}], "ports": [{"port": 5432}]},
            {"addresses": [{"ip": "10.0.0.2"}], "ports": [{"port": 5432}]},  # the same again
            {"addresses": [{"ip": "10.0.0.3"}]},  # no ports: the apiserver drops it
        ],
    }
    ep = core.create_namespaced_endpoints("default", body)
    assert [a.ip for a in ep.subsets[0].addresses] == ["10.0.0.1", "10.0.0.2"]
    assert len(ep.subsets) == 1
    assert [(p.port, p.protocol) for p in ep.subsets[0].ports] == [(5432, "TCP")]


def test_a_wrongly_typed_field_is_a_bad_request(raw, kubesim):
    body = {"metadata": {"name": "pg"}, "subsets": [{"ports": [{"port": "5432"}]}]}
    status, _, resp = raw("POST", "/api/v1/namespaces/default/endpoints", body)
    assert status == 400
    assert resp["message"].startswith(
        'Endpoints in version "v1" cannot be handled as a Endpoints: json: cannot unmarshal '
        "string into Go struct field EndpointPort.subsets.ports.port of type int32"
    )


def test_deleting_the_namespace_deletes_its_config_maps_and_endpoints(core, kubesim):
    core.create_namespace({"metadata": {"name": "tmp"}})
    core.create_namespaced_config_map("tmp", _leader_map())
    core.create_namespaced_endpoints("tmp", _endpoints())
    core.delete_namespace("tmp")
    kubesim.wait_for(lambda: kubesim.get("namespaces", None, "tmp") is None)
    assert kubesim.list("configmaps", "tmp") == []
    assert kubesim.list("endpoints", "tmp") == []
