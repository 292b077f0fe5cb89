"""The policy's JSON Schema (`envmatrix schema`), generated from the pydantic models.

For editors (yaml-language-server) and other tools: the models' own schema, plus what their
validators check across fields that JSON Schema can say too — exactly one of `schedule` or
`max_age`, each strategy's `options`, `environments` by `scope`, one audit sink — and a
description of the main keys. `load_policy` stays the judge: references between parts of the
policy (owners, environments, required secrets) are beyond a schema.
"""

from __future__ import annotations

from typing import Any

from envmatrix.policy import Policy
from envmatrix.strategy_registry import STRATEGIES

SCHEMA_DIALECT = "https://json-schema.org/draft/2020-12/schema"

# (model, field) -> description shown by editors on hover
DESCRIPTIONS: dict[tuple[str, str], str] = {
    ("Policy", "version"): "The policy format's version: 1.",
    ("Policy", "vault"): "Where the secrets live in Vault (a KV version 2 mount).",
    ("Policy", "github"): "Default target repositories; prune: delete what envmatrix wrote.",
    ("Policy", "environments"): "Logical environments and the GitHub environment of each.",
    ("Policy", "owners"): "Teams that own secrets, with a contact.",
    ("Policy", "secrets"): "The secrets to sync, by GitHub secret name.",
    ("Policy", "flags"): "Feature flags ready where every secret they require is in sync.",
    ("Policy", "audit"): "Where the audit trail goes (default: a SQLite file).",
    ("GitHubSettings", "prune"): "Delete secrets envmatrix wrote that the policy no longer names.",
    ("SecretSpec", "owner"): "The owner (a key of owners:) to ask when the secret is missing.",
    ("SecretSpec", "scope"): "environment: per GitHub environment; repository: once per repo.",
    ("SecretSpec", "environments"): "The environments (keys of environments:) that need it.",
    ("SecretSpec", "repositories"): "Target repositories (default: github.repositories).",
    ("SecretSpec", "rotation"): "When and how the secret rotates.",
    ("RotationSpec", "grace"): "How long the previous credential stays valid after cut-over.",
    ("RotationSpec", "options"): "The strategy's options.",
    ("FlagSpec", "requires"): "The secrets (keys of secrets:) the flag needs.",
    ("FlagSpec", "variable"): "Also set the flag as an Actions variable (true/false).",
    ("AuditSpec", "sqlite"): "A SQLite file for the audit trail.",
    ("AuditSpec", "postgres"): "The environment variable holding a PostgreSQL DSN.",
}


def policy_json_schema() -> dict[str, Any]:
    """The JSON Schema (draft 2020-12) of a policy file, as a dict ready for `json.dumps`."""
    schema = Policy.model_json_schema()
    defs = schema.setdefault("$defs", {})
    _describe(schema, defs)
    _rotation_rules(defs)
    defs["SecretSpec"]["if"] = {
        "properties": {"scope": {"const": "repository"}},
        "required": ["scope"],
    }
    defs["SecretSpec"]["then"] = {"not": {"required": ["environments"]}}
    defs["SecretSpec"]["else"] = {"required": ["environments"]}
    defs["AuditSpec"]["not"] = {"required": ["sqlite", "postgres"]}
    _close_pattern_properties(schema)
    return {
        "$schema": SCHEMA_DIALECT,
        **{k: v for k, v in schema.items() if k != "title"},
        "title": "envmatrix policy",
    }


def _describe(schema: dict[str, Any], defs: dict[str, Any]) -> None:
    for (model, field), text in DESCRIPTIONS.items():
        holder = schema if model == "Policy" else defs[model]
        holder["properties"][field]["description"] = text  # KeyError: DESCRIPTIONS is stale


def _rotation_rules(defs: dict[str, Any]) -> None:
    """Exactly one trigger; `options` checked against the strategy's model (manual when unset)."""
    rotation = defs["RotationSpec"]
    rotation["oneOf"] = [
        {"required": [key], "properties": {key: {"type": "string"}}}
        for key in ("schedule", "max_age")
    ]
    rules = []
    for name, registered in STRATEGIES.items():
        options = registered.options.model_json_schema(ref_template="#/$defs/{model}")
        defs.update(options.pop("$defs", {}))
        chosen: dict[str, Any] = {
            "properties": {"strategy": {"const": name}},
            "required": ["strategy"],
        }
        if name == "manual":  # the default strategy
            chosen = {"anyOf": [chosen, {"not": {"required": ["strategy"]}}]}
        rules.append({"if": chosen, "then": {"properties": {"options": options}}})
    rotation["allOf"] = rules


def _close_pattern_properties(node: Any) -> None:
    """A mapping whose keys have a pattern (secret names, environment names) takes no other key:
    pydantic leaves `additionalProperties` open there."""
    if isinstance(node, dict):
        if "patternProperties" in node and "additionalProperties" not in node:
            node["additionalProperties"] = False
        for value in node.values():
            _close_pattern_properties(value)
    elif isinstance(node, list):
        for value in node:
            _close_pattern_properties(value)
