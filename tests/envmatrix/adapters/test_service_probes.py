"""The probe adapters against local stand-ins that answer as each provider documents: the right
credential passes, a wrong one fails with our own words, and neither the value nor the
provider's answer (which may echo it) reaches a message."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from envmatrix.adapters.google_oauth import mint_access_token
from envmatrix.adapters.http_probe import ProbeHttp
from envmatrix.adapters.mcp import check_mcp
from envmatrix.adapters.service_probes import (
    check_chatwoot,
    check_shopify,
    check_url,
    check_zoho,
)
from envmatrix.errors import CheckFailed
from envmatrix.secret import SecretValue
from tests.standins.ga_mcp import GoogleAnalyticsMcp
from tests.standins.services import Chatwoot, ShopifyAdmin, ZohoAccounts

CANARY = "CANARY-probe-3b1d"


@pytest.fixture
def http() -> Iterator[ProbeHttp]:
    with ProbeHttp(timeout=5) as client:
        yield client


def failure(call: object) -> str:
    """The CheckFailed message of `call()`; it must be one line."""
    assert callable(call)
    with pytest.raises(CheckFailed) as caught:
        call()
    message = str(caught.value)
    assert "\n" not in message and caught.value.__cause__ is None
    return message


def test_zoho_refresh_right_and_wrong_credentials(http: ProbeHttp) -> None:
    with ZohoAccounts() as zoho:
        client_id, client_secret = zoho.add_client()
        refresh = zoho.add_refresh_token(client_id)
        good = (SecretValue(refresh), SecretValue(client_id), SecretValue(client_secret))
        assert "exchanged the refresh token" in check_zoho(http, zoho.url, *good)
        wrong_token = (SecretValue(f"1000.{CANARY}"), *good[1:])
        assert "invalid_code" in failure(lambda: check_zoho(http, zoho.url, *wrong_token))
        wrong_secret = (*good[:2], SecretValue(CANARY))
        assert "invalid_client" in failure(lambda: check_zoho(http, zoho.url, *wrong_secret))
        other_id, _ = zoho.add_client()  # a refresh token of another client
        other = (good[0], SecretValue(other_id), SecretValue(zoho.clients[other_id]))
        assert "invalid_code" in failure(lambda: check_zoho(http, zoho.url, *other))
        # the credentials travelled in the form body, never in the URL
        assert all(not r.query for r in zoho.requests_to("/oauth/v2/token"))


def test_zoho_throttle_is_reported_in_our_words(http: ProbeHttp) -> None:
    with ZohoAccounts() as zoho:
        client_id, client_secret = zoho.add_client()
        refresh = SecretValue(zoho.add_refresh_token(client_id))
        args = (refresh, SecretValue(client_id), SecretValue(client_secret))
        for _ in range(ZohoAccounts.LIMIT):
            check_zoho(http, zoho.url, *args)
        message = failure(lambda: check_zoho(http, zoho.url, *args))
        assert "Access Denied" in message and "10 access tokens in 10 minutes" in message
        assert "too many requests continuously" not in message  # Zoho's own text is not shown


def test_shopify_shop_json(http: ProbeHttp) -> None:
    with ShopifyAdmin() as shop:
        token = shop.add_token()
        assert "shop.json" in check_shopify(http, shop.url, "2025-10", SecretValue(token), "S")
        message = failure(
            lambda: check_shopify(http, shop.url, "2025-10", SecretValue(f"shpat_{CANARY}"), "S")
        )
        assert message == "Shopify refused the credential (HTTP 401): wrong, revoked or expired"
        assert (
            shop.requests_to("/admin/api/2025-10/shop.json")[0].headers["x-shopify-access-token"]
            == token
        )


def test_chatwoot_profile_echo_is_never_shown(http: ProbeHttp) -> None:
    with Chatwoot() as chatwoot:
        token = chatwoot.add_user_token()
        detail = check_chatwoot(http, chatwoot.url, SecretValue(token), "Chatwoot")
        assert token not in detail  # the profile carried the token; the detail does not
        message = failure(lambda: check_chatwoot(http, chatwoot.url, SecretValue(CANARY), "C"))
        assert "HTTP 401" in message and CANARY not in message


def test_a_provider_that_is_not_there_or_redirects(http: ProbeHttp) -> None:
    url = "http://127.0.0.1:9/canary-path"  # nothing listens on port 9
    message = failure(lambda: check_chatwoot(http, url, SecretValue(CANARY), "Chatwoot"))
    assert message.startswith("Chatwoot unreachable") and "canary" not in message

    class Redirecting(ShopifyAdmin):
        def handle(self, request):  # type: ignore[no-untyped-def]
            from tests.standins.http import Reply

            return Reply(302, None, {"Location": "http://127.0.0.1:9/elsewhere"})

    with Redirecting() as shop:
        message = failure(
            lambda: check_shopify(http, shop.url, "2025-10", SecretValue(CANARY), "Shopify")
        )
        assert "redirect (HTTP 302)" in message


@pytest.mark.parametrize(
    ("header", "sent"),
    [(("X-Api-Key", "{value}"), "{v}"), (("Authorization", "Bearer {value}"), "Bearer {v}")],
)
def test_custom_url_probe(http: ProbeHttp, header: tuple[str, str], sent: str) -> None:
    with Chatwoot() as server:  # any server: the custom probe checks the status only
        token = server.add_user_token()
        url = f"{server.url}/api/v1/profile"
        wanted = (401,)  # the header the policy names is not Chatwoot's: 401 is what it expects
        assert check_url(http, url, header, SecretValue(token), wanted, "h") == "answered HTTP 401"
        assert server.received[-1].headers[header[0].lower()] == sent.format(v=token)
        message = failure(lambda: check_url(http, url, header, SecretValue(token), (200,), "h"))
        assert message == "h answered HTTP 401, not 200"


@pytest.mark.parametrize("respond_with", ["sse", "json"])
def test_ga_mcp_key_minted_then_handshake(http: ProbeHttp, respond_with: str) -> None:
    with GoogleAnalyticsMcp(respond_with) as ga:
        key = ga.create_key()
        token = mint_access_token(SecretValue(key), http, ga.token_url)
        detail = check_mcp(http, ga.mcp_url, token, "the MCP server")
        assert detail == "MCP handshake done (protocol 2025-06-18), 2 tools listed"
        sent_to_mcp = b"".join(r.body + str(r.headers).encode() for r in ga.requests_to("/mcp"))
        private = json.loads(key)["private_key"]
        assert private.encode() not in sent_to_mcp and b"PRIVATE KEY" not in sent_to_mcp
        methods = [(r.method, (r.json() or {}).get("method")) for r in ga.requests_to("/mcp")]
        assert methods == [
            ("POST", "initialize"),
            ("POST", "notifications/initialized"),
            ("POST", "tools/list"),
            ("DELETE", None),
        ]
        assert ga.sessions == {}  # the session was ended


def test_ga_mcp_refusals(http: ProbeHttp) -> None:
    with GoogleAnalyticsMcp() as ga:
        key = ga.create_key()
        ga.delete_key(key)
        message = failure(lambda: mint_access_token(SecretValue(key), http, ga.token_url))
        assert "invalid_grant" in message and "BEGIN" not in message
        wrong = SecretValue(f"ya29.{CANARY}")
        message = failure(lambda: check_mcp(http, ga.mcp_url, wrong, "the MCP server"))
        assert message.startswith("the MCP server refused the bearer token (HTTP 401)")
        for bad, expected in (
            ("not json", "not JSON"),
            ("[1]", "not a JSON object"),
            (json.dumps({"type": "service_account"}), "lacks client_email"),
            (json.dumps({**json.loads(key), "private_key": CANARY}), "cannot be read"),
        ):
            message = failure(lambda b=bad: mint_access_token(SecretValue(b), http, ga.token_url))
            assert expected in message and CANARY not in message


def test_the_key_file_cannot_send_the_token_request_elsewhere(http: ProbeHttp) -> None:
    with GoogleAnalyticsMcp() as ga, GoogleAnalyticsMcp() as elsewhere:
        document = json.loads(ga.create_key())
        document["token_uri"] = elsewhere.token_url  # a key is a Vault value, not policy
        mint_access_token(SecretValue(json.dumps(document)), http, ga.token_url)
        assert elsewhere.received == [] and len(ga.requests_to("/token")) == 1
