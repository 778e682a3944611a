"""``manage.py audit_checkpoint --out FILE``: a signed checkpoint of the audit chain (its size
and last hash, Ed25519); ``--public-key`` prints the key that checks them instead."""

from __future__ import annotations

import json
import os
import sys

from django.core.management.base import BaseCommand, CommandError

from ops import proof


class Command(BaseCommand):
    help = "Write a signed checkpoint of the audit chain, after checking the chain holds."

    def add_arguments(self, parser):
        what = parser.add_mutually_exclusive_group(required=True)
        what.add_argument("--out", metavar="FILE", help="where to write the checkpoint (JSON)")
        what.add_argument(
            "--public-key",
            action="store_true",
            help="print the public key (PEM) that checks our checkpoints, and its key_id",
        )

    def handle(self, *args, out: str | None, public_key: bool, **options):
        try:
            key = proof.signing_key()
        except proof.ProofError as e:
            raise CommandError(str(e)) from None
        if public_key:
            self.stdout.write(proof.public_key_pem(key.public_key()), ending="")
            self.stderr.write(f"key_id {proof.key_id(key.public_key())}")
            return
        report = proof.verify()
        if not report.holds:  # a signature must never bless a rewritten history
            for problem in report.problems:
                self.stderr.write(f"audit_checkpoint: BROKEN: {problem}")
            sys.exit(1)
        point = proof.make_checkpoint(size=report.size, head=report.head, key=key)
        try:
            with open(out, "w", encoding="utf-8") as handle:
                json.dump(point, handle, indent=2)
                handle.write("\n")
                handle.flush()
                os.fsync(handle.fileno())
        except OSError as e:
            raise CommandError(f"cannot write {out}: {e}") from None
        self.stdout.write(
            f"checkpoint of {point['size']} rows, head {point['head']}, key {point['key_id']} "
            f"written to {out}"
        )
