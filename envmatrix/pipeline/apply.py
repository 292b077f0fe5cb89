"""Apply a plan: make GitHub match it, one item at a time, and record what landed.

Apply consumes a plan and never re-diffs. Per target (repository x GitHub environment, or the
repository level for `scope: repository` secrets) it creates the environment if needed, writes
secrets (values read from Vault at exactly the planned version), records the sync state for what
landed, then sets flag variables — a flag becomes `true` only when every secret it requires is
in sync or was written successfully in this apply. A failed item never stops unrelated items;
each result names its cause. `RunStopped` (a Ctrl-C, or the lock lost, raised by a guarded port
before a write) stops the apply there: the report keeps what landed, records the sync state for
it, and lists the writes not attempted.

Progress: `on_start(total)` is called once with the number of planned writes, `on_result(result)`
once per result as it lands (the same results, in the same order, as the report's) — the caller
renders them live; the core never prints.

Concurrency (`write_concurrency` > 1: ENVMATRIX_GITHUB_WRITE_CONCURRENCY, see the GitHub
adapter): targets are applied in a bounded pool, that many at once; inside a target the order
stays (environment created, then protection, secrets, the read-back of their timestamps, the
sync state, flags). Before any write the public keys of the targets whose environments exist are
fetched in the adapter's read pool (`prefetch_public_keys`). Results, audit events and progress
are handed to the calling thread (the audit store and the terminal are not shared between
threads), in the order the writes landed; the report lists them in that order. A stop
(`RunStopped`) in one worker stops the others before their next write; the report keeps what
landed in every target. The GitHub adapter paces all writers together (its write interval) and
holds every thread while a rate limit's Retry-After runs.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta

from envmatrix import failpoints, interrupt
from envmatrix.audit.events import AuditEvent, AuditSink, NullSink
from envmatrix.errors import EnvmatrixError, RunStopped, VaultCasMismatch, VaultUnavailable
from envmatrix.pipeline.desired import REPOSITORY_LEVEL, Target
from envmatrix.pipeline.plan import Action, Change, Kind, Plan, Reason
from envmatrix.pipeline.state import SyncRecord, SyncState, state_path
from envmatrix.ports import GitHubPort, ObservedSecret, VaultPort, WriteReceipt
from envmatrix.secret import SecretValue, absence


@dataclass(frozen=True)
class ItemResult:
    """How one planned write ended."""

    change: Change
    ok: bool
    error: str | None = None

    def to_json(self) -> dict[str, object]:
        return {
            **self.change.to_json(),
            "result": "ok" if self.ok else "failed",
            "error": self.error,
        }


@dataclass(frozen=True)
class ApplyReport:
    """Every attempted write's result, the blocked cells (warnings) and state-write problems."""

    results: tuple[ItemResult, ...]
    blocked: tuple[Change, ...]
    state_errors: tuple[str, ...] = ()
    stopped: str | None = None  # why the apply stopped before its end (RunStopped), if it did
    stop_code: int | None = None  # the exit code that stop asks for (1, 130, 143)
    not_attempted: tuple[Change, ...] = ()  # planned writes never tried because of the stop

    @property
    def failed(self) -> tuple[ItemResult, ...]:
        return tuple(r for r in self.results if not r.ok)

    @property
    def ok(self) -> bool:
        return not self.failed and not self.state_errors and self.stopped is None

    def summary(self) -> dict[str, int]:
        counts = {
            "written": sum(r.ok for r in self.results),
            "failed": len(self.failed),
            "blocked": len(self.blocked),
        }
        if self.stopped is not None:
            counts["not_attempted"] = len(self.not_attempted)
        return counts


@dataclass
class _TargetRun:
    target: Target
    landed: dict[str, SyncRecord] = field(default_factory=dict)
    deleted: set[str] = field(default_factory=set)
    failed: set[str] = field(default_factory=set)
    variables_landed: dict[str, datetime] = field(default_factory=dict)
    variables_deleted: set[str] = field(default_factory=set)


