"""Fixtures for the deployment tests: a fake Vault on 127.0.0.1 and a closed port."""

from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest

from .fake_vault import FakeVault


@pytest.fixture
def vault() -> Iterator[FakeVault]:
    """A running fake Vault, stopped (and any hung request released) after the test."""
    server = FakeVault().start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def closed_port_url() -> str:
    """An http URL on 127.0.0.1 where nothing listens (connections are refused)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}"
