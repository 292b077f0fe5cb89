"""`aws-iam`: rotate an IAM user's access key pair. The only module of envmatrix importing boto3.

AWS allows two access keys per user, which is exactly what a rotation needs: the current key and
the new one side by side during the grace period.

- create: list the user's keys. At the limit, an *Inactive* key that is not the one in Vault is
  deleted to make room (it is the leftover of an earlier rotation); two *Active* keys are refused,
  since one of them is in use somewhere envmatrix does not know about. Then `CreateAccessKey`.
- test: `sts:GetCallerIdentity` signed with the new key, retried while IAM propagates it (new keys
  are eventually consistent); the ARN must name the user.
- revoke (after grace): the previous key is set Inactive, then deleted (`on_revoke: delete`, the
  default). With `on_revoke: deactivate` it is only set Inactive, so it can be switched back on
  by hand; the next rotation's create deletes it. The key in Vault is never touched.
- discard: deletes the key `create` made (unless Vault already holds it); when the engine lost
  the values, the handle's `key_sha256` (a fingerprint, not the id: the id is a Vault value)
  finds it.
- intent (journaled before `create` calls IAM): fingerprints of the keys the user has. A `create`
  killed after CreateAccessKey leaves a key nobody knows; the resumed `create` deletes every key
  that is neither in that list nor the one in Vault (it was made by this rotation), so the
  rotation never gets stuck at the two-key limit.
- emergency (`rotate --force`): the leaked key (the one in Vault) is deactivated and deleted
  first, so the user has room for the new key even while a previous key is in its grace period;
  that previous key is revoked once the new one is synced.

Options: `user` (required), `region` (else AWS_DEFAULT_REGION/AWS_REGION from the environment,
else us-east-1), `endpoint_url_env` (name of a variable holding a custom endpoint, e.g. moto),
`id_key`/`secret_key` (Vault keys; default `access_key_id`/`secret_access_key`), `on_revoke`,
`test_attempts` (default 6) and `test_delay` (seconds before the first retry, doubling; default 2).
Admin credentials come from the environment given to the strategy (AWS_ACCESS_KEY_ID,
AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN), else from boto3's default chain.

Messages and handles name keys by their last four characters only (as the AWS console does);
errors carry the AWS error code, never a response body.
"""

from __future__ import annotations

import hashlib
import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from envmatrix import failpoints
from envmatrix.errors import RotationTestFailed, RuntimeFailure, UsageError
from envmatrix.rotation.strategies.base import BaseStrategy, Created, RotationContext
from envmatrix.rotation.strategies.group_values import check_group, values_for_group
from envmatrix.secret import SecretValue

_MAX_KEYS_PER_USER = 2
_REVOKE_MODES = ("delete", "deactivate")
T = TypeVar("T")


def key_hint(key_id: str) -> str:
    """How a key is named in messages and handles: its last four characters."""
    return "…" + key_id[-4:]


def key_fingerprint(key_id: str) -> str:
    """Identifies a key in the handle without repeating its id (a Vault value)."""
    return hashlib.sha256(key_id.encode()).hexdigest()[:32]


@dataclass(frozen=True)
class AccessKey:
    """An access key's id and status as ListAccessKeys reports them."""

    key_id: str
    status: str  # "Active" | "Inactive"


