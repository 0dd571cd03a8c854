"""The plan is a pure, deterministic function of inventory, spec and revision."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cd_checks.errors import ConfigError, RolloutError
from cd_checks.rollout import plan
from cd_checks.rollout.inventory import Host, Inventory
from cd_checks.rollout.spec import from_section

STAGES = [
    {"name": "staging", "hosts": "staging"},
    {"name": "canary", "hosts": "production", "percent": 10},
    {"name": "production", "hosts": "production", "waves": ["50%", "100%"]},
]


def fleet(staging: int, production: int) -> Inventory:
    s = tuple(f"lab-{i:02d}" for i in range(1, staging + 1))
    p = tuple(f"lab-{i:02d}" for i in range(staging + 1, staging + production + 1))
    hosts = {n: Host(n, n) for n in s + p}
    return Inventory(Path("inv.yml"), hosts, {"staging": s, "production": p, "all": s + p})


def spec(stages: list[dict[str, object]] = STAGES):  # type: ignore[no-untyped-def]
    return from_section({"inventory": "x", "apply": {"command": ["true"]}, "stages": stages})


def sizes(built: plan.Plan) -> list[list[int]]:
    return [[len(w) for w in s.waves] for s in built.stages]


@pytest.mark.parametrize(
    ("staging", "production", "expected"),
    [
        (2, 8, [[2], [1], [4, 3]]),  # the 10-host lab: ceil(10% x 8) = 1 canary
        (2, 20, [[2], [2], [9, 9]]),  # ceil(10% x 20) = 2; 18 left: 9 + 9
        (1, 1, [[1], [1], []]),  # the canary took the only production host
        (0, 3, [[], [1], [1, 1]]),
    ],
)
def test_wave_sizes(staging: int, production: int, expected: list[list[int]]) -> None:
    assert sizes(plan.build(fleet(staging, production), spec(), "rev")) == expected


def test_every_host_is_in_one_wave_only_and_staging_is_not_counted_again() -> None:
    built = plan.build(fleet(2, 8), spec(), "rev")
    hosts = [h for s in built.stages for w in s.waves for h in w]
    assert len(hosts) == len(set(hosts)) == 10
    assert set(built.stage("staging").hosts) == {"lab-01", "lab-02"}
    assert not set(built.stage("canary").hosts) & set(built.stage("production").hosts)


def test_same_inputs_same_plan_and_the_canary_is_stable_across_revisions() -> None:
    inventory = fleet(2, 20)
    first = plan.build(inventory, spec(), "aaa")
    assert plan.build(inventory, spec(), "aaa") == first
    assert plan.build(inventory, spec(), "bbb").stage("canary") == first.stage("canary")


def test_the_canary_does_not_depend_on_inventory_order() -> None:
    inventory = fleet(0, 20)
    shuffled = Inventory(
        inventory.source,
        inventory.hosts,
        {**inventory.groups, "production": tuple(reversed(inventory.groups["production"]))},
    )
    canary = plan.build(inventory, spec(), "r").stage("canary").hosts
    assert plan.build(shuffled, spec(), "r").stage("canary").hosts == canary


@pytest.mark.parametrize(
    ("count", "percents", "expected"),
    [
        (10, [50, 100], [5, 5]),
        (10, [10, 50, 100], [1, 4, 5]),  # cumulative, not per-batch
        (3, [50], [2, 1]),  # an implicit last wave takes the rest
        (3, [1, 2, 100], [1, 1, 1]),  # a wave takes at least one host, as Ansible's serial
        (2, [10, 20, 50, 100], [1, 1]),  # waves are dropped once no host is left
        (1, [50, 100], [1]),
        (0, [50, 100], []),
    ],
)
def test_split_waves(count: int, percents: list[int], expected: list[int]) -> None:
    hosts = [f"h{i}" for i in range(count)]
    waves = plan.split_waves(hosts, percents)
    assert [len(w) for w in waves] == expected
    assert [h for w in waves for h in w] == hosts


def test_json_has_the_documented_shape() -> None:
    built = plan.build(fleet(2, 8), spec(), "abc")
    data = json.loads(plan.render_json(built))
    assert data["revision"] == "abc"
    assert [s["name"] for s in data["stages"]] == ["staging", "canary", "production"]
    assert data["stages"][0]["waves"] == [["lab-01", "lab-02"]]
    assert all(isinstance(h, str) for s in data["stages"] for w in s["waves"] for h in w)


def test_text_and_markdown_name_every_host() -> None:
    built = plan.build(fleet(2, 8), spec(), "abc")
    text, markdown = plan.render_text(built), plan.render_markdown(built)
    for host in built.stage("production").hosts:
        assert host in text and f"`{host}`" in markdown
    assert "| canary | production | 1 |" in markdown
    assert "stage production (environment production, group production, 7 hosts)" in text


def test_eligible_hosts_only_and_the_canary_share_is_of_the_eligible_ones() -> None:
    inventory = fleet(2, 20)
    eligible = inventory.groups["production"][:10] + ("lab-01",)
    built = plan.build(inventory, spec(), "rev", eligible=eligible)
    assert built.stage("staging").hosts == ("lab-01",)
    assert len(built.stage("canary").hosts) == 1  # ceil(10% x 10 eligible), not 2 of 20
    chosen = [h for s in built.stages for h in s.hosts]
    assert sorted(chosen) == sorted(eligible)
    # The canary ring is the same order over fewer hosts.
    production = [h for h in plan.canary_order(inventory.groups["production"]) if h in eligible]
    assert built.stage("canary").hosts == tuple(production[:1])


def test_no_eligible_host_leaves_every_stage_empty() -> None:
    built = plan.build(fleet(2, 8), spec(), "rev", eligible=())
    assert all(not s.waves for s in built.stages)


def canary(**keys: object) -> list[dict[str, object]]:
    return [{"name": "canary", "hosts": "production", **keys}, STAGES[2]]


@pytest.mark.parametrize(
    ("keys", "production", "size"),
    [
        ({"percent": 10}, 18, 2),  # ceil(1.8): 11.1 %, more than the 10 % promised
        ({"percent": 10, "max_percent": 10}, 18, 1),  # floor(1.8): within 10 %
        ({"percent": 10, "max_percent": 10}, 20, 2),  # exactly 10 %: the cap does not bite
        ({"percent": 5, "max_percent": 10}, 18, 1),
        ({"count": 1}, 18, 1),
        ({"count": 3}, 18, 3),
        ({"count": 30}, 18, 18),  # never more hosts than the group has
        ({"percent": 10}, 30, 3),  # 10 x 30 / 100 is 3, not 3.0000000000000004 rounded up
    ],
)
def test_the_canary_size_follows_percent_max_percent_and_count(
    keys: dict[str, object], production: int, size: int
) -> None:
    built = plan.build(fleet(0, production), spec(canary(**keys)), "rev")
    assert len(built.stages[0].hosts) == size


def test_a_max_percent_too_small_for_one_host_is_an_error_not_a_bigger_canary() -> None:
    with pytest.raises(RolloutError, match=r"max_percent 5% of 10 host\(s\) allows no host"):
        plan.build(fleet(0, 10), spec(canary(percent=5, max_percent=5)), "rev")


def test_count_and_percent_together_are_a_config_error() -> None:
    with pytest.raises(ConfigError, match="give `percent` \\(and `max_percent`\\) or `count`"):
        spec(canary(percent=10, count=1))
