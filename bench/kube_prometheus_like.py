#!/usr/bin/env python3
"""Generate a repository shaped like a kube-prometheus checkout, for bench/vs_yamllint.py.

What makes kube-prometheus hard for a linter, reproduced without its files:

- `manifests/setup/`: ten CustomResourceDefinitions of 0.5-1.5 MB each with a
  deep `openAPIV3Schema` (long description lines, `- =` in an enum, as in
  prometheus-operator's CRDs). Their names sort together, so a pool that hands
  out runs of sorted paths gives one worker all of them.
- `manifests/*-prometheusRule.yaml`: about 80 PrometheusRule manifests in
  jsonnet's layout (sequences not indented, `expr: |` blocks), a Watchdog
  heartbeat among them: the monitoring set's per-file and cross-file input.
- a few hundred small manifests (Deployment, Service, RBAC, ServiceMonitor...),
  a grafana dashboards ConfigMap with long JSON lines, jsonnet sources and
  JSON files.

No `.yamllint` (kube-prometheus has none: yamllint's defaults, so line-length,
indentation and document-start findings by the thousand); `cd-checks.yml` turns
the monitoring set on. The same seed gives the same bytes. The directory is
made a git repository with one commit.

Usage: python bench/kube_prometheus_like.py DIR [--scale 1.0] [--seed 10]
"""

from __future__ import annotations

import argparse
import random
import subprocess
from pathlib import Path

COMPONENTS = (
    "alertmanager",
    "blackboxExporter",
    "grafana",
    "kubeStateMetrics",
    "kubernetesControlPlane",
    "nodeExporter",
    "prometheus",
    "prometheusAdapter",
    "prometheusOperator",
    "kubePrometheus",
)
CRDS = (
    "alertmanagerConfigs",
    "alertmanagers",
    "podmonitors",
    "probes",
    "prometheusagents",
    "prometheuses",
    "prometheusrules",
    "scrapeconfigs",
    "servicemonitors",
    "thanosrulers",
)
TEXT = (
    "the selector of the pods to scrape for metrics and the namespace where the resource "
    "lives defines which endpoints are used when the operator reconciles configuration "
    "for targets of the monitoring stack if unset defaults apply as documented upstream "
    "relabeling rules are applied before ingestion and may drop series or rename labels"
)
WORDS = tuple(TEXT.split(" "))
KINDS = ("object", "string", "integer", "boolean", "array")


class Text:
    """Lines written with an indent; joined once at the end."""

    def __init__(self) -> None:
        self.lines: list[str] = []
        self.size = 0

    def add(self, indent: int, line: str) -> None:
        self.lines.append(" " * indent + line)
        self.size += indent + len(line) + 1

    def text(self) -> str:
        return "\n".join(self.lines) + "\n"


def sentence(rng: random.Random, low: int, high: int) -> str:
    words = [rng.choice(WORDS) for _ in range(rng.randint(low, high))]
    return " ".join(words).capitalize() + "."


def crd(name: str, target: int, rng: random.Random) -> str:
    """One CRD of about `target` bytes: properties nested up to ~20 levels."""
    out = Text()
    singular = name.rstrip("s")
    for line in (
        "apiVersion: apiextensions.k8s.io/v1",
        "kind: CustomResourceDefinition",
        "metadata:",
        "  annotations:",
        "    controller-gen.kubebuilder.io/version: v0.13.0",
        "    operator.prometheus.io/version: 0.70.0",
        f"  name: {name.lower()}.monitoring.coreos.com",
        "spec:",
        "  group: monitoring.coreos.com",
        "  names:",
        "    categories:",
        "    - prometheus-operator",
        f"    kind: {singular[0].upper() + singular[1:]}",
        f"    plural: {name.lower()}",
        "  scope: Namespaced",
        "  versions:",
        "  - name: v1",
        "    schema:",
        "      openAPIV3Schema:",
        f"        description: {sentence(rng, 10, 30)}",
        "        properties:",
    ):
        out.add(0, line)
    index = 0
    while out.size < target:
        prop(out, f"field{index}", 10, 0, rng)
        index += 1
    for line in ("        type: object", "    served: true", "    storage: true"):
        out.add(0, line)
    return out.text()


