"""Who is asking: the actor every service call carries and every audit row names."""

from __future__ import annotations

import os
import pwd
from dataclasses import dataclass

ORIGIN_API = "api"
ORIGIN_CLI = "cli"
ORIGIN_JOB = "job"
ORIGIN_ADMIN = "admin"


@dataclass(frozen=True)
class Actor:
    """An authenticated caller.

    ``name`` is the API key's name (never a value the caller typed), ``source_ip`` where the
    request came from (``"local"`` for the CLI), ``namespaces`` the key's scope (None or empty:
    every allowed namespace), ``origin`` the door: ``"api"``, ``"cli"`` or ``"job"``,
    ``operations`` what the key may ask for.
    """

    name: str
    source_ip: str | None
    namespaces: tuple[str, ...] | None = None
    origin: str = ORIGIN_API
    key_prefix: str | None = None  # the API key used, when it is a row (not the bootstrap key)
    #: What the key may ask for (see :func:`ops.policy.operation_refusal`): operation names,
    #: ``all`` and ``approve``. None: no restriction (the bootstrap key, commands, job steps).
    operations: tuple[str, ...] | None = None

    @classmethod
    def for_cli(cls) -> Actor:
        """The actor of a management command: ``cli:<OS user>`` from ``local``."""
        return cls(name=f"cli:{os_user()}", source_ip="local", origin=ORIGIN_CLI)


def os_user() -> str:
    """The account this process runs as: the effective uid's name, else the uid's number.

    Not ``getpass.getuser()``: it believes ``LOGNAME``/``USER``/``LNAME``/``USERNAME`` first,
    so whoever runs a command could choose the actor of its audit rows.
    """
    uid = os.geteuid()
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:  # a uid without a passwd entry (e.g. a container's arbitrary uid)
        return str(uid)


def admin_actor(request) -> Actor:
    """The actor of something done in the admin: ``admin:<username>`` from the client's
    address."""
    from ops.client_ip import client_ip

    return Actor(
        name=f"admin:{request.user.get_username()}",
        source_ip=client_ip(request),
        origin=ORIGIN_ADMIN,
    )
