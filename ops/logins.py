"""Admin logins as audit rows: each success, failure and lockout is an ``ops_log`` row
(action ``login`` / ``lockout``, kind ``admin_session``, the username as the object).

A failure names no actor (nobody was authenticated: the username is only what was typed),
like a refused API key. The throttle itself is django-axes'; :func:`lockout_record` writes
the row of its ``user_locked_out`` signal. Receivers are connected in ``OpsConfig.ready``.
"""

from __future__ import annotations

from ops.audit import Target, record
from ops.client_ip import client_ip
from ops.models import OpsLogOrigin, OpsLogStatus

KIND_SESSION = "admin_session"
ACTION_LOGIN = "login"
ACTION_LOCKOUT = "lockout"
#: The dispatch_uid of the user_logged_in receiver.
LOGGED_IN_UID = "ops.logins.logged_in"


def _username(value) -> str:
    return str(value or "")[:150]


def login_record(*, request, username: str) -> None:
    """A successful admin login."""
    record(
        actor_name=f"admin:{_username(username)}",
        source_ip=client_ip(request) if request is not None else None,
        origin=OpsLogOrigin.ADMIN,
        target=Target(ACTION_LOGIN, KIND_SESSION, "", _username(username)),
        status=OpsLogStatus.SUCCESS,
        http_status=302,
    )


def login_failure_record(*, request, username: str | None, locked: bool) -> None:
    """A refused admin login (a wrong password, or a try while locked out: ``locked``)."""
    record(
        actor_name=None,
        source_ip=client_ip(request) if request is not None else None,
        origin=OpsLogOrigin.ADMIN,
        target=Target(ACTION_LOGIN, KIND_SESSION, "", _username(username)),
        status=OpsLogStatus.DENIED,
        code="locked_out" if locked else "login_failed",
        error_message=(
            "too many failed logins: locked out" if locked else "wrong username or password"
        ),
        http_status=429 if locked else 200,
    )


def lockout_record(*, request, username: str | None) -> None:
    """django-axes has just locked ``username`` at this address out."""
    record(
        actor_name=None,
        source_ip=client_ip(request) if request is not None else None,
        origin=OpsLogOrigin.ADMIN,
        target=Target(ACTION_LOCKOUT, KIND_SESSION, "", _username(username)),
        status=OpsLogStatus.DENIED,
        code="locked_out",
        error_message="too many failed logins: locked out",
        http_status=429,
    )


def on_logged_in(sender, request, user, **kwargs) -> None:
    login_record(request=request, username=user.get_username())


def on_login_failed(sender, credentials, request=None, **kwargs) -> None:
    locked = bool(getattr(request, "axes_locked_out", False))
    login_failure_record(request=request, username=credentials.get("username"), locked=locked)


def on_locked_out(sender, request, username, ip_address, **kwargs) -> None:
    lockout_record(request=request, username=username)
