"""rotation/strategies/aws_iam.py against moto in server mode.

moto does not enforce credentials (an Inactive key still signs requests), so deactivation is
checked through ListAccessKeys statuses, and a key moto does not know makes STS answer with
moto's default identity instead of the user: that is how a failing test step is produced.
"""

from __future__ import annotations

import uuid
from typing import Any

import boto3
import pytest

from envmatrix.errors import RotationTestFailed, RuntimeFailure, UsageError
from envmatrix.rotation.strategies.aws_iam import AwsIamStrategy
from envmatrix.rotation.strategies.base import RotationContext
from envmatrix.secret import SecretValue
from tests.rotation.rotation_support import failure_texts

USER = "ci-deployer"


@pytest.fixture
def iam(aws_env: dict[str, str]) -> Any:
    client = boto3.client(
        "iam",
        endpoint_url=aws_env["AWS_ENDPOINT_URL"],
        region_name=aws_env["AWS_DEFAULT_REGION"],
        aws_access_key_id=aws_env["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=aws_env["AWS_SECRET_ACCESS_KEY"],
    )
    client.create_user(UserName=USER)
    return client


@pytest.fixture
def current(iam: Any) -> dict[str, str]:
    """The user's first key, as Vault holds it before the rotation."""
    key = iam.create_access_key(UserName=USER)["AccessKey"]
    return {"access_key_id": key["AccessKeyId"], "secret_access_key": key["SecretAccessKey"]}


def statuses(iam: Any) -> dict[str, str]:
    keys = iam.list_access_keys(UserName=USER)["AccessKeyMetadata"]
    return {k["AccessKeyId"]: k["Status"] for k in keys}


def strategy(aws_env: dict[str, str], **options: Any) -> AwsIamStrategy:
    options = {"user": USER, "endpoint_url_env": "AWS_ENDPOINT_URL", **options}
    return AwsIamStrategy(options, aws_env)


def ctx_for(current: dict[str, str], handle: dict[str, str] | None = None) -> RotationContext:
    return RotationContext(
        path="apps/production/aws",
        environment="production",
        keys={"AWS_ACCESS_KEY_ID": "access_key_id", "AWS_SECRET_ACCESS_KEY": "secret_access_key"},
        options={},
        current={k: SecretValue(v) for k, v in current.items()},
        handle=handle or {},
    )


def plain(values: Any) -> dict[str, str]:
    return {k: v.reveal() for k, v in values.items()}


def test_new_key_passes_sts_old_is_inactive_then_deleted(
    aws_env: dict[str, str], iam: Any, current: dict[str, str]
) -> None:
    rotation = strategy(aws_env, on_revoke="deactivate")
    created = rotation.create(ctx_for(current))
    new_id = created.values["access_key_id"].reveal()
    assert statuses(iam) == {current["access_key_id"]: "Active", new_id: "Active"}
    rotation.test(ctx_for(current), created.values)

    after = ctx_for(plain(created.values), dict(created.handle))
    rotation.revoke(after, ctx_for(current).current)
    assert statuses(iam) == {current["access_key_id"]: "Inactive", new_id: "Active"}

    # The next rotation is at the two-key limit: it deletes the inactive leftover, not the key
    # in Vault, and creates its own.
    following = rotation.create(after)
    newest = following.values["access_key_id"].reveal()
    assert statuses(iam) == {new_id: "Active", newest: "Active"}


def test_revoke_deletes_the_previous_key_by_default(
    aws_env: dict[str, str], iam: Any, current: dict[str, str]
) -> None:
    rotation = strategy(aws_env)
    created = rotation.create(ctx_for(current))
    after = ctx_for(plain(created.values), dict(created.handle))
    rotation.revoke(after, ctx_for(current).current)
    assert statuses(iam) == {created.values["access_key_id"].reveal(): "Active"}
    rotation.revoke(after, ctx_for(current).current)  # resumed: already gone, no error


def test_two_active_keys_are_refused_and_left_alone(
    aws_env: dict[str, str], iam: Any, current: dict[str, str]
) -> None:
    other = iam.create_access_key(UserName=USER)["AccessKey"]["AccessKeyId"]
    with pytest.raises(RuntimeFailure, match="already has 2 access keys") as refused:
        strategy(aws_env).create(ctx_for(current))
    assert "…" + other[-4:] in str(refused.value)
    assert other not in str(refused.value)
    assert statuses(iam) == {current["access_key_id"]: "Active", other: "Active"}


def test_an_inactive_leftover_makes_room(
    aws_env: dict[str, str], iam: Any, current: dict[str, str]
) -> None:
    other = iam.create_access_key(UserName=USER)["AccessKey"]["AccessKeyId"]
    iam.update_access_key(UserName=USER, AccessKeyId=other, Status="Inactive")
    created = strategy(aws_env).create(ctx_for(current))
    new_id = created.values["access_key_id"].reveal()
    assert statuses(iam) == {current["access_key_id"]: "Active", new_id: "Active"}


def test_the_key_in_vault_is_never_revoked(
    aws_env: dict[str, str], iam: Any, current: dict[str, str]
) -> None:
    strategy(aws_env).revoke(ctx_for(current), ctx_for(current).current)
    assert statuses(iam) == {current["access_key_id"]: "Active"}


def test_discard_deletes_the_new_key(
    aws_env: dict[str, str], iam: Any, current: dict[str, str]
) -> None:
    rotation = strategy(aws_env)
    created = rotation.create(ctx_for(current))
    rotation.discard(ctx_for(current), created.values)
    assert statuses(iam) == {current["access_key_id"]: "Active"}


def test_discard_without_values_finds_the_key_by_its_handle(
    aws_env: dict[str, str], iam: Any, current: dict[str, str]
) -> None:
    # the engine's path when the process that created the values died before staging them
    rotation = strategy(aws_env)
    created = rotation.create(ctx_for(current))
    rotation.discard(ctx_for({}, dict(created.handle)), {})
    assert statuses(iam) == {current["access_key_id"]: "Active"}


def test_a_policy_without_the_key_id_is_refused_before_iam(
    aws_env: dict[str, str], iam: Any, current: dict[str, str]
) -> None:
    ctx = RotationContext(
        "apps/production/aws",
        "production",
        {"AWS_SECRET": "secret_access_key"},
        {},
        {"secret_access_key": SecretValue(current["secret_access_key"])},
    )
    with pytest.raises(UsageError, match="apps/production/aws#access_key_id"):
        strategy(aws_env).create(ctx)
    assert statuses(iam) == {current["access_key_id"]: "Active"}


@pytest.mark.parametrize("who", ["unknown key", "another user's key"])
def test_a_key_sts_does_not_tie_to_the_user_fails_the_test(
    aws_env: dict[str, str], iam: Any, current: dict[str, str], who: str
) -> None:
    if who == "unknown key":
        key_id = "testkey" + uuid.uuid4().hex[:12]
    else:
        iam.create_user(UserName="someone-else")
        key_id = iam.create_access_key(UserName="someone-else")["AccessKey"]["AccessKeyId"]
    pending = {"access_key_id": SecretValue(key_id), "secret_access_key": SecretValue("x" * 40)}
    rotation = strategy(aws_env, test_attempts=2, test_delay=0)
    with pytest.raises(RotationTestFailed, match="after 2 attempt") as failure:
        rotation.test(ctx_for(current), pending)
    assert key_id not in str(failure.value)


def test_configuration_errors(aws_env: dict[str, str]) -> None:
    with pytest.raises(UsageError, match="options.user"):
        AwsIamStrategy({}, aws_env)
    with pytest.raises(UsageError, match="NO_SUCH_VAR"):
        AwsIamStrategy({"user": USER, "endpoint_url_env": "NO_SUCH_VAR"}, aws_env)
    with pytest.raises(UsageError, match="on_revoke"):
        strategy(aws_env, on_revoke="shred")


def test_canary_no_value_in_errors_or_handles(
    aws_env: dict[str, str], iam: Any, current: dict[str, str]
) -> None:
    canary = f"canary{uuid.uuid4().hex}"
    rotation = strategy(aws_env, test_attempts=1)
    created = rotation.create(ctx_for(current))
    values = [*current.values(), *plain(created.values).values(), canary]
    texts = [repr(created.handle), repr(created), repr(created.values)]
    assert not set(created.handle.values()) & set(plain(created.values).values())

    forged = {"access_key_id": SecretValue(canary), "secret_access_key": SecretValue(canary)}
    texts += failure_texts(lambda: rotation.test(ctx_for(current), forged))
    texts += failure_texts(lambda: rotation.create(ctx_for(current)))  # at the limit
    missing_user = strategy(aws_env, user="nobody-" + uuid.uuid4().hex[:6])
    texts += failure_texts(lambda: missing_user.create(ctx_for(current)))
    texts += failure_texts(lambda: missing_user.keys.deactivate(current["access_key_id"]))
    for text in texts:
        for value in values:
            assert value not in text
