"""The hash chain over ``ops_log``: concurrent writers in 50 processes make one gap-free
chain; a pending row is chained once, when it is finished (by its process or by the pump);
the trigger refuses the application's UPDATE, DELETE and TRUNCATE of history; every tampering
by a superuser with the triggers off (a changed, deleted, inserted or swapped row, a truncated
table) makes ``audit_verify`` exit 1 naming the row; signed checkpoints catch a cut tail and
are refused when forged."""

from __future__ import annotations

import io
import json
import multiprocessing
from datetime import timedelta

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from django.core.management import call_command
from django.db import DatabaseError, connections, transaction

from ops import chain, proof
from ops.audit import Target, attempt, close_stale_pending, record
from ops.models import AuditChainHead, OpsLog, OpsLogStatus
from ops.services import Actor
from tests.ops.conftest import DB, TRANSACTIONAL_DB, audit_triggers_off

ALICE = Actor(name="alice", source_ip="203.0.113.5")


def _pem(key: Ed25519PrivateKey) -> str:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()


@pytest.fixture
def signing_key(apiops) -> Ed25519PrivateKey:
    key = Ed25519PrivateKey.generate()
    apiops(AUDIT_SIGNING_KEY=_pem(key))
    return key


def _write(name: str, status: str = OpsLogStatus.SUCCESS, **body) -> OpsLog:
    return record(
        actor_name="alice",
        source_ip="203.0.113.5",
        origin="api",
        target=Target("scale", "deployment", "prod", name, {"replicas": 3, **body}),
        status=status,
        http_status=200,
    )


def _rows(n: int) -> list[OpsLog]:
    return [_write(f"web-{i}") for i in range(n)]


def _verify(*args: str) -> tuple[int, str]:
    out, err = io.StringIO(), io.StringIO()
    try:
        call_command("audit_verify", *args, stdout=out, stderr=err)
    except SystemExit as e:
        return int(e.code), out.getvalue() + err.getvalue()
    return 0, out.getvalue() + err.getvalue()


def _as_the_app(statement: str, params=()) -> None:
    """``statement`` on the application's own audit connection (its own savepoint)."""
    with transaction.atomic(using="audit"), connections["audit"].cursor() as cur:
        cur.execute(statement, params)


def _sql(statement: str, params=()) -> None:
    with audit_triggers_off(), connections["audit"].cursor() as cur:
        cur.execute(statement, params)


def _chain_hash(row: OpsLog) -> str:
    return OpsLog.objects.using("audit").values_list("chain_hash", flat=True).get(pk=row.pk)


def _last_id() -> int:
    return OpsLog.objects.using("audit").order_by("-id").values_list("id", flat=True)[0]


def _chain_of(alias: str = "audit") -> list[tuple[int, int]]:
    return list(
        OpsLog.objects.using(alias)
        .filter(chain_seq__isnull=False)
        .order_by("chain_seq")
        .values_list("chain_seq", "id")
    )


# --- writing -----------------------------------------------------------------------------------


def _writer(barrier, index: int, rounds: int) -> None:
    """One process: a final row and a pending row finished later, ``rounds`` times."""
    connections.close_all()  # never the parent's sockets
    barrier.wait(timeout=60)
    actor = Actor(name=f"writer-{index}", source_ip="local", origin="cli")
    for i in range(rounds):
        _write(f"w{index}-{i}")
        with attempt(
            actor=actor, target=Target("delete", "pod", "prod", f"p{index}-{i}")
        ) as pending:
            assert pending.row.status == OpsLogStatus.PENDING
    connections.close_all()


@TRANSACTIONAL_DB
def test_fifty_writer_processes_make_one_chain_without_gaps_or_forks():
    writers, rounds = 50, 3
    connections.close_all()
    ctx = multiprocessing.get_context("fork")
    barrier = ctx.Barrier(writers)
    procs = [ctx.Process(target=_writer, args=(barrier, i, rounds)) for i in range(writers)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout=240)
    assert [p.exitcode for p in procs] == [0] * writers

    total = writers * rounds * 2
    assert OpsLog.objects.using("audit").count() == total
    assert not OpsLog.objects.using("audit").filter(chain_seq__isnull=True).exists()
    assert [seq for seq, _ in _chain_of()] == list(range(1, total + 1))
    head = AuditChainHead.objects.using("audit").get(id=1)
    assert head.size == total
    code, text = _verify()
    assert code == 0
    assert "holds: 300 rows" in text


