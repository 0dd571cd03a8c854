"""Who ran a deploy and who approved the change, from the CI environment and git.

The one module that looks at CI variables, and only through the mapping it
is handed (the CLI passes `os.environ`). GitHub Actions: GITHUB_ACTOR, the
event payload at GITHUB_EVENT_PATH (pull request number and URL, merged_by)
and, with GITHUB_TOKEN, the pull request's reviews from the API. GitLab CI:
GITLAB_USER_LOGIN, CI_MERGE_REQUEST_* and, with a token (CD_CHECKS_GITLAB_TOKEN
or GITLAB_TOKEN), the merge request's approvals from the API. Locally: git's
user.name/user.email. On a push to the default branch the PR/MR number comes
from the merge commit's message ("Merge pull request #12", "(#12)",
"See merge request group/project!12"): anyone can write that in a direct
commit, so with a token the API must confirm that the revision belongs to
that PR/MR (GitHub: GET /repos/{repo}/commits/{sha}/pulls; GitLab: GET
/projects/:id/repository/commits/:sha/merge_requests) before its approvers
are read; unconfirmed, the number is recorded as claimed (`source`
"commit message") with approvers unknown. Whatever is not found is `"unknown"`.
Tokens are used for the API call and never returned, logged or stored.
"""

from __future__ import annotations

import json
import re
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cd_checks.audit.record import UNKNOWN, Json
from cd_checks.errors import AuditError

Git = Callable[[list[str]], str | None]
Http = Callable[[str, Mapping[str, str]], Any]

GITHUB_PR = (re.compile(r"^Merge pull request #(\d+)"), re.compile(r"\(#(\d+)\)\s*$"))
GITLAB_MR = re.compile(r"See merge request \S*!(\d+)")


@dataclass(frozen=True)
class ChangeRequest:
    """The PR/MR a revision came from. `approvers` is "unknown" unless really looked up."""

    system: str  # github | gitlab
    number: str
    url: str | None = None
    approved: bool | None = None
    approvers: tuple[str, ...] | str = UNKNOWN
    merged_by: str | None = None
    # Where the number comes from: event | ci variables | api (the commit, confirmed) |
    # commit message (claimed by the message only, not confirmed).
    source: str = UNKNOWN

    def to_json(self) -> dict[str, Json]:
        approvers = self.approvers if isinstance(self.approvers, str) else list(self.approvers)
        return {
            "system": self.system,
            "number": self.number,
            "url": self.url or UNKNOWN,
            "approved": self.approved if self.approved is not None else UNKNOWN,
            "approvers": approvers,
            "merged_by": self.merged_by or UNKNOWN,
            "source": self.source,
        }


@dataclass(frozen=True)
class Identity:
    actor: str = UNKNOWN
    source: str = UNKNOWN  # github | gitlab | git | unknown
    change_request: ChangeRequest | None = None
    notes: tuple[str, ...] = field(default=())

    def change_request_json(self) -> Json:
        return self.change_request.to_json() if self.change_request else UNKNOWN


def identify(
    env: Mapping[str, str],
    *,
    repo: Path,
    git: Git,
    http: Http | None = None,
    revision: str = "HEAD",
) -> Identity:
    """The identity for a run in `repo` deploying `revision`, from `env` (never guessed)."""
    if env.get("GITHUB_ACTIONS") == "true" or env.get("GITHUB_ACTOR"):
        return _github(env, git, http, revision)
    if env.get("GITLAB_CI") == "true" or env.get("GITLAB_USER_LOGIN"):
        return _gitlab(env, git, http, revision)
    user = _git_user(git)
    return Identity(actor=user, source="git" if user != UNKNOWN else UNKNOWN)


def git_runner(repo: Path) -> Git:
    """A `Git` for identify(): stdout of a git command in `repo`, None when it fails."""
    import subprocess

    def run(args: list[str]) -> str | None:
        try:
            done = subprocess.run(
                ["git", "-C", str(repo), *args], capture_output=True, text=True, check=False
            )
        except OSError:
            return None
        return done.stdout.strip() if done.returncode == 0 else None

    return run


def fetch_json(url: str, headers: Mapping[str, str]) -> Any:
    """The default `Http`: GET `url`, parse JSON. Errors never carry the headers (tokens)."""
    request = urllib.request.Request(url, headers=dict(headers))
    try:
        with urllib.request.urlopen(request, timeout=15) as response:
            return json.loads(response.read().decode("utf-8"))
    except (OSError, ValueError) as exc:
        raise AuditError(f"cannot read {url}: {type(exc).__name__}") from None


