"""k8s/monitoring/: the PrometheusRule alerts and the Grafana dashboard, held to what /metrics
really exposes.

Every PromQL expression is parsed with promql-parser (Prometheus's grammar); every metric it
names must be one /metrics describes (a counter as ``_total``, a histogram as ``_bucket``,
``_sum`` or ``_count``), every label it matches or groups by one that metric carries. The
checker is shown to bite on a misspelt metric, an unknown label and broken syntax.
"""

from __future__ import annotations

import json
import re

import promql_parser
import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from ops import metrics

from .manifests import K8S, by_kind, kubectl, load, render

MONITORING = K8S / "monitoring"
DASHBOARD = MONITORING / "grafana-dashboard.json"
RULES = MONITORING / "prometheus-rules.yaml"
TOKEN = "monitoring-test-token-0123456789"

#: The alerts the issue asks for, by the situation each reports.
REQUIRED_ALERTS = {
    "ApiOpsJobFailed",
    "ApiOpsQueueStalled",
    "ApiOpsAuditWritesFailing",
    "ApiOpsNotificationsFailing",
    "ApiOpsAuthLockoutsSpiking",
}
#: And the dashboard's sections.
REQUIRED_ROWS = {
    "Operations",
    "Kubernetes API",
    "Jobs",
    "Queue health",
    "Notifications and approvals",
}
_SUFFIXES = {"counter": ("_total",), "histogram": ("_bucket", "_sum", "_count"), "gauge": ("",)}


def rules() -> list[dict]:
    doc = yaml.safe_load(RULES.read_text(encoding="utf-8"))
    return [rule for group in doc["spec"]["groups"] for rule in group["rules"]]


def dashboard_exprs() -> list[tuple[str, str]]:
    panels = json.loads(DASHBOARD.read_text(encoding="utf-8"))["panels"]
    return [(p["title"], t["expr"]) for p in panels for t in p.get("targets", [])]


@pytest.fixture(scope="module")
def exposed(django_db_setup, django_db_blocker) -> dict[str, set[str]]:
    """Sample name -> label names, for everything one scrape of /metrics describes."""
    from django.test import Client, override_settings

    with django_db_blocker.unblock(), override_settings():
        from django.conf import settings

        settings.APIOPS = {**settings.APIOPS, "METRICS_TOKEN": TOKEN}
        text = Client().get("/metrics", HTTP_AUTHORIZATION=f"Bearer {TOKEN}").content.decode()
    labels = {m._name: set(m._labelnames) for m in metrics._PROCESS_METRICS}
    labels.update({g.name: set(g.labelnames) for g in metrics.DATABASE_GAUGES.values()})
    names: dict[str, set[str]] = {}
    for family in text_string_to_metric_families(text):
        if not family.name.startswith("apiops_"):
            continue
        for suffix in _SUFFIXES.get(family.type, ("",)):
            extra = {"le"} if suffix == "_bucket" else set()
            names[family.name + suffix] = labels.get(family.name, set()) | extra
    return names


def problems(expr: str, exposed: dict[str, set[str]]) -> list[str]:
    """What is wrong with ``expr``: a parse error, metrics or labels /metrics lacks."""
    try:
        tree = promql_parser.parse(expr)
    except ValueError as e:
        return [f"does not parse: {e}"]
    found: list[str] = []

    def selectors_of(node) -> list:
        seen = []
        promql_parser.walk(
            node, lambda n: seen.append(n) if isinstance(n, promql_parser.VectorSelector) else None
        )
        return seen

    def visit(node) -> None:
        if isinstance(node, promql_parser.VectorSelector):
            if node.name not in exposed:
                found.append(f"no metric {node.name}")
                return
            for matcher in node.matchers.matchers:
                if matcher.name not in exposed[node.name]:
                    found.append(f"{node.name} has no label {matcher.name}")
        if isinstance(node, promql_parser.AggregateExpr) and node.modifier is not None:
            inner = set().union(*(exposed.get(s.name, set()) for s in selectors_of(node.expr)))
            for label in node.modifier.labels:
                if label not in inner:
                    found.append(f"grouped by {label}, which {node.expr} does not carry")

    promql_parser.walk(tree, visit)
    return found


