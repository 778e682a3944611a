"""The HTTP API over ``urllib.request``: JSON in and out, errors turned into :class:`CliError`
with the exit code of their kind (refused, not found, unreachable, timed out).

Every ``POST`` and ``DELETE`` carries an ``Idempotency-Key``, one per client (one per opsctl
invocation), so a request is retried with the key it was first sent with: after a timeout or
a dropped connection the server either replays the first answer (``Idempotent-Replayed``) or
says the first request is still running (409 ``idempotency_in_flight``), and the operation
never runs twice. Reads are retried the same way, without a key."""

from __future__ import annotations

import http.client
import json
import socket
import ssl
import sys
import time
import urllib.error
import urllib.request
import uuid
from urllib.parse import quote, urlencode

from opsctl import __version__
from opsctl.errors import TIMED_OUT, UNAVAILABLE, CliError, exit_code_for_status

MUTATING = ("POST", "DELETE")
#: Retries of one request after a timeout, a dropped connection, a 429 or a 503.
RETRIES = 3
#: First pause between two attempts (doubled each time), and the most any pause lasts.
BACKOFF = 0.5
MAX_PAUSE = 5.0
IN_FLIGHT = "idempotency_in_flight"
#: Codes of a failure after which a mutation may or may not have run.
OUTCOME_UNKNOWN = ("timeout", "connection_lost", IN_FLIGHT)


def part(value: str) -> str:
    """One path segment, quoted (job ids hold ``:`` and ``+``)."""
    return quote(str(value), safe="")


def new_idempotency_key() -> str:
    """A fresh random key: ``opsctl-<uuid4>``."""
    return f"opsctl-{uuid.uuid4()}"


class Client:
    """One API server and key; ``idempotency_key`` for every mutating request it sends."""

    def __init__(
        self,
        server: str,
        key: str | None,
        *,
        ca_bundle: str | None = None,
        timeout: float = 30,
        idempotency_key: str | None = None,
        retries: int = RETRIES,
    ) -> None:
        self.server = server.rstrip("/")
        self.key = key
        self.timeout = timeout
        self.retries = max(retries, 0)
        self.idempotency_key = idempotency_key or new_idempotency_key()
        self.context = ssl.create_default_context(cafile=ca_bundle)  # verification on
        #: The HTTP status of the last answer, and whether it was a replay of an earlier
        #: request with the same key (``Idempotent-Replayed``).
        self.status = 0
        self.replayed = False

    def get(self, path: str, query: dict | None = None) -> dict:
        return self.request("GET", path, query=query)

    def post(self, path: str, body: dict | None = None, query: dict | None = None) -> dict:
        return self.request("POST", path, body=body, query=query)

    def delete(self, path: str, query: dict | None = None) -> dict:
        return self.request("DELETE", path, query=query)

    def request(
        self, method: str, path: str, *, body: dict | None = None, query: dict | None = None
    ) -> dict:
        """Send one request, retried through a timeout, a dropped connection, 429 and 503
        (a mutation with the same Idempotency-Key); the decoded JSON answer, or a
        :class:`CliError`."""
        url = self.server + path
        if query:
            url += "?" + urlencode({k: v for k, v in query.items() if v is not None})
        headers = {"Accept": "application/json", "User-Agent": f"opsctl/{__version__}"}
        if self.key:
            headers["X-API-Key"] = self.key
        if method in MUTATING:
            headers["Idempotency-Key"] = self.idempotency_key
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        elif method == "POST":
            data = b""
        attempt, in_flight_until = 0, None
        while True:
            try:
                return self._send(urllib.request.Request(url, data, headers, method=method))  # noqa: S310 - URL from the user's own config
            except CliError as e:
                if e.retry_after is None:
                    raise self._explained(e, method) from None
                if e.code == IN_FLIGHT:
                    # The first attempt still runs on the server: wait for its answer, as
                    # long as one request may take, whatever the retries left.
                    in_flight_until = in_flight_until or time.monotonic() + self.timeout
                    if time.monotonic() >= in_flight_until:
                        raise self._explained(e, method) from None
                elif attempt >= self.retries:
                    raise self._explained(e, method) from None
                time.sleep(min(e.retry_after or BACKOFF * 2**attempt, MAX_PAUSE))
                attempt += 1

    def _send(self, req: urllib.request.Request) -> dict:
        """One attempt."""
        self.status, self.replayed = 0, False
        try:
            context = self._ssl(req.full_url)
            with urllib.request.urlopen(req, timeout=self.timeout, context=context) as resp:  # noqa: S310
                self.status = resp.status
                self.replayed = resp.headers.get("Idempotent-Replayed", "").lower() == "true"
                return _decode(resp.read(), resp.status)
        except urllib.error.HTTPError as e:
            raise _http_error(e) from None
        except urllib.error.URLError as e:
            raise _connection_error(req.full_url, e.reason) from None
        except TimeoutError:
            raise CliError(
                f"{self.server} did not answer within {self.timeout:g} s",
                TIMED_OUT,
                "timeout",
                retry_after=0,
            ) from None
        except (ConnectionError, http.client.HTTPException, OSError) as e:
            raise _connection_error(req.full_url, e) from None

    def _explained(self, error: CliError, method: str) -> CliError:
        """For a mutation whose outcome is unknown (no answer, or still running), how to get
        its answer without running it twice."""
        if method in MUTATING and error.code in OUTCOME_UNKNOWN:
            print(
                "the request may have run: send it again with "
                f"--idempotency-key {self.idempotency_key} to get its answer "
                "(it will not run twice)",
                file=sys.stderr,
            )
        return error

    def _ssl(self, url: str) -> ssl.SSLContext | None:
        return self.context if url.startswith("https:") else None


