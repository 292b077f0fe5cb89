"""views/workflow_runs.py: expressions and matrices as GitHub evaluates them (pure tables)."""

from __future__ import annotations

from typing import Any

import pytest

from envmatrix.views.workflow_runs import _Context, _matrix_combinations, evaluate, job_runs

CONTEXT = _Context({"env": "staging", "n": 3}, {"target": "production", "empty": ""}, {"x": "qa"})


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("production", "production"),
        ("${{ matrix.env }}", "staging"),
        ("${{matrix['env']}}", "staging"),
        ("deploy-${{ matrix.env }}-${{ matrix.n }}", "deploy-staging-3"),
        ("${{ inputs.target }}", "production"),
        ("${{ github.event.inputs.x }}", "qa"),
        ("${{ inputs.empty || 'fallback' }}", "fallback"),
        ("${{ inputs.target || 'fallback' }}", "production"),
        ("${{ 'it''s' }}", "it's"),
        ("${{ needs.a.outputs.env }}", None),
        ("${{ vars.ENV }}", None),
        ("${{ matrix.missing }}", None),
        ("${{ inputs.missing }}", None),
        ("${{ format('{0}', matrix.env) }}", None),
        ("${{ inputs.empty || needs.x.outputs.y }}", None),
    ],
)
def test_evaluate(text: str, value: str | None) -> None:
    assert evaluate(text, CONTEXT) == value


@pytest.mark.parametrize(
    ("matrix", "combinations"),
    [
        (None, [{}]),
        ({"env": ["a", "b"]}, [{"env": "a"}, {"env": "b"}]),
        ({"env": ["a", "b"], "exclude": [{"env": "a"}]}, [{"env": "b"}]),
        (  # an include that fits extends the matching combination; added keys may change
            {"os": ["l", "w"], "include": [{"os": "l", "env": "a"}, {"os": "l", "env": "b"}]},
            [{"os": "l", "env": "b"}, {"os": "w"}],
        ),
        (  # an include that overwrites an original value is a new combination
            {"os": ["l"], "include": [{"os": "m", "env": "c"}]},
            [{"os": "l"}, {"os": "m", "env": "c"}],
        ),
        ({"include": [{"env": "a"}, {"env": "b"}]}, [{"env": "a"}, {"env": "b"}]),
        ("${{ fromJSON(needs.x.outputs.m) }}", [None]),
        ({"env": "${{ fromJSON(inputs.envs) }}"}, [None]),
    ],
)
def test_matrix_combinations(matrix: Any, combinations: list[Any]) -> None:
    job = {} if matrix is None else {"strategy": {"matrix": matrix}}
    assert _matrix_combinations(job) == combinations


@pytest.mark.parametrize(
    ("key", "on", "environments"),
    [
        ("on", "workflow_call", [None]),  # no such input: unknown
        ("on", {"workflow_call": {"inputs": {"e": {"required": True}}}}, [None]),
        ("on", {"workflow_call": {"inputs": {"e": {"default": "prod"}}}}, ["prod"]),
        ("on", {"workflow_dispatch": {"inputs": {"e": {"required": False}}}}, [None]),  # ""
        (
            "on",
            {"workflow_dispatch": {"inputs": {"e": {"type": "choice", "options": ["a", "b"]}}}},
            ["a", "b"],
        ),
        (True, {"workflow_dispatch": {"inputs": {"e": {"default": "x"}}}}, ["x"]),  # YAML 1.1
    ],
)
def test_inputs_of_a_run_github_starts(key: Any, on: Any, environments: list[str | None]) -> None:
    document = {key: on, "jobs": {"j": {"environment": "${{ inputs.e }}", "steps": []}}}
    runs = job_runs({"w.yml": document})
    assert sorted((r.environment if r.environment_known else None) for r in runs) == environments


def test_a_huge_matrix_and_a_deep_call_chain_stay_bounded() -> None:
    axes: dict[str, Any] = {f"a{i}": list(range(10)) for i in range(10)}  # 10^10 combinations
    assert len(_matrix_combinations({"strategy": {"matrix": axes}})) == 256
    documents: dict[str, Any] = {}
    for i in range(12):  # each file calls the next once per matrix combination
        documents[f"w{i}.yml"] = {
            "on": {"workflow_call": {"inputs": {"e": {"default": "staging"}}}, "push": None},
            "jobs": {
                "call": {
                    "strategy": {"matrix": {"x": list(range(16)), "e": ["staging", "production"]}},
                    "uses": f"./.github/workflows/w{i + 1}.yml",
                    "with": {"e": "${{ matrix.e }}"},
                },
                "run": {"environment": "${{ inputs.e }}", "steps": []},
            },
        }
    runs = job_runs(documents)
    # w0 runs on push only (its default); every later file for both values its caller passes
    assert {(r.workflow, r.environment) for r in runs if r.job == "run"} == {
        ("w0.yml", "staging"),
        *((f"w{i}.yml", e) for i in range(1, 12) for e in ("staging", "production")),
    }
