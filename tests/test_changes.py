"""Change types from cd-checks.yml: defaults, host patterns, scope_by narrowing, bad input."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from cd_checks import changes, config
from cd_checks.builtin_policies import BUILTIN_SETS
from cd_checks.errors import ConfigError
from cd_checks.rollout.inventory import Inventory, read_static
from cd_checks.rollout.spec import AnsibleApply
from tests.conftest import Run, git, init_repo, write_tree

INVENTORY = """\
all:
  hosts:
    bastion: null
  children:
    web:
      children:
        site_shop:
          hosts:
            web-1: null
            web-2: null
        site_blog:
          hosts:
            web-3: null
      hosts:
        web-4: null
    db:
      hosts:
        db-1: null
        db-2: null
    monitoring:
      hosts:
        mon-1: null
"""

CONFIG = """\
defaults:
  inventory: inventory/hosts.yml
  apply: {ansible: {playbook: deploy/site.yml}}
  health: {testinfra: tests/health/, bake_seconds: 5}
  stages:
    - {name: canary, hosts: all, percent: 25}
    - {name: production, hosts: all, waves: ["50%"]}
changes:
  nginx:
    files: ["nginx/**", "deploy/templates/site.conf.j2"]
    hosts: web
    scope_by: {"nginx/sites/{site}.conf": "site_{site}"}
    policy: [nginx]
    apply: {ansible: {playbook: deploy/site.yml, tags: [nginx]}}
    health: {http: [{url: "http://{host}/"}]}
  patches:
    files: ["patches/*.yml"]
    hosts: "all:!db"
    require_approvals: 1
  monitoring:
    files: ["monitoring/**"]
    hosts: monitoring
    freeze:
      - {from: "2026-12-20", to: "2027-01-04", reason: year-end freeze}
