"""``manage.py rotate_api_key NAME --overlap DURATION``: a new key for NAME, printed once; the
old key(s) keep working until the overlap ends, then get 401."""

from __future__ import annotations

from django.core.management.base import CommandError
from django.db import transaction

from ops.audit import Target, record
from ops.cli import OpsCommand, cli_actor, fmt_time, parse_duration
from ops.models import ApiKey, OpsLogStatus

ACTION_ROTATE = "rotate"
KIND_API_KEY = "api_key"


class Command(OpsCommand):
    help = (
        "Issue a new API key for NAME (same scope) and let its current key(s) expire after the "
        "overlap, so whoever uses the name can switch without a gap. Prints the new key once."
    )

    def add_arguments(self, parser):
        parser.add_argument("name")
        parser.add_argument(
            "--overlap",
            required=True,
            help="how long the old key(s) keep working: e.g. 24h, 30m, 7d, 90s",
        )

    def handle(self, *args, name: str, overlap: str, **options):
        length = parse_duration(overlap, option="--overlap")
        with transaction.atomic():
            try:
                new, old = ApiKey.objects.rotate(name=name, overlap=length)
            except LookupError:
                raise CommandError(f"no usable API key named {name!r} to rotate") from None
            actor = cli_actor()
            record(
                actor_name=actor.name,
                source_ip=actor.source_ip,
                origin=actor.origin,
                target=Target(
                    ACTION_ROTATE,
                    KIND_API_KEY,
                    "",
                    name,
                    {
                        "overlap": overlap,
                        "new_prefix": new.key.prefix,
                        "old_prefixes": [k.prefix for k in old],
                    },
                ),
                status=OpsLogStatus.SUCCESS,
            )
        for key in old:
            self.stderr.write(
                f"old key {key.prefix} of {name} expires at {fmt_time(key.expires_at)} UTC"
            )
        self.stderr.write(f"new API key for {name} ({new.key.prefix}); it is shown only this once:")
        self.stdout.write(new.raw)
