"""Local stand-ins for Zoho Accounts, the Shopify Admin API and Chatwoot, each answering as the
provider's published API reference says (not as envmatrix happens to ask):

- **Zoho Accounts** (zoho.com/accounts/protocol/oauth, "Refresh access token" and "Token
  limits"): `POST /oauth/v2/token` with grant_type=refresh_token, refresh_token, client_id and
  client_secret as query parameters (as Zoho documents) or a form body (as Zoho's SDKs send).
  Zoho answers **HTTP 200 even for errors**: `{"error": "invalid_client"}` for an unknown client or
  a wrong client secret, `{"error": "invalid_code"}` for an unknown or revoked refresh token, and
  once a refresh token has minted 10 access tokens within 10 minutes, `{"error": "Access Denied",
  ...}` for the rest of the window. GET is refused.
- **Shopify Admin API** (shopify.dev, REST Admin API "Shop"): `GET
  /admin/api/{version}/shop.json` with `X-Shopify-Access-Token`; 401 `{"errors": "[API] Invalid
  API key or access token (unrecognized login or wrong password)"}` without a valid token, 404 for
  a path that is not a version (`YYYY-MM` or `unstable`).
- **Chatwoot** (Chatwoot application API "Profile"): `GET /api/v1/profile` with the
  `api_access_token` header; 200 with the user's profile — which, as in Chatwoot, carries the
  user's `access_token` itself — or 401 `{"error": "Invalid Access Token"}`.
"""

from __future__ import annotations

import hmac
import re
import secrets
import time
from collections import defaultdict, deque

from tests.standins.http import Received, Reply, StandIn

_SHOP_PATH = re.compile(r"^/admin/api/(?P<version>\d{4}-\d{2}|unstable)/shop\.json$")


class ZohoAccounts(StandIn):
    """One Zoho Accounts data centre: registered clients and the refresh tokens they issued."""

    WINDOW = 600.0  # seconds: 10 access tokens per refresh token in 10 minutes
    LIMIT = 10

    def __init__(self) -> None:
        super().__init__()
        self.clients: dict[str, str] = {}  # client id -> client secret
        self.refresh_tokens: dict[str, str] = {}  # refresh token -> client id
        self.minted: dict[str, deque[float]] = defaultdict(deque)  # refresh token -> times

    def add_client(self) -> tuple[str, str]:
        client_id = f"1000.STANDIN{secrets.token_hex(8).upper()}"
        self.clients[client_id] = secrets.token_hex(20)
        return client_id, self.clients[client_id]

    def add_refresh_token(self, client_id: str) -> str:
        token = f"1000.{secrets.token_hex(16)}.{secrets.token_hex(16)}"
        self.refresh_tokens[token] = client_id
        return token

    def refreshes(self) -> int:
        """How many token requests arrived."""
        return len(self.requests_to("/oauth/v2/token"))

    def handle(self, request: Received) -> Reply:
        if request.path != "/oauth/v2/token":
            return Reply(404, {"error": "not found"})
        if request.method != "POST":
            return Reply(405, {"error": "method not allowed"})
        params = {**request.query, **request.form()}
        if params.get("grant_type") != "refresh_token":
            return Reply(200, {"error": "unsupported_grant_type"})
        client_id = params.get("client_id", "")
        secret = self.clients.get(client_id)
        if secret is None or not hmac.compare_digest(secret, params.get("client_secret", "")):
            return Reply(200, {"error": "invalid_client"})
        refresh = params.get("refresh_token", "")
        if self.refresh_tokens.get(refresh) != client_id:
            return Reply(200, {"error": "invalid_code"})
        return self._mint(refresh)

    def _mint(self, refresh: str) -> Reply:
        now, times = time.monotonic(), self.minted[refresh]
        while times and now - times[0] > self.WINDOW:
            times.popleft()
        if len(times) >= self.LIMIT:
            return Reply(
                200,
                {
                    "error": "Access Denied",
                    "error_description": "You have made too many requests continuously."
                    " Please try again after some time.",
                    "status": "failure",
                },
            )
        times.append(now)
        return Reply(
            200,
            {
                "access_token": f"1000.{secrets.token_hex(16)}.{secrets.token_hex(16)}",
                "api_domain": "https://www.zohoapis.com",
                "token_type": "Bearer",
                "expires_in": 3600,
            },
        )


class ShopifyAdmin(StandIn):
    """One shop's Admin API: its access tokens and shop.json."""

    def __init__(self, shop_domain: str = "occ-labs.myshopify.com") -> None:
        super().__init__()
        self.shop_domain = shop_domain
        self.tokens: set[str] = set()

    def add_token(self) -> str:
        token = f"shpat_{secrets.token_hex(16)}"
        self.tokens.add(token)
        return token

    def handle(self, request: Received) -> Reply:
        match = _SHOP_PATH.match(request.path)
        if match is None or request.method != "GET":
            return Reply(404, {"errors": "Not Found"})
        token = request.headers.get("x-shopify-access-token", "")
        if not any(hmac.compare_digest(token, t) for t in self.tokens):
            return Reply(
                401,
                {
                    "errors": "[API] Invalid API key or access token (unrecognized login or"
                    " wrong password)"
                },
            )
        shop = {
            "id": 548380009,
            "name": "OCC Labs",
            "domain": self.shop_domain,
            "myshopify_domain": self.shop_domain,
            "plan_name": "basic",
        }
        return Reply(200, {"shop": shop}, {"X-Shopify-API-Version": match["version"]})


class Chatwoot(StandIn):
    """A Chatwoot installation's users and their access tokens."""

    def __init__(self) -> None:
        super().__init__()
        self.tokens: dict[str, int] = {}  # access token -> user id

    def add_user_token(self) -> str:
        token = secrets.token_urlsafe(18)
        self.tokens[token] = len(self.tokens) + 1
        return token

    def handle(self, request: Received) -> Reply:
        if request.path != "/api/v1/profile" or request.method != "GET":
            return Reply(404, {"error": "Not Found"})
        token = request.headers.get("api_access_token")
        if token is None:
            return Reply(401, {"errors": ["You need to sign in or sign up before continuing."]})
        user = next((u for t, u in self.tokens.items() if hmac.compare_digest(t, token)), None)
        if user is None:
            return Reply(401, {"error": "Invalid Access Token"})
        profile = {
            "id": user,
            "name": "Support Bot Owner",
            "email": f"agent{user}@occ.example",
            "account_id": 1,
            "role": "administrator",
            "access_token": token,  # Chatwoot's profile carries the token: the probe's "echo"
            "accounts": [{"id": 1, "name": "OCC", "role": "administrator"}],
        }
        return Reply(200, profile)
