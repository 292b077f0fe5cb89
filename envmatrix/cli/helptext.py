"""What `--help` says beyond each command's docstring: an example per command, the exit codes
and the environment variables envmatrix reads (`add_help`, called once the commands are in)."""

from __future__ import annotations

import typer

# command path -> example invocations, one per line
EXAMPLES: dict[str, tuple[str, ...]] = {
    "sandbox": (
        "envmatrix sandbox --policy envmatrix.yaml",
        "envmatrix sandbox --repo occ-labs/operator-console",
    ),
    "validate": (
        "envmatrix validate --policy envmatrix.yaml",
        "envmatrix validate --json envmatrix.yaml policies/staging.yaml",
    ),
    "plan": (
        "envmatrix plan --environment production",
        "envmatrix plan --out plan.json --detailed-exitcode",
        "envmatrix plan --shard 1/4 --out plan.json",
    ),
    "apply": (
        "envmatrix apply plan.json --yes",
        "envmatrix apply --policy envmatrix.yaml",
        "envmatrix apply --shard 2/4 --yes",
    ),
    "force-unlock": ("envmatrix force-unlock 5f1c2a7e --lock apply",),
    "audit": ("envmatrix audit --since 7d", "envmatrix audit --since 2027-01-01 --json"),
    "matrix": (
        "envmatrix matrix --environment production",
        "envmatrix matrix --format markdown --out MATRIX.md",
    ),
    "flags": ("envmatrix flags --environment production",),
    "flags check": ("envmatrix flags check FEATURE_AI_ESCALATIONS --environment production",),
    "verify": ("envmatrix verify --environment production --repository occ-labs/operator-console",),
    "scan": ("envmatrix scan --workflows .github/workflows",),
    "probe": ("envmatrix probe supabase --environment staging",),
    "probe supabase": ("envmatrix probe supabase --environment staging --json",),
    "rotate": (
        "envmatrix rotate SUPABASE_SERVICE_KEY --environment staging",
        "envmatrix rotate --due --yes",
    ),
    "rotation": ("envmatrix rotation due",),
    "rotation status": ("envmatrix rotation status --json",),
    "rotation due": ("envmatrix rotation due --at 2027-01-01",),
    "rotation calendar": ("envmatrix rotation calendar --days 30 --ics rotations.ics",),
    "demo": ("envmatrix demo",),
    "schema": ("envmatrix schema > schema/envmatrix.schema.json",),
    "import": (
        "envmatrix import --organization occ-labs --out envmatrix.yaml",
        "envmatrix import -r occ-labs/operator-console --mount kv --json",
    ),
}

EXIT_CODES = (
    "0 ok",
    "1 runtime failure or failed check",
    "2 changes to make (plan --detailed-exitcode)",
    "3 invalid policy or command line",
    "130 interrupted (143 on SIGTERM)",
)

