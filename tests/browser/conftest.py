"""Fixtures for the browser tests: the ops tests' settings overrides and kubesim cluster."""

from tests.ops.conftest import apiops, cluster  # noqa: F401 - fixtures, reused
