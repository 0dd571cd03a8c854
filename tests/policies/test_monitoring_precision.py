"""The monitoring set on rule files as public collections write them: no false alarm,
nothing missed, and its default globs find them.

The corpus (tests/policies/corpus/monitoring/) is modelled on kube-prometheus'
PrometheusRule manifests, node_exporter's compatibility rules and mixins, dockprom's
`alert.rules`, blackbox TTL alerts and a generated collection with `for: 0m`.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import write_tree
from tests.policies.precision import Outcome, copy_corpus, marked, validate

CORPUS = Path(__file__).parent / "corpus" / "monitoring"
CONFIG = "policy:\n  builtin: [monitoring]\n"


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Outcome]:
    root = copy_corpus(CORPUS, tmp_path_factory.mktemp("monitoring") / "repo", CONFIG)
    return root, validate(root)


def test_the_set_reports_exactly_what_the_corpus_marks(corpus: tuple[Path, Outcome]) -> None:
    root, outcome = corpus
    assert outcome.policy() == marked(root)
    assert outcome.code == 1  # the `for: 0m` and missing-`for` alerts are errors


# One file per false-alarm class of the issue, and the true cases beside them.
@pytest.mark.parametrize(
    "path",
    [
        # Watchdog (vector(1)) and InfoInhibitor (ALERTS), both `severity: none`, no `for`;
        # recording rules `:metric:operations` (every label aggregated away)
        pytest.param("rules/general.rules.yml", id="heartbeats"),
        # the same as prometheus-operator resources, where kube-prometheus keeps them
        pytest.param("kube-prometheus/manifests/kubePrometheus-prometheusRule.yaml", id="manifest"),
        pytest.param("kube-prometheus/manifests/nodeExporter-prometheusRule.yaml", id="manifest-2"),
        # node_exporter's documented renames keep plain metric names; a rate does not
        pytest.param("node_exporter/docs/example-16-compatibility-rules.yml", id="compat-renames"),
        # certificate expiry and backup age compared with time(): no `for` needed
        pytest.param("rules/blackbox.rules.yml", id="ttl-alerts"),
        # a dead man's switch with `for: 0m` is fine, `up == 0` with `for: 0m` is not
        pytest.param("rules/generated-alerts.yml", id="for-0m"),
        pytest.param("rules/kustomization.yaml", id="non-rule-yaml"),
        pytest.param("mixin/prometheus_rules.yaml", id="mixin"),
        pytest.param("prometheus/alert.rules", id="dot-rules-file"),
    ],
)
def test_each_file_reports_what_it_marks(corpus: tuple[Path, Outcome], path: str) -> None:
    root, outcome = corpus
    assert {s for s in outcome.policy() if s[0] == path} == {
        s for s in marked(root) if s[0] == path
    }
    assert [f for f in outcome.in_file(path) if f["rule"] == "syntax"] == []


def test_for_0m_is_reported_at_its_line(corpus: tuple[Path, Outcome]) -> None:
    _, outcome = corpus
    (found,) = [
        f
        for f in outcome.in_file("rules/generated-alerts.yml")
        if f["rule"] == "MON-001" and "PrometheusTargetMissing" in str(f["message"])
    ]
    assert found["severity"] == "error" and found["line"] == 17
    assert "`for: 0m`, which is no `for`" in str(found["message"])


def test_organisational_rules_are_warnings(corpus: tuple[Path, Outcome]) -> None:
    _, outcome = corpus
    assert outcome.severity_of("MON-005") == {"warning"}
    assert outcome.severity_of("MON-006") == {"warning"}


MISSING_FOR = """\
groups:
  - name: {name}
    rules:
      - alert: {name}Down
        expr: up{{job="{name}"}} == 0
        labels:
          severity: critical
        annotations:
          summary: "{name} is down"
          runbook_url: https://runbooks.example.com/{name}
"""

PROMETHEUS_RULE = """\
apiVersion: monitoring.coreos.com/v1
kind: PrometheusRule
metadata:
  name: node-exporter-rules
  namespace: monitoring
