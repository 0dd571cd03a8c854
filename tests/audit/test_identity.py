"""Who ran and who approved: GitHub payload + API, GitLab variables + API, local git."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from cd_checks.audit.identity import ChangeRequest, Identity, git_runner, identify
from cd_checks.audit.record import UNKNOWN
from cd_checks.errors import AuditError
from tests.conftest import git, init_repo, write_tree

FIXTURES = Path(__file__).parent / "fixtures"
TOKEN = "ghs_s3cr3tT0k3nValue"


class FakeApi:
    """The injected http function: canned JSON per URL, every call remembered."""

    def __init__(self, responses: Mapping[str, Any]) -> None:
        self.responses = responses
        self.calls: list[tuple[str, dict[str, str]]] = []

    def __call__(self, url: str, headers: Mapping[str, str]) -> Any:
        self.calls.append((url, dict(headers)))
        if url not in self.responses:
            raise AuditError(f"cannot read {url}: HTTPError")
        return self.responses[url]


def _fixture(name: str) -> Any:
    return json.loads((FIXTURES / name).read_text())


def _repo(tmp_path: Path, message: str) -> Path:
    root = init_repo(write_tree(tmp_path, {"a.txt": "1\n"}))
    write_tree(root, {"a.txt": "2\n"})
    git(root, "commit", "-qam", message)
    return root


def _github_env(**extra: str) -> dict[str, str]:
    return {
        "GITHUB_ACTIONS": "true",
        "GITHUB_ACTOR": "bob",
        "GITHUB_REPOSITORY": "acme/ops",
        "GITHUB_API_URL": "http://127.0.0.1:1/api",
        "GITHUB_EVENT_PATH": str(FIXTURES / "github_pull_request_closed.json"),
        **extra,
    }


def test_github_pull_request_event_with_token_reads_the_approvers(tmp_path: Path) -> None:
    url = "http://127.0.0.1:1/api/repos/acme/ops/pulls/42/reviews?per_page=100"
    api = FakeApi({url: _fixture("github_pull_request_reviews.json")})
    root = _repo(tmp_path, "unrelated")
    found = identify(_github_env(GITHUB_TOKEN=TOKEN), repo=root, git=git_runner(root), http=api)
    assert found == Identity(
        "bob",
        "github",
        ChangeRequest(
            "github",
            "42",
            "https://github.com/acme/ops/pull/42",
            True,
            ("carol", "dave"),
            "bob",
            "event",
        ),
    )
    assert api.calls == [
        (url, {"Authorization": f"Bearer {TOKEN}", "Accept": "application/vnd.github+json"})
    ]
    assert TOKEN not in repr(found) and TOKEN not in json.dumps(found.change_request_json())


def test_github_without_a_token_records_approvers_as_unknown(tmp_path: Path) -> None:
    root = _repo(tmp_path, "unrelated")
    found = identify(_github_env(), repo=root, git=git_runner(root), http=FakeApi({}))
    assert found.change_request == ChangeRequest(
        "github", "42", "https://github.com/acme/ops/pull/42", None, UNKNOWN, "bob", "event"
    )
    assert found.change_request_json()["approvers"] == UNKNOWN
    assert found.change_request_json()["approved"] == UNKNOWN
    assert found.notes == ("approvers unknown: no GITHUB_TOKEN to read the pull request's reviews",)


def test_github_api_failure_leaves_approvers_unknown_with_a_note(tmp_path: Path) -> None:
    root = _repo(tmp_path, "unrelated")
    found = identify(
        _github_env(GITHUB_TOKEN=TOKEN), repo=root, git=git_runner(root), http=FakeApi({})
    )
    assert found.change_request is not None and found.change_request.approvers == UNKNOWN
    assert found.notes[0].startswith("approvers unknown: cannot read")
    assert TOKEN not in found.notes[0]


def test_github_push_after_merge_finds_the_pr_in_the_merge_commit(tmp_path: Path) -> None:
    root = _repo(tmp_path, "Merge pull request #57 from alice/tls\n\nTLS 1.3 only")
    env = {"GITHUB_ACTOR": "bob", "GITHUB_REPOSITORY": "acme/ops"}
    found = identify(env, repo=root, git=git_runner(root))
    assert found.change_request == ChangeRequest(
        "github", "57", "https://github.com/acme/ops/pull/57", None, UNKNOWN, None, "commit message"
    )
    assert found.notes == (
        "pull request #57 named by the commit message only, not confirmed "
        "(no GITHUB_TOKEN to ask the API): approvers unknown",
    )


def test_github_squash_merge_title_names_the_pr(tmp_path: Path) -> None:
    root = _repo(tmp_path, "nginx: gzip on (#61)")
    found = identify({"GITHUB_ACTOR": "bob"}, repo=root, git=git_runner(root))
    assert found.change_request is not None and found.change_request.number == "61"


def test_github_direct_push_has_no_change_request(tmp_path: Path) -> None:
    root = _repo(tmp_path, "hotfix typo")
    found = identify({"GITHUB_ACTOR": "bob"}, repo=root, git=git_runner(root))
    assert found == Identity("bob", "github")
    assert found.change_request_json() == UNKNOWN


def _gitlab_env(**extra: str) -> dict[str, str]:
    return {
        "GITLAB_CI": "true",
        "GITLAB_USER_LOGIN": "heidi",
        "CI_API_V4_URL": "http://127.0.0.1:1/api/v4",
        "CI_PROJECT_ID": "314",
        "CI_PROJECT_URL": "https://gitlab.example.com/acme/ops",
        "CI_MERGE_REQUEST_IID": "17",
        "CI_MERGE_REQUEST_PROJECT_ID": "314",
        "CI_MERGE_REQUEST_PROJECT_URL": "https://gitlab.example.com/acme/ops",
        "CI_MERGE_REQUEST_APPROVED": "true",
        **extra,
    }


def test_gitlab_merge_request_variables_with_token_read_the_approvers(tmp_path: Path) -> None:
    url = "http://127.0.0.1:1/api/v4/projects/314/merge_requests/17/approvals"
    api = FakeApi({url: _fixture("gitlab_mr_approvals.json")})
    root = _repo(tmp_path, "unrelated")
    env = _gitlab_env(CD_CHECKS_GITLAB_TOKEN="glpat-s3cr3t")
    found = identify(env, repo=root, git=git_runner(root), http=api)
    assert found == Identity(
        "heidi",
        "gitlab",
        ChangeRequest(
            "gitlab",
            "17",
            "https://gitlab.example.com/acme/ops/-/merge_requests/17",
            True,
            ("frank", "grace"),
            None,
            "ci variables",
        ),
    )
    assert api.calls == [(url, {"PRIVATE-TOKEN": "glpat-s3cr3t"})]
    assert "glpat" not in repr(found)


def test_gitlab_without_a_token_keeps_the_approved_flag_only(tmp_path: Path) -> None:
    root = _repo(tmp_path, "unrelated")
    found = identify(_gitlab_env(), repo=root, git=git_runner(root))
    assert found.change_request == ChangeRequest(
        "gitlab",
        "17",
        "https://gitlab.example.com/acme/ops/-/merge_requests/17",
        True,
        UNKNOWN,
        None,
        "ci variables",
    )
    assert found.change_request_json()["merged_by"] == UNKNOWN


def test_gitlab_push_pipeline_finds_the_mr_in_the_merge_commit(tmp_path: Path) -> None:
    message = "Merge branch 'bump' into 'main'\n\nBump\n\nSee merge request acme/ops!17"
    root = _repo(tmp_path, message)
    env = {"GITLAB_CI": "true", "GITLAB_USER_LOGIN": "heidi"}
    found = identify(env, repo=root, git=git_runner(root))
    assert found.change_request == ChangeRequest(
        "gitlab", "17", None, None, UNKNOWN, None, "commit message"
    )


def test_local_identity_comes_from_git_config(tmp_path: Path) -> None:
    root = _repo(tmp_path, "x")
    git(root, "config", "user.name", "Ivan Local")
    git(root, "config", "user.email", "ivan@example.com")
    found = identify({}, repo=root, git=git_runner(root))
    assert found == Identity("Ivan Local <ivan@example.com>", "git")


def test_nothing_known_is_unknown_never_guessed(tmp_path: Path) -> None:
    found = identify({}, repo=tmp_path, git=lambda args: None)
    assert found == Identity(UNKNOWN, UNKNOWN)


def _push_env(**extra: str) -> dict[str, str]:
    return {
        "GITHUB_ACTIONS": "true",
        "GITHUB_ACTOR": "bob",
        "GITHUB_REPOSITORY": "acme/ops",
        "GITHUB_API_URL": "http://127.0.0.1:1/api",
        "GITHUB_TOKEN": TOKEN,
        **extra,
    }


def _github_urls(sha: str, number: str) -> tuple[str, str]:
    api = "http://127.0.0.1:1/api/repos/acme/ops"
    return f"{api}/commits/{sha}/pulls?per_page=100", f"{api}/pulls/{number}/reviews?per_page=100"


def test_github_direct_commit_claiming_a_pr_in_its_title_gets_no_approvers(
    tmp_path: Path,
) -> None:
    root = _repo(tmp_path, "hotfix (#12)")
    sha = git(root, "rev-parse", "HEAD").strip()
    pulls, reviews = _github_urls(sha, "12")
    api = FakeApi({pulls: [], reviews: _fixture("github_pull_request_reviews.json")})
    found = identify(_push_env(), repo=root, git=git_runner(root), http=api)
    request = found.change_request
    assert request is not None and request.number == "12"
    assert (request.approvers, request.approved, request.source) == (
        UNKNOWN,
        None,
        "commit message",
    )
    assert found.change_request_json()["source"] == "commit message"
    assert [url for url, _ in api.calls] == [pulls]  # the PR's reviews are never read
    assert "not confirmed (the API does not list it for commit" in found.notes[0]


def test_github_squash_commit_confirmed_by_the_api_reads_the_approvers(tmp_path: Path) -> None:
    root = _repo(tmp_path, "nginx: gzip on (#12)")
    sha = git(root, "rev-parse", "HEAD").strip()
    pulls, reviews = _github_urls(sha, "12")
    listed = [{"number": 12, "merge_commit_sha": sha}]
    api = FakeApi({pulls: listed, reviews: _fixture("github_pull_request_reviews.json")})
    found = identify(_push_env(), repo=root, git=git_runner(root), http=api)
    assert found.change_request == ChangeRequest(
        "github", "12", "https://github.com/acme/ops/pull/12", True, ("carol", "dave"), None, "api"
    )
    assert [url for url, _ in api.calls] == [pulls, reviews]


def _gitlab_push_env() -> dict[str, str]:
    return {
        "GITLAB_CI": "true",
        "GITLAB_USER_LOGIN": "heidi",
        "CI_API_V4_URL": "http://127.0.0.1:1/api/v4",
        "CI_PROJECT_ID": "314",
        "CD_CHECKS_GITLAB_TOKEN": "glpat-s3cr3t",
    }


def test_gitlab_direct_commit_claiming_an_mr_gets_no_approvers(tmp_path: Path) -> None:
    root = _repo(tmp_path, "hotfix\n\nSee merge request acme/ops!17")
    sha = git(root, "rev-parse", "HEAD").strip()
    mrs = f"http://127.0.0.1:1/api/v4/projects/314/repository/commits/{sha}/merge_requests"
    approvals = "http://127.0.0.1:1/api/v4/projects/314/merge_requests/17/approvals"
    api = FakeApi({mrs: [{"iid": 3}], approvals: _fixture("gitlab_mr_approvals.json")})
    found = identify(_gitlab_push_env(), repo=root, git=git_runner(root), http=api)
    assert found.change_request == ChangeRequest(
        "gitlab", "17", None, None, UNKNOWN, None, "commit message"
    )
    assert [url for url, _ in api.calls] == [mrs]
    api = FakeApi({mrs: [{"iid": 17}], approvals: _fixture("gitlab_mr_approvals.json")})
    found = identify(_gitlab_push_env(), repo=root, git=git_runner(root), http=api)
    assert found.change_request == ChangeRequest(
        "gitlab", "17", None, True, ("frank", "grace"), None, "api"
    )