@DB
def test_a_pending_row_is_chained_once_when_it_is_finished():
    first = _write("before")
    with attempt(actor=ALICE, target=Target("delete", "pod", "prod", "p")) as pending:
        row = OpsLog.objects.using("audit").get(pk=pending.row.pk)
        assert (row.status, row.chain_seq, row.row_hash) == ("pending", None, None)
        later = _write("while-pending")
    row = OpsLog.objects.using("audit").get(pk=pending.row.pk)

    assert row.status == "success"
    # Positions follow the order rows are finished, not written.
    assert _chain_of() == [(1, first.pk), (2, later.pk), (3, row.pk)]
    assert row.chain_hash == chain.link(_chain_hash(later), row.pk, row.row_hash)
    with pytest.raises(DatabaseError, match="cannot be changed"), transaction.atomic(using="audit"):
        OpsLog.objects.using("audit").filter(pk=row.pk).update(status="error")
    assert _verify()[0] == 0


@DB
def test_a_row_the_pump_closes_as_outcome_unknown_is_chained_then(apiops):
    stale = record(
        actor_name="alice",
        source_ip="local",
        origin="cli",
        target=Target("delete", "pod", "prod", "lost"),
        status=OpsLogStatus.PENDING,
    )
    with audit_triggers_off():  # aged as only a superuser could; it is still pending
        OpsLog.objects.using("audit").filter(pk=stale.pk).update(ts=stale.ts - timedelta(hours=1))

    assert close_stale_pending(older_than=timedelta(minutes=15)) == 1

    row = OpsLog.objects.using("audit").get(pk=stale.pk)
    assert (row.status, row.code, row.chain_seq) == ("error", "outcome_unknown", 1)
    assert _verify()[0] == 0


@DB
def test_the_application_connection_cannot_update_delete_or_truncate_history():
    row = _write("web")
    for statement in (
        "UPDATE ops_log SET resource_name = 'other' WHERE id = %s",
        "DELETE FROM ops_log WHERE id = %s",
        "UPDATE ops_log_chain SET size = 0 WHERE id = %s",
    ):
        with pytest.raises(DatabaseError) as refused:
            _as_the_app(statement, [row.pk if "ops_log " in statement else 1])
        assert "cannot" in str(refused.value) or "only" in str(refused.value)
    with pytest.raises(DatabaseError, match="cannot be truncated"):
        _as_the_app("TRUNCATE ops_log")
    # A finished row without its row hash is refused; one that names its own chain position
    # gets the position the trigger gives it.
    forged = _forged()
    with pytest.raises(DatabaseError, match="row_hash"):
        _as_the_app(_INSERT, [forged.ts, forged.audit_id, None, 99, "f" * 64])
    with connections["audit"].cursor() as cur:
        cur.execute(
            _INSERT + " RETURNING chain_seq, chain_hash",
            [forged.ts, forged.audit_id, forged.row_hash, 99, "f" * 64],
        )
        seq, link = cur.fetchone()
    assert (seq, link) == (2, chain.link(_chain_hash(row), _last_id(), forged.row_hash))
    assert OpsLog.objects.using("audit").get(pk=row.pk).resource_name == "web"
    assert _verify()[0] == 0


# --- tampering, detected -----------------------------------------------------------------------


@DB
def test_a_changed_row_is_named():
    rows = _rows(5)
    _sql("UPDATE ops_log SET resource_name = 'evil' WHERE id = %s", [rows[2].pk])

    code, text = _verify()

    assert code == 1
    assert f"row {rows[2].pk} " in text
    assert "changed" in text
    assert str(rows[2].audit_id) in text


@DB
def test_a_changed_request_body_is_named():
    rows = _rows(3)
    _sql("UPDATE ops_log SET request_body = '{\"replicas\": 30}' WHERE id = %s", [rows[1].pk])

    code, text = _verify()

    assert code == 1
    assert f"row {rows[1].pk} " in text


@DB
def test_a_deleted_row_is_named_by_the_gap_it_leaves():
    rows = _rows(5)
    _sql("DELETE FROM ops_log WHERE id = %s", [rows[1].pk])

    code, text = _verify()

    assert code == 1
    assert f"row {rows[2].pk} " in text
    assert "position(s) 2 missing" in text