class Applier:
    """Carries out a plan against Vault and GitHub."""

    def __init__(
        self,
        vault: VaultPort,
        github: GitHubPort,
        sync: Mapping[Target, SyncState],
        audit: AuditSink | None = None,
        actor: str = "",
        probe: Callable[[str, str], str | None] | None = None,
        on_result: Callable[[ItemResult], None] | None = None,
        on_start: Callable[[int], None] | None = None,
        transit: tuple[str, str] | None = None,
        write_concurrency: int = 1,
    ) -> None:
        """`transit`: (mount, key) of the Vault transit key whose HMAC of each value written is
        kept in the sync record (`hmac`), or None. `write_concurrency`: targets applied at once
        (1: one after another in the calling thread)."""
        self._vault, self._github, self._sync = vault, github, sync
        self._on_result, self._on_start = on_result, on_start
        self._transit = transit
        self._probe = probe  # (kind, logical environment) -> None when it passed, else why not
        self._audit = audit or NullSink()
        self._actor = actor
        self._values: dict[tuple[str, int], dict[str, SecretValue]] = {}
        self._vault_down: VaultUnavailable | None = None
        self._emitted: list[ItemResult] = []  # every result so far, for a report cut short
        self._write_concurrency = max(1, write_concurrency)
        self._values_lock = threading.Lock()
        self._outbox: queue.Queue[Callable[[], None] | None] | None = None  # workers -> caller
        self._stopping: RunStopped | None = None  # a worker's stop: the others stop too

    def apply(self, plan: Plan) -> ApplyReport:
        """Carry out every write of the plan, target by target; never raises for one item."""
        self._emitted = []
        if self._on_start is not None:
            self._on_start(len(plan.writes))
        try:
            with interrupt.writing():  # Ctrl-C now stops before the next write, not inside one
                return self._apply_all(plan)
        finally:
            self._values.clear()  # values live no longer than the apply

    def _apply_all(self, plan: Plan) -> ApplyReport:
        groups = _by_target(plan.writes)
        self._prefetch_keys(groups)
        if self._write_concurrency > 1 and len(groups) > 1:
            return self._apply_parallel(plan, groups)
        results: list[ItemResult] = []
        state_errors: list[str] = []
        for target, changes in groups:
            run = _TargetRun(target)
            stop: RunStopped | None = None
            try:
                results.extend(self._apply_target(run, changes))
            except RunStopped as exc:
                stop = exc
            if stop is None:
                self._read_back_times(run)
            if (error := self._record_state(run)) is not None:
                state_errors.append(error)
            if stop is not None:
                return _stopped_report(plan, self._emitted, tuple(state_errors), stop)
        return ApplyReport(tuple(results), plan.blocked, tuple(state_errors))

    def _prefetch_keys(self, groups: list[tuple[Target, list[Change]]]) -> None:
        """Fetch, in the adapter's read pool, the public keys the secret PUTs will need (not
        for environments this apply creates: they have no key yet)."""
        prefetch = getattr(self._github, "prefetch_public_keys", None)
        if not callable(prefetch):
            return
        wanted = [
            (target.repository, target.github_environment)
            for target, changes in groups
            if any(c.kind is Kind.SECRET and c.action is not Action.DELETE for c in changes)
            and not any(c.kind is Kind.ENVIRONMENT and c.protection is None for c in changes)
        ]
        if wanted:
            prefetch(wanted)

    def _apply_parallel(self, plan: Plan, groups: list[tuple[Target, list[Change]]]) -> ApplyReport:
        """The targets in a pool of `write_concurrency` workers; their results, audit events
        and progress delivered here, in the calling thread, as they land."""
        outbox: queue.Queue[Callable[[], None] | None] = queue.Queue()
        self._outbox, self._stopping = outbox, None
        state_errors: list[str] = []
        failures: list[BaseException] = []

        def one(target: Target, changes: list[Change]) -> None:
            try:
                if self._stopping is None:
                    error = self._target_in_worker(target, changes)
                    if error is not None:
                        outbox.put(lambda: state_errors.append(error))
            except BaseException as exc:  # a bug, not an item's failure: raised below
                failures.append(exc)
            finally:
                outbox.put(None)  # this target is done

        workers = min(self._write_concurrency, len(groups))
        try:
            with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="apply") as pool:
                for target, changes in groups:
                    pool.submit(one, target, changes)
                self._drain(outbox, len(groups))
        finally:
            self._outbox = None
        if failures:
            raise failures[0]
        if self._stopping is not None:
            return _stopped_report(plan, self._emitted, tuple(state_errors), self._stopping)
        return ApplyReport(tuple(self._emitted), plan.blocked, tuple(state_errors))

    def _drain(self, outbox: queue.Queue[Callable[[], None] | None], targets: int) -> None:
        """Run what the workers hand over until all `targets` are done."""
        done = 0
        try:
            while done < targets:
                delivery = outbox.get()
                if delivery is None:
                    done += 1
                else:
                    delivery()
        except BaseException:  # a second Ctrl-C: the workers stop before their next write
            self._stopping = self._stopping or RunStopped("apply abandoned")
            raise

    def _target_in_worker(self, target: Target, changes: list[Change]) -> str | None:
        """One target in a worker thread: its writes in order, the read-back, its sync state;
        the state error, if any. A stop is kept for every worker to see."""
        run = _TargetRun(target)
        try:
            self._apply_target(run, changes)
        except RunStopped as exc:
            if self._stopping is None:
                self._stopping = exc
        else:
            self._read_back_times(run)
        return self._record_state(run)

    def _deliver(self, action: Callable[[], None]) -> None:
        """Run `action` now (serial apply), or hand it to the calling thread (a worker)."""
        if self._outbox is None:
            action()
        else:
            self._outbox.put(action)

    def _apply_target(self, run: _TargetRun, changes: list[Change]) -> list[ItemResult]:
        creates = [c for c in changes if c.kind is Kind.ENVIRONMENT and c.protection is None]
        results = [self._environment(c) for c in creates]
        failpoints.hit("apply.after-environment")
        if results and not results[0].ok:
            cause = f"environment not created: {results[0].error}"
            skipped = [
                ItemResult(c, False, cause)
                for c in changes
                if c.kind is not Kind.ENVIRONMENT or c.protection is not None
            ]
            for result in skipped:
                self._landed(result)
            return results + skipped
        results += [self._protection(c) for c in changes if c.protection is not None]
        results += [self._secret(run, c) for c in changes if c.kind is Kind.SECRET]
        results += [self._variable(run, c) for c in changes if c.kind is Kind.VARIABLE]
        return results

    def _environment(self, change: Change) -> ItemResult:
        return self._attempt(
            change,
            "environment.create",
            lambda: self._github.create_environment(change.repository, _env(change)),
        )

    def _protection(self, change: Change) -> ItemResult:
        """One PUT with the whole protection, then the custom patterns to add and delete."""
        write = change.protection
        assert write is not None
        repository, environment = change.repository, _env(change)

        def converge() -> None:
            self._github.put_environment_protection(repository, environment, write.settings)
            for pattern in write.add_patterns:
                self._github.create_deployment_branch_policy(repository, environment, pattern)
            for policy in write.delete_patterns:
                self._github.delete_deployment_branch_policy(repository, environment, policy.id)

        return self._attempt(change, "environment.protect", converge)

    def _secret(self, run: _TargetRun, change: Change) -> ItemResult:
        if change.action is Action.DELETE:
            result = self._attempt(change, "secret.delete", lambda: self._delete_secret(change))
            if result.ok:
                run.deleted.add(change.name)
            return result
        receipt: list[WriteReceipt] = []

        def put() -> WriteReceipt:
            value = self._value(change)
            failpoints.hit("apply.before-put")
            receipt.append(self._put_secret(change, value))
            failpoints.hit("apply.after-put")
            return receipt[0]

        result = self._attempt(change, "secret.put", put)
        if result.ok:
            run.landed[change.name] = _record(change, receipt[0])
        else:
            run.failed.add(change.name)
        return result

    def _put_secret(self, change: Change, value: SecretValue) -> WriteReceipt:
        if change.scope == "organization":
            return self._github.put_organization_secret(
                change.repository,
                change.name,
                value,
                change.visibility or "private",
                self._repository_ids(change),
                change.store or "actions",
            )
        if change.store == "dependabot":
            return self._github.put_dependabot_secret(change.repository, change.name, value)
        if change.environment is None:  # repository level
            return self._github.put_repository_secret(change.repository, change.name, value)
        return self._github.put_environment_secret(
            change.repository, change.environment, change.name, value
        )

    def _repository_ids(self, change: Change) -> list[int]:
        """The ids of an organization copy's selected repositories (looked up once per run)."""
        ids: list[int] = []
        for repository in change.selected_repositories:
            found = self._github.repository_id(repository)
            if found is None:
                raise EnvmatrixError(
                    f"selected repository {repository} of {change.name} does not exist"
                    f" (GET /repos/{repository}: 404) — owner: {change.owner}"
                )
            ids.append(found)
        return ids

    def _delete_secret(self, change: Change) -> WriteReceipt:
        if change.scope == "organization":
            return self._github.delete_organization_secret(
                change.repository, change.name, change.store or "actions"
            )
        if change.store == "dependabot":
            return self._github.delete_dependabot_secret(change.repository, change.name)
        if change.environment is None:  # repository level
            return self._github.delete_repository_secret(change.repository, change.name)
        return self._github.delete_environment_secret(
            change.repository, change.environment, change.name
        )

    def _variable(self, run: _TargetRun, change: Change) -> ItemResult:
        if change.reason not in (Reason.FLAG_READY, Reason.FLAG_NOT_READY):
            return self._plain_variable(run, change)
        refusal = self._refusal(run, change) if change.value == "true" else None
        if refusal is not None:
            result = ItemResult(change, False, f"not set true: {refusal}")
            self._emit(change, "variable.set", result)
            return result
        result = self._attempt(
            change,
            "variable.set",
            lambda: self._github.set_environment_variable(
                change.repository,
                _env(change),
                change.name,
                change.value or "",
                exists=change.action is Action.UPDATE,
            ),
        )
        failpoints.hit("apply.after-variable")
        return result

    def _plain_variable(self, run: _TargetRun, change: Change) -> ItemResult:
        """A declared variable: set from the policy's literal or Vault's value, or deleted."""
        if change.action is Action.DELETE:
            result = self._attempt(change, "variable.delete", lambda: self._delete_variable(change))
            if result.ok:
                run.variables_deleted.add(change.name)
            return result
        receipt: list[WriteReceipt] = []

        def put() -> WriteReceipt:
            value = change.value if change.value is not None else self._value(change).reveal()
            receipt.append(self._set_variable(change, value))
            return receipt[0]

        result = self._attempt(change, "variable.set", put)
        if result.ok:
            run.variables_landed[change.name] = receipt[0].server_time
        return result

    def _set_variable(self, change: Change, value: str) -> WriteReceipt:
        exists = change.action is Action.UPDATE
        if change.scope == "organization":
            return self._github.set_organization_variable(
                change.repository,
                change.name,
                value,
                change.visibility or "private",
                self._repository_ids(change),
                exists=exists,
            )
        if change.environment is None:  # repository level
            return self._github.set_repository_variable(
                change.repository, change.name, value, exists=exists
            )
        return self._github.set_environment_variable(
            change.repository, change.environment, change.name, value, exists=exists
        )

    def _delete_variable(self, change: Change) -> WriteReceipt:
        if change.scope == "organization":
            return self._github.delete_organization_variable(change.repository, change.name)
        if change.environment is None:  # repository level
            return self._github.delete_repository_variable(change.repository, change.name)
        return self._github.delete_environment_variable(
            change.repository, change.environment, change.name
        )

    def _refusal(self, run: _TargetRun, change: Change) -> str | None:
        """Why a flag must not become true now: a required secret failed, or its probe fails."""
        waiting = sorted(set(change.requires) & run.failed)
        if waiting:
            return f"{', '.join(waiting)} failed to write"
        if change.probe and self._probe is not None:
            failure = self._probe(change.probe, change.logical_environment or "")
            return f"probe {change.probe} failed: {failure}" if failure else None
        return None

    def _value(self, change: Change) -> SecretValue:
        assert change.vault_path and change.vault_key and change.vault_version
        cache_key = (change.vault_path, change.vault_version)
        with self._values_lock:  # one Vault read per path and version, whatever the workers
            if cache_key not in self._values:
                values = self._read_values(change.vault_path, change.vault_version)
                self._values[cache_key] = values
            values = self._values[cache_key]
        if change.vault_key not in values:
            raise EnvmatrixError(
                f"key {change.vault_key} is not in {change.vault_path} v{change.vault_version}"
            )
        why = absence(values[change.vault_key])
        if why is not None:
            # an empty secret is what GitHub substitutes for a missing one: never write it
            raise EnvmatrixError(
                f"the value at {self._vault.mount}/{change.vault_path}#{change.vault_key}"
                f" v{change.vault_version} is {why}, not a secret; not sent — owner: {change.owner}"
            )
        return values[change.vault_key]

    def _read_values(self, path: str, version: int) -> dict[str, SecretValue]:
        # sealed or down: the adapter already retried; the next items fail at once, same cause
        if self._vault_down is not None:
            raise VaultUnavailable(str(self._vault_down))
        try:
            return self._vault.read_values(path, version)
        except VaultUnavailable as exc:
            self._vault_down = exc
            raise

    def _attempt(self, change: Change, action: str, write: Callable[[], object]) -> ItemResult:
        try:
            if self._stopping is not None:  # another worker stopped: so does this one
                raise self._stopping
            interrupt.check()
            write()
            result = ItemResult(change, True)
        except RunStopped:
            raise  # not this item's failure: the whole apply stops here
        except EnvmatrixError as exc:
            result = ItemResult(change, False, str(exc))
        self._emit(change, action, result)
        return result

    def _emit(self, change: Change, action: str, result: ItemResult) -> None:
        where = (
            change.repository
            if change.environment is None
            else (f"{change.repository}/{change.environment}")
        )
        if change.scope == "organization":
            where = f"orgs/{where}"
        if change.store == "dependabot":
            where += "/dependabot"
        target = f"github:{where}/{change.name}"
        self._landed(result)
        event = AuditEvent(
            action,
            target,
            "ok" if result.ok else "failed",
            self._actor,
            change.vault_version,
            result.error or "",
        )
        self._deliver(lambda: self._audit.record(event))

    def _read_back_times(self, run: _TargetRun) -> None:
        """Record each landed write at the `updated_at` GitHub gave it, not the response's Date.

        Both have one-second resolution, and the Date header is taken when the response leaves
        (a second or more after the write on a slow answer, and from another server's clock).
        Plan calls a copy changed outside when its `updated_at` is strictly after the recorded
        second, so the earlier, write-own second narrows the blind spot to that second alone.
        A read-back that fails or shows a time outside [Date - READ_BACK_WINDOW, Date] (a stale
        listing, or somebody's write after ours) keeps the Date header.
        """
        if not run.landed:
            return
        try:
            listed = self._list_secrets(run.target)
        except EnvmatrixError:
            return
        for name, record in list(run.landed.items()):
            secret = listed.get(name)
            if secret is not None and _own_write(secret.updated_at, record.written_at):
                run.landed[name] = replace(record, written_at=secret.updated_at)

    def _list_secrets(self, target: Target) -> dict[str, ObservedSecret]:
        if target.organization and target.store == "dependabot":
            found = self._github.list_dependabot_organization_secrets(target.repository)
        elif target.organization:
            found = self._github.list_organization_secrets(target.repository)
        elif target.store == "dependabot":
            found = self._github.list_dependabot_secrets(target.repository)
        elif target.github_environment is None:
            found = self._github.list_repository_secrets(target.repository)
        else:
            found = self._github.list_environment_secrets(
                target.repository, target.github_environment
            )
        return {s.name: s for s in found}

    def _landed(self, result: ItemResult) -> None:
        """Keep a result for a report cut short and tell the caller it landed."""

        def keep() -> None:
            self._emitted.append(result)
            if self._on_result is not None:
                self._on_result(result)

        self._deliver(keep)

    def _record_state(self, run: _TargetRun) -> str | None:
        """Write the sync state for what landed; None, or the one-line cause of failure."""
        if not (run.landed or run.deleted or run.variables_landed or run.variables_deleted):
            return None
        path = state_path(run.target)
        before = self._sync.get(run.target, SyncState({}, None))
        where = f"{run.target.repository}/{run.target.github_environment or REPOSITORY_LEVEL}"
        unfingerprinted = self._fingerprint(run)
        failpoints.hit("apply.before-state")
        try:
            self._write_state(path, before, run)
        except EnvmatrixError as exc:
            return f"sync state for {where} not saved: {exc}"
        if unfingerprinted is not None:
            return f"value fingerprints for {where} not recorded: {unfingerprinted}"
        failpoints.hit("apply.after-state")
        event = AuditEvent("state.write", f"vault:{self._vault.mount}/{path}", "ok", self._actor)
        self._deliver(lambda: self._audit.record(event))
        return None

    def _fingerprint(self, run: _TargetRun) -> str | None:
        """Put the transit HMAC of each landed value into its record (one batched call per
        target); None, or why not (the records are then kept without `hmac`)."""
        if self._transit is None or not run.landed:
            return None
        names = sorted(run.landed)
        try:
            values = [self._landed_value(run.landed[name]) for name in names]
            hmacs = self._vault.transit_hmac(*self._transit, values)
        except EnvmatrixError as exc:
            return str(exc)
        for name, hmac in zip(names, hmacs, strict=True):
            run.landed[name] = replace(run.landed[name], hmac=hmac)
        return None

    def _landed_value(self, record: SyncRecord) -> SecretValue:
        """The value a landed record was written from (read once per apply, kept in memory)."""
        key = (record.vault_path, record.vault_version)
        with self._values_lock:
            if key not in self._values:
                self._values[key] = self._read_values(record.vault_path, record.vault_version)
            return self._values[key][record.vault_key]

    def _write_state(self, path: str, before: SyncState, run: _TargetRun) -> None:
        deleted = frozenset(run.deleted)
        variables = (run.variables_landed, frozenset(run.variables_deleted))
        try:
            after = before.with_changes(run.landed, deleted).with_variables(*variables)
            self._vault.write_document(path, after.to_document(), cas=before.version or 0)
        except VaultCasMismatch:
            # someone recorded other secrets meanwhile: merge ours into the latest document once
            # (other policies' records included): ours, and our adoptions, are re-applied to it
            mine = [n for n, p in before.managed_by.items() if p == before.policy]
            latest = SyncState.from_document(self._vault.read_document(path))
            after = latest.claimed_by(before.policy, mine).with_changes(run.landed, deleted)
            after = after.with_variables(*variables)
            self._vault.write_document(path, after.to_document(), cas=latest.version or 0)


