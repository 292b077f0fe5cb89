"""envmatrix/sandbox/supabase.py: the local Supabase (Management API keys + auth admin check)."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
from supabase import ClientOptions, create_client
from supabase_auth.errors import AuthApiError

from tests.standins.supabase import SupabaseSandbox

PAT = "sbp_test_sandbox_token"


@pytest.fixture
def sb() -> Iterator[SupabaseSandbox]:
    with SupabaseSandbox(access_token=PAT, project_ref="demo") as sandbox:
        yield sandbox


def users(sb: SupabaseSandbox, key: str, user_agent: str = "envmatrix-test") -> httpx.Response:
    headers = {"apikey": key, "Authorization": f"Bearer {key}", "User-Agent": user_agent}
    return httpx.get(f"{sb.url}/auth/v1/admin/users?page=1&per_page=1", headers=headers)


def management(
    sb: SupabaseSandbox, method: str, path: str = "", token: str = PAT, **kwargs: object
) -> httpx.Response:
    url = f"{sb.url}/v1/projects/demo/api-keys{path}"
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return httpx.request(method, url, headers=headers, **kwargs)  # type: ignore[arg-type]


def test_the_right_key_gets_200_a_wrong_one_401(sb: SupabaseSandbox) -> None:
    key = sb.add_secret_key("seed")
    assert sb.is_valid(key)
    right = users(sb, key)
    assert right.status_code == 200
    assert right.json() == {"users": [], "aud": "authenticated"}
    wrong = users(sb, key + "x")
    assert wrong.status_code == 401
    assert wrong.json()["message"] == "Invalid API key"
    assert not sb.is_valid(key + "x")


def test_both_headers_must_carry_the_key(sb: SupabaseSandbox) -> None:
    key = sb.add_secret_key()
    only_apikey = httpx.get(f"{sb.url}/auth/v1/admin/users", headers={"apikey": key})
    assert only_apikey.status_code == 401


def test_secret_keys_are_refused_from_a_browser(sb: SupabaseSandbox) -> None:
    key = sb.add_secret_key()
    browser = users(sb, key, user_agent="Mozilla/5.0 (X11; Linux x86_64) Firefox/140.0")
    assert browser.status_code == 401


def test_the_supabase_client_works_against_it(sb: SupabaseSandbox) -> None:
    key = sb.add_secret_key()
    with httpx.Client() as http:
        options = ClientOptions(httpx_client=http, persist_session=False)
        assert create_client(sb.url, key, options).auth.admin.list_users(page=1, per_page=1) == []
        with pytest.raises(AuthApiError) as refused:
            create_client(sb.url, "not-a-key", options).auth.admin.list_users(page=1, per_page=1)
    assert refused.value.status == 401


@pytest.mark.parametrize("token", ["", "sbp_wrong"])
def test_management_needs_the_access_token(sb: SupabaseSandbox, token: str) -> None:
    assert management(sb, "GET", token=token).status_code == 401
    assert (
        management(sb, "POST", token=token, json={"type": "secret", "name": "x"}).status_code == 401
    )
    assert sb.key_ids() == []


def test_unknown_project_is_404(sb: SupabaseSandbox) -> None:
    response = httpx.get(
        f"{sb.url}/v1/projects/other/api-keys", headers={"Authorization": f"Bearer {PAT}"}
    )
    assert response.status_code == 404


def test_create_reveal_list_get_delete(sb: SupabaseSandbox) -> None:
    created = management(
        sb, "POST", params={"reveal": "true"}, json={"type": "secret", "name": "ci_2026"}
    )
    assert created.status_code == 201
    key = created.json()
    assert {"id", "name", "type", "api_key", "prefix", "inserted_at", "updated_at"} <= set(key)
    assert key["type"] == "secret" and key["name"] == "ci_2026"
    assert key["api_key"].startswith("sb_secret_") and sb.is_valid(key["api_key"])
    assert sb.key_ids() == [key["id"]]

    masked = management(sb, "GET").json()
    assert [k["id"] for k in masked] == [key["id"]]
    assert masked[0]["api_key"] != key["api_key"] and "•" in masked[0]["api_key"]
    revealed = management(sb, "GET", params={"reveal": "true"}).json()
    assert revealed[0]["api_key"] == key["api_key"]
    assert management(sb, "GET", f"/{key['id']}").json()["id"] == key["id"]

    assert management(sb, "DELETE", f"/{key['id']}").status_code == 200
    assert not sb.is_valid(key["api_key"])
    assert users(sb, key["api_key"]).status_code == 401
    assert sb.key_ids() == []
    assert management(sb, "DELETE", f"/{key['id']}").status_code == 404


def test_create_without_reveal_masks_the_value(sb: SupabaseSandbox) -> None:
    key = management(sb, "POST", json={"type": "secret", "name": "masked"}).json()
    assert not sb.is_valid(key["api_key"])
    assert key["api_key"].startswith(key["prefix"])


@pytest.mark.parametrize(
    "body", [{"type": "legacy", "name": "x"}, {"type": "secret"}, {"type": "secret", "name": " "}]
)
def test_bad_create_requests_are_400(sb: SupabaseSandbox, body: dict[str, str]) -> None:
    assert management(sb, "POST", json=body).status_code == 400
    assert sb.key_ids() == []


def test_publishable_keys_cannot_use_the_admin_api(sb: SupabaseSandbox) -> None:
    body = {"type": "publishable", "name": "web"}
    key = management(sb, "POST", params={"reveal": "true"}, json=body).json()
    assert key["api_key"].startswith("sb_publishable_")
    assert users(sb, key["api_key"]).status_code == 401


def test_stop_releases_the_port() -> None:
    sandbox = SupabaseSandbox().start()
    url = sandbox.url
    sandbox.stop()
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"{url}/auth/v1/admin/users")
    with pytest.raises(RuntimeError, match="not started"):
        _ = sandbox.url
