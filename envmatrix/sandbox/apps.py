"""GitHub Apps in the sandbox: registered Apps, their installations and installation tokens.

As GitHub documents them (docs.github.com/apps/creating-github-apps/
authenticating-with-a-github-app):

- An App is registered with its ID and RSA public key (``GitHubSandbox.register_app``, admin
  ``POST /_sandbox/apps``, or ``python -m envmatrix.sandbox --app-id N --app-public-key FILE``)
  and installed on the accounts named (default: every organization the sandbox knows).
- ``GET /app/installations``, ``GET /repos/{owner}/{repo}/installation``,
  ``GET /orgs/{org}/installation`` and ``POST /app/installations/{id}/access_tokens``
  authenticate with the App's JWT: ``Authorization: Bearer JWT``, RS256, verified against the
  registered key, ``iss`` the App ID, ``iat`` at most 60 s ahead of the sandbox clock, ``exp``
  in the future and at most 10 minutes after ``iat``. Anything else is 401.
- An access token (``ghs_…``) expires ``token_ttl`` seconds (1 hour, as on GitHub) after it is
  minted, by the sandbox clock. Until then it authenticates the REST operations on the
  repositories and organization of its installation's account; another account's answer 404.
  ``expire_tokens`` makes every token minted so far expire at once (GitHub revoking them early).
"""

from __future__ import annotations

import secrets
import threading
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

import jwt

from envmatrix.sandbox.http_types import ApiError, Request, Response, not_found
from envmatrix.sandbox.payloads import WEB, simple_user
from envmatrix.sandbox.state import iso

if TYPE_CHECKING:
    from envmatrix.sandbox.api import GitHubApi

TOKEN_TTL = 3600  # GitHub's installation tokens last one hour
MAX_JWT_LIFETIME = 600  # GitHub refuses a JWT whose exp is more than 10 minutes after iat
IAT_LEEWAY = 60
UNDECODABLE = "A JSON web token could not be decoded"
PERMISSIONS = {
    "actions_variables": "write",
    "administration": "write",
    "environments": "write",
    "metadata": "read",
    "organization_secrets": "write",
    "secrets": "write",
}
# operations authenticated with the App's JWT instead of a token
JWT_OPERATIONS = frozenset(
    {
        "apps/list-installations",
        "apps/get-repo-installation",
        "apps/get-org-installation",
        "apps/create-installation-access-token",
    }
)


@dataclass(frozen=True)
class App:
    """A registered GitHub App: its ID, slug and public key (PEM)."""

    app_id: int
    slug: str
    public_key: str = field(repr=False)


@dataclass(frozen=True)
class Installation:
    """An App installed on one account (organization)."""

    id: int
    app_id: int
    account: str
    account_id: int
    created_at: datetime


@dataclass
class _Minted:
    installation_id: int
    expires_at: datetime


class AppRegistry:
    """Apps, installations and minted tokens; thread-safe on its own lock."""

    def __init__(self, token_ttl: int = TOKEN_TTL) -> None:
        self.token_ttl = token_ttl
        self._lock = threading.Lock()
        self._apps: dict[str, App] = {}
        self._installations: dict[int, Installation] = {}
        self._tokens: dict[str, _Minted] = {}
        self._next_id = 50_000_000

    def register(
        self,
        app_id: int,
        public_key: str,
        accounts: Iterable[tuple[str, int]],
        now: datetime,
        slug: str | None = None,
    ) -> dict[str, int]:
        """Register (or replace) an App and install it on `accounts` ((login, id) pairs);
        returns {login: installation id}. Raises ValueError for a key that is not an RSA
        public key in PEM."""
        _check_public_key(public_key)
        with self._lock:
            self._apps[str(app_id)] = App(app_id, slug or f"app-{app_id}", public_key)
            found = {}
            for login, account_id in accounts:
                existing = self._installation_on(app_id, login)
                if existing is None:
                    self._next_id += 1
                    existing = Installation(self._next_id, app_id, login, account_id, now)
                    self._installations[existing.id] = existing
                found[login] = existing.id
            return found

    def verify(self, authorization: str, now: datetime) -> App:
        """The App whose JWT `authorization` carries; ApiError 401 as GitHub answers otherwise."""
        scheme, _, token = authorization.partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or token.count(".") != 2:
            raise ApiError(401, UNDECODABLE)
        try:
            header = jwt.get_unverified_header(token)
            claims = jwt.decode(token, options={"verify_signature": False})
        except jwt.PyJWTError:
            raise ApiError(401, UNDECODABLE) from None
        with self._lock:
            app = self._apps.get(str(claims.get("iss")))
        if app is None or header.get("alg") != "RS256":
            raise ApiError(401, UNDECODABLE)
        _check_claims(token, app, now)
        return app

    def mint(self, app: App, installation_id: int, now: datetime) -> tuple[str, datetime]:
        """A new installation token and when it expires; 404 for another App's installation."""
        with self._lock:
            installation = self._installations.get(installation_id)
            if installation is None or installation.app_id != app.app_id:
                raise not_found()
            token = "ghs_" + secrets.token_urlsafe(27)[:36]
            expires = now + timedelta(seconds=self.token_ttl)
            self._tokens[token] = _Minted(installation_id, expires)
            return token, expires

    def account_of(self, token: str, now: datetime) -> str | None:
        """The account login a live installation token acts on, or None (unknown, expired)."""
        with self._lock:
            minted = self._tokens.get(token)
            if minted is None or minted.expires_at <= now:
                return None
            return self._installations[minted.installation_id].account

    def expire_tokens(self, now: datetime) -> int:
        """Make every token minted so far expire now; returns how many were live."""
        with self._lock:
            live = [m for m in self._tokens.values() if m.expires_at > now]
            for minted in live:
                minted.expires_at = now
            return len(live)

    def installations(self, app: App) -> list[Installation]:
        with self._lock:
            return [i for i in self._installations.values() if i.app_id == app.app_id]

    def installation_on(self, app: App, login: str) -> Installation | None:
        with self._lock:
            return self._installation_on(app.app_id, login)

    def _installation_on(self, app_id: int, login: str) -> Installation | None:
        for installation in self._installations.values():
            if installation.app_id == app_id and installation.account.lower() == login.lower():
                return installation
        return None


