"""The container image recipe (Dockerfile, .dockerignore), checked without a Docker daemon.

No daemon runs where these tests run, so the image is never built here. What can be proven
is proven with the same interpreter and packages: the base is pinned, the user is a numeric
non-root uid that matches the manifests, only runtime requirements are installed, the
build-time collectstatic step works with exactly the values the Dockerfile gives it, and
granian, run with the image's command line, serves the WSGI application with the production
configuration the pods get.
"""

from __future__ import annotations

import ast
import contextlib
import json
import os
import re
import shlex
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from .manifests import APP_UID, REPO

DOCKERFILE = REPO / "Dockerfile"
DOCKERIGNORE = REPO / ".dockerignore"


def instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs with line continuations joined and comments dropped."""
    text = DOCKERFILE.read_text(encoding="utf-8")
    logical, current = [], ""
    for line in text.splitlines():
        if not current and (not line.strip() or line.lstrip().startswith("#")):
            continue
        if line.lstrip().startswith("#"):
            continue
        if line.rstrip().endswith("\\"):
            current += line.rstrip()[:-1] + " "
            continue
        logical.append(current + line)
        current = ""
    out = []
    for line in logical:
        word, _, rest = line.strip().partition(" ")
        out.append((word.upper(), rest.strip()))
    return out


def final_stage() -> list[tuple[str, str]]:
    steps = instructions()
    last_from = max(i for i, (word, _) in enumerate(steps) if word == "FROM")
    return steps[last_from:]


def cmd() -> list[str]:
    args = [rest for word, rest in final_stage() if word == "CMD"]
    assert len(args) == 1, "one CMD in the final stage"
    return json.loads(args[0])


def image_env() -> dict[str, str]:
    """The final stage's ENV values (but PATH, which extends the builder's)."""
    env = {}
    for word, rest in final_stage():
        if word == "ENV":
            for token in shlex.split(rest):
                name, sep, value = token.partition("=")
                if sep and name != "PATH":
                    env[name] = value
    return env


def build_time_env() -> dict[str, str]:
    """The VAR=value assignments the Dockerfile puts in front of collectstatic."""
    run = next(rest for word, rest in final_stage() if word == "RUN" and "collectstatic" in rest)
    env = {}
    for token in shlex.split(run.split("python manage.py collectstatic")[0]):
        name, sep, value = token.partition("=")
        if sep and re.fullmatch(r"[A-Z_][A-Z0-9_]*", name):
            env[name] = value
    return env


def subprocess_env(**extra: str) -> dict[str, str]:
    """This interpreter's environment minus ApiOps/Vault settings, plus ``extra``."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("OPS_", "VAULT_", "DJANGO_")) and k != "ENV"
    }
    env["PATH"] = str(Path(sys.executable).parent) + os.pathsep + env.get("PATH", "")
    env.update(extra)
    return env


def test_every_base_image_is_pinned_to_an_exact_python_release():
    bases = [rest.split()[0] for word, rest in instructions() if word == "FROM"]

    assert len(bases) == 2
    for base in bases:
        assert re.fullmatch(r"python:3\.11\.\d+-slim-bookworm(@sha256:[0-9a-f]{64})?", base), base
    assert len(set(bases)) == 1, "build and runtime stages use the same base"


def test_the_image_runs_as_the_numeric_non_root_uid_the_manifests_expect():
    users = [rest for word, rest in final_stage() if word == "USER"]

    assert users == [f"{APP_UID}:{APP_UID}"]
    assert f"--uid {APP_UID}" in DOCKERFILE.read_text(encoding="utf-8")


def test_only_runtime_requirements_are_installed_without_a_pip_cache():
    runs = [rest for word, rest in instructions() if word == "RUN" and "pip install" in rest]

    assert runs, "pip install runs in the build stage"
    for run in runs:
        assert "--no-cache-dir" in run
        assert "-r /tmp/requirements.txt" in run
        assert "requirements-dev" not in run
    copies = [rest for word, rest in instructions() if word == "COPY"]
    assert "requirements.txt /tmp/requirements.txt" in copies


def test_the_default_command_is_granian_serving_the_wsgi_application_on_8000():
    command = cmd()

    assert command[:2] == ["granian", "apiops_site.wsgi:application"]
    assert command[command.index("--interface") + 1] == "wsgi"
    assert command[command.index("--host") + 1] == "0.0.0.0"  # noqa: S104 - the pod's address
    assert command[command.index("--port") + 1] == "8000"
    assert "--respawn-failed-workers" in command
    env = image_env()
    assert env["GRANIAN_WORKERS"] == "2"
    assert env["GRANIAN_BLOCKING_THREADS"] == "4"