spec:
""" + "".join("  " + line + "\n" for line in MISSING_FOR.format(name="NodeExporter").splitlines())

# Where public repositories keep rule files (all read), and look-alikes (none read).
LAYOUTS = {
    "rules/node.yml": MISSING_FOR.format(name="node"),
    "alerts/host.yaml": MISSING_FOR.format(name="host"),
    "monitoring/nginx.rules.yml": MISSING_FOR.format(name="nginx"),
    "monitoring/haproxy.rules.yaml": MISSING_FOR.format(name="haproxy"),
    "monitoring/redis_rules.yml": MISSING_FOR.format(name="redis"),
    "deploy/etcd-rules.yaml": MISSING_FOR.format(name="etcd"),
    "mixin/prometheus_alerts.yaml": MISSING_FOR.format(name="mixin"),
    "deploy/kafka-alerts.yml": MISSING_FOR.format(name="kafka"),
    "prometheus/recording_rules.yml": MISSING_FOR.format(name="recording"),
    "prometheus/node.rules": MISSING_FOR.format(name="dotrules"),
    "docker/alert.rules": MISSING_FOR.format(name="dockprom"),
    "manifests/nodeExporter-prometheusRule.yaml": PROMETHEUS_RULE,
}
LOOK_ALIKES = {
    "prometheus/prometheus.yml": "global:\n  scrape_interval: 30s\nrule_files: [rules/*.yml]\n",
    "alertmanager/alertmanager.yml": "route:\n  receiver: on-call\nreceivers:\n  - name: on-call\n",
    # udev and polkit `.rules` files are no YAML, and must not be read as YAML
    "files/udev/rules.d/99-usb.rules": 'SUBSYSTEM=="usb", ATTR{idVendor}=="0781", MODE="0664"\n',
    "files/polkit/rules.d/10-admin.rules": (
        'polkit.addRule(function(action, subject) { if (subject.isInGroup("wheel")) '
        "{ return polkit.Result.YES; } });\n"
    ),
}


def test_default_globs_find_rule_files_where_collections_keep_them(tmp_path: Path) -> None:
    root = write_tree(tmp_path / "repo", {**LAYOUTS, **LOOK_ALIKES, "cd-checks.yml": CONFIG})
    outcome = validate(root)
    flagged = {site[0] for site in outcome.policy() if site[2] == "MON-001"}
    assert flagged == set(LAYOUTS)
    assert {site[0] for site in outcome.policy()} == set(LAYOUTS)
    # not read as YAML at all: no syntax finding either
    assert outcome.in_file("files/udev/rules.d/99-usb.rules") == []
    assert outcome.in_file("files/polkit/rules.d/10-admin.rules") == []


def test_a_missing_runbook_alone_does_not_fail_the_run(tmp_path: Path) -> None:
    alert = MISSING_FOR.format(name="node").replace(
        "        labels:", "        for: 5m\n        labels:"
    )
    no_runbook = "\n".join(line for line in alert.splitlines() if "runbook_url" not in line) + "\n"
    root = write_tree(tmp_path / "repo", {"rules/node.yml": no_runbook, "cd-checks.yml": CONFIG})
    outcome = validate(root)
    assert outcome.code == 0
    assert [
        (f["rule"], f["severity"], f["line"]) for f in outcome.findings if f["check"] == "policy"
    ] == [
        ("MON-005", "warning", 10)  # the annotations, at their first line
    ]


def test_renames_can_be_held_to_the_naming_convention(tmp_path: Path) -> None:
    config = CONFIG + "  builtin_data:\n    monitoring:\n      allow_renames: false\n"
    rules = "node_exporter/docs/example-16-compatibility-rules.yml"
    text = (CORPUS / rules).read_text("utf-8")
    root = write_tree(tmp_path / "repo", {rules: text, "cd-checks.yml": config})
    outcome = validate(root)
    named = [s for s in outcome.policy() if s[2] == "MON-006"]
    assert len(named) == text.count("- record:")  # every rename, and the rate rule as before