READ_BACK_WINDOW = timedelta(seconds=5)


def _own_write(updated_at: datetime, date_header: datetime) -> bool:
    """Whether a read-back `updated_at` can be envmatrix's own write answered at `date_header`."""
    return date_header - READ_BACK_WINDOW <= updated_at <= date_header


def _env(change: Change) -> str:
    assert change.environment is not None
    return change.environment


def _record(change: Change, receipt: WriteReceipt) -> SyncRecord:
    assert change.vault_path and change.vault_key and change.vault_version
    return SyncRecord(
        change.vault_path, change.vault_key, change.vault_version, receipt.server_time
    )


def _stopped_report(
    plan: Plan, attempted: list[ItemResult], state_errors: tuple[str, ...], stop: RunStopped
) -> ApplyReport:
    """What landed and what did not when a RunStopped ended the apply early."""
    tried = {id(result.change) for result in attempted}
    left = tuple(c for c in plan.writes if id(c) not in tried)
    return ApplyReport(
        tuple(attempted), plan.blocked, state_errors, str(stop), int(stop.exit_code), left
    )


def _by_target(changes: Iterable[Change]) -> list[tuple[Target, list[Change]]]:
    groups: dict[Target, list[Change]] = {}
    for change in changes:
        groups.setdefault(change.target, []).append(change)
    return list(groups.items())
