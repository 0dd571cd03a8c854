"""conftest's input kinds through `cd-checks validate`: found by name, parsed into conftest's
shape for the user's policies, a bad file a located finding; existing kinds keep their files."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from pathlib import Path

import pytest

from cd_checks.checks import syntax
from tests.conftest import Run

Cli = Callable[..., Run]
Repo = Callable[[Mapping[str, str | bytes]], Path]


def validate(cli: Cli, root: Path, *args: str) -> tuple[int, list[tuple[object, ...]]]:
    run = cli("-C", root, "validate", "--format", "json", "--no-cache", *args)
    assert run.err == "", run.err
    found = json.loads(run.out)["findings"]
    return run.code, [
        (f["path"], f["line"], f"{f['check']}/{f['rule']}", f["message"]) for f in found
    ]


BAD = [
    ("Dockerfile", "FROM alpine\nRUN true\nFOO bar\n", 3, "dockerfile: unknown instruction: FOO"),
    ("app/dev.Dockerfile", "FROM\n", 1, "dockerfile: FROM requires either one or three arguments"),
    (".env", "A=1\nthis is not\n", 2, "dotenv: cannot parse line 2: 'this is not'"),
    ("infra/main.tf", 'resource "a" "b" {\n  x = \n}\n', 2, "hcl2: unexpected '}'"),
    ("infra/prod.tfvars", 'region = "eu\n', 1, None),
    ("conf/app.ini", "[a]\nx = 1\n[b\n", 3, "ini: unclosed section: [b"),
    ("conf/pom.xml", "<a>\n<b></a>\n", 2, "xml: mismatched tag"),
    ("conf/settings.jsonc", '{\n  "a": 1\n  "b": 2\n}\n', 3, "jsonc: Expecting ',' delimiter"),
]


@pytest.mark.parametrize(("name", "text", "line", "message"), BAD, ids=[b[0] for b in BAD])
def test_a_bad_file_of_each_kind_is_a_located_finding(
    cli: Cli, repo: Repo, name: str, text: str, line: int, message: str | None
) -> None:
    code, found = validate(cli, repo({name: text}))
    assert code == 1
    ((path, at, rule, said),) = found
    assert (path, at, rule) == (name, line, "syntax/syntax")
    assert message is None or said == message


def test_good_files_of_each_kind_are_clean(cli: Cli, repo: Repo) -> None:
    root = repo(
        {
            "Dockerfile": "FROM alpine:3.20\nRUN apk add --no-cache curl\n",
            ".env.production": "PORT=8080\n",
            ".gitignore": "id_rsa\n",
            ".dockerignore": ".git\n",
            "infra/main.tf": 'resource "aws_s3_bucket" "b" {\n  bucket = "b"\n}\n',
            "infra/terraform.tfvars": 'region = "eu-west-1"\n',
            "conf/app.properties": "a=b\n",
            "conf/log4j.xml": "<configuration/>\n",
            "conf/settings.jsonc": '{\n  // editor settings\n  "a": 1,\n}\n',
            "tox.ini": "[testenv]\ndeps =\n    pytest\n    ruff\ncommands = pytest\n",
        }
    )
    assert validate(cli, root) == (0, [])


GRAFANA = """# possible values : production, development
app_mode = production

[server]
protocol = http
http_port = 3001
domain = localhost

[users]
allow_sign_up = true
verify_email_enabled = false

[alerting]
enabled = false
execute_alerts = true

[auth.basic]
enabled = false
"""

# conftest's examples/ini/policy/deny.rego, as it is today (typed values).
GRAFANA_POLICY = """package main

deny contains msg if {
\tnot input.alerting.enabled = true
\tmsg = "Alerting should turned on"
}

deny contains msg if {
\tnot input["auth.basic"].enabled = true
\tmsg = "Basic auth should be enabled"
}

deny contains msg if {
\tnot input.server.http_port = 3000
\tmsg = "Grafana port should be 3000"
}

deny contains msg if {
\tnot input.server.protocol = "http"
\tmsg = "Grafana should use default http"
}

deny contains msg if {
\tnot input.users.allow_sign_up = false
\tmsg = "Users cannot sign up themselves"
}

