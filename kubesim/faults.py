"""Fault injection: rules that make matching requests fail, stall or misbehave.

A rule matches on HTTP method and a regular expression searched in the request path, fires
at most `times` times (or forever) and, when `probability` < 1, only on that share of
matching requests. What it does when it fires:

- `status`: answer that code with the real server's Status body (and `Retry-After`: for a
  429 it defaults to 1 second, as API Priority and Fairness sends; `retry_after=None` sends
  none, as the eviction API's 429 does); with `plain=True` the body is plain text instead,
  as the max-in-flight and APF filters answer a 429 before any handler runs:
  `Too many requests, please try again later.` (`text/plain; charset=utf-8`);
- `delay`: wait, then serve the request normally (combines with the others);
- `hang`: never answer (until the simulator stops, or for `hang` seconds if a number);
- `drop`: close the connection without any response (the request is not executed);
- `drop_after`: execute the request, then close the connection without sending the answer
  (the change is made but the client never hears of it: a response lost on the way back);
- watch faults, for watch requests only: `watch_close_after=k` ends the stream after k
  events, `watch_expire` sends the 410 Expired ERROR event, `watch_stall` sends nothing more.
"""

from __future__ import annotations

import itertools
import random
import re
import threading
from dataclasses import asdict, dataclass, field
from typing import Any

# `retry_after` when not given: 1 s for a 429 (every throttled answer carries it), else none.
DEFAULT = "default"
TOO_MANY_REQUESTS_TEXT = "Too many requests, please try again later."


@dataclass
class FaultRule:
    """One fault; `fired` counts how often it has fired."""

    id: int
    method: str | None
    path: str
    status: int | None = None
    retry_after: int | None = None
    message: str | None = None
    reason: str | None = None
    plain: bool = False
    delay: float = 0.0
    hang: bool | float = False
    drop: bool = False
    drop_after: bool = False
    watch_close_after: int | None = None
    watch_expire: bool = False
    watch_stall: bool = False
    times: int | None = None
    probability: float = 1.0
    fired: int = 0
    _pattern: re.Pattern[str] = field(default=re.compile(""), repr=False, compare=False)

    @property
    def for_watch_only(self) -> bool:
        return self.watch_close_after is not None or self.watch_expire or self.watch_stall

    @property
    def exhausted(self) -> bool:
        return self.times is not None and self.fired >= self.times

    def matches(self, method: str, path: str, is_watch: bool) -> bool:
        if self.method and self.method.upper() != method.upper():
            return False
        if self.for_watch_only and not is_watch:
            return False
        return bool(self._pattern.search(path))

    def as_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d.pop("_pattern", None)
        return d


_FIELDS = {
    "method",
    "path",
    "status",
    "retry_after",
    "message",
    "reason",
    "plain",
    "delay",
    "hang",
    "drop",
    "drop_after",
    "watch_close_after",
    "watch_expire",
    "watch_stall",
    "times",
    "probability",
}


class Faults:
    """The active fault rules of one simulator (thread-safe)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._rules: list[FaultRule] = []
        self._ids = itertools.count(1)

    def add(
        self,
        method: str | None = None,
        path: str = "",
        *,
        status: int | None = None,
        retry_after: int | str | None = DEFAULT,
        message: str | None = None,
        reason: str | None = None,
        plain: bool = False,
        delay: float = 0.0,
        hang: bool | float = False,
        drop: bool = False,
        drop_after: bool = False,
        watch_close_after: int | None = None,
        watch_expire: bool = False,
        watch_stall: bool = False,
        times: int | None = None,
        probability: float = 1.0,
    ) -> FaultRule:
        """Add a rule (see the module docstring); returns it so tests can read `fired`."""
        actions = [
            status is not None,
            bool(delay),
            bool(hang),
            drop,
            drop_after,
            watch_close_after is not None,
            watch_expire,
            watch_stall,
        ]
        if not any(actions):
            raise ValueError(
                "a fault needs an effect: status, delay, hang, drop, drop_after or a watch fault"
            )
        if drop_after and (status is not None or hang or drop):
            # Those answer (or drop) before the request is executed: drop_after would never act.
            raise ValueError(
                "drop_after executes the request; it cannot combine with status, hang or drop"
            )
        if status is not None and not 400 <= int(status) <= 599:
            raise ValueError(f"status must be an HTTP error code, not {status}")
        if not 0.0 <= probability <= 1.0:
            raise ValueError("probability must be between 0 and 1")
        if plain and status is None:
            raise ValueError("plain is the body of a status fault: give a status")
        if retry_after == DEFAULT:
            retry_after = 1 if status is not None and int(status) == 429 else None
        elif retry_after is not None:
            retry_after = int(retry_after)
            if retry_after < 0:
                raise ValueError("retry_after must be 0 or more seconds (None: no header)")
        rule = FaultRule(
            id=next(self._ids),
            method=method.upper() if method else None,
            path=path,
            status=int(status) if status is not None else None,
            retry_after=retry_after,
            message=message,
            reason=reason,
            plain=bool(plain),
            delay=float(delay),
            hang=hang,
            drop=drop,
            drop_after=drop_after,
            watch_close_after=watch_close_after,
            watch_expire=watch_expire,
            watch_stall=watch_stall,
            times=times,
            probability=probability,
            _pattern=re.compile(path),
        )
        with self._lock:
            self._rules.append(rule)
        return rule

    def add_from_dict(self, spec: dict[str, Any]) -> FaultRule:
        """`add` from a JSON body (the admin endpoint); unknown keys are a ValueError.
        A missing `retry_after` is the default; `null` means no Retry-After header."""
        unknown = set(spec) - _FIELDS
        if unknown:
            raise ValueError(f"unknown fault fields: {', '.join(sorted(unknown))}")
        return self.add(**spec)

    def remove(self, rule: FaultRule | int) -> bool:
        rid = rule.id if isinstance(rule, FaultRule) else rule
        with self._lock:
            before = len(self._rules)
            self._rules = [r for r in self._rules if r.id != rid]
            return len(self._rules) != before

    def clear(self) -> None:
        with self._lock:
            self._rules.clear()

    @property
    def rules(self) -> list[FaultRule]:
        with self._lock:
            return list(self._rules)

    def __len__(self) -> int:
        return len(self.rules)

    def fire(self, method: str, path: str, is_watch: bool) -> list[FaultRule]:
        """The rules that fire for this request, counting each firing."""
        fired: list[FaultRule] = []
        with self._lock:
            for rule in self._rules:
                if rule.exhausted or not rule.matches(method, path, is_watch):
                    continue
                if rule.probability < 1.0 and random.random() >= rule.probability:
                    continue
                rule.fired += 1
                fired.append(rule)
        return fired
