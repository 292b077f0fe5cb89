"""The exception tree and the exit codes.

    EnvmatrixError                  base; `exit_code` picks the process exit code
    ├── UsageError                  bad command line or environment configuration (exit 3)
    │   ├── MissingExtra            an optional dependency is not installed (names the extra)
    │   └── ReservedVaultPath       a policy path resolves into envmatrix's own Vault space
    ├── PolicyError                 invalid policy file: names file, line and key path (exit 3)
    └── RuntimeFailure              something outside went wrong (exit 1)
        ├── VaultError              Vault/OpenBao answered badly or not at all
        │   ├── VaultUnavailable    down, sealed, unreachable
        │   ├── VaultPermissionDenied   403: names path and capability
        │   ├── VaultCasMismatch    check-and-set lost a race
        │   └── VaultNotFound       path or version absent
        ├── GitHubError             GitHub answered badly or not at all (names the endpoint)
        │   └── GitHubRateLimited   the wait for the rate limit would exceed the bound
        ├── IdTokenRequestFailed    the Actions runner handed out no OIDC ID token
        ├── AuditStoreError         the audit store cannot be opened, written or read
        ├── PostgresError           a PostgreSQL connection or statement failed (no DSN in it)
        ├── StalePlanError          saved plan no longer matches the world
        │   └── PlanMismatchError   saved plan's changes are not the ones the policy produces
        ├── LockHeldError           another runner holds the lock (names the holder)
        ├── StrategyFailed          a rotation strategy step failed (message is our own text)
        │   └── RotationTestFailed  the new credential did not work; stopped before cut-over
        ├── AwaitingOwner           a manual rotation's new value failed its probe: kept open
        ├── OpenBaoError            the demo's OpenBao dev server could not be found or started
        ├── CheckFailed             a check (verify, flags check, rotation due) found a problem
        └── RunStopped              a run stopped writing part-way (never raised per item)
            ├── LockLost            the lock was taken over, freed, or its lease lapsed (exit 1)
            └── Interrupted         Ctrl-C (exit 130) or SIGTERM (exit 143)

    UnsafeInput (not an EnvmatrixError: each reader turns it into its own one-line error)
                                    a file or stream refused before it could hang or exhaust

Every message is one line and never contains a secret value: adapters build messages from
paths, names and status codes only, never from request bodies.
"""

from __future__ import annotations

from enum import IntEnum


class ExitCode(IntEnum):
    """Process exit codes (README: Exit codes)."""

    OK = 0
    FAILURE = 1
    CHANGES = 2  # plan --detailed-exitcode only
    INVALID = 3
    INTERRUPTED = 130  # Ctrl-C (SIGINT): 128 + 2, the shell's convention
    TERMINATED = 143  # SIGTERM (CI cancelling a job): 128 + 15


class EnvmatrixError(Exception):
    """Base of every error envmatrix raises on purpose."""

    exit_code: ExitCode = ExitCode.FAILURE


class UsageError(EnvmatrixError):
    """The command line or the configuration from the environment is invalid."""

    exit_code = ExitCode.INVALID


class PolicyError(EnvmatrixError):
    """The policy file is invalid. `str()` is `file:line: key.path: message`."""

    exit_code = ExitCode.INVALID

    def __init__(self, file: str, line: int | None, key_path: str, message: str) -> None:
        self.file, self.line, self.key_path, self.message = file, line, key_path, message
        location = f"{file}:{line}" if line else file
        where = f" {key_path}:" if key_path else ""
        super().__init__(f"{location}:{where} {message}")


class RuntimeFailure(EnvmatrixError):
    """Something outside envmatrix failed."""

    exit_code = ExitCode.FAILURE


class VaultError(RuntimeFailure):
    """Vault answered with an error, or not at all."""


class VaultUnavailable(VaultError):
    """Vault is down, sealed or unreachable."""


class VaultPermissionDenied(VaultError):
    """The token lacks a capability on a path."""

    def __init__(self, path: str, capability: str) -> None:
        self.path, self.capability = path, capability
        super().__init__(f"Vault denied {capability} on {path}: the token lacks that capability")


