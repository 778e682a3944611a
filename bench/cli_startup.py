"""How long a ``manage.py`` command takes to start: ``manage.py <command> --help``, which loads
Django and every app (settings, models, admin, the apps' ``ready()``) and the command's module,
but touches neither the database nor a cluster.

With ``--baseline DIR`` (another checkout, e.g. ``git worktree add /tmp/base main``) both
checkouts are timed in the same run, interleaved (one run of each in turn), with this
interpreter, so a busy machine slows both alike. Prints per command and checkout the median
and fastest wall-clock time and the fastest CPU time (user + system: what the start-up itself
costs, much less disturbed by other work on a shared machine than the wall clock), then the
packages that cost the most to import in this checkout (``python -X importtime``, their own
time summed over every module of the package).

Target (issue 14): 0.5 s where possible.

Run: ``.venv/bin/python bench/cli_startup.py [--runs 9] [--baseline DIR] [COMMAND ...]``
"""

from __future__ import annotations

import argparse
import re
import resource
import statistics
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
COMMANDS = ["ops_scale", "ops_audit", "ops_pg_rebuild", "ops_job"]


def once(checkout: Path, command: str) -> tuple[float, float]:
    """Wall-clock and CPU seconds of one ``manage.py command --help``."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    subprocess.run(
        [sys.executable, "manage.py", command, "--help"],
        cwd=checkout,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        check=True,
    )
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu


def import_costs(checkout: Path, command: str, top: int) -> list[tuple[str, float]]:
    """The ``top`` packages by their modules' own import time, in ms."""
    run = subprocess.run(
        [sys.executable, "-X", "importtime", "manage.py", command, "--help"],
        cwd=checkout,
        capture_output=True,
        text=True,
        check=True,
    )
    costs: Counter[str] = Counter()
    for line in run.stderr.splitlines():
        match = re.match(r"import time:\s+(\d+) \|\s+\d+ \|\s*(\S+)", line)
        if match:
            costs[match[2].split(".")[0]] += int(match[1]) / 1000
    return costs.most_common(top)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("commands", nargs="*", default=COMMANDS)
    parser.add_argument("--runs", type=int, default=9)
    parser.add_argument("--baseline", type=Path, help="another checkout to time alongside")
    parser.add_argument("--top", type=int, default=12, help="packages in the import table")
    args = parser.parse_args(argv)
    checkouts = {"this": REPO}
    if args.baseline:
        checkouts = {"baseline": args.baseline.resolve(), **checkouts}

    times: dict[tuple[str, str], list[tuple[float, float]]] = {}
    for _ in range(args.runs):
        for command in args.commands:
            for name, checkout in checkouts.items():
                times.setdefault((name, command), []).append(once(checkout, command))

    print(f"manage.py COMMAND --help, {args.runs} runs each, interleaved (seconds)")
    columns = ["wall median", "wall min", "CPU min"]
    print(f"{'command':<16}" + "".join(f"{n + ' ' + c:>22}" for n in checkouts for c in columns))
    for command in args.commands:
        cells = ""
        for name in checkouts:
            runs = times[(name, command)]
            walls, cpus = [w for w, _ in runs], [c for _, c in runs]
            cells += f"{statistics.median(walls):>22.3f}{min(walls):>22.3f}{min(cpus):>22.3f}"
        print(f"{command:<16}{cells}")
    print(f"\nimport time by package in this checkout ({args.commands[0]} --help; ms, own time)")
    for package, ms in import_costs(REPO, args.commands[0], args.top):
        print(f"  {package:<24}{ms:>8.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
