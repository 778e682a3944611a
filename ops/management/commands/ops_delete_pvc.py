"""``manage.py ops_delete_pvc NAMESPACE NAME``: the service behind
``DELETE .../persistentvolumeclaims/{name}``."""

from __future__ import annotations

from django.core.management.base import BaseCommand

from ops import services
from ops.cli import add_dry_run_option, cli_actor, report_deferred, service_errors


class Command(BaseCommand):
    help = (
        "Delete a PersistentVolumeClaim, audited as cli:<user> (it may stay Terminating while "
        "a pod mounts it). Exit codes: 2 bad arguments, 3 namespace denied, 4 not found, "
        "8 held for approval, 1 Kubernetes failure."
    )

    def add_arguments(self, parser):
        parser.add_argument("namespace", help="namespace (must be in OPS_ALLOWED_NAMESPACES)")
        add_dry_run_option(parser)
        parser.add_argument("name", help="name of the PersistentVolumeClaim")

    def handle(self, *args, namespace: str, name: str, dry_run: bool, **options):
        with service_errors():
            result = services.pvc_delete(
                actor=cli_actor(), namespace=namespace, name=name, dry_run=dry_run, gated=True
            )
        if report_deferred(self, result):
            return
        self.stdout.write(f"persistentvolumeclaim {result.namespace}/{result.name} deleted")