@DB
def test_a_deleted_last_row_is_caught_by_the_chain_head():
    rows = _rows(4)
    _sql("DELETE FROM ops_log WHERE id = %s", [rows[3].pk])

    code, text = _verify()

    assert code == 1
    assert "the last 1 row(s), position(s) 4..4, were cut" in text


def _forged() -> OpsLog:
    forged = OpsLog(
        action="scale",
        resource_kind="deployment",
        namespace="prod",
        resource_name="forged",
        status="success",
    )
    chain.seal(forged)  # a well-formed row hash of its own
    return forged


_INSERT = (
    "INSERT INTO ops_log (ts, action, resource_kind, namespace, resource_name, status, origin,"
    " audit_id, row_hash, chain_seq, chain_hash)"
    " VALUES (%s, 'scale', 'deployment', 'prod', 'forged', 'success', 'api', %s, %s, %s, %s)"
)


@DB
def test_a_row_inserted_outside_the_chain_is_named():
    _rows(3)
    forged = _forged()
    _sql(_INSERT, [forged.ts, forged.audit_id, forged.row_hash, None, None])

    code, text = _verify()

    assert code == 1
    assert str(forged.audit_id) in text
    assert "not in the chain" in text


@DB
def test_a_row_spliced_into_the_chain_is_named():
    rows = _rows(4)
    forged = _forged()
    # Everything from position 3 moves up one, the forged row takes position 3 and links
    # correctly to position 2 — but the old row 3 no longer follows from its predecessor.
    _sql("UPDATE ops_log SET chain_seq = chain_seq + 100 WHERE chain_seq >= 3")
    _sql("UPDATE ops_log SET chain_seq = chain_seq - 99 WHERE chain_seq >= 100")
    link = chain.link(_chain_hash(rows[1]), 10**9, forged.row_hash)
    _sql(_INSERT, [forged.ts, forged.audit_id, forged.row_hash, 3, link])

    code, text = _verify()

    assert code == 1
    assert str(forged.audit_id) in text
    assert "does not follow" in text


@DB
def test_two_swapped_rows_are_named():
    rows = _rows(5)
    a, b = rows[1].pk, rows[3].pk
    _sql(
        "UPDATE ops_log SET chain_seq = CASE id WHEN %s THEN -4 ELSE -2 END WHERE id IN (%s, %s)",
        [a, a, b],
    )
    _sql("UPDATE ops_log SET chain_seq = -chain_seq WHERE chain_seq < 0")

    code, text = _verify()

    assert code == 1
    assert f"row {b} " in text
    assert "position 2" in text


@DB
def test_a_truncated_log_is_caught_by_the_head_and_by_a_checkpoint(tmp_path, signing_key):
    _rows(3)
    point = tmp_path / "checkpoint.json"
    call_command("audit_checkpoint", "--out", str(point), stdout=io.StringIO())
    _sql("TRUNCATE ops_log")

    code, text = _verify()
    assert code == 1
    assert "the last 3 row(s), position(s) 1..3, were cut" in text
    _sql("TRUNCATE ops_log_chain")  # the head too: only the checkpoint remembers now
    assert _verify()[0] == 0
    code, text = _verify("--checkpoint", str(point))
    assert code == 1
    assert "position(s) 1..3, were cut" in text


# --- checkpoints ------------------------------------------------------------------------------


@DB
def test_a_checkpoint_is_signed_and_verify_checks_the_chain_against_it(tmp_path, signing_key):
    rows = _rows(3)
    point = tmp_path / "checkpoint.json"
    call_command("audit_checkpoint", "--out", str(point), stdout=io.StringIO())

    data = json.loads(point.read_text())
    assert set(data) == {"size", "head", "time", "key_id", "signature"}
    assert (data["size"], data["head"]) == (3, _chain_hash(rows[2]))
    assert data["key_id"] == proof.key_id(signing_key.public_key())
    _rows(2)  # the chain grows past the checkpoint: still fine
    code, text = _verify("--checkpoint", str(point))
    assert code == 0, text
    # An auditor without our private key checks it with the printed public key.
    out = io.StringIO()
    call_command("audit_checkpoint", "--public-key", stdout=out, stderr=io.StringIO())
    public = tmp_path / "public.pem"
    public.write_text(out.getvalue())
    assert _verify("--checkpoint", str(point), "--public-key", str(public))[0] == 0


