"""Strict query parameters: an unknown or repeated one is a 400 naming it, on every endpoint.

A misspelt filter (``?namspace=prod``) silently ignored would answer every row as if it had
matched; a parameter given twice (``?page_size=5&page_size=6``) leaves the caller guessing
which one counted. Each API view mixes in :class:`StrictQueryParams` and declares what it
takes; the filters and the paginator of a list add theirs. The check runs after
authentication, so a caller without a key gets its 401 first.
"""

from __future__ import annotations

from rest_framework.settings import api_settings

from ops.errors import InvalidQuery


def query_problems(params, allowed: frozenset[str]) -> dict[str, list[str]]:
    """The field errors of a query string (a ``QueryDict``): unknown and repeated names."""
    problems: dict[str, list[str]] = {}
    for name in params:
        shown = name[:100]
        if name not in allowed:
            problems[shown] = ["Unknown query parameter."]
        elif len(params.getlist(name)) > 1:
            problems[shown] = ["Given more than once; give it once."]
        elif "\x00" in params[name]:
            problems[shown] = ["Must not contain NUL characters."]
    return problems


def query_error(problems: dict[str, list[str]], allowed: frozenset[str]) -> InvalidQuery:
    """The 400 for ``problems``: its detail names each parameter and what the endpoint takes."""
    unknown = [n for n, msgs in problems.items() if msgs[0].startswith("Unknown")]
    repeated = [n for n, msgs in problems.items() if msgs[0].startswith("Given")]
    other = [n for n in problems if n not in unknown and n not in repeated]
    parts = []
    if unknown:
        known = ", ".join(sorted(allowed - {api_settings.URL_FORMAT_OVERRIDE})) or "none"
        parts.append(f"Unknown query parameter {_names(unknown)} (this endpoint takes: {known}).")
    if repeated:
        parts.append(f"Query parameter {_names(repeated)} given more than once.")
    if other:
        parts.append(f"Query parameter {_names(other)} holds a NUL character.")
    return InvalidQuery(problems, detail=" ".join(parts))


def _names(names: list[str]) -> str:
    return ", ".join(repr(n) for n in names)


class StrictQueryParams:
    """Mixin for DRF views: refuse unknown and repeated query parameters with a 400.

    ``query_params`` names what the view takes on every action; a list action adds its
    filterset's filters and its paginator's parameters. DRF's ``format`` (a renderer override
    such as ``?format=json``, as an ``Accept`` header would say) is always allowed.
    """

    query_params: tuple[str, ...] = ()

    def allowed_query_params(self) -> frozenset[str]:
        """Every query parameter this request's action takes."""
        names = {*self.query_params}
        if api_settings.URL_FORMAT_OVERRIDE:
            names.add(api_settings.URL_FORMAT_OVERRIDE)
        if getattr(self, "action", "list") == "list":
            filterset = getattr(self, "filterset_class", None)
            if filterset is not None:
                names.update(filterset.base_filters)
            paginator = getattr(self, "pagination_class", None)
            if paginator is not None:
                names.update(paginator.query_params())
        return frozenset(names)

    def initial(self, request, *args, **kwargs):
        """DRF's checks (authentication first), then the query string."""
        super().initial(request, *args, **kwargs)
        allowed = self.allowed_query_params()
        problems = query_problems(request.query_params, allowed)
        if problems:
            raise query_error(problems, allowed)
