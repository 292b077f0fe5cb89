"""The one registry of rotation strategies: policy `rotation.strategy` name -> its builder and
the model of its `rotation.options`.

The policy validates names and options against it at load (`envmatrix.policy`: an unknown key,
a wrong type or a missing required option is an error with file:line — a typo such as
`mdoe: alternating` used to leave postgres in its single-role mode). The rotation layer builds
strategies from it (`envmatrix.rotation.strategies.get_strategy`), importing a builder's module
only when a rotation uses it (so `generate` never imports boto3). This module imports nothing
heavy. `command` is the one open model: keys beyond `command`, `timeout` and `env` are the
rotator's own settings, handed to it in its JSON request.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from envmatrix.errors import UsageError

Name = Annotated[str, Field(min_length=1)]  # an environment variable, Vault key, role, ...


class StrategyOptions(BaseModel):
    """Base: unknown keys are errors."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class GenerateOptions(StrategyOptions):
    """`generate`: random values."""

    length: Annotated[int, Field(ge=16, le=4096)] = 32
    alphabet: Name = "alphanumeric"  # alphanumeric | hex | urlsafe | the characters themselves


class ManualOptions(StrategyOptions):
    """`manual`: the owner supplies the value. `service` picks the printed steps and links
    when the secret declares no probe preset (zoho, shopify); optional."""

    service: Literal["zoho", "shopify"] | None = None


class CommandOptions(StrategyOptions):
    """`command`: a rotator executable; other keys are the rotator's own (passed through)."""

    model_config = ConfigDict(extra="allow", frozen=True)

    command: Annotated[tuple[Name, ...], Field(min_length=1)]
    timeout: Annotated[float, Field(gt=0, le=86400)] = 300.0


class PostgresOptions(StrategyOptions):
    """`postgres`: a role's password; `alternating` switches between two roles."""

    dsn_env: Name
    mode: Literal["single", "alternating"] = "single"
    role: Name | None = None
    roles: tuple[Name, Name] | None = None
    username_key: Name = "username"
    password_key: Name = "password"
    uri_key: Name | None = None
    host: Name | None = None
    port: Annotated[int, Field(ge=1, le=65535)] | None = None
    dbname: Name | None = None
    terminate_sessions: bool = False
    connect_timeout: Annotated[int, Field(ge=1, le=600)] = 10

    @model_validator(mode="after")
    def _roles_fit_the_mode(self) -> PostgresOptions:
        if self.mode == "single" and (self.role is None or self.roles is not None):
            raise ValueError("mode single takes role: (one role), not roles:")
        if self.mode == "alternating":
            if self.roles is None or self.role is not None:
                raise ValueError("mode alternating takes roles: [role_a, role_b], not role:")
            if self.roles[0] == self.roles[1]:
                raise ValueError("mode alternating needs two different roles")
        return self


class AwsIamOptions(StrategyOptions):
    """`aws-iam`: an IAM user's access key."""

    user: Name
    id_key: Name = "access_key_id"
    secret_key: Name = "secret_access_key"
    on_revoke: Literal["delete", "deactivate"] = "delete"
    test_attempts: Annotated[int, Field(ge=1, le=100)] = 6
    test_delay: Annotated[float, Field(ge=0, le=600)] = 2.0
    region: Name | None = None
    endpoint_url_env: Name | None = None


class SupabaseApiKeyOptions(StrategyOptions):
    """`supabase-api-key`: a Supabase secret API key via the Management API."""

    access_token_env: Name
    project_ref: Name | None = None
    project_ref_env: Name | None = None
    api_url: Name | None = None
    api_url_env: Name | None = None
    key_name_prefix: Name = "envmatrix"
    url_key: Name = "url"
    key: Name | None = None
    project_url: Name | None = None
    test_attempts: Annotated[int, Field(ge=1, le=100)] = 3
    test_delay: Annotated[float, Field(ge=0, le=600)] = 2.0
    timeout: Annotated[float, Field(gt=0, le=600)] = 30.0

    @model_validator(mode="after")
    def _one_project(self) -> SupabaseApiKeyOptions:
        if (self.project_ref is None) == (self.project_ref_env is None):
            raise ValueError("give one of project_ref or project_ref_env")
        return self


class GcpServiceAccountKeyOptions(StrategyOptions):
    """`gcp-service-account-key`: a Google service account's JSON key via the IAM REST API."""

    service_account: Annotated[str, Field(pattern=r"^[^@\s]+@[^@\s]+$")]
    credentials_secret: Name
    iam_url: Name = "https://iam.googleapis.com"
    key: Name | None = None
    test_attempts: Annotated[int, Field(ge=1, le=100)] = 6
    test_delay: Annotated[float, Field(ge=0, le=600)] = 2.0
    timeout: Annotated[float, Field(gt=0, le=600)] = 30.0


@dataclass(frozen=True)
class Registered:
    """A strategy as the registry knows it: where its builder is, and its options' model."""

    factory: str  # "module:function"; the function takes (options, settings) -> Strategy
    options: type[StrategyOptions]


# the one registry: name -> builder and options model (adding a provider: one line here, one
# module in rotation/strategies/; the engine never changes)
STRATEGIES: dict[str, Registered] = {
    "generate": Registered("envmatrix.rotation.strategies.generate:build", GenerateOptions),
    "manual": Registered("envmatrix.rotation.strategies.manual:build", ManualOptions),
    "command": Registered("envmatrix.rotation.strategies.command:build", CommandOptions),
    "postgres": Registered("envmatrix.rotation.strategies.postgres:build", PostgresOptions),
    "aws-iam": Registered("envmatrix.rotation.strategies.aws_iam:build", AwsIamOptions),
    "supabase-api-key": Registered(
        "envmatrix.rotation.strategies.supabase_api_key:build", SupabaseApiKeyOptions
    ),
    "gcp-service-account-key": Registered(
        "envmatrix.rotation.strategies.gcp_service_account_key:build",
        GcpServiceAccountKeyOptions,
    ),
}


def check_options(strategy: str, options: object) -> None:
    """Validate `options` for `strategy`; pydantic's ValidationError when they do not fit (the
    policy loader turns it into file:line), nothing for a strategy without a model."""
    registered = STRATEGIES.get(strategy)
    if registered is not None:
        registered.options.model_validate(options)


def require_valid_options(strategy: str, options: object) -> None:
    """`check_options` for a strategy about to be built: UsageError naming the first problem."""
    try:
        check_options(strategy, options)
    except ValidationError as exc:
        error = exc.errors(include_url=False)[0]
        where = ".".join(str(p) for p in error["loc"])
        raise UsageError(
            f"rotation.options{'.' + where if where else ''} for {strategy}: {error['msg']}"
        ) from None