class VaultCasMismatch(VaultError):
    """A check-and-set write lost against a concurrent writer."""


class VaultNotFound(VaultError):
    """A path or version does not exist."""


class GitHubError(RuntimeFailure):
    """GitHub answered with an error, or not at all. The message names the endpoint."""

    def __init__(self, message: str, status: int | None = None) -> None:
        self.status = status
        super().__init__(message)


class GitHubRateLimited(GitHubError):
    """The rate-limit wait would exceed the configured bound."""


class StalePlanError(RuntimeFailure):
    """A saved plan was made against a world that has since changed."""


class PlanMismatchError(StalePlanError):
    """A saved plan's changes differ from the ones the policy and the world produce (edited)."""


class LockHeldError(RuntimeFailure):
    """Another runner holds the lock."""


class CheckFailed(RuntimeFailure):
    """A check found something missing, stale or overdue."""


class IdTokenRequestFailed(RuntimeFailure):
    """The runner did not hand out an ID token."""


class AuditStoreError(RuntimeFailure):
    """The audit store cannot be opened, written or read."""


class StrategyFailed(RuntimeFailure):
    """A strategy step raised; the message is safe (our own text, or the exception type only)."""


class RotationTestFailed(StrategyFailed):
    """The new credential did not work; the rotation stops before cut-over."""


class AwaitingOwner(RuntimeFailure):
    """A manual rotation waits for its owner: the new value failed the secret's probe. The
    rotation is kept open where it is (staged in Vault, never promoted or synced) for
    `rotate --resume`; the message names the owner, never a value."""


class OpenBaoError(RuntimeFailure):
    """The OpenBao dev server could not be found, started or controlled."""


# optional dependencies: the import name of each -> the extra that installs it (pyproject.toml)
EXTRAS = {
    "boto3": "aws",
    "botocore": "aws",
    "psycopg": "postgres",
    "supabase": "supabase",
    "supabase_auth": "supabase",
    "openbao": "demo",
    "jwt": "gcp",
    "httpx": "gcp",
    "google": "gcp",
}


class MissingExtra(UsageError):
    """A feature needs an optional dependency that is not installed (names the extra)."""

    def __init__(self, extra: str) -> None:
        self.extra = extra
        super().__init__(
            f"this needs envmatrix's optional '{extra}' dependencies, which are not installed:"
            f" pip install 'envmatrix[{extra}]'"
        )


def missing_extra(exc: ModuleNotFoundError) -> MissingExtra | None:
    """The MissingExtra behind an import failure of an optional dependency, else None."""
    extra = EXTRAS.get((exc.name or "").split(".")[0])
    return MissingExtra(extra) if extra else None


class RunStopped(RuntimeFailure):
    """A run must stop writing now; what landed so far stays and is reported.

    Raised before a write, never for one item: apply and rotation stop at it instead of going
    on with the next item.
    """


class LockLost(RunStopped):
    """This run no longer holds its lock: taken over, force-unlocked, or the lease lapsed."""


class Interrupted(RunStopped):
    """A signal asked the run to stop (SIGINT: exit 130, SIGTERM: exit 143)."""

    def __init__(self, message: str, exit_code: ExitCode = ExitCode.INTERRUPTED) -> None:
        self.exit_code = exit_code
        super().__init__(message)


class ReservedVaultPath(UsageError):
    """A policy path resolves into envmatrix's own Vault space (exit 3)."""

    def __init__(self, template: str, path: str, reserved: str = "envmatrix/") -> None:
        self.template, self.path = template, path
        super().__init__(
            f"vault path {template!r} resolves to {path!r}, inside {reserved}"
            " (envmatrix's own locks and state); a policy cannot name it"
        )


class PostgresError(RuntimeFailure):
    """A PostgreSQL connection or statement failed; the message holds no DSN and no password."""


class UnsafeInput(Exception):
    """An input refused before it could hang or exhaust the run; `str()` says why, one line."""
