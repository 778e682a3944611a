"""`python -m kubesim`: serves until a signal, writes a kubeconfig pointing at itself, loads
manifests at start, and stops cleanly on SIGTERM."""

from __future__ import annotations

import http.client
import json
import signal
import subprocess
import sys
from pathlib import Path

import yaml
from kubernetes import client, config

REPO = Path(__file__).resolve().parents[2]


def test_cli_serves_the_loaded_manifests_and_stops_on_sigterm(tmp_path):
    kubeconfig = tmp_path / "nested" / "kubeconfig"
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "kubesim",
            "--port",
            "0",
            "--kubeconfig",
            str(kubeconfig),
            "--load",
            str(REPO / "kubesim" / "demo.yaml"),
            "--ready-delay",
            "0.05",
            "--termination-delay",
            "0.05",
            "--request-log-size",
            "1",
        ],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        line = proc.stdout.readline().strip()
        assert line.startswith("kubesim listening on http://127.0.0.1:")
        url = line.rsplit(" ", 1)[1]
        doc = yaml.safe_load(kubeconfig.read_text())
        assert doc["clusters"][0]["cluster"]["server"] == url
        cfg = client.Configuration()
        config.load_kube_config(config_file=str(kubeconfig), client_configuration=cfg)
        with client.ApiClient(cfg) as api:
            sts = client.AppsV1Api(api).read_namespaced_stateful_set("postgres", "staging")
            assert sts.spec.replicas == 3
            assert {n.metadata.name for n in client.CoreV1Api(api).list_namespace().items} >= {
                "prod",
                "staging",
                "kube-system",
            }
        conn = http.client.HTTPConnection(url.removeprefix("http://"), timeout=10)
        conn.request("GET", "/_kubesim/requests")
        logged = json.load(conn.getresponse())["items"]
        assert [(r["verb"], r["resource"]) for r in logged] == [("list", "namespaces")]
        conn.request("POST", "/_kubesim/delays", body=b"{}")
        assert json.load(conn.getresponse())["observe_delay"] == 0.1  # the CLI's default
        conn.close()
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=15)
        assert proc.returncode == 0, err
        assert "kubesim stopped" in out
        assert "Traceback" not in err
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()


def test_cli_refuses_an_invalid_manifest(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("apiVersion: v1\nkind: Namespace\nmetadata: {name: Bad_Name}\n")
    proc = subprocess.run(
        [sys.executable, "-m", "kubesim", "--kubeconfig", str(tmp_path / "kc"), "--load", str(bad)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert proc.returncode == 2
    assert 'Namespace "Bad_Name" is invalid' in proc.stderr
