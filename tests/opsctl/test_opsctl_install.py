"""opsctl as an operator gets it: ``pip install ./opsctl`` into a fresh virtualenv gives the
``opsctl`` command without Django, and that copy talks to the server."""

from __future__ import annotations

import json
import shutil
import subprocess
import venv
from pathlib import Path

import pytest

from tests.opsctl.conftest import REPO, opsctl_env

pytestmark = pytest.mark.django_db(databases=["default", "audit"])


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> Path:
    """The bin directory of a fresh virtualenv holding only opsctl (and PyYAML)."""
    root = tmp_path_factory.mktemp("install")
    # A copy, so the build leaves nothing in the checkout.
    source = root / "opsctl"
    shutil.copytree(
        REPO / "opsctl",
        source,
        ignore=shutil.ignore_patterns("build", "*.egg-info", "__pycache__"),
    )
    venv.create(root / "venv", with_pip=True)
    bin_dir = root / "venv" / "bin"
    pip = subprocess.run(
        [str(bin_dir / "pip"), "install", "--quiet", str(source)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    if pip.returncode != 0:
        pytest.skip(f"pip cannot install opsctl here (no package index?): {pip.stderr[-500:]}")
    return bin_dir


def test_the_installed_copy_has_no_django_and_documents_its_exit_codes(installed):
    django = subprocess.run([str(installed / "python"), "-c", "import django"], check=False)
    helped = subprocess.run(
        [str(installed / "opsctl"), "--help"], capture_output=True, text=True, check=False
    )

    assert django.returncode != 0
    assert helped.returncode == 0
    assert "exit codes:" in helped.stdout
    assert "7  timed out" in helped.stdout


def test_the_installed_copy_talks_to_the_server(installed, stack, tmp_path):
    env = opsctl_env(tmp_path, OPSCTL_SERVER=stack.url, OPSCTL_KEY=stack.key)

    def opsctl(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [str(installed / "opsctl"), *args],
            cwd=tmp_path,  # not the checkout: nothing of the repository on the path
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )

    who = opsctl("-o", "json", "whoami")
    scaled = opsctl("-o", "json", "scale", "-n", "staging", "deployment", "web", "--replicas", "1")
    missing = opsctl("scale", "-n", "staging", "deployment", "nope", "--replicas", "1")

    assert who.returncode == 0, who.stderr
    assert json.loads(who.stdout)["name"] == "bootstrap"
    assert json.loads(scaled.stdout)["replicas"] == 1
    assert stack.sim.get("deployments", "staging", "web")["spec"]["replicas"] == 1
    assert missing.returncode == 4
    assert missing.stderr.startswith("error: ")