"""


def load(tmp_path: Path, text: str = CONFIG) -> config.Config:
    write_tree(tmp_path, {"cd-checks.yml": text, "inventory/hosts.yml": INVENTORY})
    return config.load(tmp_path)


def fleet(tmp_path: Path) -> Inventory:
    found = read_static(
        write_tree(tmp_path, {"inventory/hosts.yml": INVENTORY}) / "inventory/hosts.yml"
    )
    assert found is not None
    return found


def test_types_in_config_order_with_defaults_merged_key_by_key(tmp_path: Path) -> None:
    nginx, patches, monitoring = changes.change_types(load(tmp_path))
    assert [t.name for t in (nginx, patches, monitoring)] == ["nginx", "patches", "monitoring"]
    assert nginx.rollout.apply == AnsibleApply("deploy/site.yml", tags=("nginx",))
    assert patches.rollout.apply == AnsibleApply("deploy/site.yml")
    # A type's own `health:` replaces the default's whole section, as a YAML merge key does.
    assert nginx.rollout.health.testinfra is None and nginx.rollout.health.bake_seconds == 30
    assert patches.rollout.health.testinfra == "tests/health/"
    assert [s.name for s in monitoring.rollout.stages] == ["canary", "production"]
    assert patches.hosts == "all:!db" and patches.require_approvals == 1
    assert nginx.policy == ("nginx",) and nginx.scope_by == (
        ("nginx/sites/{site}.conf", "site_{site}"),
    )
    (window,) = monitoring.freeze
    assert window.reason == "year-end freeze"


def test_a_single_rollout_section_is_one_unnamed_type_for_every_file(tmp_path: Path) -> None:
    text = CONFIG.split("changes:")[0].replace("defaults:", "rollout:")
    (only,) = changes.change_types(load(tmp_path, text))
    assert only.name is None and only.label == "rollout" and only.hosts == "all"
    assert changes.triggered([only], ["README.md", "a/b/c"]) == [(only, ["README.md", "a/b/c"])]
    assert changes.change_type(load(tmp_path, text), None) is not None


def test_no_rollout_and_no_changes_is_no_type(tmp_path: Path) -> None:
    assert changes.change_types(load(tmp_path, "files: {include: ['**']}\n")) == ()
    with pytest.raises(ConfigError, match="no rollout: section"):
        changes.change_type(load(tmp_path, "files: {include: ['**']}\n"), None)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "rollout: {inventory: i, apply: {command: [x]}, stages: [{name: a, hosts: all}]}\n"
            "changes: {a: {files: [x]}}\n",
            "put the shared keys under `defaults:`",
        ),
        (
            "defaults: {inventory: i}\nrollout: {inventory: i, apply: {command: [x]}, "
            "stages: [{name: a, hosts: all}]}\n",
            "`defaults:` applies to the types of `changes:`",
        ),
        (
            "changes: {a: {files: [x], inventory: i, apply: {command: [x]}}}\n",
            "changes.a: no `stages:` (set it here or under `defaults:`)",
        ),
        (
            "changes: {a: {files: [x], hosts: 'web[0]', inventory: i, apply: {command: [x]}, "
            "stages: [{name: s, hosts: all}]}}\n",
            "subscripts",
        ),
        (
            "changes: {a: {files: [x], scope_by: {'s/{x}/{x}': g}, inventory: i, "
            "apply: {command: [x]}, stages: [{name: s, hosts: all}]}}\n",
            "changes.a.scope_by: 's/{x}/{x}': placeholder {x} is used twice",
        ),
        (
            "changes: {a: {files: [x], scope_by: {'s/{x}': 'g_{y}'}, inventory: i, "
            "apply: {command: [x]}, stages: [{name: s, hosts: all}]}}\n",
            "group 'g_{y}' uses {y}, which file template 's/{x}' does not have",
        ),
        (
            "changes: {a: {files: [x], inventory: i, apply: {command: [x]}, "
            "stages: [{name: s, hosts: all, waves: ['50%', '10%']}]}}\n",
            "changes.a: stage 's': waves must increase",
        ),
    ],
)
def test_bad_change_types_are_one_config_error(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(ConfigError) as raised:
        changes.change_types(load(tmp_path, text))
    assert message in str(raised.value)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("changes: {Nginx: {files: [x]}}\n", "'Nginx' does not match"),
        ("changes: {a: {hosts: web}}\n", "'files' is a required property"),
        (
            "changes: {a: {files: [x], hots: web}}\n",
            "unknown key 'hots' in changes.a; did you mean 'hosts'?",
        ),
        ("changes: {a: {files: [x], policy: [ngnix]}}\n", "'ngnix' is not one of"),
        ("changes: {a: {files: [x], freeze: [{from: '2026-01-01'}]}}\n", "'reason' is a required"),
        ("changes: {a: {files: ['[z-a]']}}\n", "changes.a.files[0]: bad glob '[z-a]'"),
        ("defaults: {stage: []}\nchanges: {a: {files: [x]}}\n", "unknown key 'stage' in defaults"),
    ],
)
def test_the_schema_names_the_key(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(ConfigError) as raised:
        load(tmp_path, text)
    assert message in str(raised.value)


def test_the_schema_knows_every_builtin_set() -> None:
    schema = json.loads((Path(config.__file__).parent / "config.schema.json").read_text())
    assert schema["$defs"]["builtinSet"]["enum"] == list(BUILTIN_SETS)


def test_change_type_by_name(tmp_path: Path) -> None:
    loaded = load(tmp_path)
    assert changes.change_type(loaded, "patches").name == "patches"
    with pytest.raises(ConfigError, match=r"several change types \(nginx, patches, monitoring\)"):
        changes.change_type(loaded, None)
    with pytest.raises(ConfigError, match="no change type 'web'.*nginx, patches, monitoring"):
        changes.change_type(loaded, "web")


def test_overlapping_types_both_deploy_a_file_in_config_order(tmp_path: Path) -> None:
    text = CONFIG.replace('files: ["monitoring/**"]', 'files: ["monitoring/**", "nginx/**"]')
    nginx, _, monitoring = types = changes.change_types(load(tmp_path, text))
    changed = ["nginx/sites/shop.conf", "README.md", "patches/2026-01.yml"]
    found = changes.triggered(types, changed)
    assert [(t.name, files) for t, files in found] == [
        ("nginx", ["nginx/sites/shop.conf"]),
        ("patches", ["patches/2026-01.yml"]),
        ("monitoring", ["nginx/sites/shop.conf"]),
    ]
    assert changes.unmatched(types, changed) == ["README.md"]


@pytest.mark.parametrize(
    ("changed", "expected"),
    [
        (["nginx/sites/shop.conf"], ("web-1", "web-2")),
        (["nginx/sites/blog.conf"], ("web-3",)),
        (["nginx/sites/shop.conf", "nginx/sites/blog.conf"], ("web-1", "web-2", "web-3")),
        # A file of the type no template matches: the whole of `hosts`.
        (
            ["nginx/sites/shop.conf", "nginx/snippets/tls.conf"],
            ("web-4", "web-1", "web-2", "web-3"),
        ),
        (["deploy/templates/site.conf.j2"], ("web-4", "web-1", "web-2", "web-3")),
        # A site whose group the inventory lacks reaches nothing (validate reports it).
        (["nginx/sites/wiki.conf"], ()),
        # Not the type's files, or no files given: no narrowing.
        (["patches/x.yml"], ("web-4", "web-1", "web-2", "web-3")),
        (None, ("web-4", "web-1", "web-2", "web-3")),
        # One segment: a nested path is not a site.
        (["nginx/sites/a/shop.conf"], ("web-4", "web-1", "web-2", "web-3")),
    ],
)
def test_eligible_hosts_narrow_by_scope_by(
    tmp_path: Path, changed: list[str] | None, expected: tuple[str, ...]
) -> None:
    nginx = changes.change_types(load(tmp_path))[0]
    assert changes.eligible(nginx, fleet(tmp_path), changed) == expected


def test_eligible_hosts_follow_the_ansible_pattern(tmp_path: Path) -> None:
    _, patches, monitoring = changes.change_types(load(tmp_path))
    inventory = fleet(tmp_path)
    assert changes.eligible(patches, inventory, ["patches/a.yml"]) == (
        "bastion",
        "web-4",
        "web-1",
        "web-2",
        "web-3",
        "mon-1",
    )
    assert changes.eligible(monitoring, inventory, None) == ("mon-1",)


@pytest.mark.parametrize(
    ("template", "path", "values"),
    [
        ("nginx/sites/{site}.conf", "nginx/sites/shop.conf", {"site": "shop"}),
        ("nginx/sites/{site}.conf", "nginx/sites/a/b.conf", None),
        ("roles/{role}/**", "roles/web/tasks/main.yml", {"role": "web"}),
        ("{env}/*.yml", "prod/x.yml", {"env": "prod"}),
        ("{env}/*.yml", "prod/a/x.yml", None),
        ("sites/{site}.c+nf", "sites/x.c+nf", {"site": "x"}),
        ("sites/{site}.conf", "sites/x.conf.bak", None),
    ],
)
def test_file_templates(template: str, path: str, values: dict[str, str] | None) -> None:
    assert changes.template_match(template, path) == values


def test_a_type_s_ansible_tags_reach_ansible_playbook(tmp_path: Path) -> None:
    from cd_checks.rollout.apply import AnsibleApplier
    from cd_checks.rollout.inventory import Host

    nginx, patches, _ = changes.change_types(load(tmp_path))
    assert isinstance(nginx.rollout.apply, AnsibleApply)
    argv = AnsibleApplier(nginx.rollout.apply, Path("hosts.yml"), {}).command(
        [Host("web-1", "web-1")], "rev", "canary"
    )
    assert "--tags=nginx" in argv and argv[-2:] == ["--", "deploy/site.yml"]
    assert isinstance(patches.rollout.apply, AnsibleApply)
    argv = AnsibleApplier(patches.rollout.apply, Path("hosts.yml"), {}).command(
        [Host("web-1", "web-1")], "rev", "canary"
    )
    assert not [a for a in argv if a.startswith("--tags")]


# -- validate: bad change types are findings at their line in cd-checks.yml ------------

REPOSITORY = {
    "inventory/hosts.yml": INVENTORY,
    "deploy/site.yml": "- hosts: all\n  tasks: []\n",
    "tests/health/test_up.py": "def test_up() -> None:\n    pass\n",
    "nginx/sites/shop.conf": "server { listen 80; }\n",
    "patches/2026-01.yml": "packages: [openssl]\n",
    "README.md": "# ops\n",
}


def validate(cli: Callable[..., Run], root: Path, *args: str) -> list[dict[str, Any]]:
    run = cli("-C", root, "validate", "--no-cache", "--format", "json", *args)
    assert run.code in (0, 1), run.err
    found: list[dict[str, Any]] = json.loads(run.out)["findings"]
    return [f for f in found if f["check"] == "rollout" or f["check"] == "policy"]


def at(findings: list[dict[str, Any]], rule: str) -> list[tuple[str, int, str]]:
    return [(f["path"], f["line"], f["message"]) for f in findings if f["rule"] == rule]


def line_of(text: str, needle: str) -> int:
    return next(n for n, line in enumerate(text.splitlines(), 1) if needle in line)


def test_a_clean_config_has_no_change_type_finding(tmp_path: Path, cli: Callable[..., Run]) -> None:
    root = init_repo(write_tree(tmp_path, {**REPOSITORY, "cd-checks.yml": CONFIG}))
    assert [f for f in validate(cli, root) if f["check"] == "rollout"] == []


def test_host_patterns_that_match_nothing(tmp_path: Path, cli: Callable[..., Run]) -> None:
    config = CONFIG.replace('"all:!db"', '"all:!dbb"').replace("hosts: monitoring", "hosts: prom")
    root = init_repo(write_tree(tmp_path, {**REPOSITORY, "cd-checks.yml": config}))
    found = validate(cli, root)
    assert at(found, "host-pattern") == [
        (
            "cd-checks.yml",
            line_of(config, "all:!dbb"),
            "host pattern 'all:!dbb': '!dbb' matches no group or host of the inventory, "
            "so it excludes nothing; did you mean 'db'?",
        ),
        (
            "cd-checks.yml",
            line_of(config, "hosts: prom"),
            "host pattern 'prom': 'prom' matches no group or host of the inventory, so it "
            "adds nothing (its groups: all, db, monitoring, site_blog, site_shop, ungrouped, web)",
        ),
    ]
    assert at(found, "hosts-match-nothing") == [
        (
            "cd-checks.yml",
            line_of(config, "hosts: prom"),
            "host pattern 'prom' matches no host of the inventory: change type 'monitoring' "
            "would deploy nowhere",
        )
    ]


def test_scope_by_groups_the_inventory_lacks(tmp_path: Path, cli: Callable[..., Run]) -> None:
    config = CONFIG.replace(
        'scope_by: {"nginx/sites/{site}.conf": "site_{site}"}',
        'scope_by: {"nginx/sites/{site}.conf": "site_{site}", "nginx/default.conf": "site_shp"}',
    )
    files = {**REPOSITORY, "cd-checks.yml": config, "nginx/sites/wiki.conf": "server {}\n"}
    root = init_repo(write_tree(tmp_path, files))
    line = line_of(config, "scope_by:")
    assert at(validate(cli, root), "scope-by-group") == [
        (
            "cd-checks.yml",
            line,
            "scope_by names group 'site_wiki' (for nginx/sites/wiki.conf), which the "
            "inventory does not have (its groups: all, db, monitoring, site_blog, site_shop, "
            "ungrouped, web)",
        ),
        (
            "cd-checks.yml",
            line,
            "scope_by names group 'site_shp', which the inventory does not have; "
            "did you mean 'site_shop'?",
        ),
    ]


def test_a_scope_by_group_without_hosts(tmp_path: Path, cli: Callable[..., Run]) -> None:
    inventory = INVENTORY.replace("    db:\n", "    site_wiki: {}\n    db:\n")
    files = {**REPOSITORY, "cd-checks.yml": CONFIG, "inventory/hosts.yml": inventory}
    root = init_repo(write_tree(files=files, root=tmp_path))
    write_tree(root, {"nginx/sites/wiki.conf": "server {}\n"})
    assert [m for _, _, m in at(validate(cli, root), "scope-by-group")] == [
        "scope_by names group 'site_wiki' (for nginx/sites/wiki.conf), which has no hosts: "
        "a change there would deploy nowhere"
    ]


def test_a_pull_request_adding_a_site_without_its_group(
    tmp_path: Path, cli: Callable[..., Run]
) -> None:
    root = init_repo(write_tree(tmp_path, {**REPOSITORY, "cd-checks.yml": CONFIG}))
    git(root, "checkout", "-q", "-b", "pr")
    write_tree(root, {"nginx/sites/wiki.conf": "server { listen 80; }\n"})
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", "wiki")
    found = validate(cli, root, "--changed-since", "main")
    assert [m for _, _, m in at(found, "scope-by-group")] == [
        "scope_by names group 'site_wiki' (for nginx/sites/wiki.conf), which the inventory "
        "does not have (its groups: all, db, monitoring, site_blog, site_shop, ungrouped, web)"
    ]


def test_a_change_type_that_does_not_build_and_shared_defaults_reported_once(
    tmp_path: Path, cli: Callable[..., Run]
) -> None:
    config = CONFIG.replace("inventory: inventory/hosts.yml", "inventory: inventory/host.yml")
    config = config.replace("  patches:\n", "  patches:\n    stages: []\n")
    config += "  broken:\n    files: [x]\n    scope_by: {'a/{x}': 'g_{y}'}\n"
    root = init_repo(write_tree(tmp_path, {**REPOSITORY, "cd-checks.yml": config}))
    run = cli("-C", root, "validate", "--no-cache", "--format", "json")
    assert run.code == 2  # the schema: stages has at least one item
    assert "changes.patches.stages: [] should be non-empty" in run.err
    config = config.replace("    stages: []\n", "")
    write_tree(root, {"cd-checks.yml": config})
    found = validate(cli, root)
    assert at(found, "invalid") == [
        (
            "cd-checks.yml",
            line_of(config, "broken:") + 1,  # the type's section
            "changes.broken.scope_by: group 'g_{y}' uses {y}, which file template 'a/{x}' "
            "does not have",
        )
    ]
    assert at(found, "inventory-missing") == [
        (
            "cd-checks.yml",
            line_of(config, "inventory: inventory/host.yml"),
            "inventory 'inventory/host.yml' does not exist; did you mean 'inventory/hosts.yml'?",
        )
    ]


def test_a_changed_file_of_a_frozen_type_is_an_error_in_pr_mode(
    tmp_path: Path, cli: Callable[..., Run]
) -> None:
    config = CONFIG.replace(
        '{from: "2026-12-20", to: "2027-01-04", reason: year-end freeze}',
        '{from: "2026-12-20", to: "2027-01-04", reason: year-end freeze}\n'
        '      - {cron: "* * * * *", reason: "always frozen, for the test"}',
    )
    files = {**REPOSITORY, "cd-checks.yml": config, "monitoring/rules/a.yml": "groups: []\n"}
    root = init_repo(write_tree(tmp_path, files))
    assert at(validate(cli, root), "frozen") == []  # a whole-repository run: no change
    git(root, "checkout", "-q", "-b", "pr")
    write_tree(root, {"monitoring/rules/a.yml": "groups: []\n# tuned\n"})
    git(root, "commit", "-q", "-am", "tune")
    assert at(validate(cli, root, "--changed-since", "main"), "frozen") == [
        (
            "cd-checks.yml",
            line_of(config, "always frozen"),
            "change type 'monitoring' is frozen now: always frozen, for the test (cron "
            "'* * * * *' UTC); this change touches monitoring/rules/a.yml, which `rollout "
            "run` will not deploy until the window ends (break-glass overrides it, audited)",
        )
    ]


def test_a_type_s_policy_sets_check_its_files_only(tmp_path: Path, cli: Callable[..., Run]) -> None:
    config = CONFIG.replace("    require_approvals: 1\n", "    policy: [patches]\n")
    unpinned = "name: p\npackages: [{name: curl}]\n"
    files = {
        **REPOSITORY,
        "cd-checks.yml": config,
        "patches/2026-02.yml": unpinned,  # the type's (patches/*.yml)
        "patches/archive/2019.yml": unpinned,  # the set's globs, not the type's files
    }
    root = init_repo(write_tree(tmp_path, files))
    run = cli("-C", root, "validate", "--no-cache", "--format", "json")
    found = json.loads(run.out)["findings"]
    pinned = [(f["path"], f["rule"]) for f in found if f["rule"] == "PATCH-001"]
    assert pinned == [("patches/2026-02.yml", "PATCH-001")]
    schema = {f["path"] for f in found if f["check"] == "schema"}
    assert "patches/2026-02.yml" in schema and "patches/archive/2019.yml" not in schema
    assert run.code == 1


def test_an_inventory_named_in_defaults_is_checked_as_an_inventory(
    tmp_path: Path, cli: Callable[..., Run]
) -> None:
    config = (
        "defaults:\n  inventory: deploy/fleet\n  apply: {command: ['true']}\n"
        "  stages: [{name: all, hosts: all}]\nchanges:\n  web: {files: ['web/**'], hosts: web}\n"
    )
    files = {"cd-checks.yml": config, "deploy/fleet": "[web]\nweb-1\n[web:children\n"}
    root = init_repo(write_tree(tmp_path, files))
    run = cli("-C", root, "validate", "--no-cache", "--format", "json")
    found = [(f["path"], f["line"], f["check"], f["rule"]) for f in json.loads(run.out)["findings"]]
    assert ("deploy/fleet", 3, "syntax", "inventory") in found
    assert not [f for f in found if f[3] == "inventory-invalid"]  # shown once, by syntax


def test_a_bad_regex_in_a_host_pattern_is_a_finding_and_one_error_line_in_scope(
    tmp_path: Path, cli: Callable[..., Run]
) -> None:
    config = CONFIG.replace("hosts: monitoring", "hosts: '~mon('")
    root = init_repo(write_tree(tmp_path, {**REPOSITORY, "cd-checks.yml": config}))
    (finding,) = at(validate(cli, root), "host-pattern")
    assert finding[:2] == ("cd-checks.yml", line_of(config, "~mon("))
    assert "host pattern term '~mon(': missing ), unterminated subpattern" in finding[2]
    git(root, "checkout", "-q", "-b", "pr")
    write_tree(root, {"monitoring/rules/a.yml": "groups: []\n"})
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", "rule")
    run = cli("-C", root, "scope", "--changed-since", "main")
    assert run.code == 2 and run.err.startswith(
        "cd-checks: error: changes.monitoring: host pattern term '~mon('"
    )


def test_rollout_beside_changes(tmp_path: Path, cli: Callable[..., Run]) -> None:
    config = (
        CONFIG + "rollout: {inventory: i, apply: {command: [x]}, stages: [{name: a, hosts: all}]}\n"
    )
    root = init_repo(write_tree(tmp_path, {**REPOSITORY, "cd-checks.yml": config}))
    (finding,) = at(validate(cli, root), "invalid")
    assert finding[1] == line_of(config, "changes:") + 1  # the changes' section
    assert "put the shared keys under `defaults:`" in finding[2]


def test_defaults_without_change_types(tmp_path: Path, cli: Callable[..., Run]) -> None:
    config = CONFIG.split("changes:")[0]
    root = init_repo(write_tree(tmp_path, {**REPOSITORY, "cd-checks.yml": config}))
    (finding,) = at(validate(cli, root), "invalid")
    assert finding[1] == 2  # the defaults' section
    assert "`defaults:` applies to the types of `changes:`" in finding[2]


def test_the_schema_knows_every_file_kind_syntax_disable_can_name() -> None:
    from cd_checks.checks.syntax import PARSERS

    schema = json.loads((Path(config.__file__).parent / "config.schema.json").read_text())
    kinds = schema["properties"]["syntax"]["properties"]["disable"]["items"]["enum"]
    assert sorted(kinds) == sorted(PARSERS)
