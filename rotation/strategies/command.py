"""`command`: an executable named in the policy does the provider's part of each step.

For services whose rotation is custom (Shopify, Zoho, Chatwoot, a Google service account). The
policy names it as `options.command: [argv...]`; a relative `argv[0]` is resolved against the
policy file's directory, which is also its working directory. Per step envmatrix runs it once,
writes one JSON object to its stdin and closes it:

    {"step": "create"|"set"|"test"|"revoke"|"discard", "path": ...,
     "environment": ...,           # the logical environment; null for a scope: repository path
     "keys": {secret name: Vault key}, "options": {...}, "handle": {...},
     "current": {key: value},      # create and revoke: the path's current values
     "pending": {key: value},      # set, test, discard: the new values
     "previous": {key: value}}     # revoke: the values being retired

For `create` it must print `{"values": {key: value}, "handle": {name: text}}` on stdout, with a
value for every key in `keys`; `handle` is non-secret bookkeeping (a key id) handed back on later
steps. Exit 0 means the step succeeded. Its stderr is discarded and its stdout is never shown,
since either might contain a value: a failure is reported by exit code only. `options.timeout`
bounds each step (seconds, default 300).

The rotator gets an allow-listed environment, never envmatrix's own (which holds its Vault login,
GitHub token and other strategies' admin credentials; see rotation/rotator_env.py): PATH, locale,
TMPDIR, proxy and CA settings, a fresh empty HOME (0700, removed after the step), and the
variables its options name: `options.env: [NAME, ...]` and every `options.<x>_env: NAME`.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from envmatrix.errors import RotationTestFailed, RuntimeFailure, UnsafeInput, UsageError
from envmatrix.rotation.rotator_env import named_variables, rotator_environment
from envmatrix.rotation.strategies import StrategySettings
from envmatrix.rotation.strategies.base import Created, RotationContext
from envmatrix.safeio import run_bounded
from envmatrix.secret import SecretValue

DEFAULT_TIMEOUT = 300.0
MAX_OUTPUT_BYTES = 1024 * 1024  # a create answer is a few values; more is refused


class CommandStrategy:
    """Runs a rotator executable per step, speaking JSON over stdin/stdout."""

    name = "command"
    not_applicable: Mapping[str, str] = {}  # the rotator implements every step

    def __init__(
        self, argv: list[str], options: Mapping[str, Any], cwd: Path, timeout: float
    ) -> None:
        self.argv, self.options, self.cwd, self.timeout = argv, dict(options), cwd, timeout
        self.passed_variables = named_variables(options)

    def create(self, ctx: RotationContext) -> Created:
        output = self._run("create", ctx, current=ctx.current)
        return _parse_created(self.argv[0], output, set(ctx.keys.values()))

    def set(self, ctx: RotationContext, pending: Mapping[str, SecretValue]) -> None:
        self._run("set", ctx, pending=pending)

    def test(self, ctx: RotationContext, pending: Mapping[str, SecretValue]) -> None:
        try:
            self._run("test", ctx, pending=pending)
        except RuntimeFailure as exc:
            raise RotationTestFailed(str(exc)) from None

    def revoke(self, ctx: RotationContext, previous: Mapping[str, SecretValue]) -> None:
        self._run("revoke", ctx, current=ctx.current, previous=previous)

    def discard(self, ctx: RotationContext, pending: Mapping[str, SecretValue]) -> None:
        self._run("discard", ctx, pending=pending)

    def _run(self, step: str, ctx: RotationContext, **values: Mapping[str, SecretValue]) -> bytes:
        request = json.dumps(_request(step, ctx, self.options, values)).encode()
        try:
            with rotator_environment(self.passed_variables) as environment:
                done = run_bounded(
                    self.argv,
                    input=request,
                    limit=MAX_OUTPUT_BYTES,
                    cwd=self.cwd,
                    timeout=self.timeout,
                    env=environment,
                )
        except UnsafeInput as exc:
            raise RuntimeFailure(f"rotator {self.argv[0]} at step {step}: {exc}") from None
        except (OSError, subprocess.SubprocessError) as exc:
            # the exception text names the executable, never the input
            raise RuntimeFailure(
                f"rotator {self.argv[0]} could not run step {step}: {type(exc).__name__}"
            ) from None
        if done.returncode != 0:
            raise RuntimeFailure(
                f"rotator {self.argv[0]} failed at step {step} (exit {done.returncode})"
            )
        return done.stdout


def _request(
    step: str,
    ctx: RotationContext,
    options: Mapping[str, Any],
    values: Mapping[str, Mapping[str, SecretValue]],
) -> dict[str, Any]:
    request: dict[str, Any] = {
        "step": step,
        "path": ctx.path,
        "environment": ctx.environment,
        "keys": dict(ctx.keys),
        "options": dict(options),
        "handle": dict(ctx.handle),
    }
    for part, mapping in values.items():
        request[part] = {key: value.reveal() for key, value in mapping.items()}
    return request


def _parse_created(executable: str, output: bytes, keys: set[str]) -> Created:
    """The rotator's create answer; errors name the problem, never the text it printed."""
    try:
        answer = json.loads(output)
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise RuntimeFailure(f"rotator {executable} printed no JSON object for create") from None
    values = answer.get("values") if isinstance(answer, dict) else None
    handle = answer.get("handle", {}) if isinstance(answer, dict) else None
    if not isinstance(values, dict) or not all(isinstance(v, str) for v in values.values()):
        raise RuntimeFailure(f'rotator {executable}: create must print {{"values": {{key: text}}}}')
    if set(values) != keys:
        missing, extra = sorted(keys - set(values)), sorted(set(values) - keys)
        raise RuntimeFailure(f"rotator {executable}: create values lack {missing} or add {extra}")
    if not isinstance(handle, dict) or not all(isinstance(v, str) for v in handle.values()):
        raise RuntimeFailure(f"rotator {executable}: create handle must map names to text")
    return Created(
        {k: SecretValue(v) for k, v in values.items()}, {str(k): v for k, v in handle.items()}
    )


def build(options: Mapping[str, Any], settings: StrategySettings) -> CommandStrategy:
    """A CommandStrategy from `rotation.options` (`command` required, `timeout` optional)."""
    argv = options.get("command")
    if not isinstance(argv, (list, tuple)) or not argv or not all(isinstance(a, str) for a in argv):
        raise UsageError(
            "rotation.options.command for command must be a list: [executable, args...]"
        )
    timeout = options.get("timeout", DEFAULT_TIMEOUT)
    if not isinstance(timeout, (int, float)) or isinstance(timeout, bool) or timeout <= 0:
        raise UsageError(
            "rotation.options.timeout for command must be a positive number of seconds"
        )
    executable = argv[0]
    if "/" in executable and not Path(executable).is_absolute():
        executable = str((settings.policy_dir / executable).resolve())
    return CommandStrategy([executable, *argv[1:]], options, settings.policy_dir, float(timeout))