def _git_user(git: Git) -> str:
    name = git(["config", "user.name"]) or ""
    email = git(["config", "user.email"]) or ""
    if name and email:
        return f"{name} <{email}>"
    return name or email or UNKNOWN


def _commit_message(git: Git, revision: str) -> str:
    return git(["log", "-1", "--format=%B", "--end-of-options", revision, "--"]) or ""


def _number_from_message(message: str, system: str) -> str | None:
    if system == "gitlab":
        found = GITLAB_MR.search(message)
        return found.group(1) if found else None
    subject = message.strip().splitlines()[0] if message.strip() else ""
    for pattern in GITHUB_PR:
        match = pattern.search(subject)
        if match:
            return match.group(1)
    return None


def _github(env: Mapping[str, str], git: Git, http: Http | None, revision: str) -> Identity:
    actor = env.get("GITHUB_ACTOR") or UNKNOWN
    payload = _payload(env.get("GITHUB_EVENT_PATH"))
    pull = payload.get("pull_request") if isinstance(payload.get("pull_request"), dict) else None
    number = str(pull["number"]) if pull and "number" in pull else None
    source = "event"
    if number is None:
        number, source = _number_from_message(_commit_message(git, revision), "github"), "api"
    if number is None:
        return Identity(actor, "github")
    repository = env.get("GITHUB_REPOSITORY")
    server = env.get("GITHUB_SERVER_URL", "https://github.com")
    url = (pull or {}).get("html_url") or (
        f"{server}/{repository}/pull/{number}" if repository else None
    )
    if source == "api":
        confirmed, why = _github_confirms(env, http, repository, _sha(git, revision), number)
        if not confirmed:
            return Identity(actor, "github", _claimed("github", number, url), (why,))
    merged_by = ((pull or {}).get("merged_by") or {}).get("login")
    approvers, notes = _github_reviews(env, http, repository, number)
    approved = bool(approvers) if not isinstance(approvers, str) else None
    request = ChangeRequest("github", number, url, approved, approvers, merged_by, source)
    return Identity(actor, "github", request, notes)


def _sha(git: Git, revision: str) -> str:
    return (
        git(["rev-parse", "--verify", "--quiet", "--end-of-options", f"{revision}^{{commit}}"])
        or revision
    )


def _claimed(system: str, number: str, url: str | None) -> ChangeRequest:
    """A PR/MR number only the commit message names: approvers are not looked up."""
    return ChangeRequest(system, number, url, None, UNKNOWN, None, "commit message")


def _unconfirmed(what: str, why: str) -> str:
    return f"{what} named by the commit message only, not confirmed ({why}): approvers unknown"


def _github_confirms(
    env: Mapping[str, str], http: Http | None, repository: str | None, sha: str, number: str
) -> tuple[bool, str]:
    """Whether the API lists pull request `number` among those of commit `sha`."""
    what = f"pull request #{number}"
    token = env.get("GITHUB_TOKEN")
    if not token or http is None or not repository:
        return False, _unconfirmed(what, "no GITHUB_TOKEN to ask the API")
    api = env.get("GITHUB_API_URL", "https://api.github.com")
    url = f"{api}/repos/{repository}/commits/{sha}/pulls?per_page=100"
    headers = {"Authorization": f"Bearer {token}", "Accept": "application/vnd.github+json"}
    try:
        pulls = http(url, headers)
    except AuditError as exc:
        return False, _unconfirmed(what, str(exc))
    for pull in pulls if isinstance(pulls, list) else ():
        # The list holds the PRs the commit is part of, and the PR it is the merge of.
        if isinstance(pull, dict) and str(pull.get("number")) == number:
            return True, ""
    return False, _unconfirmed(what, f"the API does not list it for commit {sha[:12]}")


def _payload(path: str | None) -> dict[str, Any]:
    if not path:
        return {}
    try:
        data = json.loads(Path(path).read_text("utf-8"))
    except (OSError, ValueError) as exc:
        raise AuditError(f"cannot read the GitHub event payload {path}: {exc}") from exc
    return data if isinstance(data, dict) else {}


