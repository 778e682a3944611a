"""What ops is told by the apps built on it, at start-up: ops imports none of them.

The jobs app (in its ``AppConfig.ready()``) registers the audit values its rows carry (its
job types' names as actions, ``job`` as a kind), so the audit admin offers them as filters,
and the readiness endpoint's information about the jobs pump. The same pattern as
:mod:`ops.holds`; without registrations (ops on its own) there is simply nothing to add.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

_audit_values: dict[str, set[str]] = {}
_readiness_info: dict[str, Callable[[], dict]] = {}
_operations: set[str] = set()


def register_audit_values(field: str, values: Iterable[str]) -> None:
    """Values rows written by another app carry in the audit column ``field``."""
    _audit_values.setdefault(field, set()).update(values)


def audit_values(field: str) -> set[str]:
    """Every value registered for the audit column ``field``."""
    return set(_audit_values.get(field, ()))


def register_operations(names: Iterable[str]) -> None:
    """Operations another app offers (its job types), beside the primitives."""
    _operations.update(names)


def operations() -> list[str]:
    """Every operation a request may ask for: the primitives, then the registered ones."""
    return ["scale", "delete-pod", "delete-pvc", *sorted(_operations)]


def register_readiness_info(name: str, provider: Callable[[], dict]) -> None:
    """A piece of information ``/health/ready`` shows under ``info.<name>`` (never a reason
    to be unready). The provider is called only when the database answers."""
    _readiness_info[name] = provider


def readiness_info() -> dict[str, Callable[[], dict]]:
    """The registered providers by name."""
    return dict(_readiness_info)