@DB
def test_a_tail_cut_below_the_checkpoint_is_detected(tmp_path, signing_key):
    rows = _rows(4)
    point = tmp_path / "checkpoint.json"
    call_command("audit_checkpoint", "--out", str(point), stdout=io.StringIO())
    # A superuser removes the last two rows and rewinds the head to match: only the
    # checkpoint still knows.
    _sql("DELETE FROM ops_log WHERE id IN (%s, %s)", [rows[2].pk, rows[3].pk])
    _sql("UPDATE ops_log_chain SET size = 2, head = %s WHERE id = 1", [_chain_hash(rows[1])])
    assert _verify()[0] == 0

    code, text = _verify("--checkpoint", str(point))

    assert code == 1
    assert "position(s) 3..4, were cut" in text


@DB
def test_a_rewritten_history_under_a_checkpoint_is_detected(tmp_path, signing_key):
    rows = _rows(3)
    point = tmp_path / "checkpoint.json"
    call_command("audit_checkpoint", "--out", str(point), stdout=io.StringIO())
    # The superuser recomputes every hash after changing row 2: the chain holds by itself.
    _sql("UPDATE ops_log SET resource_name = 'evil' WHERE id = %s", [rows[1].pk])
    layout = chain.Layout.of(OpsLog)
    prev = chain.GENESIS
    for row in OpsLog.objects.using("audit").order_by("chain_seq"):
        values = [getattr(row, f.attname) for f in chain.content_fields(OpsLog)]
        row_hash = chain.digest(layout.canonical(values, json_as_text=False))
        prev = chain.link(prev, row.pk, row_hash)
        _sql(
            "UPDATE ops_log SET row_hash = %s, chain_hash = %s WHERE id = %s",
            [row_hash, prev, row.pk],
        )
    _sql("UPDATE ops_log_chain SET head = %s WHERE id = 1", [prev])
    assert _verify()[0] == 0

    code, text = _verify("--checkpoint", str(point))

    assert code == 1
    assert f"row {rows[2].pk} " in text
    assert "rewritten" in text


@DB
def test_a_forged_checkpoint_is_refused(tmp_path, signing_key):
    _rows(2)
    point = tmp_path / "checkpoint.json"
    call_command("audit_checkpoint", "--out", str(point), stdout=io.StringIO())
    data = json.loads(point.read_text())

    other = Ed25519PrivateKey.generate()
    forged = proof.make_checkpoint(size=2, head=data["head"], key=other)
    (tmp_path / "other.json").write_text(json.dumps(forged))
    code, text = _verify("--checkpoint", str(tmp_path / "other.json"))
    assert code == 1
    assert "not by ours" in text

    # Our key_id on another key's signature, and our signature over changed numbers.
    (tmp_path / "stolen-id.json").write_text(json.dumps({**forged, "key_id": data["key_id"]}))
    (tmp_path / "changed.json").write_text(json.dumps({**data, "size": 1}))
    for name in ("stolen-id.json", "changed.json"):
        code, text = _verify("--checkpoint", str(tmp_path / name))
        assert code == 1
        assert "signature is not our key's" in text


@DB
def test_checkpoint_refuses_to_sign_a_broken_chain(tmp_path, signing_key):
    rows = _rows(2)
    _sql("UPDATE ops_log SET actor = 'mallory' WHERE id = %s", [rows[0].pk])

    with pytest.raises(SystemExit) as stopped:
        call_command(
            "audit_checkpoint",
            "--out",
            str(tmp_path / "c.json"),
            stdout=io.StringIO(),
            stderr=io.StringIO(),
        )

    assert stopped.value.code == 1
    assert not (tmp_path / "c.json").exists()


@DB
def test_request_bodies_hash_the_same_after_postgresql_gives_them_back():
    awkward = [
        {"n": 1e300, "small": 1.5e-7, "neg_zero": -0.0, "big": 2**70, "f": 1.0},
        {"text": 'é ✓ \u2028 \\ "', "nested": {"b": [1, 2.5, None, True], "a": {}}},
        {"nan": float("nan"), "inf": float("-inf"), "nul": "a\x00b"},
        ["a", 1],
        "just text",
        None,
    ]
    for body in awkward:
        record(
            actor_name="alice",
            source_ip=None,
            origin="api",
            target=Target("scale", "deployment", "prod", "web", body),
            status=OpsLogStatus.ERROR,
        )

    code, text = _verify()

    assert code == 0, text
    assert f"holds: {len(awkward)} rows" in text
