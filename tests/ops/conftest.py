"""Fixtures for the ops tests: an API client with a key, the gateway pointed at kubesim,
settings overrides, and the audit rows (read through the audit alias, where they are written)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

import pytest
from django.core.signals import request_finished, request_started
from django.db import close_old_connections, connections
from rest_framework.test import APIClient

from ops import k8s
from ops.models import OpsLog

BOOTSTRAP_KEY = "test-bootstrap-key-0123456789abcdef"
CLIENT_IP = "203.0.113.7"

# Every test that writes or reads the audit log needs both aliases.
DB = pytest.mark.django_db(databases=["default", "audit"])
TRANSACTIONAL_DB = pytest.mark.django_db(databases=["default", "audit"], transaction=True)


@pytest.fixture
def apiops(settings) -> Callable[..., None]:
    """Override entries of ``settings.APIOPS`` for one test: ``apiops(MAX_REPLICAS=5)``."""

    def override(**values) -> None:
        settings.APIOPS = {**settings.APIOPS, **values}

    override(
        API_KEY=BOOTSTRAP_KEY,
        API_KEY_ACTOR="bootstrap",
        ALLOWED_NAMESPACES=("prod", "staging"),
        MAX_REPLICAS=100,
        TRUSTED_PROXIES=(),
        AUTH_FAILURE_LIMIT=1000,
        # Fast retries, short timeouts: the behaviour is the same, the suite stays quick. The
        # timeout is only reached by a hang (whose tests set their own), so it leaves room for
        # an in-process kubesim on a machine busy with parallel test workers.
        K8S_TIMEOUT=5.0,
        K8S_RETRIES=3,
        K8S_BACKOFF=0.01,
        K8S_RETRY_MAX_WAIT=0.05,
        K8S_PING_TIMEOUT=1.0,
    )
    return override


def _point_gateway_at(sim, apiops) -> None:
    apiops(KUBECONFIG=sim.kubeconfig_path)
    k8s.reset_client()


@pytest.fixture
def cluster(kubesim_demo, apiops) -> Iterator:
    """kubesim with demo.yaml, the gateway pointed at it, and an empty request log."""
    _point_gateway_at(kubesim_demo, apiops)
    kubesim_demo.requests.clear()
    yield kubesim_demo
    k8s.reset_client()


@pytest.fixture
def empty_cluster(kubesim, apiops) -> Iterator:
    """kubesim with nothing loaded, the gateway pointed at it."""
    _point_gateway_at(kubesim, apiops)
    yield kubesim
    k8s.reset_client()


@pytest.fixture
def in_test_transaction() -> Iterator[None]:
    """Requests sent to the WSGI application itself keep the test's database connection, as
    Django's test client does: no closing of "old" connections when a request starts or
    finishes."""
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    yield
    request_started.connect(close_old_connections)
    request_finished.connect(close_old_connections)


@pytest.fixture
def api(apiops) -> APIClient:
    """A DRF test client sending the bootstrap key from CLIENT_IP."""
    client = APIClient(REMOTE_ADDR=CLIENT_IP)
    client.credentials(HTTP_X_API_KEY=BOOTSTRAP_KEY)
    return client


@pytest.fixture
def anon(apiops) -> APIClient:
    """A DRF test client without a key."""
    return APIClient(REMOTE_ADDR=CLIENT_IP)


def audit_log() -> list[OpsLog]:
    """Every audit row, oldest first, read through the alias they are written through."""
    return list(OpsLog.objects.using("audit").order_by("id"))


def mutations(sim) -> list:
    """The requests kubesim recorded that change something."""
    return list(sim.requests.mutations())


def _pointed_at_a_missing_database(alias: str) -> Iterator[None]:
    """Point the connection ``alias`` at a database that does not exist (a real connect
    failure) for the fixture's test, then back."""
    conn = connections[alias]
    conn.close()
    saved = conn.settings_dict["NAME"]
    conn.settings_dict["NAME"] = f"apiops_{alias}_database_is_gone"
    yield
    conn.close()
    conn.settings_dict["NAME"] = saved


@pytest.fixture
def dead_audit_db() -> Iterator[None]:
    """The audit connection fails to connect; the request connection works.

    Needs a transactional test: the audit connection must not be inside the test's wrapping
    transaction when it is closed and re-pointed.
    """
    yield from _pointed_at_a_missing_database("audit")


@pytest.fixture
def dead_default_db() -> Iterator[None]:
    """The request (default) connection fails to connect; the audit connection works."""
    yield from _pointed_at_a_missing_database("default")


@pytest.fixture
def supervisor():
    """A ``make run`` supervisor whose children are all stopped after the test."""
    from apiops_site import run

    sup = run.Supervisor()
    yield sup
    sup.stop_all()


@contextmanager
def audit_triggers_off(alias: str = "audit") -> Iterator[None]:
    """Within the block, ``alias``'s connection writes ``ops_log`` as a PostgreSQL superuser
    with the audit triggers off (``session_replication_role = replica``): for tests that age
    or rewrite finished rows, which the application itself cannot."""
    with connections[alias].cursor() as cursor:
        cursor.execute("SET session_replication_role = replica")
    try:
        yield
    finally:
        with connections[alias].cursor() as cursor:
            cursor.execute("SET session_replication_role = origin")
