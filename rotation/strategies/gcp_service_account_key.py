"""`gcp-service-account-key`: rotate a Google Cloud service account's JSON key through the IAM
REST API (envmatrix/adapters/gcp_iam.py). Google allows 10 user-managed keys per account, so the
old key keeps working while consumers move:

- intent (journaled before `create` calls IAM): fingerprints of the account's keys. A `create`
  killed after the POST leaves a key nobody knows; the resumed `create` deletes every key that is
  neither in that list nor the one in Vault (it was made by this rotation).
- create: `POST v1/projects/-/serviceAccounts/{email}/keys`; the key file (`privateKeyData`,
  base64 of the JSON) goes to Vault only. At the 10-key limit it stops and says so.
- test: mint an access token with the new key (JWT-bearer grant at its `token_uri`; the key
  itself is never sent), retried while the key propagates.
- revoke (after grace): `DELETE .../keys/{keyId}` of the previous key; never the one in Vault;
  a key already gone is fine (a resumed revoke).
- discard: deletes the key `create` made (found by the handle's fingerprint if values are lost).

Options: `service_account` (email, required), `iam_url` (default https://iam.googleapis.com),
`credentials_secret` (required: the policy secret whose value, in the same environment, is the
admin JSON key envmatrix acts with), `key` (the Vault key holding the JSON; default the group's
only key), `test_attempts` (default 6), `test_delay` (seconds, doubling; default 2), `timeout`.
Handles and messages name keys by fingerprint or their last four characters, never a value.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Mapping
from typing import Any

from envmatrix import failpoints
from envmatrix.adapters.gcp_iam import (
    DEFAULT_IAM_URL,
    ServiceAccountKeys,
    key_file_fields,
    mint_access_token,
)
from envmatrix.errors import CheckFailed, RotationTestFailed, RuntimeFailure, UsageError
from envmatrix.rotation.strategies import SecretReader, StrategySettings
from envmatrix.rotation.strategies.base import BaseStrategy, Created, RotationContext
from envmatrix.rotation.strategies.group_values import check_group, values_for_group
from envmatrix.secret import SecretValue

MAX_USER_MANAGED_KEYS = 10  # per service account (Google's quota)


def key_fingerprint(key_id: str) -> str:
    """Identifies a key in the handle without repeating its id (part of a Vault value)."""
    return hashlib.sha256(key_id.encode()).hexdigest()[:32]


def key_hint(key_id: str) -> str:
    return "…" + key_id[-4:]


class GcpServiceAccountKeyStrategy(BaseStrategy):
    """Rotates a service account's JSON key: create, mint a token with it, delete the old."""

    name = "gcp-service-account-key"

    def __init__(self, options: Mapping[str, Any], read_secret: SecretReader | None) -> None:
        account = options.get("service_account")
        if not isinstance(account, str) or "@" not in account:
            raise UsageError(
                "gcp-service-account-key rotation: options.service_account (the account's"
                " email) is required"
            )
        admin = options.get("credentials_secret")
        if not isinstance(admin, str) or not admin:
            raise UsageError(
                "gcp-service-account-key rotation: options.credentials_secret (the secret"
                " holding the admin key) is required"
            )
        self.service_account = account
        self.iam_url = str(options.get("iam_url") or DEFAULT_IAM_URL)
        self.credentials_secret = admin
        self.key_option = options.get("key")
        self.attempts = max(1, int(options.get("test_attempts", 6)))
        self.delay = float(options.get("test_delay", 2.0))
        self.timeout = float(options.get("timeout", 30.0))
        self._read_secret = read_secret
        self._keys: ServiceAccountKeys | None = None

    def intent(self, ctx: RotationContext) -> Mapping[str, str]:
        """The account's keys before `create` (fingerprints), to recognise its leftovers later."""
        ids = self._api(ctx).list()
        return {"keys_before": ",".join(key_fingerprint(k) for k in ids)}

    def create(self, ctx: RotationContext) -> Created:
        """Delete this rotation's leftovers, check the 10-key limit, create a key."""
        key = self._key(ctx)
        check_group(self.name, ctx, [key])
        api = self._api(ctx)
        current_id = self._key_id(ctx.current.get(key))
        self._delete_leftovers(ctx, current_id)
        existing = api.list()
        if len(existing) >= MAX_USER_MANAGED_KEYS:
            raise RuntimeFailure(
                f"gcp-service-account-key: {self.service_account} already has"
                f" {len(existing)} user-managed keys (Google's limit is"
                f" {MAX_USER_MANAGED_KEYS}); delete unused ones and run again"
            )
        key_id, key_json = api.create()
        failpoints.hit("rotation.create", self.name)
        handle = {
            "service_account": self.service_account,
            "key": key_hint(key_id),
            "key_sha256": key_fingerprint(key_id),
        }
        return Created(values=values_for_group(self.name, ctx, {key: key_json}), handle=handle)

    def test(self, ctx: RotationContext, pending: Mapping[str, SecretValue]) -> None:
        """An access token must be minted with the new key (retried while it propagates)."""
        key_json = pending[self._key(ctx)]
        failure = "no attempt made"
        for attempt in range(self.attempts):
            if attempt:
                time.sleep(self.delay * 2 ** (attempt - 1))
            try:
                mint_access_token(key_json, timeout=self.timeout)
                return
            except (CheckFailed, UsageError) as exc:  # refused, or not a key file at all
                failure = str(exc)
        raise RotationTestFailed(
            f"gcp-service-account-key: new key {ctx.handle.get('key', '')} of"
            f" {self.service_account} could not mint an access token after {self.attempts}"
            f" attempt(s): {failure}"
        )

    def revoke(self, ctx: RotationContext, previous: Mapping[str, SecretValue]) -> None:
        """Delete the previous key; never the one in Vault."""
        key = self._key(ctx)
        old_id = self._key_id(previous.get(key))
        if not old_id or old_id == self._key_id(ctx.current.get(key)):
            return
        api = self._api(ctx)
        if old_id in api.list():
            api.delete(old_id)

    def discard(self, ctx: RotationContext, pending: Mapping[str, SecretValue]) -> None:
        """Delete the key `create` made (found by the handle when the values were lost)."""
        key = self._key(ctx)
        current_id = self._key_id(ctx.current.get(key))
        api = self._api(ctx)
        listed = api.list()
        new_id = self._key_id(pending.get(key)) or next(
            (k for k in listed if key_fingerprint(k) == ctx.handle.get("key_sha256")), ""
        )
        if new_id and new_id != current_id and new_id in listed:
            api.delete(new_id)

    def _delete_leftovers(self, ctx: RotationContext, current_id: str) -> None:
        if "keys_before" not in ctx.handle:
            return
        before = set(filter(None, ctx.handle["keys_before"].split(",")))
        api = self._api(ctx)
        for key_id in api.list():
            if key_id != current_id and key_fingerprint(key_id) not in before:
                api.delete(key_id)

    def _api(self, ctx: RotationContext) -> ServiceAccountKeys:
        if self._keys is None:
            if self._read_secret is None:
                raise UsageError(
                    "gcp-service-account-key rotation: this run cannot read"
                    f" {self.credentials_secret} from Vault"
                )
            admin = self._read_secret(self.credentials_secret, ctx.environment)
            self._keys = ServiceAccountKeys(self.iam_url, self.service_account, admin, self.timeout)
        return self._keys

    def _key(self, ctx: RotationContext) -> str:
        if self.key_option:
            return str(self.key_option)
        candidates = sorted(set(ctx.keys.values()))
        if len(candidates) != 1:
            raise UsageError(
                f"gcp-service-account-key rotation: cannot tell which key of {ctx.path} holds"
                f" the JSON key ({', '.join(candidates) or 'none'}); set options.key"
            )
        return candidates[0]

    def _key_id(self, value: SecretValue | None) -> str:
        """The private_key_id of a key file value; "" when there is none or it is no key file."""
        if not value:
            return ""
        try:
            return key_file_fields(value).key_id
        except UsageError:
            return ""


def build(options: Mapping[str, Any], settings: StrategySettings) -> GcpServiceAccountKeyStrategy:
    """The registry's factory: the admin key is read from Vault through the run's reader."""
    return GcpServiceAccountKeyStrategy(options, settings.read_secret)
