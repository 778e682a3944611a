"""``manage.py revoke_api_key NAME``: deactivates the named key (the row stays, for history)."""

from __future__ import annotations

from django.core.management.base import CommandError

from ops.api_keys import api_key_revoke
from ops.cli import OpsCommand, cli_actor
from ops.models import ApiKey


class Command(OpsCommand):
    help = "Revoke the active API key of NAME; requests with it get 401 from now on."

    def add_arguments(self, parser):
        parser.add_argument("name")

    def handle(self, *args, name: str, **options):
        revoked = api_key_revoke(actor=cli_actor(), keys=ApiKey.objects.filter(name=name))
        if not revoked:
            raise CommandError(f"no active API key named {name!r}")
        self.stdout.write(f"revoked the API key of {name}")
