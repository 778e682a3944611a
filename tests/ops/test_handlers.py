"""The exception handler's rollback: an error marks the request transaction of a view that
has one, and leaves alone a transaction a view without one happens to run inside (a caller's,
or a test's)."""

from __future__ import annotations

from django.db import transaction
from django.test import RequestFactory
from django.urls import resolve

from ops.handlers import set_request_rollback
from tests.ops.conftest import DB

pytestmark = DB


def _request(path: str):
    request = RequestFactory().post(path)
    request.resolver_match = resolve(path)
    return request


def test_an_error_marks_the_request_transaction_of_a_view_that_has_one():
    request = _request("/ops/jobs/pg-rebuild")

    with transaction.atomic():
        set_request_rollback(request)
        marked = transaction.get_rollback()
        transaction.set_rollback(False)

    assert marked


def test_an_error_leaves_an_outer_transaction_alone_for_a_view_without_one():
    request = _request("/ops/namespaces/prod/statefulsets/postgres/scale")

    with transaction.atomic():
        set_request_rollback(request)
        marked = transaction.get_rollback()

    assert not marked
