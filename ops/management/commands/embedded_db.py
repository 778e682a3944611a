"""``manage.py embedded_db start|stop|status``: the embedded PostgreSQL under ``var/``.

Any ``manage.py`` call starts the embedded server on demand and leaves it running (so the
next one is quick); ``embedded_db stop`` (or ``make stop``) stops it. ``status`` exits 3 when
it is not running, as ``pg_ctl status`` does.
"""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError


class Command(BaseCommand):
    help = "Start, stop or show the embedded PostgreSQL (used when OPS_DB_URL is not set)."
    requires_system_checks: list[str] = []
    requires_migrations_checks = False

    def add_arguments(self, parser) -> None:
        parser.add_argument("action", choices=["start", "stop", "status"])

    def handle(self, *args, action: str, **options) -> None:
        from django.conf import settings

        from apiops_site.db import control

        if settings.DATABASES["default"]["ENGINE"] != "apiops_site.db":
            raise CommandError("OPS_DB_URL is set: there is no embedded PostgreSQL to manage")
        status, line = control(action)
        self.stdout.write(line)
        if status:
            raise SystemExit(status)
