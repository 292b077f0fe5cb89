"""In-memory state of the GitHub sandbox: repositories, environments, secrets, variables, keys.

Everything here is plain data guarded by one lock held by the caller (:class:`SandboxState`'s
``lock``). Secret values are kept decrypted because the sandbox is a test double whose job is to
let tests compare what arrived with what was sent; they are never logged.
"""

from __future__ import annotations

import base64
import hashlib
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from nacl.exceptions import CryptoError
from nacl.public import PrivateKey, SealedBox

SECRET_NAME_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
# GitHub's documented limits, answered with 422 as GitHub does (docs.github.com/en/actions/
# reference/secrets-reference: 100 secrets per environment, 100 per repository, 1,000 per
# organization, 48 KB per value; .../variables-reference: 100 variables per environment, 500 per
# repository, 1,000 per organization, 48 KB per value). Only creating past a limit is refused:
# updating a secret or variable that exists never is.
MAX_VALUE_BYTES = 48 * 1024
SECRET_LIMITS = {"environment": 100, "repository": 100, "organization": 1000}
VARIABLE_LIMITS = {"environment": 100, "repository": 500, "organization": 1000}
RATE_WINDOW_SECONDS = 3600


class InvalidSecret(ValueError):
    """A PUT body that cannot be accepted (wrong key, unopenable box, too large)."""


def iso(moment: datetime) -> str:
    """GitHub's timestamp format: ``YYYY-MM-DDTHH:MM:SSZ`` in UTC."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def valid_name(name: str) -> bool:
    """GitHub's rule for secret and variable names."""
    return SECRET_NAME_RE.fullmatch(name) is not None and not name.upper().startswith("GITHUB_")


class Clock:
    """Wall clock truncated to whole seconds, with an offset tests can advance."""

    def __init__(self, source: Callable[[], float] = time.time) -> None:
        self._source = source
        self._offset = 0.0

    def now(self) -> datetime:
        """One reading, truncated to the second (GitHub's resolution for Date and timestamps)."""
        return datetime.fromtimestamp(int(self._source() + self._offset), UTC)

    def advance(self, seconds: float) -> None:
        """Move the sandbox's notion of time forward (or back) without sleeping."""
        self._offset += seconds


@dataclass
class KeyPair:
    """A Curve25519 key pair, as GitHub keeps one per repository, environment and org."""

    private: PrivateKey = field(default_factory=PrivateKey.generate)

    @property
    def public_b64(self) -> str:
        return base64.b64encode(bytes(self.private.public_key)).decode("ascii")

    @property
    def key_id(self) -> str:
        # GitHub's key ids are long decimal strings; derive one stably from the public key.
        digest = hashlib.sha256(bytes(self.private.public_key)).digest()
        return str(int.from_bytes(digest[:8], "big"))

    def open(self, key_id: str, encrypted_b64: str) -> bytes:
        """Decrypt a PUT body's ``encrypted_value``; raise InvalidSecret if it cannot be opened."""
        if key_id != self.key_id:
            raise InvalidSecret("key_id does not match the current public key")
        try:
            sealed = base64.b64decode(encrypted_b64, validate=True)
            plain = SealedBox(self.private).decrypt(sealed)
        except (ValueError, CryptoError) as exc:
            raise InvalidSecret("encrypted_value could not be decrypted") from exc
        if len(plain) > MAX_VALUE_BYTES:
            raise InvalidSecret("secret value exceeds 48 KB")
        return plain


@dataclass
class SecretRecord:
    """A stored secret (org secrets also carry visibility)."""

    name: str
    value: bytes
    created_at: datetime
    updated_at: datetime
    visibility: str | None = None
    selected_repository_ids: list[int] = field(default_factory=list)

    @property
    def text(self) -> str:
        return self.value.decode("utf-8", errors="surrogateescape")


@dataclass
class VariableRecord:
    """A stored Actions variable (org variables also carry visibility)."""

    name: str
    value: str
    created_at: datetime
    updated_at: datetime
    visibility: str | None = None
    selected_repository_ids: list[int] = field(default_factory=list)


