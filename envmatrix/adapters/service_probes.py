"""Live checks of Zoho, Shopify, Chatwoot and a policy-named URL, each the cheapest documented
call that needs the credential. Every check returns a one-line description of what passed or
raises `CheckFailed` with a message built from the HTTP status and our own words: never the
value, never the provider's text (which may echo the value: Chatwoot's profile carries the access
token, Zoho's errors may repeat parameters).

- Zoho (zoho.com/accounts/protocol/oauth, "Refresh access token"): POST
  `{accounts}/oauth/v2/token` with grant_type=refresh_token, refresh_token, client_id and
  client_secret (sent as a form body, not in the query, so no log of a URL can hold them). Zoho
  answers HTTP 200 even for errors, with `{"error": "..."}`. A refresh token mints at most 10 access
  tokens in 10 minutes ("Access Denied" after that, for the rest of the window), and each minted
  token counts against the refresh token's active-token cap, so the caller refreshes at most once
  per credential and run, never retries, and keeps nothing: the minted access token is dropped.
- Shopify (shopify.dev Admin REST "Shop"): GET `https://{shop}/admin/api/{version}/shop.json`
  with `X-Shopify-Access-Token`; 401 for a wrong or revoked token.
- Chatwoot (Chatwoot "Profile" API): GET `{base}/api/v1/profile` with the `api_access_token`
  header; 401 for a wrong token.
- a custom probe: GET a URL the policy names with the value in a header the policy names; the
  answer must have one of the expected statuses.
"""

from __future__ import annotations

from collections.abc import Sequence

from envmatrix.adapters.http_probe import ProbeHttp, ProbeResponse
from envmatrix.errors import CheckFailed
from envmatrix.secret import SecretValue

ZOHO_ACCOUNTS_URL = "https://accounts.zoho.com"
CHATWOOT_URL = "https://app.chatwoot.com"
SHOPIFY_API_VERSION = "2025-10"
ZOHO_ACCESS_TOKENS_PER_10_MINUTES = 10

# Zoho's documented error codes -> our words (anything else is reported by status only)
_ZOHO_ERRORS = {
    "invalid_code": "Zoho refused the refresh token (invalid_code): wrong, revoked, or issued by"
    " another data centre's accounts server",
    "invalid_client": "Zoho does not know the client id (invalid_client): wrong client id, or"
    " another data centre's accounts server (set base_url:)",
    "invalid_client_secret": "Zoho refused the client secret (invalid_client_secret)",
    "Access Denied": "Zoho refused the refresh (Access Denied): too many token requests — a"
    f" refresh token mints at most {ZOHO_ACCESS_TOKENS_PER_10_MINUTES} access tokens in 10"
    " minutes; not retried, try again after 10 minutes",
}
_STATUS_WORDS = {
    401: "refused the credential (HTTP 401): wrong, revoked or expired",
    402: "refused the call (HTTP 402): the account is frozen or unpaid",
    403: "refused the call (HTTP 403): the credential lacks the access this call needs",
    404: "has no such endpoint (HTTP 404): check the address",
    423: "refused the call (HTTP 423): the account is locked",
    429: "rate-limited the probe (HTTP 429); not retried",
}


def check_zoho(
    http: ProbeHttp,
    accounts_url: str,
    refresh_token: SecretValue,
    client_id: SecretValue,
    client_secret: SecretValue,
    label: str = "Zoho Accounts",
) -> str:
    """Exchange the refresh token for an access token once; the access token is dropped."""
    form = {
        "grant_type": "refresh_token",
        "refresh_token": refresh_token.reveal(),
        "client_id": client_id.reveal(),
        "client_secret": client_secret.reveal(),
    }
    response = http.request(label, "POST", f"{accounts_url}/oauth/v2/token", form=form)
    data = response.json_object() or {}
    token = data.get("access_token")
    if response.status == 200 and isinstance(token, str) and token:
        return "Zoho exchanged the refresh token for an access token (dropped, not kept)"
    error = data.get("error")
    if isinstance(error, str) and error in _ZOHO_ERRORS:
        raise CheckFailed(_ZOHO_ERRORS[error])
    if error is not None:  # its text is Zoho's, and may repeat what was sent: not shown
        raise CheckFailed(
            f"Zoho refused the token refresh (HTTP {response.status}, an error code envmatrix"
            " does not know)"
        )
    raise CheckFailed(_failure("Zoho Accounts", response, "no access token in the answer"))


def check_shopify(
    http: ProbeHttp, admin_root: str, api_version: str, token: SecretValue, label: str
) -> str:
    """GET shop.json of the Admin API with the access token."""
    url = f"{admin_root}/admin/api/{api_version}/shop.json"
    headers = {"X-Shopify-Access-Token": token.reveal(), "Accept": "application/json"}
    response = http.request(label, "GET", url, headers=headers)
    shop = (response.json_object() or {}).get("shop")
    if response.status == 200 and isinstance(shop, dict):
        return f"the Admin API answered shop.json (API version {api_version})"
    raise CheckFailed(_failure("Shopify", response, "no shop in the answer"))


def check_chatwoot(http: ProbeHttp, base_url: str, token: SecretValue, label: str) -> str:
    """GET the profile of the token's user (the answer, which holds the token, is dropped)."""
    headers = {"api_access_token": token.reveal(), "Accept": "application/json"}
    response = http.request(label, "GET", f"{base_url}/api/v1/profile", headers=headers)
    profile = response.json_object() or {}
    if response.status == 200 and "id" in profile:
        return "Chatwoot answered the token's profile"
    raise CheckFailed(_failure("Chatwoot", response, "no profile in the answer"))


def check_url(
    http: ProbeHttp,
    url: str,
    header: tuple[str, str],
    value: SecretValue,
    expect: Sequence[int],
    label: str,
) -> str:
    """GET `url` with header `header[0]` set to `header[1]`, `{value}` replaced by the value."""
    name, template = header
    headers = {name: template.replace("{value}", value.reveal())}
    response = http.request(label, "GET", url, headers=headers)
    if response.status in expect:
        return f"answered HTTP {response.status}"
    wanted = " or ".join(str(s) for s in expect)
    raise CheckFailed(f"{label} answered HTTP {response.status}, not {wanted}")


def _failure(service: str, response: ProbeResponse, missing: str) -> str:
    words = _STATUS_WORDS.get(response.status)
    if words is not None:
        return f"{service} {words}"
    if response.status == 200:
        return f"{service} answered HTTP 200 but {missing}: not {service}'s API at that address"
    return f"{service} call failed (HTTP {response.status})"