deny contains msg if {
\tnot input.users.verify_email_enabled = true
\tmsg = "Users should verify their e-mail address"
}
"""


def test_conftest_ini_example_evaluates(cli: Cli, repo: Repo) -> None:
    root = repo({"grafana.ini": GRAFANA, "policy/deny.rego": GRAFANA_POLICY})
    code, found = validate(cli, root)
    assert code == 1
    assert sorted(f[3] for f in found) == [
        "Alerting should turned on",
        "Basic auth should be enabled",
        "Grafana port should be 3000",
        "Users cannot sign up themselves",
        "Users should verify their e-mail address",
    ]
    fixed = GRAFANA.replace("3001", "3000").replace("= false", "= true")
    fixed = fixed.replace("allow_sign_up = true", "allow_sign_up = false")
    (root / "grafana.ini").write_text(fixed)
    assert validate(cli, root) == (0, [])


TERRAFORM = """resource "aws_security_group_rule" "my-rule" {
  type        = "ingress"
  cidr_blocks = ["0.0.0.0/0"]
}

resource "aws_alb_listener" "my-alb-listener" {
  port     = "80"
  protocol = "HTTP"
}
"""

# conftest's examples/hcl2/policy/deny.rego rules (today's list form), and one rule that
# says where with a `path`, which cd-checks turns into the line.
TERRAFORM_POLICY = """package main

deny contains msg if {
\tsome name
\tsome lb in input.resource.aws_alb_listener[name]
\tlb.protocol == "HTTP"
\tmsg = sprintf("ALB `%v` is using HTTP rather than HTTPS", [name])
}

deny contains msg if {
\tsome name
\tsome rule in input.resource.aws_security_group_rule[name]
\trule.type == "ingress"
\tcontains(rule.cidr_blocks[_], "0.0.0.0/0")
\tmsg = sprintf("ASG `%v` defines a fully open ingress", [name])
}

