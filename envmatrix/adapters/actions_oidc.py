"""The GitHub Actions OIDC ID token: what a job with `permissions: id-token: write` may ask for.

The runner gives such a job `ACTIONS_ID_TOKEN_REQUEST_URL` and `ACTIONS_ID_TOKEN_REQUEST_TOKEN`;
`GET <url>&audience=<aud>` with `Authorization: bearer <request token>` answers `{"value": jwt}`.
The JWT is a credential (Vault trades it for a token), so it comes back as a `SecretValue`, and
no error message built here carries the request URL's query, the request token, or any part of
the answer: only the host, the status and what to check.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from collections.abc import Mapping
from urllib.parse import quote, urlsplit

from envmatrix.errors import IdTokenRequestFailed, UsageError
from envmatrix.redact import host_for_display
from envmatrix.secret import SecretValue

REQUEST_URL = "ACTIONS_ID_TOKEN_REQUEST_URL"
REQUEST_TOKEN = "ACTIONS_ID_TOKEN_REQUEST_TOKEN"
_ATTEMPTS = 3
_BACKOFF = 0.5
MAX_ANSWER_BYTES = 64 * 1024  # the ID token answer is a JWT of a few KB


def in_actions_with_id_token(environ: Mapping[str, str]) -> bool:
    """Whether this job may request an ID token (it has `permissions: id-token: write`)."""
    return bool(environ.get(REQUEST_URL, "").strip() and environ.get(REQUEST_TOKEN, "").strip())


def request_id_token(
    environ: Mapping[str, str], audience: str | None = None, timeout: float = 10.0
) -> SecretValue:
    """A fresh ID token for `audience` (None: GitHub's default, `https://github.com/<owner>`)."""
    if not in_actions_with_id_token(environ):
        raise UsageError(
            f"{REQUEST_URL} and {REQUEST_TOKEN} are not set: run in GitHub Actions with "
            "`permissions: id-token: write` on the job"
        )
    url = _with_audience(environ[REQUEST_URL].strip(), audience)
    request = urllib.request.Request(
        url, headers={"Authorization": f"bearer {environ[REQUEST_TOKEN].strip()}"}
    )
    body = _fetch(request, timeout)
    return _token_from(body, _host(url))


def _with_audience(url: str, audience: str | None) -> str:
    if not audience:
        return url
    separator = "&" if urlsplit(url).query else "?"
    return f"{url}{separator}audience={quote(audience, safe='')}"


def _fetch(request: urllib.request.Request, timeout: float) -> bytes:
    """The answer's body; transport failures and 5xx are retried, other answers are not."""
    host = _host(request.full_url)
    for attempt in range(1, _ATTEMPTS + 1):
        failure: str
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:
                body: bytes = response.read(MAX_ANSWER_BYTES + 1)  # a JWT is a few KB
                if len(body) > MAX_ANSWER_BYTES:
                    failure, transient = f"answered more than {MAX_ANSWER_BYTES} bytes", False
                    break
                return body
        except urllib.error.HTTPError as error:
            failure, transient = f"answered {error.code}", error.code >= 500
            error.close()
        except (urllib.error.URLError, TimeoutError, ConnectionError) as error:
            failure, transient = f"unreachable ({type(error).__name__})", True
        if not transient or attempt == _ATTEMPTS:
            break
        time.sleep(_BACKOFF * attempt)
    # Raised outside the except blocks: urllib's errors hold the full URL and the response.
    raise IdTokenRequestFailed(
        f"GitHub Actions ID token request to {host} {failure}: check that the job has "
        "`permissions: id-token: write`"
    )


def _token_from(body: bytes, host: str) -> SecretValue:
    try:
        value = json.loads(body).get("value")
    except (ValueError, AttributeError):
        value = None
    if not isinstance(value, str) or not value:
        raise IdTokenRequestFailed(
            f"GitHub Actions ID token request to {host} answered without a token"
        )
    return SecretValue(value)


def _host(url: str) -> str:
    return host_for_display(url) or "the runner"