def _github_reviews(
    env: Mapping[str, str], http: Http | None, repository: str | None, number: str
) -> tuple[tuple[str, ...] | str, tuple[str, ...]]:
    token = env.get("GITHUB_TOKEN")
    if not token or http is None or not repository:
        return UNKNOWN, ("approvers unknown: no GITHUB_TOKEN to read the pull request's reviews",)
    api = env.get("GITHUB_API_URL", "https://api.github.com")
    url = f"{api}/repos/{repository}/pulls/{number}/reviews?per_page=100"
    headers = {"Authorization": f"Bearer {token}", "Accept": "application/vnd.github+json"}
    try:
        reviews = http(url, headers)
    except AuditError as exc:
        return UNKNOWN, (f"approvers unknown: {exc}",)
    latest: dict[str, str] = {}
    for review in reviews if isinstance(reviews, list) else ():
        login = (review.get("user") or {}).get("login")
        if login and review.get("state") in ("APPROVED", "CHANGES_REQUESTED", "DISMISSED"):
            latest[login] = review["state"]
    return tuple(sorted(u for u, s in latest.items() if s == "APPROVED")), ()


def _gitlab(env: Mapping[str, str], git: Git, http: Http | None, revision: str) -> Identity:
    actor = env.get("GITLAB_USER_LOGIN") or UNKNOWN
    number, source = env.get("CI_MERGE_REQUEST_IID"), "ci variables"
    if not number:
        number, source = _number_from_message(_commit_message(git, revision), "gitlab"), "api"
    if not number:
        return Identity(actor, "gitlab")
    project_url = env.get("CI_MERGE_REQUEST_PROJECT_URL") or env.get("CI_PROJECT_URL")
    url = f"{project_url}/-/merge_requests/{number}" if project_url else None
    if source == "api":
        confirmed, why = _gitlab_confirms(env, http, _sha(git, revision), number)
        if not confirmed:
            return Identity(actor, "gitlab", _claimed("gitlab", number, url), (why,))
    flag = env.get("CI_MERGE_REQUEST_APPROVED")
    approved = True if flag == "true" and source == "ci variables" else None
    approvers, notes = _gitlab_approvals(env, http, number)
    if not isinstance(approvers, str):
        approved = bool(approvers)
    request = ChangeRequest("gitlab", number, url, approved, approvers, None, source)
    return Identity(actor, "gitlab", request, notes)


def _gitlab_confirms(
    env: Mapping[str, str], http: Http | None, sha: str, number: str
) -> tuple[bool, str]:
    """Whether the API lists merge request !`number` among those of commit `sha`."""
    what = f"merge request !{number}"
    token = env.get("CD_CHECKS_GITLAB_TOKEN") or env.get("GITLAB_TOKEN")
    api = env.get("CI_API_V4_URL")
    project = env.get("CI_PROJECT_ID")
    if not token or http is None or not api or not project:
        return False, _unconfirmed(what, "no CD_CHECKS_GITLAB_TOKEN to ask the API")
    url = f"{api}/projects/{project}/repository/commits/{sha}/merge_requests"
    try:
        requests = http(url, {"PRIVATE-TOKEN": token})
    except AuditError as exc:
        return False, _unconfirmed(what, str(exc))
    for request in requests if isinstance(requests, list) else ():
        if isinstance(request, dict) and str(request.get("iid")) == number:
            return True, ""
    return False, _unconfirmed(what, f"the API does not list it for commit {sha[:12]}")


def _gitlab_approvals(
    env: Mapping[str, str], http: Http | None, number: str
) -> tuple[tuple[str, ...] | str, tuple[str, ...]]:
    token = env.get("CD_CHECKS_GITLAB_TOKEN") or env.get("GITLAB_TOKEN")
    api = env.get("CI_API_V4_URL")
    project = env.get("CI_MERGE_REQUEST_PROJECT_ID") or env.get("CI_PROJECT_ID")
    if not token or http is None or not api or not project:
        note = "approvers unknown: no CD_CHECKS_GITLAB_TOKEN to read the merge request's approvals"
        return UNKNOWN, (note,)
    url = f"{api}/projects/{project}/merge_requests/{number}/approvals"
    try:
        data = http(url, {"PRIVATE-TOKEN": token})
    except AuditError as exc:
        return UNKNOWN, (f"approvers unknown: {exc}",)
    users = data.get("approved_by", []) if isinstance(data, dict) else []
    names = {(u.get("user") or {}).get("username") for u in users}
    return tuple(sorted(n for n in names if n)), ()
