"""docs/grafana/shriven.json and docs/prometheus/shriven-alerts.yml name only metrics that a
`run --sim` serves; `promtool check rules` accepts the rules where Debian's prometheus is
installed."""

from __future__ import annotations

import importlib.util
import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import requests
import yaml

from .conftest import metric_names, wait_for_data

DOCS = Path(__file__).parents[2] / "docs"
DASHBOARD = DOCS / "grafana" / "shriven.json"
RULES = DOCS / "prometheus" / "shriven-alerts.yml"
PUBLISHER = "shriven_publisher_"  # served only while publishing (`run --publish`)
# Metrics Prometheus itself adds (not served by shriven).
PROMETHEUS_OWN = {"up"}
# PromQL functions and keywords that look like names.
PROMQL_WORDS = {
    "rate", "increase", "sum", "by", "on", "and", "or", "unless", "le", "time",
    "histogram_quantile", "label_values", "instance", "venue", "stream",
}  # fmt: skip


def _names_in(expr: str) -> set[str]:
    without_labels = re.sub(r"\{[^}]*\}", "", expr)
    without_ranges = re.sub(r"\[[^\]]*\]", "", without_labels)
    without_strings = re.sub(r'"[^"]*"', "", without_ranges)
    words = set(re.findall(r"[a-zA-Z_:][a-zA-Z0-9_:]*", without_strings))
    return {w for w in words if w not in PROMQL_WORDS and not w.startswith("$")}


def _dashboard_exprs() -> list[str]:
    doc = json.loads(DASHBOARD.read_text())
    exprs = [t["expr"] for p in doc["panels"] for t in p["targets"]]
    exprs += [v["query"] for v in doc["templating"]["list"] if v["type"] == "query"]
    return exprs


def _rule_exprs() -> list[str]:
    doc = yaml.safe_load(RULES.read_text())
    return [r["expr"] for g in doc["groups"] for r in g["rules"]]


def test_names_are_found_in_expressions():
    assert _names_in('rate(shriven_feed_messages_total{instance=~"$x"}[1m])') == {
        "shriven_feed_messages_total"
    }
    assert _names_in("histogram_quantile(0.99, sum by (le) (rate(a_bucket[5m]))) > 1") == {
        "a_bucket"
    }


def test_every_metric_the_dashboard_and_rules_use_is_served_by_a_run(sim_recorder):
    wait_for_data(sim_recorder)
    served = metric_names(requests.get(f"{sim_recorder}/metrics", timeout=5).text)
    used = set().union(*map(_names_in, _dashboard_exprs() + _rule_exprs())) - PROMETHEUS_OWN
    recorder = {n for n in used if not n.startswith(PUBLISHER)}
    assert len(recorder) >= 15
    assert recorder <= served, f"not served by /metrics: {sorted(recorder - served)}"


def test_the_publisher_metrics_they_use_are_the_publishers_own():
    """Served only by `run --publish` (a NATS server): checked against the collector's source."""
    spec = importlib.util.find_spec("shriven.app.bus")
    if spec is None or spec.origin is None:
        pytest.skip("this build has no publisher (shriven.app.bus)")
    source = Path(spec.origin).read_text()
    used = set().union(*map(_names_in, _dashboard_exprs() + _rule_exprs()))
    publisher = {n for n in used if n.startswith(PUBLISHER)}
    assert publisher, "no publisher lag entry in the dashboard or rules"
    missing = {n for n in publisher if f'"{n}"' not in source}
    assert not missing, f"not metrics of shriven.app.bus: {sorted(missing)}"


def test_the_dashboard_covers_what_the_issue_lists():
    titles = " ".join(p["title"] for p in json.loads(DASHBOARD.read_text())["panels"]).lower()
    for word in ("messages/s", "queue", "fsync p99", "receive to durable", "disk", "dropped"):
        assert word in titles, word
    alerts = {r["alert"] for g in yaml.safe_load(RULES.read_text())["groups"] for r in g["rules"]}
    assert {
        "ShrivenFeedDownInMarketHours", "ShrivenFeedStale", "ShrivenGapsRising",
        "ShrivenQueueNearlyFull", "ShrivenRecordsDropped", "ShrivenDiskLow", "ShrivenWalFailing",
        "ShrivenReceiveToDurableSlow",
    } <= alerts  # fmt: skip


@pytest.mark.skipif(
    shutil.which("promtool") is None, reason="promtool (Debian: prometheus) missing"
)
def test_promtool_accepts_the_rules():
    done = subprocess.run(
        ["promtool", "check", "rules", str(RULES)], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stdout + done.stderr
