"""Decoding of Kubernetes protobuf request bodies (what `kubectl create namespace|deployment`
send): field numbers, zero values dropped like omitempty, unknown fields refused."""

from __future__ import annotations

import pytest

from kubesim.protobuf import MAGIC, Undecodable, decode


def _varint(n: int) -> bytes:
    out = b""
    while True:
        byte = n & 0x7F
        n >>= 7
        if n:
            out += bytes([byte | 0x80])
        else:
            return out + bytes([byte])


def _field(number: int, value: int | bytes | str) -> bytes:
    if isinstance(value, int):
        return _varint(number << 3) + _varint(value)
    data = value.encode() if isinstance(value, str) else value
    return _varint(number << 3 | 2) + _varint(len(data)) + data


def _envelope(api_version: str, kind: str, raw: bytes) -> bytes:
    type_meta = _field(1, api_version) + _field(2, kind)
    return MAGIC + _field(1, type_meta) + _field(2, raw) + _field(3, "") + _field(4, "")


def _meta(name: str, labels: dict[str, str] | None = None) -> bytes:
    out = _field(1, name) + _field(2, "") + _field(7, 0) + _field(8, b"")
    for k, v in (labels or {}).items():
        out += _field(11, _field(1, k) + _field(2, v))
    return out


def test_a_namespace_decodes_with_zero_values_dropped():
    raw = _field(1, _meta("team-a")) + _field(2, b"") + _field(3, _field(1, ""))
    assert decode(_envelope("v1", "Namespace", raw)) == {
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": {"name": "team-a"},
    }


def test_a_deployment_decodes_like_its_json():
    port = _field(1, "") + _field(2, 0) + _field(3, 80) + _field(4, "")
    container = _field(1, "nginx") + _field(2, "nginx:1.27") + _field(6, port) + _field(8, b"")
    pod_spec = _field(2, container) + _field(3, "") + _field(16, "")
    template = _field(1, _meta("", {"app": "d"})) + _field(2, pod_spec)
    selector = _field(1, _field(1, "app") + _field(2, "d"))
    spec = _field(1, 0) + _field(2, selector) + _field(3, template) + _field(7, 0)
    body = _envelope("apps/v1", "Deployment", _field(1, _meta("d", {"app": "d"})) + _field(2, spec))
    assert decode(body) == {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "d", "labels": {"app": "d"}},
        "spec": {
            "replicas": 0,  # a pointer in Go: present means set
            "selector": {"matchLabels": {"app": "d"}},
            "template": {
                "metadata": {"labels": {"app": "d"}},
                "spec": {
                    "containers": [
                        {"name": "nginx", "image": "nginx:1.27", "ports": [{"containerPort": 80}]}
                    ]
                },
            },
        },
    }


def test_unknown_fields_and_kinds_are_refused_not_dropped():
    raw = _field(1, _meta("x") + _field(99, "surprise"))
    with pytest.raises(Undecodable, match="field 99"):
        decode(_envelope("v1", "Namespace", raw))
    with pytest.raises(Undecodable, match="Secret"):
        decode(_envelope("v1", "Secret", b""))
    with pytest.raises(Undecodable, match="magic"):
        decode(b'{"kind": "Namespace"}')


def test_a_protobuf_create_goes_through_the_api(raw, kubesim):
    body = _envelope("v1", "Namespace", _field(1, _meta("from-proto")))
    status, _, obj = raw(
        "POST", "/api/v1/namespaces", body, {"Content-Type": "application/vnd.kubernetes.protobuf"}
    )
    assert status == 201
    assert obj["metadata"]["name"] == "from-proto"
    status, _, obj = raw(
        "POST",
        "/api/v1/namespaces",
        MAGIC + b"\xff",
        {"Content-Type": "application/vnd.kubernetes.protobuf"},
    )
    assert status == 415
    assert obj["reason"] == "UnsupportedMediaType"
