"""``manage.py ops_scale NAMESPACE {deployment|statefulset} NAME REPLICAS``.

Calls the same service as ``POST .../scale``: the same input rules, namespace policy and one
``ops_log`` row per attempt, with the actor ``cli:<OS user>`` from ``local``.
"""

from __future__ import annotations

from django.core.management.base import BaseCommand

from ops import services
from ops.cli import (
    add_dry_run_option,
    cli_actor,
    int_or_raw,
    report_deferred,
    service_errors,
)

SCALE_SERVICES = {
    services.KIND_DEPLOYMENT: services.deployment_scale,
    services.KIND_STATEFULSET: services.statefulset_scale,
}


class Command(BaseCommand):
    help = (
        "Set the replicas of a Deployment or StatefulSet, audited as cli:<user>. "
        "Exit codes: 2 bad arguments, 3 namespace denied, 4 not found, 5 conflict, "
        "8 held for approval, 1 Kubernetes or audit failure."
    )

    def add_arguments(self, parser):
        parser.add_argument("namespace", help="namespace (must be in OPS_ALLOWED_NAMESPACES)")
        parser.add_argument("kind", choices=sorted(SCALE_SERVICES), help="kind of workload")
        parser.add_argument("name", help="name of the Deployment or StatefulSet")
        parser.add_argument(
            "replicas", type=int_or_raw, help="desired replicas, 0..OPS_MAX_REPLICAS"
        )
        add_dry_run_option(parser)

    def handle(self, *args, namespace: str, kind: str, name: str, replicas, dry_run, **options):
        with service_errors():
            result = SCALE_SERVICES[kind](
                actor=cli_actor(),
                namespace=namespace,
                name=name,
                replicas=replicas,
                dry_run=dry_run,
                gated=True,
            )
        if report_deferred(self, result):
            return
        self.stdout.write(
            f"{result.kind} {result.namespace}/{result.name} scaled: "
            f"{result.previous_replicas} -> {result.replicas} replicas"
        )
