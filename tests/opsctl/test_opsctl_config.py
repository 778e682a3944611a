"""Who opsctl talks to, and as whom: ``whoami`` (table and json) for the bootstrap key and a
named, scoped key; contexts (set, use, list, ``--context``) with the key read from a variable
or a file and never written in clear unless ``--insecure-key`` (then the file is private, and
refused once others can read it); the environment overriding the context; ``XDG_CONFIG_HOME``;
the help's exit codes; shell completion."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time

import pytest
import yaml

from tests.opsctl.conftest import REPO, opsctl_env, run_opsctl

pytestmark = pytest.mark.django_db(databases=["default", "audit"])


def manage(stack, *args: str) -> str:
    """``manage.py ARGS`` against the stack's database; the last line it printed."""
    result = subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=REPO,
        env=stack.env,
        capture_output=True,
        text=True,
        check=True,
    )
    return result.stdout.strip().splitlines()[-1]


@pytest.fixture(scope="module")
def scoped_key(stack) -> str:
    """A named key limited to staging, made with manage.py against the stack's database."""
    return manage(stack, "create_api_key", "opsctl-tester", "--namespaces", "staging")


@pytest.fixture
def home(tmp_path):
    return tmp_path / "home"


def config_file(home) -> str:
    return (home / ".config" / "opsctl" / "config.yaml").read_text()


def test_whoami_of_the_bootstrap_key(user):
    as_json = json.loads(run_opsctl("-o", "json", "whoami", env=user).stdout)
    table = run_opsctl("whoami", env=user).stdout

    assert as_json["name"] == "bootstrap"
    assert "scale" in " ".join(as_json["operations"])
    assert table.splitlines()[0].split() == ["name:", "bootstrap"]
    assert "scope:" in table


def test_whoami_of_a_scoped_key_shows_its_scope_and_key(stack, scoped_key, home):
    env = opsctl_env(home, OPSCTL_SERVER=stack.url, OPSCTL_KEY=scoped_key)

    as_json = json.loads(run_opsctl("-o", "json", "whoami", env=env).stdout)
    table = run_opsctl("whoami", env=env).stdout
    denied = run_opsctl("scale", "-n", "prod", "deployment", "web", "--replicas", "2", env=env)

    assert as_json["name"] == "opsctl-tester"
    assert as_json["namespaces"] == ["staging"]
    assert as_json["key"]["prefix"] in scoped_key
    assert "scope:         staging" in table
    assert f"key prefix:    {as_json['key']['prefix']}" in table
    assert "key last used:" in table
    assert denied.returncode == 3
    assert denied.stderr.startswith("error: ")


def test_a_context_with_the_key_in_a_variable_keeps_it_out_of_the_file(stack, home):
    env = opsctl_env(home, MY_OPS_KEY=stack.key)

    made = run_opsctl(
        "config", "set-context", "local", "--server", stack.url, "--key-env", "MY_OPS_KEY", env=env
    )
    used = run_opsctl("config", "use-context", "local", env=env)
    who = run_opsctl("-o", "json", "whoami", env=env)

    assert made.returncode == used.returncode == who.returncode == 0, (made.stderr, who.stderr)
    assert json.loads(who.stdout)["name"] == "bootstrap"
    text = config_file(home)
    assert stack.key not in text
    assert yaml.safe_load(text)["contexts"]["local"]["key-env"] == "MY_OPS_KEY"
    assert oct((home / ".config/opsctl/config.yaml").stat().st_mode & 0o777) == "0o600"


def test_the_environment_overrides_the_context(stack, home):
    env = opsctl_env(home, MY_OPS_KEY=stack.key)
    run_opsctl(
        "config", "set-context", "local", "--server", stack.url, "--key-env", "MY_OPS_KEY", env=env
    )
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{s.getsockname()[1]}"

        wrong_key = run_opsctl("whoami", env={**env, "OPSCTL_KEY": "wrong-key-wrong-key"})
        other_server = run_opsctl("whoami", env={**env, "OPSCTL_SERVER": dead})
        flag = run_opsctl("--server", dead, "whoami", env=env)

    assert wrong_key.returncode == 3
    assert other_server.returncode == 6
    assert flag.returncode == 6
    assert dead in flag.stderr


def test_context_flag_picks_a_context_and_get_contexts_marks_the_current_one(stack, home, tmp_path):
    key_file = tmp_path / "key"
    key_file.write_text(stack.key + "\n")
    env = opsctl_env(home)
    run_opsctl(
        "config", "set-context", "broken", "--server", stack.url, "--key-env", "UNSET_VAR", env=env
    )
    run_opsctl(
        "config", "set-context", "good", "--server", stack.url, "--key-file", str(key_file), env=env
    )
    run_opsctl("config", "use-context", "broken", env=env)

    current = run_opsctl("whoami", env=env)
    chosen = run_opsctl("--context", "good", "whoami", env=env)
    missing = run_opsctl("--context", "nope", "whoami", env=env)
    listing = run_opsctl("config", "get-contexts", env=env).stdout

    assert current.returncode == 2
    assert "$UNSET_VAR" in current.stderr
    assert chosen.returncode == 0, chosen.stderr
    assert missing.returncode == 2
    rows = {line.split()[-3]: line for line in listing.splitlines()[1:]}
    assert rows["broken"].startswith("*")
    assert not rows["good"].startswith("*")
    assert str(key_file) in rows["good"]
    assert stack.key not in config_file(home)