class IamAccessKeys:
    """The boto3 seam: IAM access keys of one user, and STS checks of a key pair."""

    def __init__(
        self, user: str, region: str, endpoint_url: str | None, environ: Mapping[str, str]
    ):
        self.user, self.region, self.endpoint_url = user, region, endpoint_url
        self._session = boto3.session.Session(
            aws_access_key_id=environ.get("AWS_ACCESS_KEY_ID"),
            aws_secret_access_key=environ.get("AWS_SECRET_ACCESS_KEY"),
            aws_session_token=environ.get("AWS_SESSION_TOKEN"),
            region_name=region,
        )
        self._iam = self._client("iam", self._session)

    def _client(self, service: str, session: Any) -> Any:
        config = Config(retries={"max_attempts": 3, "mode": "standard"})
        return session.client(service, endpoint_url=self.endpoint_url, config=config)

    def list(self) -> list[AccessKey]:
        """The user's access keys."""
        answer = self._call(
            "ListAccessKeys", lambda: self._iam.list_access_keys(UserName=self.user)
        )
        return [AccessKey(k["AccessKeyId"], k["Status"]) for k in answer["AccessKeyMetadata"]]

    def create(self) -> tuple[str, SecretValue]:
        """A new Active key pair: (access key id, secret access key)."""
        answer = self._call(
            "CreateAccessKey", lambda: self._iam.create_access_key(UserName=self.user)
        )
        key = answer["AccessKey"]
        return key["AccessKeyId"], SecretValue(key["SecretAccessKey"])

    def deactivate(self, key_id: str) -> None:
        """Set a key Inactive."""
        self._call(
            "UpdateAccessKey",
            lambda: self._iam.update_access_key(
                UserName=self.user, AccessKeyId=key_id, Status="Inactive"
            ),
            key_id,
        )

    def delete(self, key_id: str) -> None:
        """Delete a key."""
        self._call(
            "DeleteAccessKey",
            lambda: self._iam.delete_access_key(UserName=self.user, AccessKeyId=key_id),
            key_id,
        )

    def caller_arn(self, key_id: str, secret: SecretValue) -> str:
        """The ARN STS reports for a key pair; raises ClientError/BotoCoreError when refused."""
        session = boto3.session.Session(
            aws_access_key_id=key_id,
            aws_secret_access_key=secret.reveal(),
            region_name=self.region,
        )
        return str(self._client("sts", session).get_caller_identity()["Arn"])

    def _call(self, operation: str, call: Callable[[], T], key_id: str = "") -> T:
        try:
            return call()
        except (ClientError, BotoCoreError) as exc:
            on_key = f" on key {key_hint(key_id)}" if key_id else ""
            raise RuntimeFailure(
                f"aws-iam: {operation}{on_key} for IAM user {self.user} failed: {_error_code(exc)}"
            ) from None


def _error_code(exc: ClientError | BotoCoreError) -> str:
    """The AWS error code (ClientError) or the botocore error class; never a message body."""
    if isinstance(exc, ClientError):
        return str(exc.response.get("Error", {}).get("Code", "ClientError"))
    return type(exc).__name__


