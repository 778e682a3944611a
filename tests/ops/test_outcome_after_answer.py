"""Behind the WSGI server, an audited attempt's outcome is written once the answer is out.

The pending row exists before the cluster is touched (as always); the UPDATE giving it its
outcome runs in the answer's ``close()``, which a WSGI server calls after writing the body.
Called here as a server calls it: the answer is read, then closed.
"""

from __future__ import annotations

import io
import json

from django.http import HttpResponseBase

from apiops_site.wsgi import application
from ops import audit
from tests.ops.conftest import BOOTSTRAP_KEY, CLIENT_IP, DB, audit_log, mutations

pytestmark = DB

STS = "/ops/namespaces/prod/statefulsets/postgres/scale"


def _environ(method: str, path: str, body: dict | None = None) -> dict:
    data = json.dumps(body).encode() if body is not None else b""
    return {
        "REQUEST_METHOD": method,
        "PATH_INFO": path,
        "QUERY_STRING": "",
        "SERVER_NAME": "testserver",
        "SERVER_PORT": "80",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "REMOTE_ADDR": CLIENT_IP,
        "CONTENT_TYPE": "application/json",
        "CONTENT_LENGTH": str(len(data)),
        "HTTP_X_API_KEY": BOOTSTRAP_KEY,
        "wsgi.input": io.BytesIO(data),
        "wsgi.url_scheme": "http",
        "wsgi.errors": io.StringIO(),
        "wsgi.multithread": True,
        "wsgi.multiprocess": True,
        "wsgi.run_once": False,
        "wsgi.version": (1, 0),
    }


def _send(environ: dict):
    """Start the request; (status, body, the answer not yet closed)."""
    started = []
    answer = application(environ, lambda status, headers, exc_info=None: started.append(status))
    body = b"".join(answer)
    return started[0], json.loads(body), answer


def test_a_scale_answers_with_its_row_pending_and_the_outcome_is_written_on_close(
    cluster, apiops, in_test_transaction
):
    status, body, answer = _send(_environ("POST", STS, {"replicas": 2}))

    assert status.startswith("200")
    assert body["replicas"] == 2
    assert [(m.verb, m.subresource) for m in mutations(cluster)] == [("patch", "scale")]
    [row] = audit_log()
    assert (row.status, row.finished_at) == ("pending", None)  # written before the cluster

    answer.close()

    [row] = audit_log()
    assert (row.status, row.http_status, row.code) == ("success", 200, None)
    assert row.row_hash  # finished,
    assert row.chain_seq is not None  # and chained


def test_a_failed_scale_gets_its_error_outcome_on_close(cluster, apiops, in_test_transaction):
    status, _, answer = _send(_environ("POST", STS.replace("postgres", "nope"), {"replicas": 1}))
    assert status.startswith("404")
    assert audit_log()[0].status == "pending"

    answer.close()

    [row] = audit_log()
    assert (row.status, row.http_status, row.code) == ("error", 404, "not_found")


def test_an_outcome_that_cannot_be_written_leaves_its_row_pending_and_the_answer_closes(
    cluster, apiops, in_test_transaction, monkeypatch, caplog
):
    status, _, answer = _send(_environ("POST", STS, {"replicas": 2}))

    def fail(*args, **kwargs):
        raise audit.DatabaseError("audit database gone")

    monkeypatch.setattr(audit, "_finish", fail)
    answer.close()  # does not raise

    assert status.startswith("200")
    [row] = audit_log()
    assert row.status == "pending"
    assert "could not record the outcome of audit row" in caplog.text


def test_an_answer_without_an_attempt_is_django_s_own(cluster, apiops, in_test_transaction):
    live = application(_environ("GET", "/health/live"), lambda *args: None)
    scale = application(_environ("POST", STS, {"replicas": 2}), lambda *args: None)

    assert isinstance(live, HttpResponseBase)  # a file answer keeps the server's sendfile
    assert not isinstance(scale, HttpResponseBase)
    live.close()
    scale.close()
    assert [row.status for row in audit_log()] == ["success"]
