"""HTTP/1.1 front end: keep-alive, TCP_NODELAY, chunked watches, faults, the request log and
the `/_kubesim/` admin endpoint.

Every accepted socket gets TCP_NODELAY: urllib3 sends headers and body in separate writes,
and without it each request waits for a delayed ACK (about 40 ms) — real API servers (Go)
set it by default. Responses go out in one write for the same reason.
"""

from __future__ import annotations

import contextlib
import json
import logging
import socket
import sys
import threading
import time
import uuid
from collections.abc import Callable
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Protocol
from urllib.parse import parse_qs, urlsplit

from . import auditlog, requestinfo, tables
from .api import Api, Response, WatchPlan
from .errors import ApiError, expired, generic, internal
from .faults import TOO_MANY_REQUESTS_TEXT, FaultRule, Faults
from .requestlog import RequestLog, RequestRecord
from .selectors import fields_match, labels_match
from .store import Event, Store
from .util import dumps

log = logging.getLogger("kubesim.server")
ADMIN_PREFIX = "/_kubesim"


class Served(Protocol):
    """What the HTTP layer serves: the API over its store, the faults to inject, the log
    to record in, and the admin endpoint. `KubeSim` is one; the server does not import
    it, since the simulator builds on the server and not the other way round."""

    api: Api
    store: Store
    faults: Faults
    requests: RequestLog
    stopping: threading.Event
    bookmark_interval: float

    def admin(
        self, method: str, sub: str, query: dict[str, list[str]], body: bytes
    ) -> tuple[int, Any]: ...


class KubeHTTPServer(ThreadingHTTPServer):
    """A threaded server that knows its simulator and can cut every open connection."""

    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128

    def __init__(self, address: tuple[str, int], sim: Served) -> None:
        self.sim = sim
        self._conns: set[socket.socket] = set()
        self._conns_lock = threading.Lock()
        self._streams = 0  # watches being served
        self._streams_done = threading.Condition()
        super().__init__(address, Handler)

    def stream_started(self) -> None:
        with self._streams_done:
            self._streams += 1

    def stream_ended(self) -> None:
        with self._streams_done:
            self._streams -= 1
            self._streams_done.notify_all()

    def wait_streams_ended(self, timeout: float) -> bool:
        """Wait until every watch has written its last chunk (they end when the simulator
        is stopping), so stopping ends them cleanly rather than cutting them mid-stream."""
        with self._streams_done:
            return self._streams_done.wait_for(lambda: self._streams == 0, timeout)

    def track(self, conn: socket.socket) -> None:
        with self._conns_lock:
            self._conns.add(conn)

    def untrack(self, conn: socket.socket) -> None:
        with self._conns_lock:
            self._conns.discard(conn)

    def close_all(self) -> None:
        """Shut down every open connection so handler threads end promptly."""
        with self._conns_lock:
            conns = list(self._conns)
        for conn in conns:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)

    def handle_error(self, request: Any, client_address: Any) -> None:
        exc = sys.exc_info()[1]
        if isinstance(exc, (ConnectionError, TimeoutError, OSError)):
            return
        log.exception("unhandled error serving %s", client_address)


class _Dropped(Exception):
    """The connection was closed on purpose (drop/hang fault) or by the peer."""


