"""The example workflows in examples/workflows match the example policy: every secret they use is
declared for the job's environment, every declared secret is used, and they are valid YAML."""

from __future__ import annotations

import json
from pathlib import Path

from ruamel.yaml import YAML

from tests.world import World

ROOT = Path(__file__).resolve().parents[1]
WORKFLOWS = ROOT / "examples" / "workflows"


def test_example_workflows_parse_and_run_envmatrix() -> None:
    files = sorted(WORKFLOWS.glob("*.yml"))
    assert [f.name for f in files] == ["deploy.yml", "envmatrix-sync.yml", "rotation.yml"]
    for file in files:
        workflow = YAML(typ="safe").load(file.read_text())
        steps = [s for job in workflow["jobs"].values() for s in job["steps"]]
        assert any("envmatrix" in str(s.get("run", "")) for s in steps), file.name


def test_example_workflows_agree_with_the_example_policy(world: World) -> None:
    world.write_policy((ROOT / "policies" / "example.yaml").read_text())
    result = world.run("scan", "--workflows", str(WORKFLOWS), "--json")
    assert result.code == 0, result.out + result.err
    report = json.loads(result.out)
    assert report["undeclared"] == [] and report["unused"] == []
