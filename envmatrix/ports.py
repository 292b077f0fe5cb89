"""The narrow interfaces envmatrix needs from the outside world, and the plain records they return.

Each port is implemented by exactly one adapter module: `envmatrix.adapters.vault` (the only
module that imports hvac) and `envmatrix.adapters.github` (the only module that imports github).
Records here hold metadata only; a secret value only ever travels as `SecretValue`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from envmatrix.secret import SecretValue


@dataclass(frozen=True)
class VaultEntry:
    """What Vault says about one KV v2 path, without its values.

    `version` is None when the path does not exist or its current version is deleted/destroyed.
    """

    path: str
    version: int | None
    created_time: datetime | None = None
    keys: frozenset[str] = frozenset()


@dataclass(frozen=True)
class VaultDocument:
    """A non-secret JSON document envmatrix keeps in Vault (sync state, journal, lock)."""

    path: str
    data: Mapping[str, Any]
    version: int
    written_at: datetime | None = None  # Vault's clock when this version was written
    read_at: datetime | None = None  # Vault's clock when it answered the read


class VaultPort(Protocol):
    """Vault KV v2 under one mount. Paths are relative to the mount."""

    mount: str

    def read_entry(self, path: str) -> VaultEntry:
        """Current version, its creation time and key names; never the values."""
        ...

    def list_folder(self, path: str) -> list[str]:
        """The names under a folder of the mount (KV v2 metadata LIST, never a read of a value):
        sub-folders end in "/"; an absent or empty folder gives []."""
        ...

    def read_values(self, path: str, version: int | None = None) -> dict[str, SecretValue]:
        """All key/values of a version (default: current). Raises VaultNotFound."""
        ...

    def write_values(
        self, path: str, values: Mapping[str, SecretValue], cas: int | None = None
    ) -> int:
        """Write a new version; returns its number. `cas=0`: create only. VaultCasMismatch."""
        ...

    def read_document(self, path: str) -> VaultDocument | None:
        """A JSON document, or None when absent."""
        ...

    def write_document(self, path: str, data: Mapping[str, Any], cas: int | None = None) -> int:
        """Write a JSON document (check-and-set when `cas` is given); returns its version."""
        ...

    def delete_document(self, path: str) -> None:
        """Remove a document and all its versions."""
        ...

    def kept_versions(self, path: str) -> int | None:
        """How many versions Vault keeps of `path` (KV v2 `max_versions`); None if unknown."""
        ...

    def identity(self) -> str:
        """Who is acting, for audit records: the token's display name and an accessor prefix."""
        ...

    def transit_hmac(
        self, mount: str, key: str, values: Sequence[SecretValue], key_version: int | None = None
    ) -> list[str]:
        """Transit HMACs (`vault:vN:...`) of `values`, in order; values go only to Vault."""
        ...


@dataclass(frozen=True)
class ObservedSecret:
    """A GitHub secret's name and timestamps (GitHub never returns values)."""

    name: str
    created_at: datetime
    updated_at: datetime
    visibility: str | None = None  # organization secrets only: all | private | selected
    # organization secrets of visibility selected, when looked up: the repositories' full names
    selected_repositories: tuple[str, ...] | None = None


@dataclass(frozen=True)
class ObservedVariable:
    """A GitHub Actions variable (variables are not secret)."""

    name: str
    value: str
    updated_at: datetime
    visibility: str | None = None  # organization variables only: all | private | selected
    selected_repositories: tuple[str, ...] | None = None  # as for ObservedSecret


@dataclass(frozen=True)
class ObservedEnvironment:
    """One GitHub environment of a repository and what it holds (for the repository level: the
    repository's Actions secrets, with `name` "")."""

    name: str
    secrets: Mapping[str, ObservedSecret] = field(default_factory=dict)
    variables: Mapping[str, ObservedVariable] = field(default_factory=dict)


@dataclass(frozen=True, order=True)
class ReviewerRef:
    """A required reviewer as GitHub stores it: `type` "User" or "Team" and its id; `name` (a
    login, or org/slug) only explains."""

    type: str
    id: int
    name: str = field(default="", compare=False)


