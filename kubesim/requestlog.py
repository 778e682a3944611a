"""The request log: every API request, in the order answered, in RBAC terms.

Tests use it to assert exactly which calls an operation made (and that a Role allows each).
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from typing import Any

MUTATING_VERBS = ("create", "update", "patch", "delete", "deletecollection")


@dataclass(frozen=True)
class RequestRecord:
    """One request. `status` is 0 when no response was sent (hang, drop, broken connection)."""

    method: str
    path: str
    query: dict[str, str]
    verb: str
    resource: str
    subresource: str
    namespace: str
    name: str
    status: int
    api_group: str
    content_type: str = ""
    user_agent: str = ""
    time: float = field(default=0.0, compare=False)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


class RequestLog:
    """A thread-safe, list-like record of requests."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._items: list[RequestRecord] = []

    def append(self, record: RequestRecord) -> None:
        with self._lock:
            self._items.append(record)

    def clear(self) -> None:
        with self._lock:
            self._items.clear()

    def snapshot(self) -> list[RequestRecord]:
        with self._lock:
            return list(self._items)

    def __iter__(self) -> Iterator[RequestRecord]:
        return iter(self.snapshot())

    def __len__(self) -> int:
        with self._lock:
            return len(self._items)

    def __getitem__(self, index: int) -> RequestRecord:
        with self._lock:
            return self._items[index]

    def __repr__(self) -> str:
        return f"RequestLog({len(self)} requests)"

    def mutations(self) -> list[RequestRecord]:
        """Records whose verb writes (create, update, patch, delete, deletecollection)."""
        return [r for r in self.snapshot() if r.verb in MUTATING_VERBS]

    def filter(self, **fields: Any) -> list[RequestRecord]:
        """Records whose attributes equal every given value, e.g. `filter(verb="patch")`."""
        return [r for r in self.snapshot() if all(getattr(r, k) == v for k, v in fields.items())]
