"""pytest fixtures for kubesim (enable with `pytest_plugins = ["kubesim.pytest_plugin"]`).

- `kubesim`: a fresh, started KubeSim per test with millisecond delays and only the built-in
  namespaces;
- `kubesim_demo`: the same with `kubesim/demo.yaml` loaded, all its pods Ready and the
  postgres pods labelled with their Patroni role (postgres-0 primary);
- `kubesim_client`: a `kubernetes.client.ApiClient` for the `kubesim` fixture's simulator,
  configured from its kubeconfig (never the global default configuration).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from .patroni import OPT_IN
from .sim import KubeSim

DEMO_YAML = Path(__file__).with_name("demo.yaml")
# The controllers wake on every change and timer; `tick` is only their safety-net period, so
# a long one keeps idle simulators (one per test, many per run) from burning CPU.
# `observe_delay`: the workload controllers act on a spec change 30 ms after it, so the first
# read after a scale still sees the old status (observedGeneration < generation), as against
# a real cluster, where the controller hears of the change through an informer.
FAST = {
    "ready_delay": 0.02,
    "termination_delay": 0.02,
    "tick": 0.5,
    "hpa_interval": 0.02,
    "observe_delay": 0.03,
    "snapshot_delay": 0.05,
}
DEMO_PODS = 12  # 3 postgres + 2 web in prod and in staging, 2 coredns


def _all_demo_pods_ready(sim: KubeSim) -> bool:
    pods = sim.list("pods")
    if len(pods) != DEMO_PODS:
        return False
    # The namespaces whose Patroni scope opted in to the emulated labelling (prod's; staging's
    # set carries no primary signal, so its pods never get a role).
    patroni = {
        cm["metadata"]["namespace"]
        for cm in sim.list("configmaps")
        if (cm["metadata"].get("annotations") or {}).get(OPT_IN) == "true"
    }
    return all(
        any(
            c.get("type") == "Ready" and c.get("status") == "True"
            for c in p["status"].get("conditions", [])
        )
        # ... and the emulated Patroni has labelled its members (kubesim/patroni.py), so no
        # label write lands after the fixture hands the cluster over.
        and (
            "cluster-name" not in p["metadata"]["labels"]
            or p["metadata"]["namespace"] not in patroni
            or "role" in p["metadata"]["labels"]
        )
        for p in pods
    )


@pytest.fixture
def kubesim() -> Iterator[KubeSim]:
    """A started simulator with short delays; stopped after the test."""
    with KubeSim(**FAST) as sim:
        yield sim


@pytest.fixture
def kubesim_demo() -> Iterator[KubeSim]:
    """A started simulator serving the demo cluster, every pod Ready."""
    with KubeSim(**FAST) as sim:
        sim.load_file(DEMO_YAML)
        sim.wait_for(lambda: _all_demo_pods_ready(sim), timeout=20, message="demo pods not Ready")
        yield sim


@pytest.fixture
def kubesim_client(kubesim: KubeSim) -> Iterator[Any]:
    """An ApiClient bound to the `kubesim` fixture's simulator."""
    api_client = kubesim.api_client()
    try:
        yield api_client
    finally:
        api_client.close()
