"""The HTTP API over ``urllib.request``: JSON in and out, errors turned into :class:`CliError`
with the exit code of their kind (refused, not found, unreachable, timed out)."""

from __future__ import annotations

import json
import socket
import ssl
import urllib.error
import urllib.request
from urllib.parse import quote, urlencode

from opsctl import __version__
from opsctl.errors import TIMED_OUT, UNAVAILABLE, CliError, exit_code_for_status


def part(value: str) -> str:
    """One path segment, quoted (job ids hold ``:`` and ``+``)."""
    return quote(str(value), safe="")


class Client:
    """One API server and key."""

    def __init__(
        self, server: str, key: str | None, *, ca_bundle: str | None = None, timeout: float = 30
    ) -> None:
        self.server = server.rstrip("/")
        self.key = key
        self.timeout = timeout
        self.context = ssl.create_default_context(cafile=ca_bundle)  # verification on

    def get(self, path: str, query: dict | None = None) -> dict:
        return self.request("GET", path, query=query)

    def post(self, path: str, body: dict | None = None) -> dict:
        return self.request("POST", path, body=body)

    def delete(self, path: str) -> dict:
        return self.request("DELETE", path)

    def request(
        self, method: str, path: str, *, body: dict | None = None, query: dict | None = None
    ) -> dict:
        """Send one request; the decoded JSON answer, or a :class:`CliError`."""
        url = self.server + path
        if query:
            url += "?" + urlencode({k: v for k, v in query.items() if v is not None})
        headers = {"Accept": "application/json", "User-Agent": f"opsctl/{__version__}"}
        if self.key:
            headers["X-API-Key"] = self.key
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        elif method == "POST":
            data = b""
        req = urllib.request.Request(url, data=data, headers=headers, method=method)  # noqa: S310 - URL from the user's own config
        try:
            with urllib.request.urlopen(req, timeout=self.timeout, context=self._ssl(url)) as resp:  # noqa: S310
                return _decode(resp.read(), resp.status)
        except urllib.error.HTTPError as e:
            raise _http_error(e) from None
        except urllib.error.URLError as e:
            raise _connection_error(url, e.reason) from None
        except TimeoutError:
            raise CliError(
                f"{self.server} did not answer within {self.timeout:g} s", TIMED_OUT, "timeout"
            ) from None
        except (ConnectionError, OSError) as e:
            raise _connection_error(url, e) from None

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


def _http_error(e: urllib.error.HTTPError) -> CliError:
    try:
        body = json.loads(e.read() or b"{}")
    except (ValueError, OSError):
        body = {}
    if not isinstance(body, dict):
        body = {}
    detail = body.get("detail") or f"HTTP {e.code} {e.reason}"
    code = body.get("code") or f"http_{e.code}"
    errors = body.get("errors") if isinstance(body.get("errors"), dict) else None
    return CliError(str(detail), exit_code_for_status(e.code), str(code), errors)


def _connection_error(url: str, reason: object) -> CliError:
    if isinstance(reason, TimeoutError | socket.timeout):
        return CliError(f"{url}: timed out", TIMED_OUT, "timeout")
    if isinstance(reason, ssl.SSLError | ssl.CertificateError):
        return CliError(f"{url}: TLS error: {reason}", UNAVAILABLE, "tls_error")
    if isinstance(reason, socket.gaierror):
        return CliError(f"{url}: cannot resolve the host: {reason}", UNAVAILABLE, "dns_error")
    return CliError(f"{url}: cannot connect: {reason}", UNAVAILABLE, "unavailable")
