"""Applier with in-memory fakes of our own ports: ordering, partial failure, what gets recorded.

(The adapters are proven against real servers elsewhere; this is the engine's logic alone.)
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from envmatrix.audit.events import MemorySink
from envmatrix.errors import GitHubError
from envmatrix.pipeline.apply import Applier
from envmatrix.pipeline.desired import Target
from envmatrix.pipeline.plan import Action, Change, Kind, Plan, Reason
from envmatrix.pipeline.state import SyncState, state_path
from envmatrix.ports import VaultDocument, WriteReceipt
from envmatrix.secret import SecretValue

T = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)
PROD = Target("occ/app", "production", "production")


class FakeVault:
    mount = "secret"

    def __init__(self) -> None:
        self.values = {
            ("apps/production/supabase", 3): {
                "url": SecretValue("u"),
                "service_key": SecretValue("k"),
            }
        }
        self.documents: dict[str, dict[str, Any]] = {}
        self.reads = 0

    def read_values(self, path: str, version: int | None = None) -> dict[str, SecretValue]:
        self.reads += 1
        return dict(self.values[(path, version or 3)])

    def read_document(self, path: str) -> VaultDocument | None:
        data = self.documents.get(path)
        return VaultDocument(path, data, 1) if data is not None else None

    def write_document(self, path: str, data: Mapping[str, Any], cas: int | None = None) -> int:
        self.documents[path] = dict(data)
        return 1


class FakeGitHub:
    def __init__(self, failing: set[str] = frozenset()) -> None:  # type: ignore[assignment]
        self.failing = failing
        self.calls: list[tuple[str, str]] = []
        self.secrets: dict[str, str] = {}

    def _call(self, kind: str, name: str) -> WriteReceipt:
        self.calls.append((kind, name))
        if name in self.failing:
            raise GitHubError(f"PUT .../{name}: 500 Server Error; gave up after 5 attempts", 500)
        return WriteReceipt(T)

    def create_environment(self, repository: str, environment: str) -> WriteReceipt:
        return self._call("environment", environment)

    def list_environment_secrets(self, repository: str, environment: str) -> list[Any]:
        return []  # no read-back: the write's Date header stays the record's time

    def list_repository_secrets(self, repository: str) -> list[Any]:
        return []

    def put_environment_secret(
        self, repository: str, environment: str, name: str, value: SecretValue
    ) -> WriteReceipt:
        receipt = self._call("secret", name)
        self.secrets[name] = value.reveal()
        return receipt

    def set_environment_variable(
        self, repository: str, environment: str, name: str, value: str, exists: bool
    ) -> WriteReceipt:
        return self._call("variable", f"{name}={value}")


def secret(name: str, key: str) -> Change:
    return Change(
        Action.CREATE,
        Kind.SECRET,
        "occ/app",
        "production",
        name,
        Reason.MISSING,
        "",
        logical_environment="production",
        owner="reliability",
        vault_path="apps/production/supabase",
        vault_key=key,
        vault_version=3,
    )


FLAG = Change(
    Action.CREATE,
    Kind.VARIABLE,
    "occ/app",
    "production",
    "FEATURE_AI_ESCALATIONS",
    Reason.FLAG_READY,
    "",
    logical_environment="production",
    value="true",
    requires=("SUPABASE_URL", "SUPABASE_SERVICE_KEY"),
)
ENVIRONMENT = Change(
    Action.CREATE,
    Kind.ENVIRONMENT,
    "occ/app",
    "production",
    "production",
    Reason.MISSING,
    "",
    logical_environment="production",
)
PLAN = Plan(
    (
        ENVIRONMENT,
        secret("SUPABASE_URL", "url"),
        secret("SUPABASE_SERVICE_KEY", "service_key"),
        FLAG,
    )
)


def apply(github: FakeGitHub, vault: FakeVault | None = None) -> tuple[Any, FakeVault, MemorySink]:
    vault = vault or FakeVault()
    audit = MemorySink()
    report = Applier(vault, github, {PROD: SyncState({}, None)}, audit, "tester").apply(PLAN)  # type: ignore[arg-type]
    return report, vault, audit


def test_environment_then_secrets_then_flag_and_state_for_what_landed() -> None:
    github = FakeGitHub()
    report, vault, audit = apply(github)
    assert report.ok and report.summary() == {"written": 4, "failed": 0, "blocked": 0}
    assert github.calls == [
        ("environment", "production"),
        ("secret", "SUPABASE_URL"),
        ("secret", "SUPABASE_SERVICE_KEY"),
        ("variable", "FEATURE_AI_ESCALATIONS=true"),
    ]
    assert github.secrets == {"SUPABASE_URL": "u", "SUPABASE_SERVICE_KEY": "k"}
    assert vault.reads == 1  # one read per (path, version), however many keys
    records = SyncState.from_document(vault.read_document(state_path(PROD))).records
    assert {n: r.vault_version for n, r in records.items()} == {
        "SUPABASE_URL": 3,
        "SUPABASE_SERVICE_KEY": 3,
    }
    assert [e.action for e in audit.events] == [
        "environment.create",
        "secret.put",
        "secret.put",
        "variable.set",
        "state.write",
    ]


def test_a_failed_secret_keeps_the_flag_false_and_out_of_the_state() -> None:
    github = FakeGitHub(failing={"SUPABASE_SERVICE_KEY"})
    report, vault, audit = apply(github)
    assert not report.ok
    failed = {r.change.name: r.error for r in report.failed}
    assert set(failed) == {"SUPABASE_SERVICE_KEY", "FEATURE_AI_ESCALATIONS"}
    assert failed["FEATURE_AI_ESCALATIONS"] == (
        "not set true: SUPABASE_SERVICE_KEY failed to write"
    )
    assert ("variable", "FEATURE_AI_ESCALATIONS=true") not in github.calls
    records = SyncState.from_document(vault.read_document(state_path(PROD))).records
    assert set(records) == {"SUPABASE_URL"}  # only what landed
    assert ("variable.set", "failed") in [(e.action, e.result) for e in audit.events]


def test_an_environment_that_cannot_be_created_fails_its_items_without_writing_them() -> None:
    github = FakeGitHub(failing={"production"})
    report, vault, _ = apply(github)
    assert len(report.failed) == 4
    assert all("environment not created" in (r.error or "") for r in report.failed[1:])
    assert github.calls == [("environment", "production")]
    assert vault.documents == {}


def test_values_are_dropped_after_the_apply() -> None:
    applier = Applier(FakeVault(), FakeGitHub(), {PROD: SyncState({}, None)})  # type: ignore[arg-type]
    applier.apply(PLAN)
    assert applier._values == {}  # noqa: SLF001 - the cache of values must not outlive the run


def test_an_empty_value_in_vault_is_never_written() -> None:
    vault = FakeVault()
    vault.values[("apps/production/supabase", 3)]["service_key"] = SecretValue("")
    github = FakeGitHub()
    report, _, _ = apply(github, vault)
    failed = {r.change.name: r.error for r in report.failed}
    assert failed["SUPABASE_SERVICE_KEY"] == (
        "the value at secret/apps/production/supabase#service_key v3 is empty, not a secret;"
        " not sent — owner: reliability"
    )
    assert "SUPABASE_SERVICE_KEY" not in github.secrets
    assert failed["FEATURE_AI_ESCALATIONS"].startswith("not set true")
