"""The strategy registry: policy `rotation.strategy` name -> the module that builds it.

Each entry is `"module:function"`, imported only when a rotation uses it (so `generate` never
imports boto3). The function takes `(options, settings)` and returns a `Strategy`. Adding a
provider is one line here and one module beside this one; the engine never changes.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from envmatrix.errors import UsageError
from envmatrix.secret import SecretValue
from rotation.strategies.base import Strategy
from rotation.strategies.options import require_valid_options

FACTORIES: dict[str, str] = {
    "generate": "rotation.strategies.generate:build",
    "manual": "rotation.strategies.manual:build",
    "command": "rotation.strategies.command:build",
    "postgres": "rotation.strategies.postgres:build",
    "aws-iam": "rotation.strategies.aws_iam:build",
    "supabase-api-key": "rotation.strategies.supabase_api_key:build",
}

# Asks the owner for a secret's new value: (secret name, Vault key) -> value. None when the
# run cannot ask anyone (`rotate --due` in CI).
ValueSource = Callable[[str, str], SecretValue]


@dataclass(frozen=True)
class StrategySettings:
    """What strategies may need from the run, beyond their policy options."""

    policy_dir: Path = Path(".")  # relative paths in options are resolved against it
    value_source: ValueSource | None = None


def get_strategy(
    name: str, options: Mapping[str, Any], settings: StrategySettings | None = None
) -> Strategy:
    """Build the strategy `name` from its policy options; UsageError for unknown or bad ones."""
    target = FACTORIES.get(name)
    if target is None:
        known = ", ".join(sorted(FACTORIES))
        raise UsageError(f"rotation strategy {name!r} is not available in this envmatrix ({known})")
    module_name, _, function = target.partition(":")
    factory = getattr(importlib.import_module(module_name), function)
    strategy: Strategy = factory(options, settings or StrategySettings())
    # validate checked the options against the model; this guards callers that skipped it
    # (after the factory, whose own messages are the more specific ones)
    require_valid_options(name, options)
    return strategy
