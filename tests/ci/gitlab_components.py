"""The GitLab components and the README's GitLab snippets, read as GitLab reads them.

`TEMPLATES` are the components (`templates/<name>/template.yml`: a `spec:` header
document, then the jobs). `interpolate` does GitLab's `$[[ inputs.NAME ]]`
interpolation on the parsed jobs: a string that is only the expression takes the
input's value, any other string gets it spliced in, and an unknown input is an
error (GitLab refuses to create the pipeline). `readme_snippets` are the YAML
blocks of the README's "GitLab CI" section and of the GitLab half of "Deploying
from CI", as a user copies them.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

from tests.conftest import REPO

TEMPLATES = {name: REPO / "templates" / name / "template.yml" for name in ("validate", "deploy")}
PROJECT = "cd-checks/cd-checks"
INPUT = re.compile(r"\$\[\[ inputs\.([\w-]+) \]\]")
COMPONENT = re.compile(r"\$CI_SERVER_FQDN/(?P<project>[\w-]+/[\w-]+)/(?P<name>[\w-]+)@(?P<ref>\S+)")


def documents(template: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    """The spec header and the jobs of a component, uninterpolated."""
    header, jobs = yaml.safe_load_all(template.read_text())
    return header, jobs


def spec_inputs(template: Path) -> dict[str, dict[str, Any]]:
    inputs: dict[str, dict[str, Any]] = documents(template)[0]["spec"]["inputs"]
    return inputs


def interpolate(template: Path, inputs: dict[str, str]) -> dict[str, Any]:
    """The jobs with `inputs` (and the other inputs' defaults) interpolated, as GitLab does."""
    spec = spec_inputs(template)
    unknown = set(inputs) - set(spec)
    assert not unknown, f"GitLab refuses unknown inputs: {sorted(unknown)}"
    values = {name: inputs.get(name, field.get("default")) for name, field in spec.items()}
    for name, value in values.items():
        assert value is not None, f"input {name} has no default and no value"
        options = spec[name].get("options")
        assert options is None or value in options, f"{name}: {value!r} not in {options}"
    jobs: dict[str, Any] = _interpolated(documents(template)[1], values)
    return jobs


def _interpolated(node: Any, values: dict[str, Any]) -> Any:
    if isinstance(node, dict):
        return {
            _interpolated(key, values): _interpolated(value, values) for key, value in node.items()
        }
    if isinstance(node, list):
        return [_interpolated(item, values) for item in node]
    if isinstance(node, str):
        whole = INPUT.fullmatch(node)
        if whole:
            return values[whole[1]]
        return INPUT.sub(lambda match: str(values[match[1]]), node)
    return node


def readme_snippets() -> list[str]:
    """The YAML blocks of the README's GitLab sections, in order."""
    text = (REPO / "README.md").read_text()
    gitlab = _section(text, "### GitLab CI")
    deploying = _section(text, "### Deploying from CI")
    gitlab_half = deploying[deploying.index("**GitLab CI**") :]
    return [*_yaml_blocks(gitlab), *_yaml_blocks(gitlab_half)]


def _section(text: str, heading: str) -> str:
    start = text.index(f"\n{heading}") + 1
    following = re.compile(r"^#{2,3} ", re.M).search(text, start + len(heading))
    return text[start : following.start() if following else len(text)]


def _yaml_blocks(text: str) -> list[str]:
    return re.findall(r"^```yaml\n(.*?)^```$", text, flags=re.M | re.S)


def component_of(include: dict[str, Any]) -> str:
    """Which component an `include:` entry brings in: validate or deploy."""
    if "component" in include:
        match = COMPONENT.fullmatch(include["component"])
        assert match, include
        return match["name"]
    if "project" in include:
        return Path(include["file"]).parent.name
    # A copy of a component, named after it (the README's .gitlab/cd-checks-NAME.yml).
    match = re.search(r"cd-checks-(\w+)\.yml$", include["local"])
    assert match, include
    return match[1]


def include_ref(include: dict[str, Any]) -> str | None:
    """The ref GitLab fetches the component at (None for a local copy)."""
    if "component" in include:
        match = COMPONENT.fullmatch(include["component"])
        assert match, include
        return match["ref"]
    ref: str | None = include.get("ref")
    return ref
