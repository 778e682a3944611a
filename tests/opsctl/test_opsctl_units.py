"""opsctl's pure helpers: relative ages to ISO 8601 in UTC, ``--param`` and ``--replicas``
values, the progress lines of a followed job, a plan as a table, and the exit code of each
HTTP status."""

from __future__ import annotations

from datetime import UTC, datetime

from opsctl.cli import as_iso, change_text, number_or_text, param_value, plan_table
from opsctl.errors import exit_code_for_status
from opsctl.follow import failure, fit, step_lines, view

NOW = datetime(2026, 1, 2, 12, 0, tzinfo=UTC)


def test_relative_ages_become_utc_iso_times_and_iso_passes_through():
    assert as_iso("24h", NOW) == "2026-01-01T12:00:00+00:00"
    assert as_iso("30m", NOW) == "2026-01-02T11:30:00+00:00"
    assert as_iso("7d", NOW) == "2025-12-26T12:00:00+00:00"
    assert as_iso("2026-01-01T00:00:00Z", NOW) == "2026-01-01T00:00:00Z"
    assert as_iso(None) is None


def test_param_values_are_json_when_they_parse_else_strings():
    assert param_value("3") == 3
    assert param_value("true") is True
    assert param_value('{"a": 1}') == {"a": 1}
    assert param_value("staging") == "staging"
    assert number_or_text("5") == 5
    assert number_or_text("five") == "five"


def _job(*steps: tuple[str, str, str], status: str = "running") -> dict:
    return {
        "job_id": "2026-01-02T12:00:00+00:00_pg-rebuild_0123abcd",
        "type": "pg-rebuild",
        "status": status,
        "error": None,
        "steps": [
            {"order": i, "name": n, "status": s, "detail": d}
            for i, (n, s, d) in enumerate(steps, 1)
        ],
    }


def test_step_lines_say_only_what_changed():
    seen: dict = {}
    first = step_lines(_job(("a", "success", "done"), ("b", "pending", "")), seen)
    same = step_lines(_job(("a", "success", "done"), ("b", "pending", "")), seen)
    later = step_lines(_job(("a", "success", "done"), ("b", "running", "x" * 200)), seen)

    assert first == ["1. a success: done"]
    assert same == []
    assert len(later) == 1
    assert later[0].startswith("2. b running: xxx")
    assert len(later[0]) == 80


def test_the_view_fits_its_width():
    lines = view(_job(("scale_sts_to_zero", "failed", "the pods " * 30)), 40)

    assert all(len(line) <= 40 for line in lines)
    assert lines[0].startswith("running: pg-rebuild")
    assert fit("a  b\nc", 80) == "a b c"


def test_a_failure_names_the_failed_step_and_the_jobs_code():
    job = _job(("a", "success", ""), ("b", "failed", "pods still there"), status="failed")
    job["error"] = {"code": "timeout", "detail": "wait timed out"}

    error = failure(job)

    assert error.exit_code == 1
    assert error.lines() == ["error: step b failed: pods still there [timeout]"]


def test_http_statuses_map_to_exit_codes():
    codes = {s: exit_code_for_status(s) for s in (400, 401, 403, 404, 409, 413, 429, 500, 503)}

    assert codes == {400: 2, 401: 3, 403: 3, 404: 4, 409: 5, 413: 2, 429: 6, 500: 6, 503: 6}


def _entry(order: int, action: str, kind: str, name: str, uid: str | None, change: dict, **extra):
    obj = {"kind": kind, "namespace": "prod", "name": name, "uid": uid}
    return {"order": order, "action": action, "object": obj, "change": change, **extra}


def test_a_plan_is_one_row_per_change_in_a_few_words():
    plan = [
        _entry(1, "scale", "StatefulSet", "postgres", "u-1", {"replicas": {"from": 3, "to": 0}}),
        _entry(2, "create", "VolumeSnapshot", "snap", None, {"source": {"name": "data"}}),
        _entry(3, "check", "Pod", "postgres-1", "u-2", {"role": "a replica"}),
    ]
    stepped = [
        _entry(
            1,
            "delete",
            "Pod",
            "postgres-1",
            "u-2",
            {"exists": {"from": True, "to": False}},
            step="delete_pod",
        )
    ]

    lines = plan_table(plan).splitlines()

    assert lines[0].split() == ["ORDER", "ACTION", "KIND", "NAMESPACE/NAME", "UID", "CHANGE"]
    assert lines[1].split() == [
        "1",
        "scale",
        "StatefulSet",
        "prod/postgres",
        "u-1",
        "replicas",
        "3",
        "->",
        "0",
    ]
    assert lines[2].split()[4:] == ["(new)", "source", '{"name":', '"data"}']
    assert lines[3].endswith("role: a replica")
    assert plan_table(stepped).splitlines()[0].split()[:3] == ["ORDER", "STEP", "ACTION"]
    assert change_text({"exists": {"from": True, "to": False}}) == "exists yes -> no"
    assert (
        change_text({"readyReplicas": {"to": 3}, "uid": {"to": "new"}})
        == "readyReplicas -> 3, uid -> new"
    )
