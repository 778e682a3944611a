"""The ``opsctl`` command line: argument parsing and one small function per command, each a
request to the HTTP API and a rendering of its answer."""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
from datetime import UTC, datetime, timedelta

from opsctl import __version__, config
from opsctl.client import RETRIES, Client, part
from opsctl.completion import script as completion_script
from opsctl.errors import BAD_INPUT, EXIT_CODES_HELP, HELD, OK, UNAVAILABLE, CliError, Stop
from opsctl.follow import failure, follow
from opsctl.output import FORMATS, cell, columns, emit, fields

DELETE_KINDS = {"pod": "pods", "pvc": "persistentvolumeclaims"}
SCALE_KINDS = {"deployment": "deployments", "statefulset": "statefulsets"}
APPROVAL_STATUSES = ("pending", "approved", "rejected", "expired", "stale")
_AGE = re.compile(r"^(\d+)([smhdw])$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


def number_or_text(value: str) -> int | str:
    """An int when it parses, else the text as given (the API then says what is wrong)."""
    try:
        return int(value)
    except ValueError:
        return value


def param_value(text: str) -> object:
    """A ``--param`` value: JSON when it parses (ints, booleans, objects), else the string."""
    try:
        return json.loads(text)
    except ValueError:
        return text


def as_iso(value: str | None, now: datetime | None = None) -> str | None:
    """A relative age (``30m``, ``24h``, ``7d``) as ISO 8601 in UTC; anything else as given."""
    if value is None:
        return None
    match = _AGE.match(value.strip())
    if not match:
        return value
    now = now or datetime.now(UTC)
    then = now - timedelta(**{_UNITS[match[2]]: int(match[1])})
    return then.isoformat(timespec="seconds")


# --- tables --------------------------------------------------------------------------------


def whoami_table(d: dict) -> str:
    key = d.get("key") or {}
    namespaces = d.get("namespaces")
    return fields(
        {
            "name": d.get("name"),
            "scope": "all namespaces" if namespaces is None else ", ".join(namespaces) or "none",
            "operations": d.get("operations"),
            "key prefix": key.get("prefix"),
            "key expires": key.get("expires_at") or ("never" if key else None),
            "key last used": key.get("last_used_at"),
        }
    )


def job_table(d: dict) -> str:
    head = fields(d, ["job_id", "type", "status", "created_at", "finished_at"])
    if d.get("error"):
        head += f"\nerror:       {d['error'].get('detail')} [{d['error'].get('code')}]"
    steps = columns(
        [(s["order"], s["name"], s["status"], s.get("detail")) for s in d.get("steps", [])],
        ["#", "STEP", "STATUS", "DETAIL"],
    )
    return f"{head}\n\n{steps}"


def jobs_table(d: dict) -> str:
    rows = [
        (j["job_id"], j["type"], j["status"], j.get("finished_at")) for j in d.get("results", [])
    ]
    return columns(rows, ["JOB ID", "TYPE", "STATUS", "FINISHED"])


def audit_table(d: dict) -> str:
    rows = [
        (
            r["ts"],
            r["actor"],
            r["action"],
            r["resource_kind"],
            r["namespace"],
            r["resource_name"],
            r["status"],
            r.get("http_status"),
            r.get("code") or "",
        )
        for r in d.get("results", [])
    ]
    return columns(
        rows, ["TIME", "ACTOR", "ACTION", "KIND", "NS", "NAME", "STATUS", "HTTP", "CODE"]
    )


def change_text(change: dict | None) -> str:
    """A plan entry's change in a few words: ``replicas 3 -> 0``, ``exists yes -> no``."""
    parts = []
    for key, value in (change or {}).items():
        if isinstance(value, dict) and "to" in value:
            before = f"{cell(value['from'])} " if "from" in value else ""
            parts.append(f"{key} {before}-> {cell(value['to'])}")
        elif isinstance(value, dict):
            parts.append(f"{key} {json.dumps(value, sort_keys=True)}")
        else:
            parts.append(f"{key}: {cell(value)}")
    return ", ".join(parts)


def plan_table(plan: list[dict]) -> str:
    """A plan, one change a row (a job's plan also names the step of each)."""
    steps = any(e.get("step") for e in plan)
    rows = []
    for e in plan:
        obj = e.get("object") or {}
        rows.append(
            [
                e.get("order"),
                *([e.get("step")] if steps else []),
                e.get("action"),
                obj.get("kind"),
                f"{obj.get('namespace')}/{obj.get('name')}",
                obj.get("uid") or "(new)",
                change_text(e.get("change")),
            ]
        )
    headers = ["ORDER", *(["STEP"] if steps else []), "ACTION", "KIND", "NAMESPACE/NAME", "UID"]
    return columns(rows, [*headers, "CHANGE"])


def dry_run_table(d: dict) -> str:
    return f"{plan_table(d.get('plan', []))}\n\nplan digest: {d.get('plan_digest')}"


def warnings_text(warnings: list[dict] | None) -> str:
    if not warnings:
        return "none"
    return "; ".join(f"{w.get('detail')} [{w.get('code')}]" for w in warnings)


def approval_table(d: dict) -> str:
    """One approval (or the answer of a held request): where it stands, then its plan."""
    head = {
        "approval_id": d.get("approval_id"),
        "status": d.get("status"),
        "operation": d.get("operation"),
        "object": (
            f"{d['resource_kind']} {d.get('namespace')}/{d.get('resource_name')}"
            if d.get("resource_kind")
            else None
        ),
        "requested_by": d.get("requested_by"),
        "created_at": d.get("created_at"),
        "expires_at": d.get("expires_at"),
        "decided_by": d.get("decided_by"),
        "decided_at": d.get("decided_at"),
        "reason": d.get("reason"),
        "job_id": d.get("job_id"),
        "warnings": warnings_text(d.get("warnings")),
        "plan_digest": d.get("plan_digest"),
    }
    shown = {k: v for k, v in head.items() if v is not None or k in ("approval_id", "status")}
    return f"{fields(shown)}\n\n{plan_table(d.get('plan') or [])}"


def approvals_table(d: dict) -> str:
    rows = [
        (
            a["approval_id"],
            a["status"],
            a["operation"],
            f"{a['resource_kind']} {a['namespace']}/{a['resource_name']}",
            a["requested_by"],
            a["expires_at"],
            f"{a['decided_by']}: {a.get('reason') or ''}" if a.get("decided_by") else None,
        )
        for a in d.get("results", [])
    ]
    headers = ["APPROVAL", "STATUS", "OPERATION", "OBJECT", "REQUESTED BY", "EXPIRES", "DECIDED"]
    return columns(rows, headers)


def types_table(d: dict) -> str:
    rows = [(t["type"], " > ".join(t["steps"]), t["description"]) for t in d.get("types", [])]
    return columns(rows, ["TYPE", "STEPS", "DESCRIPTION"])


# --- commands ------------------------------------------------------------------------------


def client_for(args: argparse.Namespace) -> Client:
    target = config.resolve(server=args.server, context=args.context)
    return Client(
        target.server,
        target.key,
        ca_bundle=target.ca_bundle,
        timeout=args.request_timeout,
        idempotency_key=args.idempotency_key,
        retries=args.retries,
    )


def mutate(args, api: Client, method: str, path: str, body: dict | None = None) -> dict:
    """Send a request that changes something; its answer, unless it was a dry run (the plan
    is printed, exit 0) or the server held it for approval (printed, exit 8)."""
    dry_run = getattr(args, "dry_run", False)
    answer = api.request(method, path, body=body, query={"dry_run": "true"} if dry_run else None)
    if api.replayed:
        print(
            f"(the answer of an earlier request with Idempotency-Key {api.idempotency_key}: "
            "nothing ran now)",
            file=sys.stderr,
        )
    if dry_run:
        if answer.get("dry_run") is not True:
            emit(answer, args.output, lambda d: fields(d))
            raise CliError(
                "the server answered without a plan: it does not know dry runs here, and may "
                "have done the request (its answer is above)",
                UNAVAILABLE,
                "not_a_dry_run",
            )
        emit(answer, args.output, dry_run_table)
        raise Stop(OK, "dry run: nothing changed")
    if api.status == 202 and "approval_id" in answer:
        emit(answer, args.output, approval_table)
        raise Stop(
            HELD,
            f"held for approval until {answer.get('expires_at')} (nothing changed yet); "
            f"another person approves it: opsctl approvals approve {answer['approval_id']} "
            "--reason TEXT",
        )
    return answer


def scale_text(d: dict) -> str:
    return (
        f"{d['kind']} {d['namespace']}/{d['name']} scaled "
        f"{cell(d.get('previous_replicas'))} -> {d['replicas']}"
    )


def delete_text(d: dict) -> str:
    return f"{d['kind']} {d['namespace']}/{d['name']} deleted"


def cmd_whoami(args, api: Client) -> int:
    emit(api.get("/ops/whoami"), args.output, whoami_table)
    return 0


def cmd_scale(args, api: Client) -> int:
    path = f"/ops/namespaces/{part(args.namespace)}/{SCALE_KINDS[args.kind]}/{part(args.name)}"
    answer = mutate(args, api, "POST", f"{path}/scale", {"replicas": number_or_text(args.replicas)})
    emit(answer, args.output, scale_text)
    return 0


def cmd_delete(args, api: Client) -> int:
    path = f"/ops/namespaces/{part(args.namespace)}/{DELETE_KINDS[args.kind]}/{part(args.name)}"
    emit(mutate(args, api, "DELETE", path), args.output, delete_text)
    return 0


def start_job(args, api: Client, job_type: str, body: dict) -> int:
    """Start a job; with ``--wait``, follow it to its end."""
    answer = mutate(args, api, "POST", f"/ops/jobs/{part(job_type)}", body)
    if not args.wait:
        emit(answer, args.output, lambda d: f"job {d['job_id']}")
        return 0
    return wait_for(args, api, answer["job_id"])


def wait_for(args, api: Client, job_id: str) -> int:
    # Progress goes to stdout for people, to stderr when stdout carries json or yaml.
    progress = sys.stdout if args.output == "table" else sys.stderr
    try:
        code, job = follow(api, job_id, timeout=args.timeout, interval=args.interval, out=progress)
    except KeyboardInterrupt:
        print(f"\nstopped following; the job goes on: opsctl job follow {job_id}", file=sys.stderr)
        return 130
    if args.output != "table":
        emit(job, args.output, job_table)
    if code:
        raise failure(job)
    return 0


def cmd_rebuild(args, api: Client) -> int:
    optional = {
        "strategy": args.strategy,
        "allow_outage": args.allow_outage or None,  # left out unless given: the API's default
        "allow_scale_down": args.allow_scale_down or None,
        "from_snapshot": args.from_snapshot,
    }
    body = {
        "namespace": args.namespace,
        "statefulset": args.statefulset,
        "ordinal": number_or_text(args.ordinal),
        "target_replicas": number_or_text(args.target_replicas),
        **{k: v for k, v in optional.items() if v is not None},
    }
    return start_job(args, api, "pg-rebuild", body)


def cmd_rollout_restart(args, api: Client) -> int:
    body = {"namespace": args.namespace, "kind": args.kind, "name": args.name}
    return start_job(args, api, "rollout-restart", body)


def cmd_backup(args, api: Client) -> int:
    body = {"namespace": args.namespace, "statefulset": args.statefulset}
    if args.ordinal is not None:
        body["ordinal"] = number_or_text(args.ordinal)
    return start_job(args, api, "pg-backup", body)


def cmd_job_start(args, api: Client) -> int:
    body = {}
    for item in args.param:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise CliError(f"--param {item!r}: give it as key=value", BAD_INPUT, "usage")
        body[key] = param_value(value)
    return start_job(args, api, args.type, body)


def cmd_job_get(args, api: Client) -> int:
    emit(api.get(f"/ops/jobs/{part(args.job_id)}"), args.output, job_table)
    return 0


def cmd_job_follow(args, api: Client) -> int:
    return wait_for(args, api, args.job_id)


def cmd_job_action(args, api: Client) -> int:
    answer = mutate(args, api, "POST", f"/ops/jobs/{part(args.job_id)}/{args.action}")
    emit(answer, args.output, job_table)
    return 0


def more_rows_note(page: dict, fmt: str) -> None:
    """On stderr, under a table: that the page is not every row (the API pages by cursor)."""
    if fmt == "table" and page.get("next"):
        shown, count = len(page.get("results", [])), page.get("count")
        print(f"({shown} of {count} rows: raise --limit or narrow the filters)", file=sys.stderr)


def cmd_job_list(args, api: Client) -> int:
    query = {"status": args.status, "type": args.type, "namespace": args.namespace}
    if args.limit:
        query["page_size"] = args.limit
    emit(page := api.get("/ops/jobs", query), args.output, jobs_table)
    more_rows_note(page, args.output)
    return 0


def cmd_job_types(args, api: Client) -> int:
    emit(api.get("/ops/jobs/types"), args.output, types_table)
    return 0


def cmd_audit(args, api: Client) -> int:
    query = {
        "namespace": args.namespace,
        "actor": args.actor,
        "action": args.action,
        "status": args.status,
        "since": as_iso(args.since),
        "until": as_iso(args.until),
    }
    if args.limit:
        query["page_size"] = args.limit
    emit(page := api.get("/ops/audit", query), args.output, audit_table)
    more_rows_note(page, args.output)
    return 0


def cmd_approvals_list(args, api: Client) -> int:
    query = {"status": args.status, "page_size": args.limit or None}
    emit(page := api.get("/ops/approvals", query), args.output, approvals_table)
    more_rows_note(page, args.output)
    return 0


def cmd_approvals_get(args, api: Client) -> int:
    emit(api.get(f"/ops/approvals/{part(args.approval_id)}"), args.output, approval_table)
    return 0


def cmd_approvals_approve(args, api: Client) -> int:
    """Approve: the operation runs for its requester; its own answer is printed (with
    ``--wait``, a job's is followed to its end)."""
    path = f"/ops/approvals/{part(args.approval_id)}/approve"
    answer = mutate(args, api, "POST", path, {"reason": args.reason})
    print(f"approval {args.approval_id} approved", file=sys.stderr)
    if "job_id" in answer:
        if args.wait:
            return wait_for(args, api, answer["job_id"])
        emit(answer, args.output, lambda d: f"job {d['job_id']}")
    elif "replicas" in answer:
        emit(answer, args.output, scale_text)
    elif {"kind", "namespace", "name"} <= set(answer):
        emit(answer, args.output, delete_text)
    else:
        emit(answer, args.output, lambda d: fields(d))
    return 0


def cmd_approvals_reject(args, api: Client) -> int:
    path = f"/ops/approvals/{part(args.approval_id)}/reject"
    emit(mutate(args, api, "POST", path, {"reason": args.reason}), args.output, approval_table)
    return 0


def cmd_config_set_context(args) -> int:
    if args.insecure_key and (args.key_env or args.key_file):
        raise CliError("give one of --key-env, --key-file, --insecure-key", BAD_INPUT, "usage")
    entry = {
        "server": args.server_url,
        "key-env": args.key_env,
        "key-file": args.key_file,
        "key": args.insecure_key,
        "ca-bundle": args.ca_bundle,
    }
    path = config.set_context(args.name, entry)
    print(f"context {args.name} saved in {path}")
    return 0


def cmd_config_use_context(args) -> int:
    config.use_context(args.name)
    print(f"using context {args.name}")
    return 0


def cmd_config_get_contexts(args) -> int:
    data = config.load()
    current = data.get("current-context")
    rows = [
        (
            "*" if name == current else "",
            name,
            c.get("server"),
            f"${c['key-env']}" if c.get("key-env") else c.get("key-file") or "(in config)",
        )
        for name, c in data["contexts"].items()
    ]
    listing = {"current-context": current, "contexts": data["contexts"]}
    for entry in listing["contexts"].values():
        if entry.get("key"):
            entry["key"] = "(hidden)"
    emit(listing, args.output, lambda _: columns(rows, ["CURRENT", "NAME", "SERVER", "KEY"]))
    return 0


def cmd_completion(args) -> int:
    print(completion_script(args.shell))
    return 0


# --- parser --------------------------------------------------------------------------------


def _common() -> argparse.ArgumentParser:
    """Global options also accepted after the command (``opsctl whoami -o json``)."""
    p = argparse.ArgumentParser(add_help=False)
    s = argparse.SUPPRESS
    p.add_argument("-o", "--output", choices=FORMATS, default=s, help="output format")
    p.add_argument("--server", default=s, help="API server URL (else $OPSCTL_SERVER)")
    p.add_argument("--context", default=s, help="context of the config file to use")
    p.add_argument(
        "--idempotency-key",
        default=s,
        metavar="KEY",
        help="Idempotency-Key of the change this sends (default: a new random one)",
    )
    return p


def _dry_run_option(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--dry-run",
        action="store_true",
        help="run every check and print the plan of the exact changes; change nothing",
    )


def _wait_options(p: argparse.ArgumentParser, dry_run: bool = True) -> None:
    if dry_run:
        _dry_run_option(p)
    p.add_argument("--wait", action="store_true", help="follow the job until it ends")
    p.add_argument("--timeout", type=float, help="with --wait: give up after this many seconds")
    p.add_argument("--interval", type=float, default=0.5, help=argparse.SUPPRESS)


def build_parser() -> argparse.ArgumentParser:
    common = _common()
    parser = argparse.ArgumentParser(
        prog="opsctl",
        description="Client of the ApiOps HTTP API: scale, delete, jobs, approvals, audit.",
        epilog=EXIT_CODES_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("-o", "--output", choices=FORMATS, default="table", help="output format")
    parser.add_argument("--server", help="API server URL (else $OPSCTL_SERVER, else the context)")
    parser.add_argument("--context", help="context of the config file to use")
    parser.add_argument(
        "--request-timeout", type=float, default=30, help="seconds to wait for each answer"
    )
    parser.add_argument(
        "--idempotency-key",
        metavar="KEY",
        help="Idempotency-Key of the request this changes (default: a new random one)",
    )
    parser.add_argument(
        "--retries",
        type=int,
        default=RETRIES,
        help="retries of a request after a timeout, a lost connection, 429 or 503 (a change "
        "is sent again with the same Idempotency-Key: it never runs twice)",
    )
    parser.add_argument("--version", action="version", version=f"opsctl {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def add(name: str, func, help_text: str, parent=sub, shared=True) -> argparse.ArgumentParser:
        parents = [common] if shared else []
        p = parent.add_parser(name, parents=parents, help=help_text, description=help_text)
        p.set_defaults(func=func)
        return p

    def ns(p: argparse.ArgumentParser, required: bool = True) -> None:
        p.add_argument("-n", "--namespace", required=required, help="namespace")

    add("whoami", cmd_whoami, "who this key is: name, namespaces, operations, key")

    p = add("scale", cmd_scale, "scale a Deployment or StatefulSet")
    ns(p)
    p.add_argument("kind", choices=SCALE_KINDS)
    p.add_argument("name")
    p.add_argument("--replicas", required=True)
    _dry_run_option(p)

    p = add("delete", cmd_delete, "delete a pod or a PersistentVolumeClaim")
    ns(p)
    p.add_argument("kind", choices=DELETE_KINDS)
    p.add_argument("name")
    _dry_run_option(p)

    p = add("rebuild", cmd_rebuild, "rebuild one PostgreSQL replica (a pg-rebuild job)")
    ns(p)
    p.add_argument("statefulset")
    p.add_argument("--ordinal", required=True)
    p.add_argument("--target-replicas", required=True)
    p.add_argument("--strategy", help="scale-to-zero (the API's default) or in-place")
    p.add_argument("--allow-outage", action="store_true")
    p.add_argument("--allow-scale-down", action="store_true")
    p.add_argument("--from-snapshot", metavar="NAME", help="restore from this VolumeSnapshot")
    _wait_options(p)

    p = add("rollout-restart", cmd_rollout_restart, "restart every pod of a workload (a job)")
    ns(p)
    p.add_argument("kind", choices=SCALE_KINDS)
    p.add_argument("name")
    _wait_options(p)

    p = add("backup", cmd_backup, "snapshot one PostgreSQL replica's claim (a pg-backup job)")
    ns(p)
    p.add_argument("statefulset")
    p.add_argument("--ordinal")
    _wait_options(p)

    job = sub.add_parser("job", help="start, follow and list jobs").add_subparsers(
        dest="job_command", required=True, metavar="SUBCOMMAND"
    )
    p = add("start", cmd_job_start, "start a job of any type (see: opsctl job types)", job)
    p.add_argument("type")
    p.add_argument("--param", action="append", default=[], metavar="KEY=VALUE")
    _wait_options(p)
    p = add("get", cmd_job_get, "a job and its steps", job)
    p.add_argument("job_id")
    p = add("follow", cmd_job_follow, "follow a job until it ends", job)
    p.add_argument("job_id")
    _wait_options(p, dry_run=False)
    for action in ("cancel", "retry"):
        p = add(action, cmd_job_action, f"{action} a job", job)
        p.add_argument("job_id")
        _dry_run_option(p)
        p.set_defaults(action=action)
    p = add("list", cmd_job_list, "jobs, newest first", job)
    ns(p, required=False)
    p.add_argument("--status")
    p.add_argument("--type")
    p.add_argument("--limit", type=int)
    add("types", cmd_job_types, "job types, their steps and input", job)

    p = add("audit", cmd_audit, "the audit log, newest first")
    ns(p, required=False)
    p.add_argument("--actor")
    p.add_argument("--action")
    p.add_argument("--status")
    p.add_argument("--since", help="a relative age (30m, 24h, 7d) or ISO 8601")
    p.add_argument("--until", help="a relative age or ISO 8601")
    p.add_argument("--limit", type=int, help="rows to show (at most 500)")

    apr = sub.add_parser("approvals", help="requests held for approval, and their decision")
    apr_sub = apr.add_subparsers(dest="approvals_command", required=True, metavar="SUBCOMMAND")
    p = add("list", cmd_approvals_list, "requests held for approval, newest first", apr_sub)
    p.add_argument("--status", choices=APPROVAL_STATUSES)
    p.add_argument("--limit", type=int)
    p = add("get", cmd_approvals_get, "one approval and its plan", apr_sub)
    p.add_argument("approval_id")
    p = add("approve", cmd_approvals_approve, "approve: the operation runs now", apr_sub)
    p.add_argument("approval_id")
    p.add_argument("--reason", required=True, help="why (a change ticket, a sentence)")
    _wait_options(p, dry_run=False)
    p = add("reject", cmd_approvals_reject, "reject: nothing runs", apr_sub)
    p.add_argument("approval_id")
    p.add_argument("--reason", required=True, help="why (a change ticket, a sentence)")

    cfg = sub.add_parser("config", help="contexts: servers and where their keys live")
    cfg_sub = cfg.add_subparsers(dest="config_command", required=True, metavar="SUBCOMMAND")
    p = add("set-context", cmd_config_set_context, "create or replace a context", cfg_sub, False)
    p.add_argument("name")
    p.add_argument("--server", dest="server_url", required=True, help="API server URL")
    keys = p.add_mutually_exclusive_group(required=True)
    keys.add_argument("--key-env", metavar="VAR", help="read the key from this variable")
    keys.add_argument("--key-file", metavar="PATH", help="read the key from this file")
    keys.add_argument(
        "--insecure-key", metavar="KEY", help="store the key itself in the config (0600)"
    )
    p.add_argument("--ca-bundle", metavar="PATH", help="CA certificates to verify TLS with")
    p = add("use-context", cmd_config_use_context, "make a context the current one", cfg_sub, False)
    p.add_argument("name")
    add("get-contexts", cmd_config_get_contexts, "list the contexts", cfg_sub)

    p = add("completion", cmd_completion, "print a shell completion script", shared=False)
    p.add_argument("shell", choices=("bash", "zsh"))
    return parser


LOCAL = (cmd_config_set_context, cmd_config_use_context, cmd_config_get_contexts, cmd_completion)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        if args.func in LOCAL:
            return args.func(args)
        return args.func(args, client_for(args))
    except CliError as e:
        sys.stdout.flush()
        if lines := e.lines():
            print("\n".join(lines), file=sys.stderr)
        return e.exit_code
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # the reader went away (| head): not an error, and no shutdown noise
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
