"""`envmatrix schema`: the JSON Schema generated from the policy models is the committed one,
validates the example policy, and agrees with load_policy on what it can say."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from ruamel.yaml import YAML

from envmatrix.errors import PolicyError
from envmatrix.policy import load_policy
from envmatrix.policy_schema import policy_json_schema
from envmatrix.strategy_registry import STRATEGIES
from tests.envmatrix.support_gates import EXAMPLE, run

ROOT = Path(__file__).resolve().parents[2]
COMMITTED = ROOT / "schema" / "envmatrix.schema.json"


def validator() -> jsonschema.Draft202012Validator:
    schema = json.loads(COMMITTED.read_text())
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


def test_the_committed_schema_is_current(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "schema")
    assert code == 0
    assert out == COMMITTED.read_text(), "schema/envmatrix.schema.json is stale: run make schema"
    assert json.loads(out) == policy_json_schema()


def test_the_example_names_the_schema_and_validates_against_it() -> None:
    first = EXAMPLE.read_text().splitlines()[0]
    match = re.fullmatch(r"# yaml-language-server: \$schema=(\S+)", first)
    assert match, first
    assert (EXAMPLE.parent / match[1]).resolve() == COMMITTED
    document = YAML(typ="safe").load(EXAMPLE.read_text())
    assert [e.message for e in validator().iter_errors(document)] == []


def test_patterns_are_json_schema_regexes_and_strategies_come_from_the_registry() -> None:
    text = COMMITTED.read_text()
    assert "(?P<" not in text  # ECMA-262 has no Python named groups
    rotation = json.loads(text)["$defs"]["RotationSpec"]
    assert rotation["properties"]["strategy"]["enum"] == list(STRATEGIES)
    assert {
        rule["if"].get("properties", {}).get("strategy", {}).get("const")
        for rule in rotation["allOf"]
    } >= set(STRATEGIES) - {"manual"}


def load(tmp_path: Path, text: str) -> tuple[Any, Path]:
    path = tmp_path / "envmatrix.yaml"
    path.write_text(text)
    return YAML(typ="safe").load(text), path


# each edit of the example makes a policy both judges must refuse
REFUSED = {
    "unknown key": ("  prune: false", "  prnue: false"),
    "lower-case secret name": ("  SUPABASE_URL:\n", "  supabase_url:\n"),
    "GITHUB_ prefix": ("  SUPABASE_URL:\n", "  GITHUB_SUPABASE_URL:\n"),
    "unknown strategy": ("      strategy: command", "      strategy: comand"),
    "bad duration": ("      max_age: 180d", "      max_age: 180 days"),
    "both triggers": ("      max_age: 180d", "      max_age: 180d\n      schedule: '0 9 * * *'"),
    "no trigger": ("      max_age: 180d\n", ""),
    "cron with 6 fields": ('schedule: "0 9 15 * *"', 'schedule: "0 0 9 15 * *"'),
    "unknown option of a strategy": (
        "{project_ref_env: SUPABASE_PROJECT_REF,",
        "{project_ref_evn: SUPABASE_PROJECT_REF,",
    ),
    "option of the wrong type": (
        "base_url_env: CHATWOOT_URL}",
        "base_url_env: CHATWOOT_URL, timeout: soon}",
    ),
    "repository scope with environments": (
        "    vault: apps/{environment}/shopify\n",
        "    scope: repository\n    vault: apps/shopify\n",
    ),
    "environment scope without environments": (
        "    vault: apps/{environment}/zoho#client_id\n    environments: [staging, production]\n",
        "    vault: apps/{environment}/zoho#client_id\n",
    ),
    "repository not owner/name": (
        "repositories: [occ-labs/operator-console]",
        "repositories: [operator-console]",
    ),
    "bad version": ("version: 1", "version: 2"),
    "a flag that is not a list": (
        "    requires: [SUPABASE_URL, SUPABASE_SERVICE_KEY]",
        "    requires: SUPABASE_URL",
    ),
    "two audit sinks": ("\nflags:", "\naudit: {sqlite: a.db, postgres: AUDIT_DSN}\nflags:"),
}

ACCEPTED = {
    "the example": ("version: 1", "version: 1"),
    "a repository secret": (
        "    vault: apps/{environment}/shopify\n    environments: [staging, production]\n",
        "    scope: repository\n    vault: apps/shopify\n",
    ),
    "strategy left out (manual)": (
        "      max_age: 90d\n      strategy: manual",
        "      max_age: 90d",
    ),
    "an audit sink": ("\nflags:", "\naudit: {sqlite: audit.db}\nflags:"),
    "schedule given as null beside max_age": (
        "      max_age: 180d",
        "      max_age: 180d\n      schedule: null",
    ),
}


@pytest.mark.parametrize("case", list(REFUSED), ids=list(REFUSED))
def test_what_the_schema_refuses_load_policy_refuses(case: str, tmp_path: Path) -> None:
    old, new = REFUSED[case]
    text = EXAMPLE.read_text()
    assert old in text, old
    document, path = load(tmp_path, text.replace(old, new, 1))
    assert list(validator().iter_errors(document)), f"the schema accepts: {case}"
    with pytest.raises(PolicyError):
        load_policy(path)


@pytest.mark.parametrize("case", list(ACCEPTED), ids=list(ACCEPTED))
def test_what_load_policy_accepts_the_schema_accepts(case: str, tmp_path: Path) -> None:
    old, new = ACCEPTED[case]
    text = EXAMPLE.read_text()
    assert old in text, old
    document, path = load(tmp_path, text.replace(old, new, 1))
    load_policy(path)
    assert [e.message for e in validator().iter_errors(document)] == []
