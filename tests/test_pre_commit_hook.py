"""The `envmatrix-validate` hook of .pre-commit-hooks.yaml, run by pre-commit itself.

`pre-commit try-repo` installs the hook as a user's repository would get it (`language: python`:
pre-commit builds a virtualenv from this checkout with pip), then runs it on the files the hook's
`files:` pattern picks. The first run on a commit takes about a minute (pip installs envmatrix
and its dependencies); PRE_COMMIT_HOME lives in pytest's cache, so later runs of the same commit
reuse the environment.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from ruamel.yaml import YAML

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = (ROOT / "policies" / "example.yaml").read_text()
PRE_COMMIT = Path(sys.executable).parent / "pre-commit"


def test_the_manifest_declares_the_hook_as_the_contract_says() -> None:
    hooks = YAML(typ="safe").load((ROOT / ".pre-commit-hooks.yaml").read_text())
    hook = next(h for h in hooks if h["id"] == "envmatrix-validate")
    assert hook["language"] == "python"
    assert hook["entry"] == "envmatrix validate --policy"


def git(folder: Path, *args: str) -> None:
    subprocess.run(["git", *args], cwd=folder, check=True, capture_output=True, timeout=60)


@pytest.fixture
def user_repository(tmp_path: Path) -> Path:
    """A repository with two policies (one misspelt owner) and YAML that is no policy."""
    folder = tmp_path / "app"
    (folder / "policies").mkdir(parents=True)
    (folder / ".github" / "workflows").mkdir(parents=True)
    git(folder, "init", "-q")
    (folder / "envmatrix.yaml").write_text(EXAMPLE)
    (folder / "policies" / "payments.yml").write_text(
        EXAMPLE.replace("owner: support", "owner: suport")
    )
    (folder / ".github" / "workflows" / "ci.yml").write_text("on: push\njobs: {}\n")
    (folder / "docker-compose.yaml").write_text("services: {}\n")
    git(folder, "add", "-A")
    return folder


def try_repo(folder: Path, cache: Path, *files: str) -> subprocess.CompletedProcess[str]:
    environ = {**os.environ, "PRE_COMMIT_HOME": str(cache), "NO_COLOR": "1"}
    return subprocess.run(
        [str(PRE_COMMIT), "try-repo", str(ROOT), "envmatrix-validate", "--verbose", *files],
        cwd=folder,
        env=environ,
        capture_output=True,
        text=True,
        timeout=900,
    )


def test_pre_commit_runs_the_hook_on_policies_only(
    user_repository: Path, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    # pytest's cache when it is on (later runs of this commit reuse the hook's environment)
    cache = getattr(request.config, "cache", None)  # None with -p no:cacheprovider
    home = cache.mkdir("pre-commit-home") if cache is not None else tmp_path / "pre-commit-home"
    result = try_repo(user_repository, home, "--all-files")
    output = result.stdout + result.stderr
    assert result.returncode == 1, output
    assert "envmatrix.yaml: valid — 8 secrets" in output
    assert (
        "policies/payments.yml:" in output
        and "owner 'suport' is not declared under owners; did you mean support?" in output
    )
    assert "error: policies/payments.yml:" in output
    assert "ci.yml" not in output and "docker-compose" not in output  # not policies: not passed

    fixed = try_repo(user_repository, home, "--files", "envmatrix.yaml")
    assert fixed.returncode == 0, fixed.stdout + fixed.stderr
    assert "Passed" in fixed.stdout
