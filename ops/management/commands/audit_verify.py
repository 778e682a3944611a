"""``manage.py audit_verify [--checkpoint FILE] [--public-key FILE]``: does the audit log's hash
chain hold? Exit 0 when it does, 1 naming the first broken row (see ops/proof.py)."""

from __future__ import annotations

import sys
import time

from django.core.management.base import BaseCommand

from ops import proof


class Progress:
    """A one-line progress bar on a terminal (stderr); silent elsewhere."""

    def __init__(self, stream, total: int) -> None:
        self.stream = stream
        self.total = max(total, 1)
        self.started = time.monotonic()
        self.on = stream.isatty()

    def __call__(self, done: int) -> None:
        if not self.on:
            return
        share = min(done / self.total, 1.0)
        bar = "#" * int(share * 30)
        rate = done / max(time.monotonic() - self.started, 1e-6)
        self.stream.write(
            f"\r[{bar:<30}] {share:4.0%} {done:,}/{self.total:,} rows, {rate:,.0f} rows/s"
        )
        self.stream.flush()

    def end(self) -> None:
        if self.on:
            self.stream.write("\r" + " " * 79 + "\r")
            self.stream.flush()


class Command(BaseCommand):
    help = "Walk the audit log's hash chain; exit 1 naming the first broken row."

    def add_arguments(self, parser):
        parser.add_argument(
            "--checkpoint",
            metavar="FILE",
            help="a signed checkpoint (audit_checkpoint --out): also detect a cut below it",
        )
        parser.add_argument(
            "--public-key",
            metavar="FILE",
            help="check the checkpoint's signature with this PEM public key (default: ours)",
        )

    def handle(self, *args, checkpoint: str | None, public_key: str | None, **options):
        point = None
        if checkpoint:
            try:
                public = (
                    proof.load_public_key(public_key)
                    if public_key
                    else proof.signing_key().public_key()
                )
                point = proof.read_checkpoint(checkpoint, public)
            except proof.ProofError as e:
                self.stderr.write(f"audit_verify: {e}")
                sys.exit(1)
        bar = Progress(sys.stderr, proof.head_size())
        started = time.monotonic()
        try:
            report = proof.verify(checkpoint=point, progress=bar)
        finally:
            bar.end()
        seconds = time.monotonic() - started
        if not report.holds:
            for problem in report.problems:
                self.stderr.write(f"audit_verify: BROKEN: {problem}")
            sys.exit(1)
        rate = report.size / seconds if seconds > 0 else 0
        against = f", and the checkpoint of {point['time']} ({point['size']} rows)" if point else ""
        self.stdout.write(
            f"audit chain holds: {report.size} rows, head {report.head}{against} "
            f"({seconds:.2f} s, {rate:,.0f} rows/s)"
        )