@dataclass(frozen=True, order=True)
class BranchPattern:
    """A custom deployment branch policy's name pattern: `type` "branch" or "tag"."""

    type: str
    name: str


@dataclass(frozen=True)
class DeploymentBranchPolicy:
    """A custom deployment branch policy GitHub holds (its id is what DELETE takes)."""

    id: int
    pattern: BranchPattern


@dataclass(frozen=True)
class ProtectionSettings:
    """What `PUT /repos/{o}/{r}/environments/{env}` sets: the wait timer (minutes), prevent
    self-review, the required reviewers, and who may deploy: "all" (deployment_branch_policy
    null), "protected" (protected branches) or "custom" (name patterns, managed apart)."""

    wait_timer: int = 0
    prevent_self_review: bool = False
    reviewers: tuple[ReviewerRef, ...] = ()
    deployment_branches: str = "all"


@dataclass(frozen=True)
class ObservedProtection:
    """An environment's protection as `GET /repos/{o}/{r}/environments` lists it (custom
    branch patterns are not in that answer: see `GitHubPort.list_deployment_branch_policies`)."""

    environment: str
    settings: ProtectionSettings


@dataclass(frozen=True)
class WriteReceipt:
    """What GitHub said when a write landed: the server time of the write."""

    server_time: datetime


