"""Which ref of cd-checks the generated CI files use: the installed commit when known.

A pinned commit SHA is what zizmor and GitHub's own hardening guide ask for;
it is known when cd-checks was installed from git (pip records the commit in
`direct_url.json`) or editable from a source checkout (that checkout's HEAD).
Otherwise the release tag is used, and the caller tells the user to pin it.
This module reads the installed distribution's metadata and runs git; it writes nothing.
"""

from __future__ import annotations

import json
import re
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from urllib.parse import unquote, urlparse

from cd_checks import __version__

DISTRIBUTION = "cd-checks"
_SHA = re.compile(r"^[0-9a-f]{40}$")


@dataclass(frozen=True)
class Pin:
    """A ref of cd-checks for `uses:`/`rev:`, and what it stands for."""

    ref: str  # a 40-hex commit SHA, or a tag/branch
    version: str  # the release it is (or is after), for the `# v0.2.0` comment
    source: str  # where the ref came from, in the user's words

    @property
    def is_sha(self) -> bool:
        return bool(_SHA.match(self.ref))

    @property
    def tag(self) -> str:
        return f"v{self.version}"


def resolve(override: str | None, *, version: str = __version__) -> Pin:
    """The ref the user asked for, else the installed commit, else the release tag."""
    if override:
        return Pin(override, version, "--action-ref")
    for direct_url in _direct_urls():
        found = installed_commit(direct_url, git_head)
        if found is not None:
            return Pin(found[0], version, found[1])
    checkout = source_checkout(Path(__file__).resolve().parents[2])
    sha = git_head(checkout) if checkout is not None else None
    if checkout is not None and sha is not None:
        return Pin(sha, version, f"HEAD of the cd-checks checkout {checkout}")
    return Pin(f"v{version}", version, "the release tag")


def _direct_urls() -> list[str]:
    # Every copy of the metadata on sys.path: a source tree's egg-info can shadow
    # the installed one's, which alone records how it was installed.
    found = (d.read_text("direct_url.json") for d in metadata.distributions(name=DISTRIBUTION))
    return [text for text in found if text]


def source_checkout(directory: Path) -> Path | None:
    """`directory` if it is the top of a cd-checks source tree (cd_checks runs from it)."""
    try:
        pyproject = (directory / "pyproject.toml").read_text("utf-8")
    except OSError:
        return None
    declared = re.search(r'^name\s*=\s*"([^"]+)"', pyproject, re.MULTILINE)
    return directory if declared and declared.group(1) == DISTRIBUTION else None


def installed_commit(
    direct_url: str | None, head: Callable[[Path], str | None]
) -> tuple[str, str] | None:
    """(commit, source) from pip's `direct_url.json` (PEP 610), or None when not known."""
    if not direct_url:
        return None
    try:
        data = json.loads(direct_url)
    except ValueError:
        return None
    commit = (data.get("vcs_info") or {}).get("commit_id")
    if isinstance(commit, str) and _SHA.match(commit):
        return commit, f"the commit cd-checks was installed from ({data.get('url', 'git')})"
    url = urlparse(str(data.get("url", "")))
    if (data.get("dir_info") or {}).get("editable") and url.scheme == "file":
        checkout = Path(unquote(url.path))
        sha = head(checkout)
        if sha is not None:
            return sha, f"HEAD of the cd-checks checkout {checkout}"
    return None


def git_head(checkout: Path) -> str | None:
    """The commit checked out in `checkout`, if it is a git work tree."""
    try:
        done = subprocess.run(
            ["git", "-C", str(checkout), "rev-parse", "--verify", "HEAD"],
            capture_output=True,
            text=True,
            check=False,
        )
    except OSError:
        return None
    sha = done.stdout.strip()
    return sha if done.returncode == 0 and _SHA.match(sha) else None