class Handler(BaseHTTPRequestHandler):
    """One connection; serves requests until the peer or the simulator closes it."""

    protocol_version = "HTTP/1.1"
    server: KubeHTTPServer

    def setup(self) -> None:
        super().setup()
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.server.track(self.connection)

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            self.server.untrack(self.connection)

    def log_message(self, format: str, *args: Any) -> None:
        return

    # --- plumbing ---------------------------------------------------------------------------

    def _read_body(self) -> bytes:
        if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
            chunks = []
            while True:
                size_line = self.rfile.readline(65537)
                size = int(size_line.split(b";", 1)[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline(65537) not in (b"\r\n", b"\n", b""):
                        pass
                    break
                chunks.append(self.rfile.read(size))
                self.rfile.readline(65537)
            return b"".join(chunks)
        length = int(self.headers.get("Content-Length") or 0)
        if length < 0:
            raise ValueError(f"bad Content-Length: {length}")
        return self.rfile.read(length) if length > 0 else b""

    def _malformed_request(self) -> None:
        """What Go's net/http answers a request it cannot read (a Content-Length that is not
        a number, a broken chunk size): a plain 400 before any handler runs, then close."""
        self.close_connection = True
        body = b"400 Bad Request"
        with contextlib.suppress(OSError):
            self.wfile.write(
                b"HTTP/1.1 400 Bad Request\r\nContent-Type: text/plain; charset=utf-8\r\n"
                b"Connection: close\r\n\r\n" + body
            )

    def _raw_response(self, status: int, headers: dict[str, str], body: bytes) -> None:
        try:
            phrase = HTTPStatus(status).phrase
        except ValueError:
            phrase = ""
        head = [f"HTTP/1.1 {status} {phrase}"]
        base = {
            "Audit-Id": getattr(self, "_audit_id", None) or str(uuid.uuid4()),
            "Cache-Control": "no-cache, private",
            "Content-Type": "application/json",
            "Date": self.date_time_string(),
        }
        base.update(headers)
        base["Content-Length"] = str(len(body))
        if self.close_connection:
            base["Connection"] = "close"
        head += [f"{k}: {v}" for k, v in base.items()]
        payload = ("\r\n".join(head) + "\r\n\r\n").encode("latin-1")
        if self.command != "HEAD":
            payload += body
        self.wfile.write(payload)

    def _send(self, status: int, body: Any, headers: dict[str, str] | None = None) -> None:
        hdrs = dict(headers or {})
        data = body if isinstance(body, bytes) else dumps(body)
        self._raw_response(status, hdrs, data)

    def _drop(self) -> None:
        self.close_connection = True
        with contextlib.suppress(OSError):
            self.connection.setsockopt(
                socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00"
            )
        with contextlib.suppress(OSError):
            self.connection.shutdown(socket.SHUT_RDWR)

    # --- dispatch ---------------------------------------------------------------------------

    def _dispatch(self) -> None:
        sim = self.server.sim
        split = urlsplit(self.path)
        path = split.path or "/"
        query = parse_qs(split.query, keep_blank_values=True)
        try:
            body = self._read_body()
        except ValueError:
            self._malformed_request()  # never reaches the API: not in the request log
            return
        except OSError:
            self.close_connection = True
            return
        if path == ADMIN_PREFIX or path.startswith(ADMIN_PREFIX + "/"):
            self._admin(path[len(ADMIN_PREFIX) :], query, body)
            return
        info = requestinfo.parse(self.command, path, query)
        started = time.time()
        client_audit_id = (self.headers.get("Audit-ID") or "").strip()
        self._audit_id = client_audit_id or str(uuid.uuid4())

        def record(status: int) -> None:
            if sim.audit_log is not None:
                sim.audit_log.write(
                    auditlog.event(
                        audit_id=self._audit_id,
                        info=info,
                        uri=self.path,
                        headers=self.headers,
                        source_ip=self.client_address[0],
                        status=status,
                        received=started,
                        done=time.time(),
                        users=sim.token_users,
                    )
                )
            sim.requests.append(
                RequestRecord(
                    method=self.command,
                    path=path,
                    query={k: v[-1] for k, v in query.items()},
                    verb=info.verb,
                    resource=info.resource,
                    subresource=info.subresource,
                    namespace=info.namespace,
                    name=info.name,
                    status=status,
                    api_group=info.api_group,
                    content_type=self.headers.get("Content-Type") or "",
                    user_agent=self.headers.get("User-Agent") or "",
                    time=started,
                    audit_id=client_audit_id,
                    impersonate_user=self.headers.get("Impersonate-User") or "",
                )
            )

        rules = sim.faults.fire(self.command, path, info.verb == "watch")
        if self._apply_faults(rules, record):
            return
        drop_after = any(r.drop_after for r in rules)
        try:
            result = sim.api.handle(self.command, path, query, self.headers, body, info)
        except ApiError as e:
            if drop_after:
                record(0)
                self._drop()
                return
            record(e.code)
            self._send(e.code, e.body(), e.headers)
            return
        except Exception as e:  # never a traceback on the wire; the store is unchanged
            log.exception("internal error serving %s %s", self.command, self.path)
            err = internal(f"{type(e).__name__}: {e}")
            record(500)
            self._send(500, err.body())
            return
        if drop_after:
            # Executed (the store has changed), but the answer is lost on the way back.
            record(0)
            self._drop()
            return
        if isinstance(result, WatchPlan):
            self._watch(result, [r for r in rules if r.for_watch_only], record)
            return
        assert isinstance(result, Response)
        record(result.status)
        self._send(result.status, result.body, result.headers)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_OPTIONS = _dispatch

    def _apply_faults(self, rules: list[FaultRule], record: Callable[[int], None]) -> bool:
        """Apply fired rules; True when the request has been dealt with."""
        stopping = self.server.sim.stopping
        delay = sum(r.delay for r in rules)
        if delay and stopping.wait(delay):
            self._drop()
            return True
        for rule in rules:
            if rule.drop:
                record(0)
                self._drop()
                return True
            if rule.hang:
                record(0)
                limit = None if rule.hang is True else float(rule.hang)
                stopping.wait(limit)
                self._drop()
                return True
            if rule.status is not None:
                record(rule.status)
                if rule.plain:
                    self._send_plain(rule)
                    return True
                err = generic(rule.status, rule.message, rule.reason, rule.retry_after)
                self._send(rule.status, err.body(), err.headers)
                return True
        return False

    def _send_plain(self, rule: FaultRule) -> None:
        """A status fault with a plain-text body, as Go's http.Error writes it (the
        max-in-flight and APF filters answer 429 this way, before any API handler runs)."""
        assert rule.status is not None
        if rule.message is not None:
            text = rule.message
        elif rule.status == 429:
            text = TOO_MANY_REQUESTS_TEXT
        else:
            try:
                text = HTTPStatus(rule.status).phrase
            except ValueError:
                text = f"status code {rule.status}"
        headers = {
            "Content-Type": "text/plain; charset=utf-8",
            "X-Content-Type-Options": "nosniff",
        }
        if rule.retry_after is not None:
            headers["Retry-After"] = str(rule.retry_after)
        self._raw_response(rule.status, headers, (text + "\n").encode("utf-8"))

    # --- watch ------------------------------------------------------------------------------

    def _chunk(self, data: bytes) -> None:
        self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))

    def _event(self, etype: str, obj: Any) -> None:
        self._chunk(dumps({"type": etype, "object": obj}) + b"\n")

    def _watch(
        self, plan: WatchPlan, rules: list[FaultRule], record: Callable[[int], None]
    ) -> None:
        sim = self.server.sim
        store = sim.store
        close_after = min(
            (r.watch_close_after for r in rules if r.watch_close_after is not None), default=None
        )
        expire_now = any(r.watch_expire for r in rules)
        stall = any(r.watch_stall for r in rules)
        too_old: str | None = None
        with store.lock:
            if plan.since is None:
                initial = sim.api.select(plan.rt, plan.namespace, plan.labels, plan.fields)
                last = store.rv
            else:
                initial = []
                last = plan.since
                if store.events_after(plan.since) is None:
                    too_old = f"too old resource version: {plan.since} ({store.compacted_rv + 1})"
        record(200)
        head = [
            "HTTP/1.1 200 OK",
            f"Audit-Id: {uuid.uuid4()}",
            "Cache-Control: no-cache, private",
            "Content-Type: application/json",
            f"Date: {self.date_time_string()}",
            "Transfer-Encoding: chunked",
        ]
        self.server.stream_started()
        try:
            self.wfile.write(("\r\n".join(head) + "\r\n\r\n").encode("latin-1"))
            self._watch_body(plan, initial, last, too_old, close_after, expire_now, stall)
            self.wfile.write(b"0\r\n\r\n")
        except (ConnectionError, OSError):
            self.close_connection = True
        finally:
            self.server.stream_ended()

    def _wrap(self, plan: WatchPlan, obj: dict[str, Any], first: bool) -> Any:
        if plan.table:
            return tables.table(
                plan.rt, [obj], obj["metadata"].get("resourceVersion", ""), None, headers=first
            )
        return obj

    def _watch_body(
        self,
        plan: WatchPlan,
        initial: list[dict[str, Any]],
        last: int,
        too_old: str | None,
        close_after: int | None,
        expire_now: bool,
        stall: bool,
    ) -> None:
        sim = self.server.sim
        store = sim.store
        stopping = sim.stopping
        deadline = time.monotonic() + plan.timeout
        if too_old or expire_now:
            msg = too_old or f"too old resource version: {last} ({last + 1})"
            self._event("ERROR", expired(msg).body())
            return
        if stall:
            stopping.wait(max(0.0, deadline - time.monotonic()))
            return
        sent = 0
        first = True
        for obj in initial:
            self._event("ADDED", self._wrap(plan, obj, first))
            first = False
            sent += 1
            if close_after is not None and sent >= close_after:
                return
        if plan.initial_events_end:
            self._event("BOOKMARK", self._bookmark(plan, last, initial_end=True))
        interval = sim.bookmark_interval
        next_bookmark = time.monotonic() + interval
        while not stopping.is_set():
            now = time.monotonic()
            if now >= deadline:
                return
            with store.lock:
                events = store.events_after(last)
                if events == []:
                    wait = deadline - now
                    if plan.bookmarks:
                        wait = min(wait, max(0.0, next_bookmark - now))
                    store.changed.wait(max(0.0, wait))
                    events = store.events_after(last)
                if events is None:
                    self._event(
                        "ERROR",
                        expired(
                            f"too old resource version: {last} ({store.compacted_rv + 1})"
                        ).body(),
                    )
                    return
                if events:
                    last = events[-1].rv
            for ev in events:
                out = self._translate(plan, ev)
                if out is None:
                    continue
                self._event(out[0], self._wrap(plan, out[1], first))
                first = False
                sent += 1
                if close_after is not None and sent >= close_after:
                    return
            if plan.bookmarks and time.monotonic() >= next_bookmark:
                self._event("BOOKMARK", self._bookmark(plan, last))
                next_bookmark = time.monotonic() + interval

    def _bookmark(self, plan: WatchPlan, rv: int, initial_end: bool = False) -> dict[str, Any]:
        meta: dict[str, Any] = {"resourceVersion": str(rv), "creationTimestamp": None}
        if initial_end:
            meta["annotations"] = {"k8s.io/initial-events-end": "true"}
        return {"kind": plan.rt.kind, "apiVersion": plan.rt.api_version, "metadata": meta}

    @staticmethod
    def _matches(plan: WatchPlan, obj: dict[str, Any] | None) -> bool:
        if obj is None:
            return False
        meta = obj["metadata"]
        if plan.namespace is not None and meta.get("namespace", "") != plan.namespace:
            return False
        return labels_match(plan.labels, meta.get("labels")) and fields_match(plan.fields, obj)

    def _translate(self, plan: WatchPlan, ev: Event) -> tuple[str, dict[str, Any]] | None:
        """The event a filtered watch reports: objects entering or leaving the selection are
        ADDED or DELETED, as the apiserver's watch cache does."""
        if ev.resource != plan.rt.plural:
            return None
        new_match = self._matches(plan, ev.obj)
        if ev.type == "DELETED":
            return ("DELETED", ev.obj) if new_match else None
        old_match = self._matches(plan, ev.old)
        if new_match and old_match:
            return ("MODIFIED", ev.obj)
        if new_match:
            return ("ADDED", ev.obj)
        if old_match:
            return ("DELETED", ev.obj)
        return None

    # --- admin endpoint ---------------------------------------------------------------------

    def _admin(self, sub: str, query: dict[str, list[str]], body: bytes) -> None:
        try:
            status, payload = self.server.sim.admin(self.command, sub, query, body)
        except ApiError as e:
            self._send(e.code, e.body())
            return
        except (ValueError, KeyError, TypeError) as e:
            self._send(400, {"error": str(e)})
            return
        self._send(status, payload)


def json_body(body: bytes) -> Any:
    """Decode an admin request body (JSON; empty is None)."""
    if not body.strip():
        return None
    return json.loads(body)