@dataclass
class SecretScope:
    """Secrets plus the key pair that encrypts them; names are keyed upper-case."""

    key: KeyPair = field(default_factory=KeyPair)
    secrets: dict[str, SecretRecord] = field(default_factory=dict)

    def get(self, name: str) -> SecretRecord | None:
        return self.secrets.get(name.upper())

    def put(self, name: str, value: bytes, now: datetime) -> tuple[SecretRecord, bool]:
        """Create or update; returns the record and whether it was created."""
        record = self.secrets.get(name.upper())
        if record is None:
            record = SecretRecord(name.upper(), value, now, now)
            self.secrets[record.name] = record
            return record, True
        record.value = value
        record.updated_at = now
        return record, False

    def delete(self, name: str) -> bool:
        return self.secrets.pop(name.upper(), None) is not None

    def sorted(self) -> list[SecretRecord]:
        return [self.secrets[k] for k in sorted(self.secrets)]


@dataclass
class VariableScope:
    """Variables keyed upper-case (GitHub stores variable names upper-case too)."""

    variables: dict[str, VariableRecord] = field(default_factory=dict)

    def get(self, name: str) -> VariableRecord | None:
        return self.variables.get(name.upper())

    def create(self, name: str, value: str, now: datetime) -> VariableRecord:
        record = VariableRecord(name.upper(), value, now, now)
        self.variables[record.name] = record
        return record

    def rename(self, old: str, new: str) -> VariableRecord:
        record = self.variables.pop(old.upper())
        record.name = new.upper()
        self.variables[record.name] = record
        return record

    def delete(self, name: str) -> bool:
        return self.variables.pop(name.upper(), None) is not None

    def sorted(self) -> list[VariableRecord]:
        return [self.variables[k] for k in sorted(self.variables)]


@dataclass
class Reviewer:
    """A required reviewer of an environment: type and id (a known user's or team's name
    is looked up when the environment is shown)."""

    type: str
    id: int


@dataclass
class User:
    """A GitHub user account the sandbox knows (``GET /users/{username}``)."""

    id: int
    login: str
    created_at: datetime


@dataclass
class Team:
    """A team of an organization (``GET /orgs/{org}/teams/{team_slug}``)."""

    id: int
    slug: str
    org: str
    created_at: datetime


@dataclass
class BranchPolicy:
    """A custom deployment branch or tag policy of an environment."""

    id: int
    name: str
    type: str  # "branch" | "tag"


@dataclass
class Environment:
    """A deployment environment with its own key pair, secrets and variables."""

    id: int
    name: str
    created_at: datetime
    updated_at: datetime
    wait_timer: int = 0
    prevent_self_review: bool = False
    reviewers: list[Reviewer] = field(default_factory=list)
    branch_policy: dict[str, bool] | None = None
    branch_policies: list[BranchPolicy] = field(default_factory=list)
    secrets: SecretScope = field(default_factory=SecretScope)
    variables: VariableScope = field(default_factory=VariableScope)


@dataclass
class Repository:
    """A repository: repo-level secrets and variables plus its environments."""

    id: int
    owner: str
    name: str
    owner_id: int
    created_at: datetime
    environments: dict[str, Environment] = field(default_factory=dict)
    secrets: SecretScope = field(default_factory=SecretScope)
    variables: VariableScope = field(default_factory=VariableScope)
    dependabot: SecretScope = field(default_factory=SecretScope)  # its own key pair

    @property
    def full_name(self) -> str:
        return f"{self.owner}/{self.name}"

    def environment(self, name: str) -> Environment | None:
        # GitHub treats environment names case-insensitively.
        return self.environments.get(name.lower())

    def sorted_environments(self) -> list[Environment]:
        return [self.environments[k] for k in sorted(self.environments)]


@dataclass
class Organization:
    """An owner account; org-level secrets, variables and Dependabot secrets live here."""

    id: int
    login: str
    secrets: SecretScope = field(default_factory=SecretScope)
    variables: VariableScope = field(default_factory=VariableScope)
    dependabot: SecretScope = field(default_factory=SecretScope)
    teams: dict[str, Team] = field(default_factory=dict)  # keyed by slug, lower-case


