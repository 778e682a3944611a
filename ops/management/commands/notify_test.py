"""``manage.py notify_test TARGET``: send a test event to one notification target now."""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from ops.notifications import send_test, target_named, targets


class Command(BaseCommand):
    help = (
        "Send a notify.test event to the notification TARGET (from OPS_NOTIFY_TARGETS or the "
        "admin) at once, whatever its filters; exit 1 with the reason when it is not delivered."
    )

    def add_arguments(self, parser):
        parser.add_argument("target", help="the target's name")

    def handle(self, *args, target: str, **options):
        found = target_named(target, disabled=True)
        if found is None:
            names = ", ".join(t.name for t in targets()) or "none"
            raise CommandError(f"no notification target {target!r} (targets: {names})")
        event, error = send_test(found)
        if error is not None:
            raise CommandError(
                f"{found.name} ({found.kind}) did not take event {event.id}: {error}"
            )
        self.stdout.write(
            f"delivered event {event.id} ({event.event}) to {found.name} ({found.kind})"
        )
