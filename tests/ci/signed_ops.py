"""An ops repository whose audit trail is a signed git branch pushed to a bare origin.

What a deploy job of the CI integrations works on when the audit steps are under
test: `cd-checks.yml` with a command applier (it writes the revision into a file
per host under `fleet/`, no hosts needed), stages staging, canary and production,
`audit: {store: git, remote: origin, signers: audit-signers}`, the signers file
listing the CI key (`ssh-keygen -t ed25519`, as the README says to make it), and
what `rollout run` needs to validate the revision. `cut_trail` is an attacker's
forced push of the audit branch back by some records.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import yaml

from tests.conftest import git, init_repo, write_tree
from tests.rollout.repo_files import YAMLLINT

DEPLOY = """\
import pathlib, sys
hosts, revision, fleet = sys.argv[1].split(","), sys.argv[2], pathlib.Path(sys.argv[3])
for host in hosts:
    (fleet / host).write_text(revision)
"""
BRANCH = "cd-checks/audit"


class SignedOps:
    def __init__(self, tmp_path: Path) -> None:
        self.tmp = tmp_path
        self.fleet = tmp_path / "fleet"
        self.fleet.mkdir()
        self.key = tmp_path / "ci-audit-key"
        subprocess.run(
            ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "ci", "-f", str(self.key)],
            check=True,
        )
        public = " ".join(Path(f"{self.key}.pub").read_text().split()[:2])
        apply = ["python", "deploy.py", "{hosts}", "{revision}", str(self.fleet)]
        rollout = {
            "inventory": "inventory/hosts",
            "apply": {"command": apply},
            "stages": [
                {"name": "staging", "hosts": "staging"},
                {"name": "canary", "hosts": "production", "percent": 50},
                {"name": "production", "hosts": "production"},
            ],
        }
        audit = {"store": "git", "remote": "origin", "signers": "audit-signers"}
        source = write_tree(
            tmp_path / "source",
            {
                "cd-checks.yml": yaml.safe_dump({"rollout": rollout, "audit": audit}),
                "deploy.py": DEPLOY,
                "inventory/hosts": "[staging]\nstage-1\n\n[production]\nweb-1\nweb-2\n",
                "audit-signers": f"ci {public}\n",
                ".yamllint": YAMLLINT,
            },
        )
        init_repo(source)
        self.origin = tmp_path / "origin.git"
        git(tmp_path, "clone", "-q", "--bare", str(source), str(self.origin))

    def clone(self, target: Path) -> Path:
        """What a CI job checks out: a fresh clone of origin."""
        git(self.tmp, "clone", "-q", str(self.origin), str(target))
        return target

    def secret_lines(self) -> list[str]:
        """The lines of the private key that must never show (its base64 body)."""
        return self.key.read_text().splitlines()[1:-1]

    def records(self) -> list[str]:
        listing = git(self.origin, "ls-tree", "--name-only", BRANCH, "records/")
        return listing.split()

    def cut_trail(self, commits: int) -> None:
        """A forced push of the audit branch back by `commits` records."""
        git(self.origin, "update-ref", f"refs/heads/{BRANCH}", f"{BRANCH}~{commits}")

    def deployed(self) -> dict[str, str]:
        return {p.name: p.read_text() for p in sorted(self.fleet.iterdir())}
