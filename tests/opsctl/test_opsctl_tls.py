"""TLS: certificates are verified by default (an unknown CA is exit 6, a TLS error), and a
context's ``--ca-bundle`` makes a private CA's server trusted. The server is a throwaway HTTPS
server answering whoami, with a self-signed certificate for 127.0.0.1 made by openssl."""

from __future__ import annotations

import json
import shutil
import ssl
import subprocess
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from tests.opsctl.conftest import opsctl_env, run_opsctl

WHOAMI = {"name": "tls-tester", "namespaces": None, "operations": ["scale"], "key": None}


@pytest.fixture
def https_api(tmp_path) -> Iterator[tuple[str, Path]]:
    if not shutil.which("openssl"):
        pytest.skip("openssl is not installed: no certificate to serve")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        [
            *("openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1"),
            *("-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1"),
            *("-keyout", str(key), "-out", str(cert)),
        ],
        capture_output=True,
        check=True,
    )

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            raw = json.dumps(WHOAMI).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(raw)))
            self.end_headers()
            self.wfile.write(raw)

        def log_message(self, *args) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"https://127.0.0.1:{server.server_address[1]}", cert
    server.shutdown()
    thread.join()


def test_an_unknown_certificate_is_refused_and_a_ca_bundle_makes_it_trusted(https_api, tmp_path):
    url, cert = https_api
    env = opsctl_env(tmp_path / "home", K="k" * 20)
    run_opsctl("config", "set-context", "plain", "--server", url, "--key-env", "K", env=env)
    run_opsctl(
        *("config", "set-context", "private-ca", "--server", url, "--key-env", "K"),
        *("--ca-bundle", str(cert)),
        env=env,
    )

    unverified = run_opsctl("--context", "plain", "whoami", env=env)
    verified = run_opsctl("--context", "private-ca", "-o", "json", "whoami", env=env)

    assert unverified.returncode == 6
    assert "[tls_error]" in unverified.stderr
    assert verified.returncode == 0, verified.stderr
    assert json.loads(verified.stdout)["name"] == "tls-tester"
