"""``manage.py ops_delete_pvc NAMESPACE NAME``: the service behind
``DELETE .../persistentvolumeclaims/{name}``."""

from __future__ import annotations

from ops import services
from ops.cli import DeleteCommand


class Command(DeleteCommand):
    help = (
        "Delete a PersistentVolumeClaim, audited as cli:<user> (it may stay Terminating while "
        "a pod mounts it). Exit codes: 2 bad arguments, 3 namespace denied, 4 not found, "
        "8 held for approval, 1 Kubernetes failure."
    )
    described = "PersistentVolumeClaim"
    noun = "persistentvolumeclaim"
    delete = staticmethod(services.pvc_delete)
