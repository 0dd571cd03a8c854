"""Fixtures of the conftest parity suite: the translated examples as working directories."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest_parity.parity import example


@pytest.fixture
def kubernetes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """conftest's examples/kubernetes, translated, as the working directory."""
    return example("kubernetes", tmp_path, monkeypatch)


@pytest.fixture
def repo_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty working directory for a case written inline."""
    root = tmp_path / "repo"
    root.mkdir()
    monkeypatch.chdir(root)
    return root