def test_the_build_context_leaves_out_local_state_tests_and_tools():
    ignored = {
        line.strip()
        for line in DOCKERIGNORE.read_text(encoding="utf-8").splitlines()
        if line.strip() and not line.startswith("#")
    }

    for entry in (".git", ".venv", "var", "tests", "kubesim", "requirements-dev.txt", ".env"):
        assert entry in ignored, entry
    for needed in ("requirements.txt", "manage.py", "apiops_site", "ops", "jobs"):
        assert needed not in ignored, needed


def test_collectstatic_succeeds_with_only_the_dockerfiles_build_time_values(tmp_path):
    env = build_time_env()
    assert env["ENV"] == "local"
    assert set(env) >= {"OPS_SECRET_KEY", "OPS_DB_URL"}
    script = (
        "import django; from django.conf import settings; django.setup();"
        f"settings.STATIC_ROOT = {str(tmp_path / 'static')!r};"
        "from django.core.management import call_command;"
        "call_command('collectstatic', interactive=False, verbosity=0)"
    )

    result = subprocess.run(
        [sys.executable, "-c", script],
        cwd=REPO,
        env=subprocess_env(DJANGO_SETTINGS_MODULE="apiops_site.settings", **env),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )

    assert result.returncode == 0, result.stderr[-3000:]
    assert (tmp_path / "static" / "admin" / "css" / "base.css").is_file()
    assert (tmp_path / "static" / "rest_framework").is_dir()


def test_granian_serves_the_app_with_the_image_command_and_prod_settings(tmp_path):
    secrets_dir = tmp_path / "vault-secrets"
    secrets_dir.mkdir()
    (secrets_dir / "api-key").write_text("k" * 40 + "\n", encoding="utf-8")
    (secrets_dir / "secret-key").write_text("s" * 60 + "\n", encoding="utf-8")
    (secrets_dir / "db-url").write_text("postgresql://apiops:pw@db.invalid:5432/apiops\n")
    command = cmd()
    granian = Path(sys.executable).parent / command[0]
    if not granian.exists():
        pytest.skip("granian is not installed in this environment")
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    args = command[1:]
    args[args.index("--host") + 1] = "127.0.0.1"  # the image's 0.0.0.0, on loopback here
    args[args.index("--port") + 1] = str(port)
    server = subprocess.Popen(
        [str(granian), *args],
        cwd=REPO,
        env=subprocess_env(
            **{
                **image_env(),
                "ENV": "prod",
                "OPS_SECRETS_DIR": str(secrets_dir),
                "OPS_ALLOWED_HOSTS": "apiops.example.org,apiops.ops.svc",
                "OPS_ALLOWED_NAMESPACES": "prod,staging",
                "HOME": "/nonexistent",
                "PROMETHEUS_MULTIPROC_DIR": str(tmp_path / "metrics"),
            }
        ),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    try:
        status = None
        deadline = time.monotonic() + 60
        while status is None and time.monotonic() < deadline and server.poll() is None:
            request = urllib.request.Request(
                f"http://127.0.0.1:{port}/health/live", headers={"Host": "apiops.example.org"}
            )
            with (
                contextlib.suppress(OSError),
                urllib.request.urlopen(request, timeout=2) as answer,  # noqa: S310 - http, ours
            ):
                status = answer.status
            time.sleep(0.2)
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        output, _ = server.communicate(timeout=30)

    assert status == 200, output[-3000:]


def test_code_that_runs_in_the_image_imports_nothing_the_build_context_leaves_out():
    """kubesim, tests and bench are not in the image: the served code must not need them.

    ``apiops_site/run.py`` (``make run``, which starts kubesim) is the one development-only
    entry point allowed to.
    """
    excluded = {"kubesim", "tests", "bench"}
    offenders = []
    for package in ("apiops_site", "ops", "jobs"):
        for path in sorted((REPO / package).rglob("*.py")):
            if path == REPO / "apiops_site" / "run.py":
                continue
            tree = ast.parse(path.read_text(encoding="utf-8"))
            for node in ast.walk(tree):
                if isinstance(node, ast.Import):
                    names = [alias.name for alias in node.names]
                elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                    names = [node.module]
                else:
                    continue
                offenders += [
                    f"{path.relative_to(REPO)}: {n}" for n in names if n.split(".")[0] in excluded
                ]

    assert offenders == []
