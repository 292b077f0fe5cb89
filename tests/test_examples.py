"""The example workflows in examples/workflows match the example policy: every secret they use is
declared for the job's environment, every declared secret is used, and they are valid YAML. They
and action.yml pass zizmor and check-jsonschema's built-in GitHub schemas, both offline."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from ruamel.yaml import YAML

from envmatrix.cli.action import COMMANDS
from tests.world import World

ROOT = Path(__file__).resolve().parents[1]
WORKFLOWS = ROOT / "examples" / "workflows"
ACTION = ROOT / "action.yml"
BIN = Path(sys.executable).parent
# owner/name@<40 hex> # vX.Y.Z: a commit SHA, the release tag it is in a comment
PINNED = re.compile(r"uses: [\w.-]+/[\w./-]+@[0-9a-f]{40} # v\d+(\.\d+)*\s*$")


def test_example_workflows_parse_and_run_envmatrix_through_the_action() -> None:
    files = sorted(WORKFLOWS.glob("*.yml"))
    assert [f.name for f in files] == [
        "deploy.yml",
        "envmatrix-sync.yml",
        "rotation.yml",
        "sharded-apply.yml",
    ]
    for file in files:
        workflow = YAML(typ="safe").load(file.read_text())
        steps = [s for job in workflow["jobs"].values() for s in job["steps"]]
        action_steps = [s for s in steps if s.get("uses") == "$/tools/envmatrix"]
        assert action_steps, file.name
        assert all(s["with"]["command"] in COMMANDS for s in action_steps), file.name
        assert not any("pip install" in str(s.get("run", "")) for s in steps), file.name


def test_example_workflows_pin_actions_and_keep_credentials_and_permissions_narrow() -> None:
    for file in sorted(WORKFLOWS.glob("*.yml")):
        workflow = YAML(typ="safe").load(file.read_text())
        assert workflow["permissions"] == {}, file.name  # jobs ask for what they need
        for job in workflow["jobs"].values():
            assert "write-all" not in str(job.get("permissions")), file.name
            for step in job["steps"]:
                uses = step.get("uses", "")
                if uses.startswith("actions/checkout@"):
                    assert step["with"]["persist-credentials"] is False, file.name
        for line in _uses_lines(file):
            if not line.startswith(("uses: $/", "uses: ./")):
                assert PINNED.search(line), f"{file.name}: {line}"
    assert all(PINNED.search(line) for line in _uses_lines(ACTION))


def _uses_lines(file: Path) -> list[str]:
    lines = (line.strip().removeprefix("- ") for line in file.read_text().splitlines())
    return [line for line in lines if line.startswith("uses:")]


def _offline(tmp_path: Path) -> dict[str, str]:
    """The environment with every proxy pointed at a closed port: any download fails."""
    closed = "http://127.0.0.1:9"
    environ = {k: v for k, v in os.environ.items() if "proxy" not in k.lower()}
    environ |= {"HTTPS_PROXY": closed, "HTTP_PROXY": closed, "https_proxy": closed}
    environ |= {
        "http_proxy": closed,
        "NO_PROXY": "",
        "no_proxy": "",
        "XDG_CACHE_HOME": str(tmp_path),
    }
    return {k: v for k, v in environ.items() if k not in {"GH_TOKEN", "GITHUB_TOKEN"}}


def test_zizmor_finds_nothing_in_the_action_and_the_example_workflows(tmp_path: Path) -> None:
    """zizmor (offline: no audit needs the network) with the default persona, no config and no
    ignore comments honoured."""
    files = [str(ACTION), *map(str, sorted(WORKFLOWS.glob("*.yml")))]
    done = subprocess.run(
        [
            BIN / "zizmor",
            "--offline",
            "--no-config",
            "--no-ignores",
            "--no-progress",
            "--format",
            "json",
            *files,
        ],
        capture_output=True,
        text=True,
        env=_offline(tmp_path),
        timeout=300,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert json.loads(done.stdout) == []


@pytest.mark.parametrize(
    ("schema", "files"),
    [
        ("vendor.github-workflows", sorted(WORKFLOWS.glob("*.yml"))),
        ("vendor.github-actions", [ACTION]),
    ],
)
def test_check_jsonschema_builtin_github_schemas_offline(
    tmp_path: Path, schema: str, files: list[Path]
) -> None:
    done = subprocess.run(
        [BIN / "check-jsonschema", "--builtin-schema", schema, *map(str, files)],
        capture_output=True,
        text=True,
        env=_offline(tmp_path),
        timeout=300,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "ok -- validation done" in done.stdout


def test_example_workflows_agree_with_the_example_policy(world: World) -> None:
    world.write_policy((ROOT / "policies" / "example.yaml").read_text())
    result = world.run("scan", "--workflows", str(WORKFLOWS), "--json")
    assert result.code == 0, result.out + result.err
    report = json.loads(result.out)
    assert report["undeclared"] == [] and report["unused"] == []
