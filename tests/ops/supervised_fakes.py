"""``make run``'s supervisor over fake children, for the stop-timing tests (not a test module).

Run as ``python tests/ops/supervised_fakes.py [--stubborn]``: three children that each start a
grandchild and take 0.3 s to finish after a SIGTERM (with ``--stubborn`` one of them ignores
SIGTERM, so only the KILL after the grace ends it). It installs the same stop signal as
``apiops_site.run.main``, prints ``supervising`` once everything runs, and exits 0 after a
stop: the same supervisor, signal handling and stop sequence, in a fraction of a real start.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from apiops_site import run

CHILD = (
    "import signal, subprocess, sys, time\n"
    "subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(120)'])\n"
    "signal.signal(signal.SIGTERM, lambda *a: (time.sleep(0.3), sys.exit(0)))\n"
    "print('ready', flush=True)\n"
    "while True: time.sleep(1)\n"
)
STUBBORN = "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN);" + (
    "print('ready', flush=True); time.sleep(120)"
)


def main(argv: list[str]) -> int:
    """Start the fakes, supervise, stop everything on a signal."""
    sup = run.Supervisor()
    sup.stopping.install()
    status = 1
    try:
        for name in ("db-like", "web-like", "worker-like"):
            code = STUBBORN if name == "web-like" and "--stubborn" in argv else CHILD
            sup.start(run.Spec(name, [sys.executable, "-c", code], ready_text="ready"), {})
        print("supervising", flush=True)
        status = sup.wait()
    finally:
        sup.stop_all()
    return status


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