class RateLimiter:
    """GitHub's primary (core) rate limit for the one token the sandbox knows."""

    def __init__(self, limit: int, now: datetime) -> None:
        self.limit = limit
        self.remaining = limit
        self.reset_at = int(now.timestamp()) + RATE_WINDOW_SECONDS

    def _roll(self, now: datetime) -> None:
        if now.timestamp() >= self.reset_at:
            self.remaining = self.limit
            self.reset_at = int(now.timestamp()) + RATE_WINDOW_SECONDS

    def exhausted(self, now: datetime) -> bool:
        self._roll(now)
        return self.remaining <= 0

    def charge(self, now: datetime) -> None:
        self._roll(now)
        self.remaining = max(0, self.remaining - 1)

    def set(self, now: datetime, remaining: int, reset_in: int, limit: int | None) -> None:
        if limit is not None:
            self.limit = limit
        self.remaining = max(0, min(remaining, self.limit))
        self.reset_at = int(now.timestamp()) + reset_in

    def snapshot(self, now: datetime) -> dict[str, int]:
        self._roll(now)
        return {
            "limit": self.limit,
            "remaining": self.remaining,
            "used": self.limit - self.remaining,
            "reset": self.reset_at,
        }

    def headers(self, now: datetime) -> dict[str, str]:
        snap = self.snapshot(now)
        return {
            "X-RateLimit-Limit": str(snap["limit"]),
            "X-RateLimit-Remaining": str(snap["remaining"]),
            "X-RateLimit-Used": str(snap["used"]),
            "X-RateLimit-Reset": str(snap["reset"]),
            "X-RateLimit-Resource": "core",
        }


class SandboxState:
    """All mutable sandbox data. Callers hold ``lock`` around reads and writes."""

    def __init__(self, clock: Clock, rate_limit: int) -> None:
        self.lock = threading.RLock()
        self.clock = clock
        self.repositories: dict[str, Repository] = {}
        self.organizations: dict[str, Organization] = {}
        self.users: dict[str, User] = {}  # keyed by login, lower-case
        self.rate = RateLimiter(rate_limit, clock.now())
        self._next_id = 1_000_001

    def new_id(self) -> int:
        self._next_id += 1
        return self._next_id

    def add_repository(self, full_name: str) -> Repository:
        """Register ``owner/name`` (idempotent); its owner becomes a known organization."""
        owner, sep, name = full_name.partition("/")
        if not sep or not owner or not name or "/" in name:
            raise ValueError(f"repository must be 'owner/name', got {full_name!r}")
        with self.lock:
            existing = self.repositories.get(full_name.lower())
            if existing is not None:
                return existing
            org = self.add_organization(owner)
            repo = Repository(self.new_id(), owner, name, org.id, self.clock.now())
            self.repositories[full_name.lower()] = repo
            return repo

    def add_organization(self, login: str) -> Organization:
        """Register an organization (idempotent)."""
        with self.lock:
            org = self.organizations.get(login.lower())
            if org is None:
                org = Organization(self.new_id(), login)
                self.organizations[login.lower()] = org
            return org

    def add_user(self, login: str) -> User:
        """Register a user account (idempotent); returns it with its id."""
        if not re.fullmatch(r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,38})", login):
            raise ValueError(f"invalid GitHub login {login!r}")
        with self.lock:
            user = self.users.get(login.lower())
            if user is None:
                user = User(self.new_id(), login, self.clock.now())
                self.users[login.lower()] = user
            return user

    def add_team(self, org: str, slug: str) -> Team:
        """Register a team of an organization (idempotent; the organization too)."""
        if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]*", slug):
            raise ValueError(f"invalid team slug {slug!r}")
        with self.lock:
            organization = self.add_organization(org)
            team = organization.teams.get(slug.lower())
            if team is None:
                team = Team(self.new_id(), slug, organization.login, self.clock.now())
                organization.teams[slug.lower()] = team
            return team

    def user_by_id(self, ident: int) -> User | None:
        return next((u for u in self.users.values() if u.id == ident), None)

    def team_by_id(self, ident: int) -> Team | None:
        teams = (t for org in self.organizations.values() for t in org.teams.values())
        return next((t for t in teams if t.id == ident), None)

    def repository(self, full_name: str) -> Repository | None:
        return self.repositories.get(full_name.lower())

    def organization(self, login: str) -> Organization | None:
        return self.organizations.get(login.lower())

    def repository_by_id(self, ident: int) -> Repository | None:
        return next((r for r in self.repositories.values() if r.id == ident), None)

    def create_environment(self, repo: Repository, name: str, now: datetime) -> Environment:
        """Create the environment if missing; return it either way."""
        env = repo.environment(name)
        if env is None:
            env = Environment(self.new_id(), name, now, now)
            repo.environments[name.lower()] = env
        return env