def test_an_insecure_key_is_stored_privately_and_refused_once_others_can_read_it(stack, home):
    env = opsctl_env(home)
    made = run_opsctl(
        "config", "set-context", "lab", "--server", stack.url, "--insecure-key", stack.key, env=env
    )
    path = home / ".config/opsctl/config.yaml"

    works = run_opsctl("whoami", env=env)
    listing = run_opsctl("-o", "json", "config", "get-contexts", env=env).stdout
    path.chmod(0o644)
    refused = run_opsctl("whoami", env=env)

    assert made.returncode == 0
    assert stack.key in path.read_text()
    assert works.returncode == 0, works.stderr
    assert stack.key not in listing
    assert refused.returncode == 2
    assert "chmod 600" in refused.stderr


def test_xdg_config_home_is_respected(stack, tmp_path):
    env = opsctl_env(tmp_path / "home", XDG_CONFIG_HOME=str(tmp_path / "xdg"), K=stack.key)

    run_opsctl("config", "set-context", "x", "--server", stack.url, "--key-env", "K", env=env)

    assert (tmp_path / "xdg/opsctl/config.yaml").exists()
    assert not (tmp_path / "home/.config").exists()
    assert run_opsctl("whoami", env=env).returncode == 0


def test_no_server_anywhere_is_a_usage_error(home):
    result = run_opsctl("whoami", env=opsctl_env(home))

    assert result.returncode == 2
    assert "OPSCTL_SERVER" in result.stderr


def test_help_lists_the_exit_codes(home):
    text = run_opsctl("--help", env=opsctl_env(home)).stdout

    for line in ("0  ok", "1  the job failed", "2  bad input", "3  denied", "4  not found"):
        assert line in text
    for line in ("5  conflict", "6  unavailable", "7  timed out", "8  held for approval"):
        assert line in text


def test_bash_completion_completes_commands_and_options(home):
    script = run_opsctl("completion", "bash", env=opsctl_env(home)).stdout
    probe = (
        f"{script}\n"
        'COMP_WORDS=(opsctl sc); COMP_CWORD=1; _opsctl; echo "${COMPREPLY[*]}"\n'
        'COMP_WORDS=(opsctl scale --rep); COMP_CWORD=2; _opsctl; echo "${COMPREPLY[*]}"\n'
        'COMP_WORDS=(opsctl -o j); COMP_CWORD=2; _opsctl; echo "${COMPREPLY[*]}"\n'
        'COMP_WORDS=(opsctl ap); COMP_CWORD=1; _opsctl; echo "${COMPREPLY[*]}"\n'
        'COMP_WORDS=(opsctl approvals app); COMP_CWORD=2; _opsctl; echo "${COMPREPLY[*]}"\n'
        "COMP_WORDS=(opsctl --idempotency-key k delete --dry); COMP_CWORD=4; _opsctl; "
        'echo "${COMPREPLY[*]}"\n'
    )

    out = subprocess.run(["bash", "-c", probe], capture_output=True, text=True, check=True)

    assert out.stdout.splitlines() == [
        "scale",
        "--replicas",
        "json",
        "approvals",
        "approve",
        "--dry-run",
    ]


def test_zsh_completion_is_a_compdef_script(home):
    script = run_opsctl("completion", "zsh", env=opsctl_env(home)).stdout

    assert script.startswith("#compdef opsctl")
    assert "complete -F _opsctl opsctl" in script


def test_a_rotated_key_works_beside_the_new_one_until_its_overlap_ends(stack, home):
    old = manage(stack, "create_api_key", "opsctl-rotated")
    new = manage(stack, "rotate_api_key", "opsctl-rotated", "--overlap", "2s")

    def whoami(key: str) -> subprocess.CompletedProcess:
        env = opsctl_env(home, OPSCTL_SERVER=stack.url, OPSCTL_KEY=key)
        return run_opsctl("-o", "json", "whoami", env=env)

    during = [whoami(old), whoami(new)]
    assert [r.returncode for r in during] == [0, 0]
    shown = json.loads(during[1].stdout)
    assert shown["name"] == "opsctl-rotated"
    assert [k["prefix"] for k in shown["keys"]] == [old.split("_")[1], new.split("_")[1]]
    # The old key's overlap ends at its expiry; opsctl then exits 3 (401) with it.
    expires = json.loads(during[0].stdout)["key"]["expires_at"]
    deadline = time.monotonic() + 30
    while (after := whoami(old)).returncode == 0 and time.monotonic() < deadline:
        time.sleep(0.5)
    assert after.returncode == 3, (expires, after.stderr)
    assert "[authentication_failed]" in after.stderr
    assert whoami(new).returncode == 0
