"""The rollout section as typed values, and the checks the schema cannot express."""

from __future__ import annotations

import pytest

from cd_checks.errors import ConfigError
from cd_checks.rollout.spec import AnsibleApply, CommandApply, from_section

BASE = {"inventory": "inventory/hosts.yml", "apply": {"ansible": {"playbook": "site.yml"}}}


def test_the_issue_example() -> None:
    spec = from_section(
        {
            **BASE,
            "stages": [
                {"name": "staging", "hosts": "staging"},
                {"name": "canary", "hosts": "production", "percent": 10},
                {"name": "production", "hosts": "production", "waves": ["50%", "100%"]},
            ],
            "health": {"testinfra": "tests/health/", "bake_seconds": 30, "retries": 3},
            "rollback": {"automatic": True},
        }
    )
    assert spec.apply == AnsibleApply("site.yml")
    assert [s.environment for s in spec.stages] == ["staging", "production", "production"]
    assert spec.stage("production").waves == (50, 100)
    assert spec.stage("staging").waves == (100,)
    assert spec.environments() == ("staging", "production")
    assert spec.health.testinfra == "tests/health/" and spec.automatic_rollback


def test_environment_key_overrides_the_group_name() -> None:
    spec = from_section(
        {**BASE, "stages": [{"name": "eu", "hosts": "web-eu", "environment": "prod"}]}
    )
    assert spec.stages[0].environment == "prod"


def test_command_apply() -> None:
    spec = from_section(
        {
            **BASE,
            "apply": {"command": ["./deploy.sh", "{hosts}"]},
            "stages": [{"name": "s", "hosts": "all"}],
        }
    )
    assert spec.apply == CommandApply(("./deploy.sh", "{hosts}"))


@pytest.mark.parametrize(
    ("stages", "message"),
    [
        ([{"name": "a", "hosts": "x"}, {"name": "a", "hosts": "y"}], "used twice"),
        ([{"name": "a", "hosts": "x", "waves": ["50%", "20%"]}], "waves must increase"),
    ],
)
def test_errors(stages: list[dict[str, object]], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        from_section({**BASE, "stages": stages})


def test_a_missing_section_is_an_error() -> None:
    with pytest.raises(ConfigError, match="no rollout: section"):
        from_section({})


def test_unknown_stage() -> None:
    spec = from_section({**BASE, "stages": [{"name": "a", "hosts": "x"}]})
    with pytest.raises(ConfigError, match="unknown stage 'b' \\(stages: a\\)"):
        spec.stage("b")


def test_apply_timeout_is_a_duration_and_defaults_to_an_hour() -> None:
    stages = [{"name": "s", "hosts": "all"}]
    assert from_section({**BASE, "stages": stages}).apply.timeout == 3600
    ansible = {"ansible": {"playbook": "site.yml"}, "timeout": "10m"}
    assert from_section({**BASE, "apply": ansible, "stages": stages}).apply.timeout == 600
    command = {"command": ["./deploy.sh"], "timeout": 90}
    assert from_section({**BASE, "apply": command, "stages": stages}).apply == CommandApply(
        ("./deploy.sh",), timeout=90
    )
    for bad, said in [(0, "must be more than 0"), ("soon", "is not a duration")]:
        with pytest.raises(ConfigError, match=said):
            from_section({**BASE, "apply": {**command, "timeout": bad}, "stages": stages})


def test_testinfra_timeout_is_a_duration_and_defaults_to_ten_minutes() -> None:
    stages = [{"name": "s", "hosts": "all"}]
    assert from_section({**BASE, "stages": stages}).health.testinfra_timeout == 600
    health = {"testinfra": "tests/", "testinfra_timeout": "2m"}
    spec = from_section({**BASE, "stages": stages, "health": health})
    assert spec.health.testinfra_timeout == 120
    with pytest.raises(ConfigError, match="health.testinfra_timeout: must be more than 0"):
        from_section({**BASE, "stages": stages, "health": {**health, "testinfra_timeout": 0}})
