"""The service fixtures start real servers that clients can use."""

from __future__ import annotations

import boto3
import psycopg

from tests.fixtures_services import MotoEndpoint, PostgresServer


def test_postgres_server_answers_a_query(postgres_server: PostgresServer) -> None:
    with psycopg.connect(postgres_server.dsn()) as connection:
        row = connection.execute("select 1").fetchone()
    assert row == (1,)
    assert postgres_server.host == "127.0.0.1"


def test_postgres_dsn_names_user_and_database(postgres_server: PostgresServer) -> None:
    with psycopg.connect(postgres_server.dsn(), autocommit=True) as connection:
        connection.execute("create role app login")
        connection.execute("create database appdb owner app")
    with psycopg.connect(postgres_server.dsn(user="app", dbname="appdb")) as connection:
        row = connection.execute("select current_user, current_database()").fetchone()
    assert row == ("app", "appdb")


def test_moto_answers_sts(aws_env: dict[str, str]) -> None:
    sts = _client("sts", aws_env)
    assert sts.get_caller_identity()["Account"] == "123456789012"


def test_aws_env_starts_each_test_with_an_empty_moto(
    moto_server: MotoEndpoint, aws_env: dict[str, str]
) -> None:
    iam = _client("iam", aws_env)
    # The user name is fixed: if a previous test's state survived, this create would fail.
    iam.create_user(UserName="fixture-probe")
    assert [u["UserName"] for u in iam.list_users()["Users"]] == ["fixture-probe"]
    assert aws_env["AWS_ENDPOINT_URL"] == moto_server.endpoint_url


def test_aws_env_resets_state_between_tests(aws_env: dict[str, str]) -> None:
    iam = _client("iam", aws_env)
    iam.create_user(UserName="fixture-probe")
    assert len(iam.list_users()["Users"]) == 1


def _client(service: str, env: dict[str, str]):  # type: ignore[no-untyped-def]
    return boto3.client(
        service,
        region_name=env["AWS_DEFAULT_REGION"],
        endpoint_url=env["AWS_ENDPOINT_URL"],
        aws_access_key_id=env["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"],
    )
