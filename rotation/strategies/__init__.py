"""Building strategies from the registry (envmatrix/strategy_registry.py): `get_strategy`."""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from envmatrix.errors import UsageError, missing_extra
from envmatrix.rotation.strategies.base import Strategy
from envmatrix.secret import SecretValue
from envmatrix.strategy_registry import STRATEGIES, require_valid_options

# Asks the owner for a secret's new value: (secret name, Vault key) -> value. None when the
# run cannot ask anyone (`rotate --due` in CI).
ValueSource = Callable[[str, str], SecretValue]
# Reads a policy secret's current value from Vault: (secret name, logical environment or None
# for the repository level) -> value. UsageError for a name the policy does not declare.
SecretReader = Callable[[str, str | None], SecretValue]

# Shows the owner a manual rotation's steps and links (the CLI prints them to stderr).
Show = Callable[[str], None]


class ValueProbe(Protocol):
    """The policy's declared probes, as a manual rotation uses them (the application builds
    one from envmatrix.views.probe; the rotation layer never imports it)."""

    def preset(self, names: Sequence[str]) -> str | None:
        """The probe preset (zoho, shopify, ...) declared on or using one of `names`, or None."""

    def confirm(
        self, keys: Mapping[str, str], environment: str | None, pending: Mapping[str, SecretValue]
    ) -> tuple[str, ...]:
        """Run every probe that checks one of `keys` (secret name -> Vault key) with the pending
        values in place of Vault's current ones; what passed, one line each. Raises
        AwaitingOwner naming the secret, environment and owner when one fails."""


@dataclass(frozen=True)
class StrategySettings:
    """What strategies may need from the run, beyond their policy options."""

    policy_dir: Path = Path(".")  # relative paths in options are resolved against it
    value_source: ValueSource | None = None
    read_secret: SecretReader | None = None  # set by the rotation engine for its Vault
    value_probe: ValueProbe | None = None  # manual: probes confirm the new value (application)
    show: Show | None = None  # manual: where the owner's steps and links are shown


def get_strategy(
    name: str, options: Mapping[str, Any], settings: StrategySettings | None = None
) -> Strategy:
    """Build the strategy `name` from its policy options; UsageError for unknown or bad ones."""
    registered = STRATEGIES.get(name)
    if registered is None:
        known = ", ".join(sorted(STRATEGIES))
        raise UsageError(f"rotation strategy {name!r} is not available in this envmatrix ({known})")
    module_name, _, function = registered.factory.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:  # e.g. aws-iam without the 'aws' extra
        raise missing_extra(exc) or exc from None
    factory = getattr(module, function)
    strategy: Strategy = factory(options, settings or StrategySettings())
    # validate checked the options against the model; this guards callers that skipped it
    # (after the factory, whose own messages are the more specific ones)
    require_valid_options(name, options)
    return strategy
