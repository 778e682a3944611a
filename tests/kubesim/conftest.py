"""Fixtures for the kubesim tests: typed API objects from the real client, raw HTTP, kubectl
and small manifests.

Every client is built from the simulator's kubeconfig into its own Configuration; nothing
touches the kubernetes package's global default configuration.
"""

from __future__ import annotations

import http.client
import json
import shutil
import subprocess
from collections.abc import Callable
from typing import Any

import pytest
from kubernetes import client
from kubesim_helpers import statefulset_yaml

from kubesim import KubeSim

KUBECTL = shutil.which("kubectl")


@pytest.fixture
def core(kubesim_client: Any) -> client.CoreV1Api:
    return client.CoreV1Api(kubesim_client)


@pytest.fixture
def apps(kubesim_client: Any) -> client.AppsV1Api:
    return client.AppsV1Api(kubesim_client)


class Raw:
    """Plain HTTP against the simulator, for bodies and headers the client would not send."""

    def __init__(self, sim: KubeSim) -> None:
        self.sim = sim

    def __call__(
        self,
        method: str,
        path: str,
        body: bytes | str | dict[str, Any] | list[Any] | None = None,
        headers: dict[str, str] | None = None,
        timeout: float = 10,
    ) -> tuple[int, dict[str, str], Any]:
        conn = http.client.HTTPConnection("127.0.0.1", self.sim.port, timeout=timeout)
        hdrs = dict(headers or {})
        if isinstance(body, (dict, list)):
            body = json.dumps(body)
            hdrs.setdefault("Content-Type", "application/json")
        try:
            conn.request(method, path, body=body, headers=hdrs)
            resp = conn.getresponse()
            data = resp.read()
            rheaders = {k.lower(): v for k, v in resp.getheaders()}
        finally:
            conn.close()
        try:
            decoded: Any = json.loads(data) if data else None
        except ValueError:
            decoded = data.decode("utf-8", "replace")
        return resp.status, rheaders, decoded


@pytest.fixture
def raw(kubesim: KubeSim) -> Raw:
    return Raw(kubesim)


@pytest.fixture
def kubectl(kubesim: KubeSim, tmp_path: Any) -> Callable[..., subprocess.CompletedProcess[str]]:
    """Run the real kubectl against the `kubesim` fixture with its own cache directory."""
    if KUBECTL is None:
        pytest.skip("kubectl is not installed")

    def run(
        *args: str, check: bool = True, timeout: float = 60
    ) -> subprocess.CompletedProcess[str]:
        cmd = [
            KUBECTL,
            "--kubeconfig",
            kubesim.kubeconfig_path,
            "--cache-dir",
            str(tmp_path / "kubectl-cache"),
            "--request-timeout=20s",
            *args,
        ]
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False)
        if check and proc.returncode != 0:
            raise AssertionError(f"kubectl {' '.join(args)} failed: {proc.stderr}{proc.stdout}")
        return proc

    return run


@pytest.fixture
def ready_statefulset(kubesim: KubeSim) -> Callable[..., dict[str, Any]]:
    """Apply a StatefulSet and wait until all its pods are Ready; returns the stored object."""

    def make(**kwargs: Any) -> dict[str, Any]:
        kubesim.apply(statefulset_yaml(**kwargs))
        name = kwargs.get("name", "pg")
        ns = kwargs.get("namespace", "default")
        replicas = kwargs.get("replicas", 3)

        def done() -> dict[str, Any] | None:
            sts = kubesim.get("statefulsets", ns, name)
            status = (sts or {}).get("status") or {}
            if status.get("readyReplicas", 0) == replicas and status.get("replicas") == replicas:
                return sts
            return None

        return kubesim.wait_for(done, timeout=10, message=f"statefulset {name} not ready")

    return make
