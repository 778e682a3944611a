"""``manage.py ops_delete_pod NAMESPACE NAME``: the service behind ``DELETE .../pods/{name}``."""

from __future__ import annotations

from ops import services
from ops.cli import DeleteCommand


class Command(DeleteCommand):
    help = (
        "Delete a pod (its controller recreates it), audited as cli:<user>. "
        "Exit codes: 2 bad arguments, 3 namespace denied, 4 not found, 8 held for approval, "
        "1 Kubernetes failure."
    )
    described = "pod"
    noun = "pod"
    delete = staticmethod(services.pod_delete)
