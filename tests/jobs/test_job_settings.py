"""The jobs' knobs in settings.py: a tick's polling budget must stay under django-q2's task
timeout, or every tick that uses its budget is killed mid-step. settings.py is executed
afresh with its own environment for each case."""

from __future__ import annotations

import runpy
from pathlib import Path

import pytest
from django.core.exceptions import ImproperlyConfigured

SETTINGS = str(Path(__file__).resolve().parents[2] / "apiops_site" / "settings.py")
_CLEARED = [
    "ENV", "OPS_DEBUG", "OPS_API_KEY", "OPS_DB_URL", "OPS_SECRET_KEY", "OPS_KUBECONFIG",
    "OPS_JOB_TICK_BUDGET", "OPS_Q_TIMEOUT", "OPS_Q_RETRY", "KUBECONFIG",
]  # fmt: skip


@pytest.fixture
def load(monkeypatch, tmp_path):
    """Execute settings.py with exactly the given job variables set."""

    def run(**env: str) -> dict:
        for name in _CLEARED:
            monkeypatch.delenv(name, raising=False)
        monkeypatch.setenv("OPS_SECRETS_DIR", str(tmp_path / "secrets"))
        for name, value in env.items():
            monkeypatch.setenv(name, value)
        return runpy.run_path(SETTINGS)

    return run


def test_a_tick_budget_under_the_task_timeout_is_accepted(load):
    s = load(OPS_JOB_TICK_BUDGET="60", OPS_Q_TIMEOUT="120")

    assert s["APIOPS"]["JOB_TICK_BUDGET"] == 60.0
    assert s["Q_CLUSTER"]["timeout"] == 120


@pytest.mark.parametrize(
    ("budget", "timeout"), [("120", "120"), ("300", "120"), ("130", None)], ids=str
)
def test_a_tick_budget_at_or_over_the_task_timeout_is_refused(load, budget, timeout):
    env = {"OPS_JOB_TICK_BUDGET": budget}
    if timeout is not None:
        env["OPS_Q_TIMEOUT"] = timeout
    with pytest.raises(ImproperlyConfigured, match=r"OPS_JOB_TICK_BUDGET=.* must be under"):
        load(**env)
