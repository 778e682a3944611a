"""`python -m kubesim`: serve a simulated cluster until interrupted.

Prints `kubesim listening on http://127.0.0.1:PORT` once it accepts requests, after writing
the kubeconfig; SIGINT and SIGTERM stop it cleanly.
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import time
from types import FrameType

from .errors import ApiError
from .sim import KubeSim


def main(argv: list[str] | None = None) -> int:
    """Parse arguments, start the simulator, wait for a signal."""
    parser = argparse.ArgumentParser(prog="python -m kubesim", description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=0, help="TCP port on 127.0.0.1 (0 picks one)")
    parser.add_argument("--host", default="127.0.0.1", help=argparse.SUPPRESS)
    parser.add_argument("--kubeconfig", required=True, help="where to write a kubeconfig for it")
    parser.add_argument(
        "--load",
        action="append",
        default=[],
        metavar="FILE.yaml",
        help="manifests to apply at start (repeatable)",
    )
    parser.add_argument(
        "--ready-delay", type=float, default=1.0, help="seconds from scheduling to Ready"
    )
    parser.add_argument(
        "--termination-delay", type=float, default=1.0, help="seconds a deleted pod takes to go"
    )
    parser.add_argument(
        "--tick",
        type=float,
        default=1.0,
        help="safety-net controller period (they also wake on every change and timer)",
    )
    parser.add_argument(
        "--observe-delay",
        type=float,
        default=0.1,
        help="seconds before the controllers act on a spec change (status lags meanwhile)",
    )
    parser.add_argument(
        "--snapshot-delay",
        type=float,
        default=1.0,
        help="seconds the CSI driver takes to cut a VolumeSnapshot",
    )
    parser.add_argument(
        "--request-log-size",
        type=int,
        default=100_000,
        metavar="N",
        help="keep the newest N requests in the request log (default 100000)",
    )
    parser.add_argument(
        "--audit-log",
        metavar="FILE",
        help="append the API server's audit log (audit.k8s.io/v1 Event JSON lines) to FILE",
    )
    parser.add_argument("--verbose", action="store_true", help="log controller activity")
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.WARNING,
        format="%(asctime)s %(name)s %(levelname)s %(message)s",
    )

    try:
        sim = KubeSim(
            args.port,
            host=args.host,
            ready_delay=args.ready_delay,
            termination_delay=args.termination_delay,
            tick=args.tick,
            observe_delay=args.observe_delay,
            snapshot_delay=args.snapshot_delay,
            request_log_size=args.request_log_size,
            kubeconfig_path=args.kubeconfig,
            load=args.load,
            audit_log_path=args.audit_log,
        )
    except (OSError, ValueError, ApiError) as e:
        print(f"kubesim: cannot load manifests: {e}", file=sys.stderr)
        return 2
    # A plain list, not a threading.Event: a handler that takes the Event's lock can deadlock
    # against the main thread waiting on it (the handler runs in that thread).
    stop: list[int] = []

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.append(signum)

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    try:
        sim.start()
    except OSError as e:
        print(f"kubesim: cannot listen on port {args.port}: {e}", file=sys.stderr)
        return 2
    print(f"kubesim listening on {sim.url}", flush=True)
    try:
        while not stop:
            time.sleep(0.1)
    finally:
        sim.stop()
    print("kubesim stopped", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
