"""Files every test repository of a rollout needs: `rollout run` validates the revision first.

`YAMLLINT` is yamllint's default relaxed as the example repository relaxes it, plus
sequences at any indentation, as `yaml.safe_dump` writes them.
"""

from __future__ import annotations

YAMLLINT = """\
extends: default
rules:
  line-length: {max: 120}
  truthy: {allowed-values: ["true", "false", "yes", "no"], check-keys: false}
  comments: {min-spaces-from-content: 1}
  document-start: disable
  indentation: {indent-sequences: whatever}
"""
