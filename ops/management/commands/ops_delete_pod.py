"""``manage.py ops_delete_pod NAMESPACE NAME``: the service behind ``DELETE .../pods/{name}``."""

from __future__ import annotations

from ops import services
from ops.cli import OpsCommand, cli_actor, service_errors


class Command(OpsCommand):
    help = (
        "Delete a pod (its controller recreates it), audited as cli:<user>. "
        "Exit codes: 2 bad arguments, 3 namespace denied, 4 not found, 1 Kubernetes failure."
    )

    def add_arguments(self, parser):
        parser.add_argument("namespace", help="namespace (must be in OPS_ALLOWED_NAMESPACES)")
        parser.add_argument("name", help="name of the pod")

    def handle(self, *args, namespace: str, name: str, **options):
        with service_errors():
            result = services.pod_delete(actor=cli_actor(), namespace=namespace, name=name)
        self.stdout.write(f"pod {result.namespace}/{result.name} deleted")