# name -> what it sets; `envmatrix --help` lists them all
ENVIRONMENT: dict[str, str] = {
    "ENVMATRIX_POLICY": "policy file when --policy is not given (default envmatrix.yaml)",
    "ENVMATRIX_AUDIT_DB": "the SQLite audit file when the policy has no audit:",
    "ENVMATRIX_DEBUG": "debug lines on stderr (never a value)",
    "ENVMATRIX_LOCK_LEASE": "how long a lock holds unless renewed (default 2m)",
    "ENVMATRIX_GITHUB_ATTEMPTS": "attempts per GitHub request (default 5)",
    "ENVMATRIX_GITHUB_BACKOFF": "retry backoff base, seconds (default 1)",
    "ENVMATRIX_GITHUB_SECONDARY_BACKOFF": "backoff for secondary rate limits (default 60)",
    "ENVMATRIX_GITHUB_MAX_WAIT": "longest rate-limit wait, seconds (default 900)",
    "ENVMATRIX_GITHUB_TIMEOUT": "seconds per GitHub request (default 15)",
    "ENVMATRIX_GITHUB_WRITE_INTERVAL": "seconds between GitHub writes",
    "ENVMATRIX_GITHUB_CONCURRENCY": "GitHub reads in flight at once (default 4, 32 off github.com)",
    "ENVMATRIX_GITHUB_POINTS_PER_MINUTE": (
        "GitHub points per endpoint a minute, GET 1, write 5 (default 850 on github.com, 0=off)"
    ),
    "ENVMATRIX_CACHE_DIR": "the GitHub ETag cache (default ~/.cache/envmatrix/github)",
    "ENVMATRIX_NO_CACHE": "1: no GitHub ETag cache (always off in pull-request runs)",
    "ENVMATRIX_GITHUB_WRITE_CONCURRENCY": (
        "GitHub writes apply sends at once (default 1 on github.com/ghe.com, 8 elsewhere)"
    ),
    "VAULT_ADDR": "Vault's address, as the Vault CLI",
    "VAULT_TOKEN": "a Vault token, as the Vault CLI",
    "VAULT_ROLE_ID": "AppRole login, with VAULT_SECRET_ID",
    "VAULT_SECRET_ID": "AppRole login, with VAULT_ROLE_ID",
    "VAULT_APPROLE_PATH": "the AppRole mount (default approle)",
    "VAULT_AUTH_ROLE": "JWT login with the job's GitHub OIDC ID token, as this role",
    "VAULT_JWT_PATH": "the JWT auth mount (default jwt)",
    "VAULT_JWT_AUDIENCE": "the audience of the OIDC ID token",
    "VAULT_NAMESPACE": "the Vault Enterprise / HCP / OpenBao namespace, as the Vault CLI",
    "VAULT_CACERT": "CA certificate file for Vault's TLS, as the Vault CLI",
    "VAULT_CAPATH": "folder of CA certificates for Vault's TLS, as the Vault CLI",
    "VAULT_CLIENT_CERT": "client certificate for Vault's TLS, with VAULT_CLIENT_KEY",
    "VAULT_CLIENT_KEY": "client key for Vault's TLS, with VAULT_CLIENT_CERT",
    "VAULT_SKIP_VERIFY": "do not verify Vault's TLS certificate (not for production)",
    "VAULT_TLS_SERVER_NAME": "the name to expect in Vault's TLS certificate (SNI)",
    "GH_TOKEN": "a GitHub token, as the gh CLI",
    "GITHUB_TOKEN": "a GitHub token, as the gh CLI",
    "GITHUB_API_URL": "the GitHub API (default https://api.github.com)",
    "GH_HOST": "a GitHub Enterprise host when GITHUB_API_URL is not set, as the gh CLI",
    "GH_ENTERPRISE_TOKEN": "a token for GH_HOST, as the gh CLI",
    "GITHUB_ENTERPRISE_TOKEN": "a token for GH_HOST, as the gh CLI",
    "GITHUB_APP_ID": "log in as this GitHub App (with its private key)",
    "GITHUB_APP_INSTALLATION_ID": "the App installation to use (default: looked up per owner)",
    "GITHUB_APP_PRIVATE_KEY": "a GitHub App key; never handed to rotators, like the tokens",
    "GITHUB_APP_PRIVATE_KEY_FILE": "a GitHub App key; never handed to rotators, like the tokens",
    "GITHUB_ACTIONS": "set by GitHub Actions: annotations, step summary, outputs",
    "GITHUB_OUTPUT": "set by GitHub Actions: where outputs go",
    "GITHUB_STEP_SUMMARY": "set by GitHub Actions: where the summary goes",
    "GITHUB_REPOSITORY": "set by GitHub Actions: verify and flags check default to it",
    "GITHUB_EVENT_NAME": "set by GitHub Actions: notifications only on the default branch/schedule;"
    " no ETag cache in pull_request* runs",
    "GITHUB_EVENT_PATH": "set by GitHub Actions: the event payload (the default branch)",
    "GITHUB_REF": "set by GitHub Actions: the branch of the run (notifications)",
    "GITHUB_ACTOR": "set by GitHub Actions: recorded in the audit trail",
    "GITHUB_RUN_ID": "set by GitHub Actions: recorded in the audit trail",
}

COMMON_ENVIRONMENT = "ENVMATRIX_POLICY, VAULT_ADDR, VAULT_TOKEN, GH_TOKEN/GITHUB_TOKEN"


def command_epilog(path: str) -> str:
    """Examples, exit codes and the main variables, for `envmatrix PATH --help`."""
    examples = "\n".join(f"  {line}" for line in EXAMPLES.get(path, ()))
    return (
        f"Examples:\n{examples}\n\n"
        f"Exit codes: {'; '.join(EXIT_CODES)}.\n"
        f"Environment: {COMMON_ENVIRONMENT} (envmatrix --help lists all)."
    )


def root_epilog() -> str:
    """Every variable and exit code, and a first session, for `envmatrix --help`."""
    variables = "\n".join(f"  {name}: {text}" for name, text in ENVIRONMENT.items())
    codes = "\n".join(f"  {code}" for code in EXIT_CODES)
    return (
        "Examples:\n  envmatrix validate\n  envmatrix plan --out plan.json\n"
        "  envmatrix apply plan.json\n\n"
        f"Environment variables:\n{variables}\n\nExit codes:\n{codes}"
    )


def add_help(app: typer.Typer) -> None:
    """Give `app`, each command and each group an epilog; `-h` works like `--help`."""
    app.info.epilog = root_epilog()
    for command in app.registered_commands:
        command.epilog = command.epilog or command_epilog(_name(command))
    for group in app.registered_groups:
        sub = group.typer_instance
        if sub is None:
            continue
        prefix = group.name or sub.info.name or ""
        group.epilog = group.epilog or command_epilog(str(prefix))
        for command in sub.registered_commands:
            command.epilog = command.epilog or command_epilog(f"{prefix} {_name(command)}")


def _name(command: typer.models.CommandInfo) -> str:
    if command.name:
        return command.name
    callback = command.callback
    return callback.__name__.replace("_", "-") if callback else ""