warn contains result if {
\tsome name, i
\tlb := input.resource.aws_alb_listener[name][i]
\tlb.port == "80"
\tresult := {
\t\t"msg": sprintf("ALB `%v` listens on 80", [name]),
\t\t"path": ["resource", "aws_alb_listener", name, i, "port"],
\t}
}
"""


def test_terraform_with_a_policy_gives_findings_where_it_can(cli: Cli, repo: Repo) -> None:
    root = repo({"main.tf": TERRAFORM, "policy/deny.rego": TERRAFORM_POLICY})
    code, found = validate(cli, root)
    assert code == 1
    # conftest reports no line; a plain message stays on the file, a result with a
    # `path` lands on that attribute's line.
    assert sorted(found, key=str) == sorted(
        [
            (
                "main.tf",
                None,
                "policy/main.deny",
                "ALB `my-alb-listener` is using HTTP rather than HTTPS",
            ),
            ("main.tf", None, "policy/main.deny", "ASG `my-rule` defines a fully open ingress"),
            ("main.tf", 7, "policy/main.warn", "ALB `my-alb-listener` listens on 80"),
        ],
        key=str,
    )


def test_conftest_docker_example_policy(cli: Cli, repo: Repo) -> None:
    dockerfile = (
        "FROM openjdk:8-jdk-alpine\n\nVOLUME /tmp\n\nARG DEPENDENCY=target/dependency\n"
        "COPY ${DEPENDENCY}/BOOT-INF/lib /app/lib\n"
        "RUN apk add --no-cache python3 && pip3 install awscli==1.18.1\n"
        'ENTRYPOINT ["java","-cp","app:app/lib/*","hello.Application"]\n'
    )
    # conftest's examples/docker/policy/images.rego.
    policy = (
        'package main\n\ndenylist := ["openjdk"]\n\ndeny contains msg if {\n\tsome i\n'
        '\tinput[i].Cmd == "from"\n\tval := input[i].Value\n\tcontains(val[i], denylist[_])\n'
        '\tmsg = sprintf("unallowed image found %s", [val])\n}\n'
    )
    root = repo({"Dockerfile": dockerfile, "policy/images.rego": policy})
    code, found = validate(cli, root)
    assert (code, [f[3] for f in found]) == (1, ['unallowed image found ["openjdk:8-jdk-alpine"]'])


def test_terraform_plan_with_the_builtin_set(cli: Cli, repo: Repo) -> None:
    plan = {
        "format_version": "1.2",
        "resource_changes": [
            {
                "address": "aws_db_instance.main",
                "type": "aws_db_instance",
                "name": "main",
                "change": {"actions": ["delete"], "before": {}, "after": None},
            }
        ],
    }
    root = repo({"plans/tfplan.json": json.dumps(plan, indent=2) + "\n"})
    code, found = validate(cli, root, "--builtin", "terraform")
    assert code == 1
    ((path, line, rule, message),) = found
    assert (path, line, rule) == ("plans/tfplan.json", 9, "policy/TF-001")  # its "actions"
    assert message.startswith("aws_db_instance.main is destroyed by this plan")


@pytest.mark.parametrize(
    ("path", "kind"),
    [
        # conftest's names for the new kinds ...
        ("Dockerfile", "dockerfile"),
        ("docker/Dockerfile.prod", "dockerfile"),
        ("api.Dockerfile", "dockerfile"),
        ("Dockerfile.dockerignore", "ignore"),  # BuildKit's per-Dockerfile ignore file
        ("cd_checks/parsers/dockerfile.py", None),  # conftest would say Dockerfile
        ("templates/Dockerfile.j2", None),
        ("infra/main.tf", "hcl2"),
        ("infra/prod.tfvars", "hcl2"),
        ("terragrunt.hcl", "hcl2"),
        (".env", "dotenv"),
        (".env.local", "dotenv"),
        (".gitignore", "ignore"),
        ("web/.dockerignore", "ignore"),
        ("src/main/resources/app.properties", "properties"),
        ("pom.xml", "xml"),
        (".vscode/settings.jsonc", "jsonc"),
        # ... never take a file from a kind it already had.
        ("hosts.ini", "inventory"),
        ("inventory/prod.ini", "inventory"),
        ("inventory/hosts", "inventory"),
        ("group_vars/web.env", "yaml"),
        ("host_vars/db1.example.com", "yaml"),
        ("ansible.cfg", "ini"),
        ("haproxy.cfg", None),
        ("grafana.ini", "ini"),
        ("alert.rules", "yaml"),
        ("Makefile", None),  # conftest would read it as YAML; a repository scan does not
        ("site.conf", None),  # NGINX files are chosen by their globs, elsewhere
    ],
)
def test_kind_by_name(path: str, kind: str | None) -> None:
    assert syntax.kind_of(path) == kind


def test_every_parser_name_is_a_kind_validate_can_force() -> None:
    from cd_checks.parsers import PARSER_NAMES

    assert set(PARSER_NAMES) <= set(syntax.PARSERS)


HOSTILE: dict[str, str | bytes] = {
    "Dockerfile": b"FROM x\n\x00\x01binary",
    "bomb.xml": '<!DOCTYPE l [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;">]><l>&b;</l>',
    "deep.xml": "<a>" * 5000 + "</a>" * 5000,
    "deep.tf": "a = " + "[" * 3000 + "]" * 3000 + "\n",
    "deep.jsonc": "[" * 5000 + "]" * 5000,
    "open.jsonc": "/*" * 20000,
    "bad.env": b"A=caf\xe9\n",
}


def test_hostile_files_are_findings_never_tracebacks(cli: Cli, repo: Repo) -> None:
    code, found = validate(cli, repo(HOSTILE))
    assert code == 1
    assert {(f[0], f[2]) for f in found} == {
        ("Dockerfile", "syntax/binary"),
        ("bomb.xml", "syntax/not-checked"),  # never expanded, and never an error (below)
        ("deep.xml", "syntax/syntax"),
        ("deep.tf", "syntax/syntax"),
        ("deep.jsonc", "syntax/syntax"),
        ("open.jsonc", "syntax/syntax"),
        ("bad.env", "syntax/encoding"),
    }


def test_an_xml_file_with_an_entity_declaration_is_not_read_but_does_not_fail(
    cli: Cli, repo: Repo
) -> None:
    # A Maven pom with an internal DTD is valid XML: a repository scan must not fail on
    # it, but it is not read (entities can expand without bound), and says so.
    pom = '<?xml version="1.0"?>\n<!DOCTYPE p [ <!ENTITY v "1"> ]>\n<p><v>&v;</v></p>\n'
    code, found = validate(cli, repo({"pom.xml": pom}))
    assert code == 0
    ((path, _, rule, said),) = found
    assert (path, rule) == ("pom.xml", "syntax/not-checked")
    assert (
        said == "not checked: xml: entity declarations are not read (they can expand without bound)"
    )