@pytest.mark.django_db
@pytest.mark.parametrize("rule", rules(), ids=lambda r: r["alert"])
def test_every_alert_rule_parses_and_names_only_exposed_metrics(rule, exposed):
    assert problems(rule["expr"], exposed) == []
    assert rule["labels"]["severity"] in {"warning", "critical"}
    assert rule["annotations"]["summary"]
    assert rule["annotations"]["description"]


def test_the_required_alerts_are_there():
    assert {rule["alert"] for rule in rules()} >= REQUIRED_ALERTS


@pytest.mark.django_db
@pytest.mark.parametrize(("title", "expr"), dashboard_exprs(), ids=lambda v: v[:40])
def test_every_dashboard_query_parses_and_names_only_exposed_metrics(title, expr, exposed):
    assert problems(expr, exposed) == [], title


def test_the_dashboard_is_grafana_json_with_its_sections():
    board = json.loads(DASHBOARD.read_text(encoding="utf-8"))

    panels = board["panels"]
    assert board["uid"]
    assert board["title"]
    assert board["schemaVersion"] >= 36
    assert {p["title"] for p in panels if p["type"] == "row"} == REQUIRED_ROWS
    assert len({p["id"] for p in panels}) == len(panels)
    for p in panels:
        grid = p["gridPos"]
        assert grid["x"] >= 0, p["title"]
        assert grid["x"] + grid["w"] <= 24, p["title"]
        if p["type"] != "row":
            assert p["targets"], p["title"]
            assert p["datasource"] == {"type": "prometheus", "uid": "${datasource}"}
    [variable] = board["templating"]["list"]
    assert (variable["name"], variable["type"], variable["query"]) == (
        "datasource",
        "datasource",
        "prometheus",
    )


@pytest.mark.django_db
def test_the_checker_bites(exposed):
    assert problems("sum(rate(apiops_operation_total[5m]))", exposed) == [
        "no metric apiops_operation_total"
    ]
    assert problems('apiops_jobs_total{job_id="x"}', exposed) == [
        "apiops_jobs_total has no label job_id"
    ]
    assert problems("sum by (pod) (apiops_jobs_active)", exposed)[0].startswith("grouped by pod")
    assert problems("sum(rate(apiops_jobs_total[5m])", exposed)[0].startswith("does not parse")


@pytest.mark.kubectl
@pytest.mark.skipif(kubectl() is None, reason="kubectl is not installed (it renders k8s/)")
def test_the_monitoring_kustomization_renders_the_rules_the_monitor_and_the_dashboard():
    docs = load(render(MONITORING))

    [rule] = by_kind(docs, "PrometheusRule")
    [monitor] = by_kind(docs, "PodMonitor")
    [board] = by_kind(docs, "ConfigMap")
    assert rule["spec"] == yaml.safe_load(RULES.read_text(encoding="utf-8"))["spec"]
    assert {e["port"] for e in monitor["spec"]["podMetricsEndpoints"]} == {"http", "metrics"}
    assert all(e["path"] == "/metrics" for e in monitor["spec"]["podMetricsEndpoints"])
    assert board["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert json.loads(board["data"]["grafana-dashboard.json"]) == json.loads(
        DASHBOARD.read_text(encoding="utf-8")
    )
    # The ports the monitor scrapes are the ones the Deployments declare.
    deployed = load(render(K8S))
    ports = {
        port["name"]
        for d in by_kind(deployed, "Deployment")
        for c in d["spec"]["template"]["spec"]["containers"]
        for port in c.get("ports", [])
    }
    assert {"http", "metrics"} <= ports
    assert re.fullmatch(r"[a-z0-9-]+", monitor["metadata"]["name"])
