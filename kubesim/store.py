"""Object storage with one global resourceVersion counter and a watch history.

One re-entrant lock guards everything (correctness first); a condition variable on that
lock wakes watchers, controllers and `KubeSim.wait_for` whenever anything is written, so
nobody polls. Stored objects are never mutated after they are stored: writers build a new
dict and `put` it, which lets readers serialise a stored object outside the lock.
"""

from __future__ import annotations

import bisect
import threading
from dataclasses import dataclass
from typing import Any

Key = tuple[str, str]  # (namespace, name); namespace "" for cluster-scoped objects


@dataclass(frozen=True)
class Event:
    """One change, as a watch reports it; `old` is the previous state (None for ADDED)."""

    rv: int
    type: str
    resource: str
    obj: dict[str, Any]
    old: dict[str, Any] | None


class Store:
    """All objects of all resource types, plus the event history watches replay."""

    def __init__(self, history_size: int = 20000) -> None:
        self.lock = threading.RLock()
        self.changed = threading.Condition(self.lock)
        self.rv = 0
        self.compacted_rv = 0
        self.history_size = history_size
        self._objects: dict[str, dict[Key, dict[str, Any]]] = {}
        self._sorted: dict[str, list[Key]] = {}  # sorted keys per resource, dropped on add/remove
        self._events: list[Event] = []
        self._event_rvs: list[int] = []

    # --- reads (callers hold or do not need the lock; results are read-only) -------------

    def get(self, resource: str, namespace: str, name: str) -> dict[str, Any] | None:
        with self.lock:
            return self._objects.get(resource, {}).get((namespace, name))

    def list(self, resource: str, namespace: str | None = None) -> list[dict[str, Any]]:
        """Objects of a type, optionally in one namespace, sorted by namespace then name."""
        with self.lock:
            objs = self._objects.get(resource, {})
            keys = self._sorted.get(resource)
            if keys is None:
                keys = self._sorted[resource] = sorted(objs)
            if namespace is None:
                return [objs[k] for k in keys]
            return [objs[k] for k in keys if k[0] == namespace]

    # --- writes --------------------------------------------------------------------------

    def _next_rv(self) -> int:
        self.rv += 1
        return self.rv

    def put(self, resource: str, obj: dict[str, Any]) -> dict[str, Any]:
        """Store `obj` (which the store now owns) under the next resourceVersion."""
        with self.lock:
            meta = obj["metadata"]
            key = (meta.get("namespace", ""), meta["name"])
            bucket = self._objects.setdefault(resource, {})
            old = bucket.get(key)
            if old is None:
                self._sorted.pop(resource, None)
            rv = self._next_rv()
            meta["resourceVersion"] = str(rv)
            bucket[key] = obj
            self._record(Event(rv, "MODIFIED" if old else "ADDED", resource, obj, old))
            return obj

    def remove(self, resource: str, namespace: str, name: str) -> dict[str, Any] | None:
        """Remove an object; the DELETED event carries its last state at a new version."""
        with self.lock:
            bucket = self._objects.get(resource, {})
            old = bucket.pop((namespace, name), None)
            if old is None:
                return None
            self._sorted.pop(resource, None)
            rv = self._next_rv()
            final = dict(old)
            final["metadata"] = dict(old["metadata"], resourceVersion=str(rv))
            self._record(Event(rv, "DELETED", resource, final, old))
            return final

    def _record(self, event: Event) -> None:
        self._events.append(event)
        self._event_rvs.append(event.rv)
        if len(self._events) > self.history_size:
            cut = len(self._events) - self.history_size // 2
            self.compacted_rv = self._event_rvs[cut - 1]
            del self._events[:cut]
            del self._event_rvs[:cut]
        self.changed.notify_all()

    def touch(self) -> None:
        """Wake every waiter without changing anything (settings changed, stopping...)."""
        with self.lock:
            self.changed.notify_all()

    # --- history -------------------------------------------------------------------------

    def events_after(self, rv: int) -> list[Event] | None:
        """Events newer than `rv`, or None when the history no longer reaches back that far."""
        with self.lock:
            if rv < self.compacted_rv:
                return None
            idx = bisect.bisect_right(self._event_rvs, rv)
            return self._events[idx:]

    def compact(self) -> int:
        """Forget the whole history, as etcd compaction does; returns the compacted version."""
        with self.lock:
            self.compacted_rv = self.rv
            self._events.clear()
            self._event_rvs.clear()
            self.changed.notify_all()
            return self.compacted_rv