class AwsIamStrategy(BaseStrategy):
    """Rotates an IAM user's access key pair within the two-keys-per-user limit."""

    name = "aws-iam"

    def __init__(self, options: Mapping[str, Any], environ: Mapping[str, str]) -> None:
        user = options.get("user")
        if not isinstance(user, str) or not user:
            raise UsageError("aws-iam rotation: options.user (the IAM user name) is required")
        self.user = user
        self.id_key = str(options.get("id_key", "access_key_id"))
        self.secret_key = str(options.get("secret_key", "secret_access_key"))
        self.on_revoke = str(options.get("on_revoke", "delete"))
        if self.on_revoke not in _REVOKE_MODES:
            raise UsageError(
                f"aws-iam rotation: on_revoke must be one of {', '.join(_REVOKE_MODES)}"
            )
        self.attempts = max(1, int(options.get("test_attempts", 6)))
        self.delay = float(options.get("test_delay", 2.0))
        self.keys = IamAccessKeys(
            user, _region(options, environ), _endpoint(options, environ), environ
        )

    def intent(self, ctx: RotationContext) -> Mapping[str, str]:
        """The user's keys before `create` (fingerprints), to recognise its leftovers later."""
        return {"keys_before": ",".join(key_fingerprint(k.key_id) for k in self.keys.list())}

    def emergency(self, ctx: RotationContext) -> Mapping[str, str]:
        """Forced rotation: retire the leaked key (the one in Vault) before making a new one."""
        leaked = _reveal(ctx.current.get(self.id_key))
        if leaked and leaked in {k.key_id for k in self.keys.list()}:
            self.keys.deactivate(leaked)
            self.keys.delete(leaked)
            failpoints.hit("rotation.emergency", self.name)
        return {"leaked_key": key_hint(leaked)} if leaked else {}

    def create(self, ctx: RotationContext) -> Created:
        """Make room within the limit if a stale Inactive key allows, then create a key."""
        current_id = _reveal(ctx.current.get(self.id_key))
        check_group(self.name, ctx, (self.id_key, self.secret_key))
        self._delete_leftovers(ctx, current_id)
        self._make_room(current_id)
        key_id, secret = self.keys.create()
        failpoints.hit("rotation.create", self.name)
        changed = {self.id_key: SecretValue(key_id), self.secret_key: secret}
        handle = {"user": self.user, "key": key_hint(key_id), "key_sha256": key_fingerprint(key_id)}
        return Created(values=values_for_group(self.name, ctx, changed), handle=handle)

    def test(self, ctx: RotationContext, pending: Mapping[str, SecretValue]) -> None:
        """STS must accept the new key and name this user (retried: new keys propagate slowly)."""
        key_id = pending[self.id_key].reveal()
        failure = "no attempt made"
        for attempt in range(self.attempts):
            if attempt:
                time.sleep(self.delay * 2 ** (attempt - 1))
            try:
                arn = self.keys.caller_arn(key_id, pending[self.secret_key])
            except (ClientError, BotoCoreError) as exc:
                failure = f"STS refused it ({_error_code(exc)})"
                continue
            if arn.endswith(f"/{self.user}") and ":user/" in arn:
                return
            failure = "STS named a different identity"
        raise RotationTestFailed(
            f"aws-iam: new key {key_hint(key_id)} of IAM user {self.user} failed the STS check "
            f"after {self.attempts} attempt(s): {failure}"
        )

    def revoke(self, ctx: RotationContext, previous: Mapping[str, SecretValue]) -> None:
        """Deactivate, then (on_revoke: delete) delete the previous key; never the one in Vault."""
        old_id = _reveal(previous.get(self.id_key))
        if not old_id or old_id == _reveal(ctx.current.get(self.id_key)):
            return
        if old_id not in {k.key_id for k in self.keys.list()}:
            return  # already gone: a resumed revoke
        self.keys.deactivate(old_id)
        if self.on_revoke == "delete":
            self.keys.delete(old_id)

    def discard(self, ctx: RotationContext, pending: Mapping[str, SecretValue]) -> None:
        """Delete the key `create` made (found by the handle when the values were lost)."""
        current_id = _reveal(ctx.current.get(self.id_key))
        new_id = _reveal(pending.get(self.id_key)) or self._key_from_handle(ctx.handle)
        if new_id and new_id != current_id and new_id in {k.key_id for k in self.keys.list()}:
            self.keys.deactivate(new_id)
            self.keys.delete(new_id)

    def _key_from_handle(self, handle: Mapping[str, str]) -> str:
        fingerprint = handle.get("key_sha256")
        matches = [k.key_id for k in self.keys.list() if key_fingerprint(k.key_id) == fingerprint]
        return matches[0] if matches else ""

    def _delete_leftovers(self, ctx: RotationContext, current_id: str) -> None:
        """Delete keys an earlier, interrupted `create` of this rotation made (see intent)."""
        if "keys_before" not in ctx.handle:
            return
        before = set(filter(None, ctx.handle["keys_before"].split(",")))
        for key in self.keys.list():
            if key.key_id != current_id and key_fingerprint(key.key_id) not in before:
                if key.status == "Active":
                    self.keys.deactivate(key.key_id)
                self.keys.delete(key.key_id)

    def _make_room(self, current_id: str) -> None:
        keys = self.keys.list()
        if len(keys) < _MAX_KEYS_PER_USER:
            return
        stale = [k for k in keys if k.status == "Inactive" and k.key_id != current_id]
        if not stale:
            others = ", ".join(key_hint(k.key_id) for k in keys if k.key_id != current_id)
            raise RuntimeFailure(
                f"aws-iam: IAM user {self.user} already has {len(keys)} access keys (the limit) "
                f"and no inactive one besides the key in Vault; envmatrix never deletes an active "
                f"key. Deactivate or delete the other one ({others or 'none'}) and run again"
            )
        self.keys.delete(stale[0].key_id)


def _reveal(value: SecretValue | None) -> str:
    return value.reveal() if value is not None else ""


def _region(options: Mapping[str, Any], environ: Mapping[str, str]) -> str:
    region = options.get("region") or environ.get("AWS_REGION") or environ.get("AWS_DEFAULT_REGION")
    return str(region or "us-east-1")


def _endpoint(options: Mapping[str, Any], environ: Mapping[str, str]) -> str | None:
    variable = options.get("endpoint_url_env")
    if not variable:
        return None
    endpoint = environ.get(str(variable))
    if not endpoint:
        raise UsageError(f"aws-iam rotation: environment variable {variable} (endpoint) is not set")
    return endpoint


def build(options: Mapping[str, Any], settings: object) -> AwsIamStrategy:
    """The registry's factory: admin credentials come from the process environment."""
    return AwsIamStrategy(options, os.environ)
