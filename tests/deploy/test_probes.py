"""The kubelet's probes, as k8s/ declares them, against the application in production mode.

The kubelet sends plain HTTP to the pod IP with the Host header the manifest sets. With
ENV=prod that request must reach the health views: not a 400 for an unknown host, and not a
redirect to HTTPS (the kubelet would follow it to another host and count the probe as
passed, whatever the application's state). Runs Django in a subprocess, because production
settings are decided when the settings module is imported. The worker's exec liveness probe
runs the command it names, against the test database, and its timing restarts a stalled queue
within 3 minutes without restarting a healthy one (a real stalled cluster failing that command:
tests/jobs/test_worker_recovery.py).
"""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import timedelta
from io import StringIO
from pathlib import Path

import pytest

from .manifests import K8S, REPO, by_kind, config_data, kubectl, load, render

pytestmark = [
    pytest.mark.kubectl,
    pytest.mark.skipif(kubectl() is None, reason="kubectl is not installed (it renders k8s/)"),
]

SCRIPT = """
import json, sys
import django
django.setup()
from django.test import Client
out = {}
for name, path, host in json.loads(sys.argv[1]):
    response = Client().get(path, HTTP_HOST=host)
    out[name] = [response.status_code, response.get("Content-Type", ""), response.get("Location")]
print(json.dumps(out))
"""


def probes() -> tuple[list[tuple[str, str, str]], dict[str, str]]:
    docs = load(render(K8S))
    api = next(d for d in by_kind(docs, "Deployment") if d["metadata"]["name"] == "apiops")
    container = api["spec"]["template"]["spec"]["containers"][0]
    found = []
    for name in ("startupProbe", "livenessProbe", "readinessProbe"):
        get = container[name]["httpGet"]
        host = next(h["value"] for h in get["httpHeaders"] if h["name"].lower() == "host")
        found.append((name, get["path"], host))
    return found, config_data(docs)


def test_probes_reach_the_health_views_over_plain_http_in_production(tmp_path):
    found, config = probes()
    secrets = tmp_path / "secrets"
    secrets.mkdir()
    (secrets / "api-key").write_text("a" * 40, encoding="utf-8")
    (secrets / "secret-key").write_text("s" * 60, encoding="utf-8")
    # Nothing listens there: readiness must answer 503 about it, not crash or redirect.
    (secrets / "db-url").write_text("postgresql://apiops:pw@127.0.0.1:9/apiops", encoding="utf-8")
    env = {
        "PATH": str(Path(sys.executable).parent),
        "HOME": str(tmp_path),
        "DJANGO_SETTINGS_MODULE": "apiops_site.settings",
        **config,
        "OPS_SECRETS_DIR": str(secrets),
    }
    assert env["ENV"] == "prod"

    result = subprocess.run(
        [sys.executable, "-c", SCRIPT, json.dumps(found)],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )

    assert result.returncode == 0, result.stderr[-3000:]
    answers = json.loads(result.stdout.strip().splitlines()[-1])
    for name in ("startupProbe", "livenessProbe"):
        assert answers[name][0] == 200, answers[name]
    status, content_type, location = answers["readinessProbe"]
    assert status in (200, 503), answers["readinessProbe"]
    assert location is None
    assert content_type.startswith("application/json")


def worker_liveness() -> dict:
    docs = load(render(K8S))
    worker = next(
        d for d in by_kind(docs, "Deployment") if d["metadata"]["name"] == "apiops-worker"
    )
    return worker["spec"]["template"]["spec"]["containers"][0]["livenessProbe"]


@pytest.mark.django_db(databases=["default", "audit"])  # the pump also tidies the audit log
def test_the_workers_liveness_command_passes_after_a_pump_and_fails_when_it_is_late():
    from django.core.management import CommandError, call_command
    from django.db.models.functions import Now

    from jobs.dispatch import pump
    from jobs.models import JobPump

    probe = worker_liveness()
    command = probe["exec"]["command"]
    assert command[:3] == ["python", "manage.py", "jobs_health"]
    max_age = float(command[command.index("--max-age") + 1])
    # Django starts inside the probe: the timeout must leave room for it.
    assert probe["timeoutSeconds"] >= 10
    # A broken pump chain is revived by the minute schedule within about 90 s: no restart for
    # that. A stalled queue is restarted within 3 minutes of the pump's last run.
    assert max_age > 90
    assert max_age + probe["periodSeconds"] * probe["failureThreshold"] <= 180

    with pytest.raises(CommandError, match="never run"):
        call_command(*command[2:], stdout=StringIO())
    pump()
    call_command(*command[2:], stdout=StringIO())
    JobPump.objects.update(last_run_at=Now() - timedelta(hours=1))
    with pytest.raises(CommandError, match="last ran 3600 s ago") as late:
        call_command(*command[2:], stdout=StringIO())
    assert late.value.returncode != 0
