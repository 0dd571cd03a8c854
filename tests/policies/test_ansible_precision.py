"""The ansible set on Ansible content as public collections lay it out: no false alarm,
nothing missed, and its default globs find the files.

The corpus (tests/policies/corpus/ansible/) is modelled on a Galaxy role repository
and on ansible-examples (plays as root, on localhost, on Windows over WinRM;
group_vars and host_vars files without an extension).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import write_tree
from tests.policies.precision import Outcome, copy_corpus, marked, validate

CORPUS = Path(__file__).parent / "corpus" / "ansible"
CONFIG = "policy:\n  builtin: [ansible]\n"


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Outcome]:
    root = copy_corpus(CORPUS, tmp_path_factory.mktemp("ansible") / "repo", CONFIG)
    return root, validate(root)


def test_the_set_reports_exactly_what_the_corpus_marks(corpus: tuple[Path, Outcome]) -> None:
    root, outcome = corpus
    assert outcome.policy() == marked(root)
    assert outcome.code == 1


EXAMPLES = "examples/lamp_simple"


@pytest.mark.parametrize(
    "path",
    [
        # ANS-005: plays that need no `become`
        pytest.param(f"{EXAMPLES}/site.yml", id="remote-user-root"),
        pytest.param("playbooks/provision-aws.yml", id="local-and-localhost"),
        pytest.param("playbooks/windows-iis.yml", id="windows-modules"),
        pytest.param("examples/windows/create-user.yml", id="windows-hosts"),
        pytest.param("examples/language_features/rolling_update.yml", id="deploy-user-reported"),
        # ANS-002: read without an extension, literal secrets caught, the rest not
        pytest.param(f"{EXAMPLES}/group_vars/dbservers", id="dbpassword-no-extension"),
        pytest.param(f"{EXAMPLES}/group_vars/all", id="vars-no-extension"),
        pytest.param(f"{EXAMPLES}/host_vars/dbserver.example.com", id="vaulted-host-vars"),
        pytest.param(f"{EXAMPLES}/group_vars/webservers/vars.yml", id="templated-and-lookup"),
        pytest.param(f"{EXAMPLES}/group_vars/webservers/vault", id="vaulted-file"),
        pytest.param(f"{EXAMPLES}/roles/db/defaults/main.yml", id="literal-role-default"),
        pytest.param("galaxy-role/defaults/main.yml", id="empty-role-defaults"),
        pytest.param("galaxy-role/tasks/main.yml", id="role-tasks"),
        pytest.param("galaxy-role/molecule/default/converge.yml", id="molecule-playbook"),
        # not Ansible: never read by the set, whatever they hold
        pytest.param("examples/docker-compose.yml", id="docker-compose"),
        pytest.param("examples/requirements.yml", id="requirements"),
    ],
)
def test_each_file_reports_what_it_marks(corpus: tuple[Path, Outcome], path: str) -> None:
    root, outcome = corpus
    assert {s for s in outcome.policy() if s[0] == path} == {
        s for s in marked(root) if s[0] == path
    }
    assert [f for f in outcome.in_file(path) if f["rule"] == "syntax"] == []


def test_dbpassword_in_a_group_vars_file_without_extension_is_reported(
    corpus: tuple[Path, Outcome],
) -> None:
    _, outcome = corpus
    (found,) = [
        f for f in outcome.in_file(f"{EXAMPLES}/group_vars/dbservers") if f["rule"] == "ANS-002"
    ]
    assert (found["line"], found["severity"]) == (9, "error")
    assert str(found["message"]).startswith("dbpassword has a literal value")


SECRET_VARS = "---\napp_api_password: hunter2\n"
SECRET_TASKS = """\
---
- name: Create the database user
  community.mysql.mysql_user:
    name: app
    password: hunter2
"""
PLAY = """\
---
- name: Deploy
  hosts: webservers
  remote_user: deploy
  vars:
    app_api_password: hunter2
  tasks:
    - name: Restart
      ansible.builtin.service: {name: app, state: restarted}
"""

# Where Ansible content lives in Galaxy roles, ansible-examples and ansible-for-devops.
LAYOUTS = {
    "tasks/main.yml": SECRET_TASKS,  # a Galaxy role at the repository's top
    "handlers/main.yml": SECRET_TASKS,
    "defaults/main.yml": SECRET_VARS,
    "vars/main.yml": SECRET_VARS,
    "roles/web/tasks/setup/debian.yml": SECRET_TASKS,
    "roles/web/defaults/main.yml": SECRET_VARS,
    "ansible/roles/db/vars/main.yaml": SECRET_VARS,
    "group_vars/all": SECRET_VARS,
    "group_vars/web.yml": SECRET_VARS,
    "group_vars/db/vars": SECRET_VARS,
    "inventories/prod/host_vars/db1.example.com": SECRET_VARS,
    "playbooks/deploy.yml": PLAY,
    "site.yml": PLAY,
    "deploy.yml": PLAY,  # a play at the top, read for what it holds
    "lamp/provisioning/playbook.yml": PLAY,
}
# Not Ansible content, or not read as it is: no finding of the set.
NOT_ANSIBLE = {
    "docker-compose.yml": "services:\n  db:\n    environment:\n      db_password: hunter2\n",
    "roles/web/files/app-config.yml": "---\napp_api_password: hunter2\n",  # copied as it is
    "roles/web/templates/app.yml.j2": "app_api_password: {{ app_api_password }}\n",
    ".github/workflows/ci.yml": "on: push\njobs:\n  t:\n    env:\n      db_password: x\n",
    "group_vars/README.md": "app_api_password: hunter2\n",
}


def test_default_globs_find_ansible_content_in_the_common_layouts(tmp_path: Path) -> None:
    root = write_tree(tmp_path / "repo", {**LAYOUTS, **NOT_ANSIBLE, "cd-checks.yml": CONFIG})
    outcome = validate(root)
    assert {site[0] for site in outcome.policy() if site[2] == "ANS-002"} == set(LAYOUTS)
    assert {site[0] for site in outcome.policy()} == set(LAYOUTS)
    plays = {site[0] for site in outcome.policy() if site[2] == "ANS-005"}
    assert plays == {p for p, text in LAYOUTS.items() if text == PLAY}