def prop(out: Text, name: str, indent: int, depth: int, rng: random.Random) -> None:
    kind = "object" if depth < 3 else rng.choice(KINDS if depth < 18 else KINDS[1:4])
    out.add(indent, f"{name}:")
    out.add(indent + 2, f"description: {sentence(rng, 4, 40)}")
    if kind == "object":
        out.add(indent + 2, "properties:")
        for child in range(rng.randint(2, 5)):
            prop(out, f"{rng.choice(WORDS)}{child}", indent + 4, depth + 1, rng)
        if rng.random() < 0.3:
            out.add(indent + 2, "required:")
            out.add(indent + 2, f"- {rng.choice(WORDS)}0")
    elif kind == "array":
        out.add(indent + 2, "items:")
        if depth < 16 and rng.random() < 0.5:
            out.add(indent + 4, "properties:")
            for child in range(rng.randint(1, 3)):
                prop(out, f"{rng.choice(WORDS)}{child}", indent + 6, depth + 2, rng)
            out.add(indent + 4, "type: object")
        else:
            out.add(indent + 4, "type: string")
            if rng.random() < 0.2:  # prometheus-operator's match operators, YAML 1.1's `=`
                out.add(indent + 4, "enum:")
                for operator in ("!=", "=", "=~", "!~"):
                    out.add(indent + 4, f"- {operator!r}" if operator != "=" else "- =")
        out.add(indent + 2, "type: array")
        if rng.random() < 0.3:
            out.add(indent + 2, "x-kubernetes-list-type: atomic")
        return
    elif kind == "integer":
        out.add(indent + 2, "format: int32")
    out.add(indent + 2, f"type: {kind}")


def rule_manifest(component: str, number: int, rng: random.Random, *, heartbeat: bool) -> str:
    out = Text()
    name = f"{component.lower()}-{number}-rules"
    for line in (
        "apiVersion: monitoring.coreos.com/v1",
        "kind: PrometheusRule",
        "metadata:",
        "  labels:",
        f"    app.kubernetes.io/component: {component}",
        "    app.kubernetes.io/part-of: kube-prometheus",
        "    prometheus: k8s",
        "    role: alert-rules",
        f"  name: {name}",
        "  namespace: monitoring",
        "spec:",
        "  groups:",
    ):
        out.add(0, line)
    for group in range(rng.randint(1, 4)):
        out.add(2, f"- name: {component}.{number}.{group}.rules")
        out.add(4, "rules:")
        if heartbeat and group == 0:
            watchdog(out)
        for rule in range(rng.randint(3, 12)):
            alert_rule(out, f"{component}{number}x{group}x{rule}", rng)
        for rule in range(rng.randint(0, 6)):
            out.add(4, f"- expr: sum by (cluster, namespace) (rate(metric_{rule}_total[5m]))")
            out.add(6, f"record: namespace:{component.lower()}_{number}_{group}_{rule}:rate5m")
    return out.text()


def watchdog(out: Text) -> None:
    out.add(4, "- alert: Watchdog")
    out.add(6, "annotations:")
    out.add(8, "description: This is an alert meant to ensure that the entire alerting pipeline")
    out.add(10, "is functional. It is always firing.")
    out.add(8, "summary: An alert that should always be firing to certify that Alertmanager")
    out.add(10, "is working properly.")
    out.add(6, "expr: vector(1)")
    out.add(6, "labels:")
    out.add(8, "severity: none")


def alert_rule(out: Text, name: str, rng: random.Random) -> None:
    job = rng.choice(COMPONENTS).lower()
    out.add(4, f"- alert: {name}")
    out.add(6, "annotations:")
    out.add(
        8, f"description: {sentence(rng, 8, 24)} {{{{ $labels.namespace }}}}/{{{{ $labels.pod }}}}."
    )
    out.add(
        8, f"runbook_url: https://runbooks.prometheus-operator.dev/runbooks/{job}/{name.lower()}"
    )
    out.add(8, f"summary: {sentence(rng, 4, 9)}")
    out.add(6, "expr: |")
    out.add(8, f"# {sentence(rng, 6, 14)}")
    out.add(
        8,
        f'max_over_time(up{{job="{job}",namespace="monitoring"}}[5m]) == 0 and on (namespace)'
        f' rate(errors_total{{job="{job}"}}[{rng.choice((5, 10, 15))}m]) > {rng.randint(1, 9)}',
    )
    out.add(6, f"for: {rng.choice(('5m', '10m', '15m', '1h'))}")
    out.add(6, "labels:")
    out.add(8, f"severity: {rng.choice(('warning', 'critical', 'info'))}")


SMALL_KINDS = (
    "deployment",
    "service",
    "serviceAccount",
    "clusterRole",
    "clusterRoleBinding",
    "serviceMonitor",
    "networkPolicy",
    "podDisruptionBudget",
    "configMap",
    "role",
)


def small_manifest(component: str, kind: str, number: int, rng: random.Random) -> str:
    out = Text()
    kind_name = kind[0].upper() + kind[1:]
    out.add(0, "apiVersion: v1" if kind in ("service", "configMap") else "apiVersion: apps/v1")
    out.add(0, f"kind: {kind_name}")
    out.add(0, "metadata:")
    out.add(2, "labels:")
    out.add(4, f"app.kubernetes.io/component: {component}")
    out.add(4, f"app.kubernetes.io/name: {component.lower()}-{number}")
    out.add(4, "app.kubernetes.io/part-of: kube-prometheus")
    out.add(4, "app.kubernetes.io/version: 0.70.0")
    out.add(2, f"name: {component.lower()}-{number}")
    out.add(2, "namespace: monitoring")
    out.add(0, "spec:")
    for item in range(rng.randint(2, 12)):
        out.add(2, f"{rng.choice(WORDS)}{item}:")
        out.add(2, f"- name: {rng.choice(WORDS)}")
        out.add(4, f"value: {sentence(rng, 2, 14)}")
        out.add(4, f"port: {rng.randint(1024, 65535)}")
        out.add(4, f"enabled: {rng.choice(('true', 'false', 'yes'))}")
    return out.text()


