"""OPS_NOTIFY_TARGETS: parsed and checked at start-up, URL and secret from secret files when
present, and every refusal names the target and field, never the URL or the secret."""

from __future__ import annotations

import json

import pytest
from django.core.exceptions import ImproperlyConfigured

from apiops_site.notify_config import parse_notify_targets

URL = "https://hooks.example.org/services/T0/B0/SECRETPATH"


def parse(items, tmp_path, **files: str):
    for name, value in files.items():
        (tmp_path / name.replace("_", "-")).write_text(value + "\n")
    return parse_notify_targets(json.dumps(items), {"OPS_SECRETS_DIR": str(tmp_path)})


def test_targets_are_parsed_with_their_filters(tmp_path):
    [slack, hook] = parse(
        [
            {"name": "oncall", "kind": "slack", "url": URL, "events": ["job.failed", "auth.*"]},
            {
                "name": "audit",
                "kind": "webhook",
                "url": "http://10.0.0.5/h",
                "secret": "s3",
                "events": ["*"],
                "namespaces": ["prod"],
            },
        ],
        tmp_path,
    )

    assert slack == {
        "name": "oncall",
        "kind": "slack",
        "url": URL,
        "secret": "",
        "events": ("job.failed", "auth.*"),
        "namespaces": (),
    }
    assert (hook["secret"], hook["namespaces"]) == ("s3", ("prod",))


def test_secret_files_give_the_url_and_the_secret(tmp_path):
    [target] = parse(
        [{"name": "audit", "kind": "webhook", "url": "http://ignored/", "events": ["job.*"]}],
        tmp_path,
        notify_audit_url=URL,
        notify_audit_secret="from-file",
    )

    assert (target["url"], target["secret"]) == (URL, "from-file")


@pytest.mark.parametrize(
    ("items", "message"),
    [
        ({"name": "x"}, "must be a JSON list"),
        ([{"name": "Bad Name", "kind": "slack", "url": URL, "events": ["*"]}], "name must be"),
        ([{"name": "x", "kind": "email", "url": URL, "events": ["*"]}], "kind must be one of"),
        ([{"name": "x", "kind": "slack", "events": ["*"]}], "no url"),
        ([{"name": "x", "kind": "slack", "url": "ftp://h/SECRETPATH", "events": ["*"]}], "http://"),
        ([{"name": "x", "kind": "slack", "url": URL}], "events must be a list"),
        (
            [{"name": "x", "kind": "slack", "url": URL, "events": ["*"], "namespaces": ["Prod"]}],
            "not a DNS-1123 label",
        ),
        (
            [{"name": "x", "kind": "slack", "url": URL, "events": ["*"], "channel": "#ops"}],
            "unknown fields: channel",
        ),
        ([{"name": "x", "kind": "slack", "url": URL, "events": ["*"]}] * 2, "names twice: x"),
    ],
)
def test_malformed_targets_stop_the_start_naming_the_problem_not_the_url(items, message, tmp_path):
    with pytest.raises(ImproperlyConfigured, match=message) as refused:
        parse(items, tmp_path)

    assert "SECRETPATH" not in str(refused.value)


def test_not_json_and_unset(tmp_path):
    with pytest.raises(ImproperlyConfigured, match="is not JSON"):
        parse_notify_targets("[{", {})
    assert parse_notify_targets(None) == ()
    assert parse_notify_targets("  ") == ()
