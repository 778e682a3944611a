"""The three patch formats as pure functions: strategic merge (merge keys and directives),
JSON merge patch and JSON patch (all or nothing)."""

from __future__ import annotations

import pytest

from kubesim.errors import ApiError
from kubesim.patch import json_patch, merge_patch, strategic_merge_patch

DOC = {
    "metadata": {"labels": {"a": "1", "b": "2"}, "finalizers": ["x"]},
    "spec": {
        "replicas": 1,
        "containers": [{"name": "app", "image": "v1", "env": [{"name": "A", "value": "1"}]}],
        "tolerations": [{"key": "k"}],
    },
}


def test_strategic_merge_merges_lists_by_their_merge_key():
    out = strategic_merge_patch(
        DOC,
        {"spec": {"containers": [{"name": "app", "image": "v2"}, {"name": "side", "image": "s"}]}},
    )
    assert out["spec"]["containers"] == [
        {"name": "app", "image": "v2", "env": [{"name": "A", "value": "1"}]},
        {"name": "side", "image": "s"},
    ]
    assert DOC["spec"]["containers"][0]["image"] == "v1"  # the input is not modified


def test_strategic_merge_directives():
    out = strategic_merge_patch(
        DOC,
        {
            "metadata": {"labels": {"a": None}, "finalizers": ["y"]},
            "spec": {
                "containers": [{"name": "app", "$patch": "delete"}],
                "tolerations": [{"key": "z"}],
            },
        },
    )
    assert out["metadata"]["labels"] == {"b": "2"}
    assert out["metadata"]["finalizers"] == ["x", "y"]  # primitive merge list: union
    assert out["spec"]["containers"] == []
    assert out["spec"]["tolerations"] == [{"key": "z"}]  # no merge key: replaced
    replaced = strategic_merge_patch(DOC, {"metadata": {"labels": {"$patch": "replace", "c": "3"}}})
    assert replaced["metadata"]["labels"] == {"c": "3"}
    removed = strategic_merge_patch(
        DOC, {"metadata": {"$deleteFromPrimitiveList/finalizers": ["x"]}}
    )
    assert removed["metadata"]["finalizers"] == []


def test_merge_patch_replaces_lists_and_null_deletes():
    out = merge_patch(DOC, {"spec": {"containers": [{"name": "only"}], "replicas": None}})
    assert out["spec"]["containers"] == [{"name": "only"}]
    assert "replicas" not in out["spec"]


def test_json_patch_operations():
    out = json_patch(
        DOC,
        [
            {"op": "replace", "path": "/spec/replicas", "value": 3},
            {"op": "add", "path": "/spec/containers/-", "value": {"name": "b"}},
            {"op": "remove", "path": "/metadata/labels/a"},
            {"op": "copy", "from": "/metadata/labels/b", "path": "/metadata/labels/c"},
            {"op": "move", "from": "/metadata/labels/c", "path": "/metadata/labels/d"},
            {"op": "add", "path": "/metadata/labels/e~1f", "value": "slash"},
            {"op": "test", "path": "/spec/replicas", "value": 3},
        ],
    )
    assert out["spec"]["replicas"] == 3
    assert [c["name"] for c in out["spec"]["containers"]] == ["app", "b"]
    assert out["metadata"]["labels"] == {"b": "2", "d": "2", "e/f": "slash"}


@pytest.mark.parametrize(
    ("ops", "code"),
    [
        ({"op": "add"}, 400),
        ([{"op": "replace", "path": "/nope/x", "value": 1}], 422),
        ([{"op": "remove", "path": "/spec/missing"}], 422),
        ([{"op": "test", "path": "/spec/replicas", "value": 9}], 422),
        ([{"op": "frobnicate", "path": "/spec"}], 400),
        ([{"op": "add", "path": "/spec/containers/7", "value": {}}], 422),
    ],
)
def test_json_patch_failures(ops, code):
    with pytest.raises(ApiError) as exc:
        json_patch(DOC, ops)
    assert exc.value.code == code
