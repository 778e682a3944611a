"""Label and field selector parsing and matching, as pure functions."""

from __future__ import annotations

import pytest

from kubesim.errors import ApiError
from kubesim.selectors import (
    fields_match,
    format_label_selector,
    labels_match,
    parse_field_selector,
    parse_label_selector,
)

LABELS = {"app": "db", "tier": "2", "canary": ""}


@pytest.mark.parametrize(
    ("selector", "matches"),
    [
        ("", True),
        ("app=db", True),
        ("app==db", True),
        ("app=web", False),
        ("app!=web", True),
        ("missing!=x", True),
        ("app in (db,web)", True),
        ("app in (web)", False),
        ("app notin (web)", True),
        ("missing notin (x)", True),
        ("missing in (x)", False),
        ("canary", True),
        ("!canary", False),
        ("!missing", True),
        ("tier>1", True),
        ("tier<2", False),
        ("app=db, tier in (1, 2) ,!missing", True),
        ("canary=", True),
    ],
)
def test_label_selector_semantics(selector, matches):
    assert labels_match(parse_label_selector(selector), LABELS) is matches


@pytest.mark.parametrize("selector", ["app in db", "app=(x)", "a b", "tier>x", "=x", "app in (a"])
def test_malformed_label_selectors_are_bad_requests(selector):
    with pytest.raises(ApiError) as exc:
        parse_label_selector(selector)
    assert exc.value.code == 400


def test_invalid_label_values_are_bad_requests():
    with pytest.raises(ApiError):
        parse_label_selector("app=-bad-")


def test_field_selectors_match_nested_fields_and_negation():
    pod = {"metadata": {"name": "p", "namespace": "ns"}, "status": {"phase": "Running"}}
    allowed = {"metadata.name", "metadata.namespace", "status.phase"}.__contains__
    assert fields_match(parse_field_selector("metadata.name=p,status.phase!=Pending", allowed), pod)
    assert not fields_match(parse_field_selector("metadata.namespace==other", allowed), pod)
    with pytest.raises(ApiError, match=r"field label not supported: spec\.x"):
        parse_field_selector("spec.x=1", allowed)


def test_a_label_selector_object_formats_like_scale_status():
    assert format_label_selector({"matchLabels": {"b": "2", "a": "1"}}) == "a=1,b=2"
    sel = {"matchExpressions": [{"key": "env", "operator": "In", "values": ["prod", "dev"]}]}
    assert format_label_selector(sel) == "env in (dev,prod)"
