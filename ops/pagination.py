"""Pagination of the audit list: keyset cursors, and a count that stays cheap on huge tables.

OFFSET pages get slower the deeper they go and an exact ``count(*)`` over millions of rows
costs a scan on every request. So pages are cursors on ``(ts, id)`` (constant cost at any
depth, stable while new rows arrive), and ``count`` is exact up to ``OPS_AUDIT_COUNT_CAP``
(an index-bounded ``LIMIT`` count); above it the planner's row estimate is given instead, and
``count_exact`` says which one the client got.

A page is read in two steps (:class:`IdsFirst`): the ids of its rows, which the indexes of
``ops_log`` answer without reading the table (each holds the filter columns, ``ts`` and
``id``), then those rows by primary key. When the count is exact, few rows match: the ids are
then collected through the filter index and sorted (:func:`sorted_without_index`), because
walking the newest-first index and discarding non-matching rows would read most of the table
before filling a page — the planner cannot know that a combination of filters is rare.
"""

from __future__ import annotations

import json
from datetime import timedelta

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import connections
from django.db.models import DateTimeField, ExpressionWrapper, F, QuerySet
from django.db.models.query import ModelIterable
from rest_framework.exceptions import NotFound
from rest_framework.pagination import CursorPagination
from rest_framework.response import Response

from ops.errors import InvalidQuery


def sorted_without_index(ordering: tuple[str, ...]) -> list:
    """``ordering`` with its first (time) field made an expression no index is sorted by, so
    PostgreSQL collects the matching rows through the filter indexes and sorts them."""
    first, *rest = ordering
    name = first.lstrip("-")
    shifted = ExpressionWrapper(F(name) + timedelta(0), output_field=DateTimeField())
    return [shifted.desc() if first.startswith("-") else shifted.asc(), *rest]


class IdsFirst:
    """Mixed into a queryset: a slice (DRF's page) reads the ids first, then the rows."""

    collect_and_sort = False

    def __getitem__(self, k):
        if not isinstance(k, slice) or self._iterable_class is not ModelIterable:
            return super().__getitem__(k)  # an item, or the id step itself
        ordering = tuple(self.query.order_by)
        ids = self.prefetch_related(None).values_list("pk", flat=True)
        if self.collect_and_sort and ordering:
            ids = ids.order_by(*sorted_without_index(ordering))
        page = list(ids[k])
        return list(self._rows(page)) if page else []

    def _clone(self):
        clone = super()._clone()
        clone.collect_and_sort = self.collect_and_sort
        return clone

    def _rows(self, ids: list) -> QuerySet:
        # The same queryset (its annotations, related rows and prefetches), narrowed to the
        # page's ids: PostgreSQL reads them by primary key.
        return self.filter(pk__in=ids)


_IDS_FIRST: dict[type, type] = {}


def ids_first(queryset: QuerySet, *, collect_and_sort: bool) -> QuerySet:
    """``queryset`` whose page is read ids first (see :class:`IdsFirst`)."""
    cls = type(queryset)
    if cls not in _IDS_FIRST:
        _IDS_FIRST[cls] = type(f"IdsFirst{cls.__name__}", (IdsFirst, cls), {})
    clone = queryset._chain()
    clone.__class__ = _IDS_FIRST[cls]
    clone.collect_and_sort = collect_and_sort
    return clone


def capped_count(queryset, cap: int) -> tuple[int, bool]:
    """``(count, exact)``: exact when at most ``cap`` rows match, else the planner's estimate."""
    bounded = queryset.order_by().values("pk")[: cap + 1].count()
    if bounded <= cap:
        return bounded, True
    sql, params = queryset.order_by().values("pk").query.sql_with_params()
    with connections[queryset.db].cursor() as cursor:
        cursor.execute(f"EXPLAIN (FORMAT JSON) {sql}", params)
        plan = cursor.fetchone()[0]
    if isinstance(plan, str):
        plan = json.loads(plan)
    estimate = int(plan[0]["Plan"]["Plan Rows"])
    return max(estimate, cap + 1), False


class AuditCursorPagination(CursorPagination):
    """Newest first; ``{count, count_exact, next, previous, results}``.

    Strict like every query parameter of the API: a ``page_size`` that is not an integer in
    1..``max_page_size`` and a cursor that is not one this API wrote (edited, cut, or from
    another list) are 400s, never a silent default or a database error.
    """

    ordering = ("-ts", "-id")
    page_size = 50
    page_size_query_param = "page_size"
    max_page_size = 500
    invalid_cursor_message = (
        "Invalid cursor: use the next or previous link of an earlier page as it is."
    )

    @classmethod
    def query_params(cls) -> frozenset[str]:
        """The query parameters this paginator reads."""
        return frozenset(p for p in (cls.cursor_query_param, cls.page_size_query_param) if p)

    def get_page_size(self, request) -> int:
        raw = request.query_params.get(self.page_size_query_param)
        if raw is None:
            return self.page_size
        if not (raw.isascii() and raw.isdigit() and 1 <= int(raw) <= self.max_page_size):
            problem = f"An integer from 1 to {self.max_page_size}."
            raise InvalidQuery({self.page_size_query_param: [problem]}, detail=problem)
        return int(raw)

    def decode_cursor(self, request):
        try:
            cursor = super().decode_cursor(request)
        except NotFound as e:
            raise self._invalid_cursor() from e
        if cursor is not None and cursor.position is not None:
            field = self._model._meta.get_field(self.ordering[0].lstrip("-"))
            try:
                if "\x00" in cursor.position:
                    raise ValidationError("NUL character")
                field.to_python(cursor.position)
            except ValidationError as e:
                raise self._invalid_cursor() from e
        return cursor

    def _invalid_cursor(self) -> InvalidQuery:
        return InvalidQuery(
            {self.cursor_query_param: [self.invalid_cursor_message]},
            detail=self.invalid_cursor_message,
        )

    def get_schema_operation_parameters(self, view):
        parameters = super().get_schema_operation_parameters(view)
        for parameter in parameters:
            if parameter["name"] == self.page_size_query_param:
                parameter["schema"].update(minimum=1, maximum=self.max_page_size)
        return parameters

    def paginate_queryset(self, queryset, request, view=None):
        self._model = queryset.model  # the cursor's position is a value of its ordering field
        self.count, self.count_exact = capped_count(queryset, settings.APIOPS["AUDIT_COUNT_CAP"])
        queryset = ids_first(queryset, collect_and_sort=self.count_exact)
        return super().paginate_queryset(queryset, request, view)

    def get_paginated_response(self, data):
        return Response(
            {
                "count": self.count,
                "count_exact": self.count_exact,
                "next": self.get_next_link(),
                "previous": self.get_previous_link(),
                "results": data,
            }
        )

    def get_paginated_response_schema(self, schema):
        base = super().get_paginated_response_schema(schema)
        base["properties"] = {
            "count": {"type": "integer", "example": 123},
            "count_exact": {"type": "boolean"},
            **base["properties"],
        }
        base["required"] = ["count", "count_exact", *base.get("required", [])]
        return base


class ApprovalCursorPagination(AuditCursorPagination):
    """Newest first, like the audit list."""

    ordering = ("-created_at", "-id")
