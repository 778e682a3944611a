"""The admin's CSV export carries each row's place in the hash chain and the exact JSON that
was hashed, so an auditor re-verifies the chain away from the database with the README's
recipe (Python's standard library only) — and the recipe notices a changed row."""

from __future__ import annotations

import csv
import hashlib
import io

import pytest

from ops.audit import Target, record
from ops.models import AuditChainHead
from tests.admin.conftest import DB

pytestmark = DB

EXPORT = "/admin/ops/opslog/export.csv"


def readme_recipe(rows: list[dict]) -> tuple[int, str]:
    """The README's offline re-verification, as written there."""
    rows = sorted((r for r in rows if r["chain_seq"]), key=lambda r: int(r["chain_seq"]))
    prev = "0" * 64
    for n, r in enumerate(rows, start=1):
        assert int(r["chain_seq"]) == n, f"position {n} missing before row {r['id']}"
        assert hashlib.sha256(r["hashed"].encode()).hexdigest() == r["row_hash"], (
            f"row {r['id']} changed"
        )
        prev = hashlib.sha256(f"{prev}:{r['id']}:{r['row_hash']}".encode()).hexdigest()
        assert prev == r["chain_hash"], f"row {r['id']} does not follow the row before it"
    return len(rows), prev


def test_the_export_reverifies_offline_and_a_changed_cell_is_caught(admin_client):
    for i, body in enumerate([{"replicas": 2}, {"replicas": 1.5e20, "note": "=1+1"}, None]):
        record(
            actor_name="alice",
            source_ip="203.0.113.5",
            origin="api",
            target=Target("scale", "deployment", "prod", f"web-{i}", body),
            status="success",
            http_status=200,
        )
    response = admin_client.get(EXPORT)
    text = b"".join(response.streaming_content).decode()
    rows = list(csv.DictReader(io.StringIO(text)))

    size, head = readme_recipe(rows)

    assert size == 3
    assert head == AuditChainHead.objects.using("audit").get(id=1).head
    assert all(r["audit_id"] for r in rows)
    rows[1]["hashed"] = rows[1]["hashed"].replace("web-1", "web-9")
    with pytest.raises(AssertionError, match=f"row {rows[1]['id']} changed"):
        readme_recipe(rows)
