"""Source IP: REMOTE_ADDR unless the peer is a trusted proxy, then the right-most untrusted
X-Forwarded-For hop (pure function tests, plus one through the API into the audit row)."""

from __future__ import annotations

import ipaddress

import pytest
from rest_framework.test import APIClient

from ops.client_ip import resolve_client_ip
from tests.ops.conftest import BOOTSTRAP_KEY, DB, audit_log

PROXIES = (ipaddress.ip_network("10.0.0.0/8"), ipaddress.ip_network("fd00::/8"))


@pytest.mark.parametrize(
    ("remote", "xff", "expected"),
    [
        ("198.51.100.4", None, "198.51.100.4"),
        ("198.51.100.4", "1.2.3.4", "198.51.100.4"),  # peer not trusted: header ignored
        ("10.1.2.3", None, "10.1.2.3"),
        ("10.1.2.3", "203.0.113.9", "203.0.113.9"),
        ("10.1.2.3", "6.6.6.6, 203.0.113.9", "203.0.113.9"),  # left part is client-written
        ("10.1.2.3", "203.0.113.9, 10.0.0.5", "203.0.113.9"),  # skip trusted hops
        ("10.1.2.3", "10.0.0.7, 10.0.0.5", "10.0.0.7"),  # all trusted: left-most
        ("10.1.2.3", "garbage, 10.0.0.5", "10.0.0.5"),  # stop at garbage
        ("10.1.2.3", "203.0.113.9:5555", "203.0.113.9"),
        ("10.1.2.3", "[2001:db8::1]:443", "2001:db8::1"),
        ("fd00::1", "2001:db8::2", "2001:db8::2"),
        ("10.1.2.3", "   ", "10.1.2.3"),
    ],
)
def test_the_client_ip_is_resolved_from_trusted_hops_only(remote, xff, expected):
    assert resolve_client_ip(remote, xff, PROXIES) == expected


def test_without_trusted_proxies_forwarded_for_is_never_believed():
    assert resolve_client_ip("10.1.2.3", "203.0.113.9", ()) == "10.1.2.3"


@DB
def test_the_audit_row_records_the_forwarded_address_from_a_trusted_proxy(apiops, cluster):
    apiops(TRUSTED_PROXIES=PROXIES)
    client = APIClient(REMOTE_ADDR="10.9.9.9", HTTP_X_FORWARDED_FOR="6.6.6.6, 203.0.113.50")
    client.credentials(HTTP_X_API_KEY=BOOTSTRAP_KEY)

    client.post("/ops/namespaces/prod/deployments/web/scale", {"replicas": 1}, format="json")

    [row] = audit_log()
    assert row.source_ip == "203.0.113.50"


@DB
def test_a_spoofed_forwarded_for_from_an_untrusted_peer_is_ignored(apiops, cluster):
    apiops(TRUSTED_PROXIES=PROXIES)
    client = APIClient(REMOTE_ADDR="198.51.100.77", HTTP_X_FORWARDED_FOR="10.0.0.1")

    client.get("/ops/audit")

    [row] = audit_log()
    assert row.source_ip == "198.51.100.77"