def _check_public_key(public_key: str) -> None:
    try:
        jwt.algorithms.RSAAlgorithm(jwt.algorithms.RSAAlgorithm.SHA256).prepare_key(public_key)
    except (jwt.PyJWTError, ValueError, TypeError):
        raise ValueError("public_key must be an RSA public key in PEM format") from None


def _check_claims(token: str, app: App, now: datetime) -> None:
    """Signature with the App's key, then GitHub's rules for iat and exp (sandbox clock)."""
    options: Any = {"verify_exp": False, "verify_iat": False, "verify_nbf": False}
    try:
        claims = jwt.decode(token, app.public_key, algorithms=["RS256"], options=options)
    except jwt.PyJWTError:
        raise ApiError(401, UNDECODABLE) from None
    iat, exp, moment = claims.get("iat"), claims.get("exp"), int(now.timestamp())
    if not isinstance(iat, int) or iat > moment + IAT_LEEWAY:
        raise ApiError(
            401,
            "'Issued at' claim ('iat') must be an Integer representing the time that the "
            "assertion was issued.",
        )
    if not isinstance(exp, int) or exp <= moment:
        raise ApiError(
            401,
            "'Expiration time' claim ('exp') must be a numeric value representing the future "
            "time at which the assertion expires.",
        )
    if exp - iat > MAX_JWT_LIFETIME:
        raise ApiError(401, "'Expiration time' claim ('exp') is too far in the future.")


def installation_payload(base: str, app: App, installation: Installation) -> dict[str, Any]:
    """The ``installation`` schema."""
    created = iso(installation.created_at)
    account = simple_user(base, installation.account, installation.account_id)
    # GitHub's description of GET /app/installations says allOf [simple-user, enterprise]: an
    # account carrying both shapes' required fields satisfies it and the single-item anyOf
    account.update(name=installation.account, slug=installation.account)
    account.update(created_at=created, updated_at=created)
    return {
        "id": installation.id,
        "account": account,
        "repository_selection": "all",
        "access_tokens_url": f"{base}/app/installations/{installation.id}/access_tokens",
        "repositories_url": f"{base}/installation/repositories",
        "html_url": f"{WEB}/organizations/{installation.account}/settings/installations/"
        f"{installation.id}",
        "app_id": app.app_id,
        "client_id": f"Iv23li{app.app_id:014d}",
        "target_id": installation.account_id,
        "target_type": "Organization",
        "permissions": dict(PERMISSIONS),
        "events": [],
        "created_at": created,
        "updated_at": created,
        "single_file_name": None,
        "has_multiple_single_files": False,
        "single_file_paths": [],
        "app_slug": app.slug,
        "suspended_by": None,
        "suspended_at": None,
        "contact_email": None,
    }


# -- handlers (bound into the routing table of envmatrix/sandbox/api.py) ---------------------


def _app(api: GitHubApi, req: Request) -> App:
    return api.apps.verify(req.headers.get("authorization", ""), req.now)


def list_installations(api: GitHubApi, req: Request, params: dict[str, str]) -> Response:
    app = _app(api, req)
    found = api.apps.installations(app)
    return Response.of_json(200, [installation_payload(req.base_url, app, i) for i in found])


def get_repo_installation(api: GitHubApi, req: Request, params: dict[str, str]) -> Response:
    app = _app(api, req)
    repo = api.state.repository(f"{params['owner']}/{params['repo']}")
    found = api.apps.installation_on(app, repo.owner) if repo is not None else None
    if found is None:
        raise not_found()
    return Response.of_json(200, installation_payload(req.base_url, app, found))


def get_org_installation(api: GitHubApi, req: Request, params: dict[str, str]) -> Response:
    app = _app(api, req)
    found = api.apps.installation_on(app, params["org"])
    if found is None:
        raise not_found()
    return Response.of_json(200, installation_payload(req.base_url, app, found))


def create_access_token(api: GitHubApi, req: Request, params: dict[str, str]) -> Response:
    app = _app(api, req)
    body = req.json_object()
    if not isinstance(body.get("permissions", {}), dict):
        raise ApiError(422, "Invalid request.\n\nFor 'properties/permissions', is not an object.")
    token, expires = api.apps.mint(app, int(params["installation_id"]), req.now)
    data = {
        "token": token,
        "expires_at": iso(expires),
        "permissions": dict(PERMISSIONS),
        "repository_selection": "all",
    }
    return Response.of_json(201, data)
