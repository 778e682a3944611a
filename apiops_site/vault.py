"""ApiOps's secrets from HashiCorp Vault (KV v2), read with hvac at startup.

In the cluster, Vault Agent usually renders the secrets as files in ``OPS_SECRETS_DIR`` and
this module is not needed. It is the fallback for pods without the injector: the process
itself logs in to Vault (Kubernetes auth with its service-account token, or a plain
``VAULT_TOKEN``) and reads ``secret/ops-api`` (``api_key``, optionally ``secret_key``) and
``secret/ops-api-db`` (``db_url``).

The module imports nothing from Django so settings can call it before Django is configured.
Every failure becomes one :class:`VaultError` whose message names the Vault address, the path
and what went wrong, and never a token, a JWT or a secret value: startup errors end up in
logs, and logs are read by more people than secrets are.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

if TYPE_CHECKING:
    import hvac.exceptions


log = logging.getLogger(__name__)
T = TypeVar("T")

DEFAULT_K8S_TOKEN_PATH = "/var/run/secrets/kubernetes.io/serviceaccount/token"  # noqa: S105 - a path
DEFAULT_K8S_AUTH_MOUNT = "kubernetes"
DEFAULT_KV_MOUNT = "secret"
DEFAULT_TIMEOUT_SECONDS = 5.0
REDACTED = "[redacted]"


@dataclass(frozen=True)
class VaultField:
    """One value ApiOps reads: the KV v2 secret path, the key inside it, the name we return."""

    path: str
    key: str
    name: str
    required: bool = True


# The contract (SPEC "Configuration"): api_key in secret/ops-api, db_url in secret/ops-api-db.
# Django's own secret key may sit beside the API key; it is optional here because it can also
# come from a file or the environment.
FIELDS: tuple[VaultField, ...] = (
    VaultField(path="ops-api", key="api_key", name="api_key"),
    VaultField(path="ops-api", key="secret_key", name="secret_key", required=False),
    VaultField(path="ops-api-db", key="db_url", name="db_url"),
    # The audit checkpoints' Ed25519 private key (PEM), optional: only audit_checkpoint signs.
    VaultField(path="ops-api", key="audit_signing_key", name="audit_signing_key", required=False),
)


class VaultError(RuntimeError):
    """Vault could not give ApiOps its secrets.

    The message is safe to log: it names the Vault address and path, never credentials or
    secret values.
    """


@dataclass(frozen=True)
class VaultSettings:
    """How to reach Vault, read from the environment mapping in one place."""

    addr: str
    role: str
    token: str = field(repr=False)
    token_path: str
    auth_mount: str
    kv_mount: str
    timeout: float
    verify: bool | str
    namespace: str | None

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> VaultSettings:
        """Parse ``VAULT_*`` variables; raises VaultError on a malformed timeout."""
        raw_timeout = env.get("VAULT_TIMEOUT", "").strip()
        try:
            timeout = float(raw_timeout) if raw_timeout else DEFAULT_TIMEOUT_SECONDS
        except ValueError:
            raise VaultError(
                f"VAULT_TIMEOUT must be a number of seconds, not {raw_timeout!r}"
            ) from None
        if timeout <= 0:
            raise VaultError(f"VAULT_TIMEOUT must be positive, not {raw_timeout!r}")
        return cls(
            addr=env.get("VAULT_ADDR", "").strip().rstrip("/"),
            role=env.get("VAULT_ROLE", "").strip(),
            token=env.get("VAULT_TOKEN", "").strip(),
            token_path=env.get("VAULT_K8S_TOKEN_PATH", "").strip() or DEFAULT_K8S_TOKEN_PATH,
            auth_mount=env.get("VAULT_K8S_AUTH_MOUNT", "").strip() or DEFAULT_K8S_AUTH_MOUNT,
            kv_mount=env.get("VAULT_KV_MOUNT", "").strip() or DEFAULT_KV_MOUNT,
            timeout=timeout,
            # VAULT_CACERT is the Vault CLI's own variable for a private CA bundle.
            verify=env.get("VAULT_CACERT", "").strip() or True,
            namespace=env.get("VAULT_NAMESPACE", "").strip() or None,
        )


def vault_configured(env: Mapping[str, str]) -> bool:
    """True when the environment asks for Vault (``VAULT_ADDR`` is set)."""
    return bool(env.get("VAULT_ADDR", "").strip())


def read_vault_secrets(env: Mapping[str, str]) -> dict[str, str]:
    """Log in to Vault and return ``{"api_key", "db_url"}`` (plus ``secret_key`` if stored).

    Returns an empty dict when ``VAULT_ADDR`` is not set, so callers can fall through to the
    environment. With ``VAULT_ROLE`` it uses Kubernetes auth with the service-account token
    (``VAULT_K8S_TOKEN_PATH``), else ``VAULT_TOKEN``. Each HTTP call has a timeout
    (``VAULT_TIMEOUT``, default 5 s). Any failure raises :class:`VaultError`.
    """
    if not vault_configured(env):
        return {}
    cfg = VaultSettings.from_env(env)
    reader = _Reader(cfg)
    reader.authenticate()
    values: dict[str, str] = {}
    secrets_by_path: dict[str, dict[str, object]] = {}
    for spec in FIELDS:
        if spec.path not in secrets_by_path:
            secrets_by_path[spec.path] = reader.read_kv(spec.path)
        data = secrets_by_path[spec.path]
        value = data.get(spec.key)
        if value is None or value == "":
            if spec.required:
                raise VaultError(
                    f"Vault at {cfg.addr}: secret {cfg.kv_mount}/{spec.path} "
                    f"has no non-empty key {spec.key!r}"
                )
            continue
        if not isinstance(value, str):
            raise VaultError(
                f"Vault at {cfg.addr}: key {spec.key!r} of secret {cfg.kv_mount}/{spec.path} "
                f"is a {type(value).__name__}, not a string"
            )
        reader.remember_secret(value)
        values[spec.name] = value
    log.info(
        "read %s from Vault at %s (%s)",
        ", ".join(sorted(values)),
        cfg.addr,
        ", ".join(f"{cfg.kv_mount}/{path}" for path in secrets_by_path),
    )
    return values


class _Reader:
    """One login and a few KV reads against one Vault, turning every failure into VaultError."""

    def __init__(self, cfg: VaultSettings) -> None:
        # Imported here, not at the top: hvac and requests cost every process (each
        # manage.py command) tens of milliseconds, and most never talk to Vault.
        import hvac

        self.cfg = cfg
        self._sensitive: list[str] = []
        # token="" (not None) stops hvac from reading VAULT_TOKEN or ~/.vault-token behind
        # our back: the mapping we were given is the only source of configuration.
        self.client = hvac.Client(
            url=cfg.addr,
            token="",
            timeout=cfg.timeout,
            verify=cfg.verify,
            namespace=cfg.namespace,
        )

    def remember_secret(self, value: str) -> None:
        """Scrub this value from any later error message."""
        if value:
            self._sensitive.append(value)

    def authenticate(self) -> None:
        """Kubernetes auth when VAULT_ROLE is set, else the given VAULT_TOKEN."""
        cfg = self.cfg
        if cfg.role:
            jwt = self._service_account_token()
            self.remember_secret(jwt)
            where = f"login at auth/{cfg.auth_mount} as role {cfg.role!r}"
            response = self._call(
                where,
                lambda: self.client.auth.kubernetes.login(
                    role=cfg.role, jwt=jwt, mount_point=cfg.auth_mount
                ),
            )
            # hvac has already stored auth.client_token on the adapter; check it exists so a
            # malformed answer is reported here, not as a confusing 403 on the first read.
            token = _dig(response, "auth", "client_token")
            if not isinstance(token, str) or not token:
                raise VaultError(f"Vault at {cfg.addr}: {where} answered without auth.client_token")
            self.remember_secret(token)
            log.debug("logged in to Vault at %s with Kubernetes auth (role %s)", cfg.addr, cfg.role)
        elif cfg.token:
            self.remember_secret(cfg.token)
            self.client.token = cfg.token
            log.debug("using VAULT_TOKEN for Vault at %s", cfg.addr)
        else:
            raise VaultError(
                f"VAULT_ADDR is set ({cfg.addr}) but neither VAULT_ROLE (Kubernetes auth) "
                "nor VAULT_TOKEN is"
            )

    def read_kv(self, path: str) -> dict[str, object]:
        """The ``data.data`` map of the latest version of a KV v2 secret."""
        where = f"reading {self.cfg.kv_mount}/{path} (KV v2)"
        response = self._call(
            where,
            lambda: self.client.secrets.kv.v2.read_secret_version(
                path=path, mount_point=self.cfg.kv_mount, raise_on_deleted_version=True
            ),
        )
        data = _dig(response, "data", "data")
        if not isinstance(data, dict):
            raise VaultError(
                f"Vault at {self.cfg.addr}: {where} answered without a data.data map "
                "(is the mount KV version 2?)"
            )
        return data

    def _service_account_token(self) -> str:
        path = Path(self.cfg.token_path)
        try:
            jwt = path.read_text(encoding="utf-8").strip()
        except OSError as e:
            raise VaultError(
                f"Vault at {self.cfg.addr}: cannot read the service-account token at {path}: "
                f"{e.strerror or type(e).__name__}"
            ) from None
        if not jwt:
            raise VaultError(
                f"Vault at {self.cfg.addr}: the service-account token at {path} is empty"
            )
        return jwt

    def _call(self, where: str, call: Callable[[], T]) -> T:
        """Run one hvac call; map Vault's answers and transport failures to VaultError."""
        import hvac.exceptions
        import requests

        addr = self.cfg.addr
        try:
            return call()
        except hvac.exceptions.VaultDown as e:
            message = f"Vault at {addr} is sealed or unavailable (HTTP 503) while {where}"
            raise VaultError(self._with_errors(message, e)) from None
        except hvac.exceptions.Forbidden as e:
            message = f"Vault at {addr} denied {where} (HTTP 403)"
            raise VaultError(self._with_errors(message, e)) from None
        except hvac.exceptions.Unauthorized as e:
            message = f"Vault at {addr} refused the credentials while {where} (HTTP 401)"
            raise VaultError(self._with_errors(message, e)) from None
        except hvac.exceptions.InvalidPath as e:
            message = f"Vault at {addr} has no such path while {where} (HTTP 404)"
            raise VaultError(self._with_errors(message, e)) from None
        except hvac.exceptions.VaultError as e:
            message = f"Vault at {addr} failed while {where} ({type(e).__name__})"
            raise VaultError(self._with_errors(message, e)) from None
        except requests.exceptions.Timeout:
            message = f"Vault at {addr} did not answer within {self.cfg.timeout:g} s while {where}"
            raise VaultError(message) from None
        except requests.exceptions.SSLError:
            message = f"Vault at {addr}: TLS verification failed while {where} (VAULT_CACERT?)"
            raise VaultError(message) from None
        except requests.exceptions.ConnectionError:
            raise VaultError(f"Vault at {addr} is unreachable while {where}") from None
        except requests.exceptions.RequestException as e:
            message = f"Vault at {addr}: the request failed while {where} ({type(e).__name__})"
            raise VaultError(message) from None
        except (KeyError, TypeError, ValueError):
            # A 200 whose body is not JSON (requests' JSONDecodeError is a ValueError), or a
            # login answer without auth.client_token (hvac indexes it blindly).
            message = f"Vault at {addr} gave an answer that is not Vault's JSON while {where}"
            raise VaultError(message) from None

    def _with_errors(self, message: str, e: hvac.exceptions.VaultError) -> str:
        """Append Vault's own ``errors`` strings, with anything sensitive scrubbed.

        Only the JSON ``errors`` list is used, never the raw body, which could be a proxy's
        HTML page or echo what we sent.
        """
        detail = "; ".join(str(x) for x in (e.errors or []) if x)
        return f"{message}: {self._redact(detail)}" if detail else message

    def _redact(self, text: str) -> str:
        for secret in self._sensitive:
            text = text.replace(secret, REDACTED)
        return text


def _dig(obj: object, *keys: str) -> object:
    """``obj[k1][k2]...`` or None when any level is missing or not a map."""
    for key in keys:
        if not isinstance(obj, dict):
            return None
        obj = obj.get(key)
    return obj
