"""Throughput of kubesim as the official Python client sees it: GETs and scale PATCHes per second.

Run from the repository root:

    .venv/bin/python bench/kubesim_throughput.py [-n 2000] [--subprocess]

By default the simulator runs in this process, so client and server share one interpreter
(and one core's worth of GIL) — the conservative setting. `--subprocess` starts
`python -m kubesim` as its own process instead. The demo cluster is loaded and Ready first;
the PATCHes alternate the prod/postgres StatefulSet between 3 and 4 replicas, so every one is
a real change that the controllers react to (pod postgres-3 comes and goes meanwhile).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from kubernetes import client, config

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from kubesim import KubeSim  # noqa: E402

TARGETS = {"GET": 500.0, "PATCH (scale)": 200.0}


def _api(kubeconfig: str) -> client.ApiClient:
    cfg = client.Configuration()
    config.load_kube_config(config_file=kubeconfig, client_configuration=cfg)
    return client.ApiClient(cfg)


def _wait_ready(apps: client.AppsV1Api, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            sts = apps.read_namespaced_stateful_set("postgres", "prod")
            if (sts.status.ready_replicas or 0) == 3:
                return
        except client.ApiException:
            pass
        time.sleep(0.1)  # a benchmark set-up loop, not a test
    raise SystemExit("the demo StatefulSet did not become Ready")


def _rate(n: int, call: Callable[[int], object]) -> float:
    for i in range(min(50, n)):  # warm up connections and caches
        call(i)
    start = time.perf_counter()
    for i in range(n):
        call(i)
    return n / (time.perf_counter() - start)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=2000, help="requests per kind (default 2000)")
    parser.add_argument("--subprocess", action="store_true", help="run kubesim as its own process")
    args = parser.parse_args()

    tmp = tempfile.mkdtemp(prefix="kubesim-bench-")
    kubeconfig = os.path.join(tmp, "kubeconfig")
    demo = str(REPO / "kubesim" / "demo.yaml")
    proc = None
    sim = None
    if args.subprocess:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "kubesim",
                "--port",
                "0",
                "--kubeconfig",
                kubeconfig,
                "--load",
                demo,
                "--ready-delay",
                "0.05",
                "--termination-delay",
                "0.05",
            ],
            cwd=REPO,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert proc.stdout is not None
        line = proc.stdout.readline()
        if "listening" not in line:
            raise SystemExit(f"kubesim did not start: {line!r}")
        where = "kubesim in a separate process (python -m kubesim)"
    else:
        sim = KubeSim(
            ready_delay=0.05, termination_delay=0.05, kubeconfig_path=kubeconfig, load=[demo]
        )
        sim.start()
        where = "kubesim in this process (client and server share one interpreter)"
    try:
        with _api(kubeconfig) as api:
            apps = client.AppsV1Api(api)
            _wait_ready(apps)
            get_rate = _rate(
                args.n, lambda i: apps.read_namespaced_stateful_set("postgres", "prod")
            )
            patch_rate = _rate(
                args.n,
                lambda i: apps.patch_namespaced_stateful_set_scale(
                    "postgres", "prod", {"spec": {"replicas": 3 + i % 2}}
                ),
            )
    finally:
        if sim is not None:
            sim.stop()
        if proc is not None:
            proc.terminate()
            proc.wait(timeout=10)
    version = getattr(client, "__version__", "")
    print(f"kubesim throughput through the kubernetes Python client {version}".rstrip())
    print(f"setting: {where}; n={args.n} per kind; CPUs on this machine: {os.cpu_count()}")
    print(f"{'request':<16}{'requests/s':>12}{'target':>10}  verdict")
    for label, rate in (("GET", get_rate), ("PATCH (scale)", patch_rate)):
        target = TARGETS[label]
        verdict = "meets target" if rate >= target else "BELOW TARGET"
        print(f"{label:<16}{rate:>12.0f}{target:>10.0f}  {verdict}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