def dashboards(rng: random.Random, count: int) -> str:
    out = Text()
    out.add(0, "apiVersion: v1")
    out.add(0, "items:")
    for number in range(count):
        panels = ", ".join(
            f'{{"id": {k}, "title": "{sentence(rng, 2, 5)}", "targets": [{{"expr": '
            f'"sum(rate(container_cpu_usage_seconds_total{{namespace=\\"$namespace\\"}}[5m]))"}}]}}'
            for k in range(rng.randint(5, 30))
        )
        out.add(0, "- apiVersion: v1")
        out.add(2, "data:")
        out.add(4, f"dashboard-{number}.json: |-")
        out.add(6, "{")
        out.add(10, f'"panels": [{panels}],')
        out.add(10, f'"title": "Dashboard {number}"')
        out.add(6, "}")
        out.add(2, "kind: ConfigMap")
        out.add(2, "metadata:")
        out.add(4, f"name: grafana-dashboard-{number}")
        out.add(4, "namespace: monitoring")
    out.add(0, "kind: ConfigMapList")
    return out.text()


def generate(root: Path, *, scale: float = 1.0, seed: int = 10) -> None:
    rng = random.Random(seed)
    setup = root / "manifests" / "setup"
    setup.mkdir(parents=True, exist_ok=True)
    for name in CRDS:
        size = int(rng.uniform(0.5, 1.5) * 2**20 * scale)
        (setup / f"0{name}CustomResourceDefinition.yaml").write_text(crd(name, size, rng))
    (setup / "namespace.yaml").write_text(
        "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: monitoring\n"
    )
    manifests = root / "manifests"
    for number in range(max(1, int(80 * scale))):
        component = COMPONENTS[number % len(COMPONENTS)]
        text = rule_manifest(component, number, rng, heartbeat=number == 0)
        (manifests / f"{component}{number}-prometheusRule.yaml").write_text(text)
    for number in range(max(1, int(400 * scale))):
        component = COMPONENTS[number % len(COMPONENTS)]
        kind = SMALL_KINDS[number % len(SMALL_KINDS)]
        text = small_manifest(component, kind, number, rng)
        (manifests / f"{component}-{kind}{number}.yaml").write_text(text)
    (manifests / "grafana-dashboardDefinitions.yaml").write_text(
        dashboards(rng, max(1, int(40 * scale)))
    )
    sources(root, rng)
    (root / "cd-checks.yml").write_text("policy:\n  builtin: [monitoring]\n")
    commit(root)


def sources(root: Path, rng: random.Random) -> None:
    """jsonnet sources (not checked by either tool) and a few JSON files (cd-checks only)."""
    components = root / "jsonnet" / "kube-prometheus" / "components"
    components.mkdir(parents=True, exist_ok=True)
    for component in COMPONENTS:
        (components / f"{component}.libsonnet").write_text(
            f"local defaults = {{ name: '{component}', namespace: 'monitoring' }};\n"
            "{ defaults: defaults }\n"
        )
    (root / "jsonnetfile.json").write_text('{"version": 1, "dependencies": []}\n')
    (root / "examples").mkdir(exist_ok=True)
    for number in range(10):
        (root / "examples" / f"example{number}.json").write_text(
            f'{{"name": "example{number}", "replicas": {rng.randint(1, 5)}}}\n'
        )


def commit(root: Path) -> None:
    env = {
        "GIT_AUTHOR_NAME": "bench",
        "GIT_AUTHOR_EMAIL": "bench@example.invalid",
        "GIT_COMMITTER_NAME": "bench",
        "GIT_COMMITTER_EMAIL": "bench@example.invalid",
        "PATH": "/usr/local/bin:/usr/bin:/bin",
    }
    for args in (["init", "-q", "-b", "main"], ["add", "-A"], ["commit", "-q", "-m", "generated"]):
        subprocess.run(["git", "-C", str(root), *args], check=True, env=env)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("directory", type=Path, help="where to generate (must be empty or new)")
    parser.add_argument("--scale", type=float, default=1.0, help="sizes and counts times this")
    parser.add_argument("--seed", type=int, default=10)
    args = parser.parse_args()
    if args.directory.exists() and any(args.directory.iterdir()):
        parser.error(f"{args.directory} is not empty")
    args.directory.mkdir(parents=True, exist_ok=True)
    generate(args.directory, scale=args.scale, seed=args.seed)
    yaml_files = sorted(args.directory.rglob("*.yaml"))
    megabytes = sum(p.stat().st_size for p in yaml_files) / 2**20
    print(f"{args.directory}: {len(yaml_files)} YAML files, {megabytes:.1f} MB of YAML")


if __name__ == "__main__":
    main()
