"""The request log: every API request, in the order answered, in RBAC terms.

Tests use it to assert exactly which calls an operation made (and that a Role allows each).
It keeps the newest `maxlen` records (100,000 by default), so a long-running simulator does
not grow without bound; `dropped` counts the ones it let go, and `clear()` empties it.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from typing import Any, overload

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
    #: The client's Audit-ID and Impersonate-User headers ("" when not sent).
    audit_id: str = field(default="", compare=False)
    impersonate_user: str = field(default="", compare=False)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


DEFAULT_MAXLEN = 100_000


class RequestLog:
    """A thread-safe, list-like record of the newest `maxlen` requests, oldest first."""

    def __init__(self, maxlen: int = DEFAULT_MAXLEN) -> None:
        if maxlen < 1:
            raise ValueError("the request log must keep at least one request")
        self._lock = threading.Lock()
        self._items: deque[RequestRecord] = deque(maxlen=maxlen)
        self.dropped = 0

    @property
    def maxlen(self) -> int:
        return self._items.maxlen or 0

    def append(self, record: RequestRecord) -> None:
        with self._lock:
            if len(self._items) == self._items.maxlen:
                self.dropped += 1
            self._items.append(record)

    def clear(self) -> None:
        """Forget every record (tests call it between phases; so does DELETE /_kubesim/requests)."""
        with self._lock:
            self._items.clear()
            self.dropped = 0

    def snapshot(self) -> list[RequestRecord]:
        with self._lock:
            return list(self._items)

    def __iter__(self) -> Iterator[RequestRecord]:
        return iter(self.snapshot())

    def __len__(self) -> int:
        with self._lock:
            return len(self._items)

    @overload
    def __getitem__(self, index: int) -> RequestRecord: ...

    @overload
    def __getitem__(self, index: slice) -> list[RequestRecord]: ...

    def __getitem__(self, index: int | slice) -> RequestRecord | list[RequestRecord]:
        with self._lock:
            if isinstance(index, slice):
                return list(self._items)[index]
            return self._items[index]

    def __repr__(self) -> str:
        return f"RequestLog({len(self)} requests, {self.dropped} dropped)"

    def mutations(self) -> list[RequestRecord]:
        """Records whose verb writes (create, update, patch, delete, deletecollection)."""
        return [r for r in self.snapshot() if r.verb in MUTATING_VERBS]

    def filter(self, **fields: Any) -> list[RequestRecord]:
        """Records whose attributes equal every given value, e.g. `filter(verb="patch")`."""
        return [r for r in self.snapshot() if all(getattr(r, k) == v for k, v in fields.items())]
