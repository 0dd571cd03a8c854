"""A report as conftest's check results: one per file and Rego namespace.

conftest's formats (`--format conftest-json`, `tap`, `table`) report, for each
file and namespace, its failures, warnings and exceptions (and a count of
successes). `check_results` regroups a `Report` that way: a policy finding's
namespace is its rule's package (`main` of `main.deny_x`); a finding of another
check (syntax, schema, rollout), which conftest has no word for, is a failure or
warning under its check's name; a file without findings is listed under each
namespace that was evaluated. Standard input keeps conftest's name `-`.
Successes are the rules the policy check reports as passed (`Report.successes`).
Pure; no format markup here.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from cd_checks.findings import Finding, Report, namespace_of

STDIN = "-"


@dataclass
class CheckResult:
    """conftest's CheckResult: one file under one namespace (built here, then read only)."""

    filename: str
    namespace: str
    successes: int = 0
    failures: list[Finding] = field(default_factory=list)
    warnings: list[Finding] = field(default_factory=list)
    exceptions: list[Finding] = field(default_factory=list)

    @property
    def total(self) -> int:
        return self.successes + len(self.failures) + len(self.warnings) + len(self.exceptions)


def check_results(report: Report) -> list[CheckResult]:
    """The report's results by file, then namespace, in a stable order."""
    results: dict[tuple[str, str], CheckResult] = {}
    for finding in (*report.findings, *report.shown_exceptions):
        key = (finding.path, namespace_of(finding))
        result = results.setdefault(key, CheckResult(*key))
        if finding.severity == "exception":
            result.exceptions.append(finding)
        elif finding.severity == "warning":
            result.warnings.append(finding)
        else:
            result.failures.append(finding)
    for path, namespace, count in report.successes:
        result = results.setdefault((path, namespace), CheckResult(path, namespace))
        result.successes += count
    seen = {path for path, _ in results}
    for path in report.paths:
        if path not in seen:
            for namespace in report.namespaces or ("main",):
                results[(path, namespace)] = CheckResult(path, namespace)
    return [results[key] for key in sorted(results)]