class GitHubPort(Protocol):
    """GitHub Actions environments, secrets and variables."""

    def list_environments(self, repository: str) -> Sequence[str]:
        """Names of the repository's environments (one list call, paginated)."""
        ...

    def list_environment_secrets(self, repository: str, environment: str) -> list[ObservedSecret]:
        """All secrets of an environment (per_page=100, follows Link)."""
        ...

    def list_environment_variables(
        self, repository: str, environment: str
    ) -> list[ObservedVariable]:
        """All variables of an environment (per_page=30, follows Link)."""
        ...

    def create_environment(self, repository: str, environment: str) -> WriteReceipt:
        """Create (or leave as is) an environment."""
        ...

    def put_environment_secret(
        self, repository: str, environment: str, name: str, value: SecretValue
    ) -> WriteReceipt:
        """Encrypt with the environment's public key (fetched once per run) and PUT."""
        ...

    def delete_environment_secret(
        self, repository: str, environment: str, name: str
    ) -> WriteReceipt:
        """Delete a secret; absent is not an error."""
        ...

    def set_environment_variable(
        self, repository: str, environment: str, name: str, value: str, exists: bool
    ) -> WriteReceipt:
        """Create (exists=False) or update a variable."""
        ...

    def delete_environment_variable(
        self, repository: str, environment: str, name: str
    ) -> WriteReceipt:
        """Delete a variable; absent is not an error."""
        ...

    def list_repository_secrets(self, repository: str) -> list[ObservedSecret]:
        """Repository-level Actions secrets."""
        ...

    def list_organization_secrets(self, organization: str) -> list[ObservedSecret]:
        """An organization's Actions secrets with their visibility (one list, paginated).
        Raises GitHubError (status 404 for a user account, 403 without organization access)."""
        ...

    def list_organization_repositories(self, organization: str) -> list[str]:
        """An organization's repositories as "owner/name" (`GET /orgs/{org}/repos`, paginated).
        Raises GitHubError (status 404 when there is no such organization)."""
        ...

    def put_repository_secret(self, repository: str, name: str, value: SecretValue) -> WriteReceipt:
        """Encrypt with the repository's public key (fetched once per run) and PUT."""
        ...

    def delete_repository_secret(self, repository: str, name: str) -> WriteReceipt:
        """Delete a repository secret; absent is not an error."""
        ...

    def list_repository_variables(self, repository: str) -> list[ObservedVariable]:
        """Repository-level Actions variables (per_page=30, follows Link)."""
        ...

    def set_repository_variable(
        self, repository: str, name: str, value: str, exists: bool
    ) -> WriteReceipt:
        """Create (exists=False) or update a repository variable."""
        ...

    def delete_repository_variable(self, repository: str, name: str) -> WriteReceipt:
        """Delete a repository variable; absent is not an error."""
        ...

    # organization secrets and variables, Dependabot secrets (policy keys scope: organization,
    # store: dependabot). `store` is "actions" or "dependabot".

    def list_organization_variables(self, organization: str) -> list[ObservedVariable]:
        """An organization's Actions variables with their visibility (one list, paginated)."""
        ...

    def list_dependabot_secrets(self, repository: str) -> list[ObservedSecret]:
        """A repository's Dependabot secrets (one list, paginated)."""
        ...

    def list_dependabot_organization_secrets(self, organization: str) -> list[ObservedSecret]:
        """An organization's Dependabot secrets with their visibility (one list, paginated)."""
        ...

    def list_selected_repositories(self, organization: str, kind: str, name: str) -> list[str]:
        """Full names of the repositories an organization secret or variable of visibility
        selected reaches; `kind` is "actions/secrets", "dependabot/secrets" or
        "actions/variables" (`GET /orgs/{org}/{kind}/{name}/repositories`, paginated)."""
        ...

    def repository_id(self, repository: str) -> int | None:
        """A repository's id (`GET /repos/{owner}/{repo}`, once per run); None when absent."""
        ...

    def put_organization_secret(
        self,
        organization: str,
        name: str,
        value: SecretValue,
        visibility: str,
        repository_ids: Sequence[int] = (),
        store: str = "actions",
    ) -> WriteReceipt:
        """Encrypt with the organization's (or its Dependabot) public key and PUT, with the
        visibility and, for selected, the repository ids."""
        ...

    def delete_organization_secret(
        self, organization: str, name: str, store: str = "actions"
    ) -> WriteReceipt:
        """Delete an organization secret; absent is not an error."""
        ...

    def put_dependabot_secret(self, repository: str, name: str, value: SecretValue) -> WriteReceipt:
        """Encrypt with the repository's Dependabot public key and PUT."""
        ...

    def delete_dependabot_secret(self, repository: str, name: str) -> WriteReceipt:
        """Delete a repository's Dependabot secret; absent is not an error."""
        ...

    def set_organization_variable(
        self,
        organization: str,
        name: str,
        value: str,
        visibility: str,
        repository_ids: Sequence[int],
        exists: bool,
    ) -> WriteReceipt:
        """Create (exists=False) or update an organization variable with its visibility."""
        ...

    def delete_organization_variable(self, organization: str, name: str) -> WriteReceipt:
        """Delete an organization variable; absent is not an error."""
        ...

    def identity(self) -> str:
        """Who is acting: the token's login, or the CI identity."""
        ...

    # environment protection (policy key environments.<name>.protection)

    def list_environment_protections(self, repository: str) -> list[ObservedProtection]:
        """Every environment of the repository with its protection: the same one list call as
        `list_environments` (paginated), which already carries protection_rules."""
        ...

    def list_deployment_branch_policies(
        self, repository: str, environment: str
    ) -> list[DeploymentBranchPolicy]:
        """The custom branch and tag patterns of an environment (paginated)."""
        ...

    def lookup_user(self, login: str) -> int | None:
        """A user's id (`GET /users/{username}`); None when there is no such user."""
        ...

    def lookup_team(self, organization: str, slug: str) -> int | None:
        """A team's id (`GET /orgs/{org}/teams/{team_slug}`); None when there is none."""
        ...

    def put_environment_protection(
        self, repository: str, environment: str, settings: ProtectionSettings
    ) -> WriteReceipt:
        """PUT the whole protection of an environment (creating it if it is missing)."""
        ...

    def create_deployment_branch_policy(
        self, repository: str, environment: str, pattern: BranchPattern
    ) -> WriteReceipt:
        """Add a custom branch or tag pattern; one that exists already is not an error."""
        ...

    def delete_deployment_branch_policy(
        self, repository: str, environment: str, policy_id: int
    ) -> WriteReceipt:
        """Remove a custom pattern by id; absent is not an error."""
        ...


# GitHub's documented limits (docs.github.com/en/actions/reference/secrets-reference and
# .../variables-reference): what GitHub refuses with 422, checked before anything is sent.
MAX_VALUE_BYTES = 48 * 1024  # one secret or variable value, UTF-8 bytes
SECRETS_PER_SCOPE = {"environment": 100, "repository": 100, "organization": 1000}
VARIABLES_PER_SCOPE = {"environment": 100, "repository": 500, "organization": 1000}
