"""Rendering answers: ``json`` (the API's own JSON), ``yaml`` (the same data, block style) and
``table`` (columns chosen per command)."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Sequence

import yaml

FORMATS = ("table", "json", "yaml")


def emit(data: object, fmt: str, table: Callable[[object], str]) -> None:
    """Print ``data`` in ``fmt``; ``table`` renders it for people."""
    if fmt == "json":
        text = json.dumps(data, indent=2)
    elif fmt == "yaml":
        text = yaml.safe_dump(data, default_flow_style=False, sort_keys=False).rstrip("\n")
    else:
        text = table(data)
    if text:
        print(text)
    sys.stdout.flush()


def cell(value: object) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, list | dict):
        return json.dumps(value) if isinstance(value, dict) else ",".join(map(str, value))
    return str(value)


def columns(rows: Sequence[Sequence[object]], headers: Sequence[str]) -> str:
    """A plain aligned table, headers in capitals."""
    texts = [[cell(v) for v in row] for row in rows]
    widths = [len(h) for h in headers]
    for row in texts:
        widths = [max(w, len(v)) for w, v in zip(widths, row, strict=True)]
    lines = [headers, *texts]
    return "\n".join(
        "  ".join(v.ljust(w) for v, w in zip(line, widths, strict=True)).rstrip() for line in lines
    )


def fields(data: dict, keys: Sequence[str] | None = None) -> str:
    """``key: value`` lines for one object."""
    keys = keys or list(data)
    width = max((len(k) for k in keys), default=0)
    return "\n".join(f"{(k + ':').ljust(width + 1)} {cell(data.get(k))}" for k in keys)