def _decode(raw: bytes, status: int) -> dict:
    if not raw:
        return {}
    try:
        return json.loads(raw)
    except ValueError:
        raise CliError(
            f"the server answered {status} with a body that is not JSON", UNAVAILABLE, "not_json"
        ) from None


def _retry_after(e: urllib.error.HTTPError) -> float | None:
    """When a refused request may be sent again: 429, 503 and a request in flight (after
    their ``Retry-After``, 0 for our own backoff); None for an answer to keep."""
    if e.code not in (409, 429, 503):
        return None
    try:
        return max(float((e.headers or {}).get("Retry-After") or 0), 0.0)
    except ValueError:
        return 0.0


def _http_error(e: urllib.error.HTTPError) -> CliError:
    try:
        body = json.loads(e.read() or b"{}")
    except (ValueError, OSError):
        body = {}
    if not isinstance(body, dict):
        body = {}
    detail = body.get("detail") or f"HTTP {e.code} {e.reason}"
    code = body.get("code") or f"http_{e.code}"
    if (e.headers or {}).get("Idempotent-Replayed", "").lower() == "true":
        detail = f"{detail} (the answer of an earlier request with this Idempotency-Key)"
    errors = body.get("errors") if isinstance(body.get("errors"), dict) else None
    retry_after = _retry_after(e) if e.code != 409 or code == IN_FLIGHT else None
    return CliError(str(detail), exit_code_for_status(e.code), str(code), errors, retry_after)


def _connection_error(url: str, reason: object) -> CliError:
    if isinstance(reason, TimeoutError | socket.timeout):
        return CliError(f"{url}: timed out", TIMED_OUT, "timeout", retry_after=0)
    if isinstance(reason, ssl.SSLError | ssl.CertificateError):
        return CliError(f"{url}: TLS error: {reason}", UNAVAILABLE, "tls_error")
    if isinstance(reason, socket.gaierror):
        return CliError(f"{url}: cannot resolve the host: {reason}", UNAVAILABLE, "dns_error")
    if isinstance(reason, ConnectionRefusedError):  # nothing listens: nothing was sent
        return CliError(f"{url}: cannot connect: {reason}", UNAVAILABLE, "unavailable")
    if isinstance(reason, ConnectionError | http.client.HTTPException):
        # Reset or closed mid-request: it may have arrived, so it is sent again (with its key).
        return CliError(
            f"{url}: connection lost: {reason}", UNAVAILABLE, "connection_lost", retry_after=0
        )
    return CliError(f"{url}: cannot connect: {reason}", UNAVAILABLE, "unavailable")
