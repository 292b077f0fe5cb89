"""The rotation engine: one journaled state machine that every strategy plugs into.

For a rotation group (the secrets at one Vault path, see rotation/groups.py) it takes the lock by
creating the group's journal, then: create the new credential (strategy), stage it in Vault at
envmatrix/pending/<path>, set and test it (strategy), promote it (the merged values become the
path's new current version, check-and-set against the version the rotation began from), sync it
to every GitHub copy with envmatrix's own apply, and after the grace period revoke the previous
credential (strategy). Each step is journaled (check-and-set) before the next begins, and a
failpoint `rotation.after=<step>` follows each journal write, so a crash anywhere resumes from
the journal with `resume`. Rollback, within grace, makes the previous version current again,
re-syncs it and discards the new credential.

Failure policy: a strategy failure or a lost race before cut-over abandons the rotation (the new
credential is discarded, the journal says `failed`, GitHub never saw it). Any other failure (Vault
or GitHub down, a partial sync, a revoke that failed) leaves the journal where it is, to resume.
No value is ever put in a journal, an outcome, an audit event or an error message.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

from envmatrix import failpoints, interrupt
from envmatrix.actor import actor_identity, holder_identity
from envmatrix.audit.events import AuditEvent, AuditSink, NullSink
from envmatrix.errors import (
    AwaitingOwner,
    EnvmatrixError,
    LockHeldError,
    RunStopped,
    RuntimeFailure,
    StrategyFailed,
    UsageError,
    VaultNotFound,
)
from envmatrix.guard import guard_writes, run_checks
from envmatrix.lock import ApplyLock
from envmatrix.pipeline.apply import ApplyReport, ItemResult
from envmatrix.pipeline.plan import Action
from envmatrix.pipeline.sync import Probe, remove_copies, sync_cells, sync_flags
from envmatrix.policy import Policy
from envmatrix.ports import GitHubPort, VaultPort
from envmatrix.rotation.groups import RotationGroup, group_at, rotating_paths
from envmatrix.rotation.journal import (
    JournalEntry,
    JournalStore,
    RotationJournal,
    Step,
    pending_path,
)
from envmatrix.rotation.strategies import StrategySettings, get_strategy
from envmatrix.rotation.strategies.base import RotationContext, Strategy, skip_reason
from envmatrix.secret import SecretValue, absence
from envmatrix.timefmt import iso_utc, parse_duration

Clock = Callable[[], datetime]
APPLY_LOCK_TIMEOUT = 60.0  # seconds a sync waits for a running apply to finish

AUDIT_ACTIONS = {
    Step.STARTED: "rotation.start",
    Step.CREATED: "rotation.create",
    Step.STAGED: "rotation.stage",
    Step.TESTED: "rotation.test",
    Step.PROMOTED: "rotation.promote",
    Step.SYNCED: "rotation.sync",
    Step.REVOKED: "rotation.revoke",
    Step.DONE: "rotation.done",
    Step.ROLLING_BACK: "rotation.rollback-start",
    Step.ROLLED_BACK: "rotation.rollback",
    Step.FAILED: "rotation.abandon",
}


def _now() -> datetime:
    return datetime.now(UTC)


def _stamp(moment: datetime | None) -> str:
    return iso_utc(moment) if moment else "-"


class _Abandon(RuntimeFailure):
    """The rotation cannot go on before cut-over; discard the new credential."""


@dataclass(frozen=True)
class StepResult:
    """One step as the user sees it: ✓/✗ (– when skipped), the step, one line of detail.

    `skipped`: the step does not apply to the strategy (nothing to test or revoke against);
    `detail` then says why. A skipped step is `ok` (the rotation goes on) but did nothing.
    """

    step: str
    ok: bool
    detail: str = ""
    skipped: bool = False


@dataclass
class RotationOutcome:
    """How the rotation of one group ended (or where it stopped)."""

    path: str
    environments: tuple[str, ...]
    secrets: tuple[str, ...]
    strategy: str
    result: str = (
        "failed"  # done | in-grace | rolled-back | failed | nothing-to-resume | needs-owner
    )
    message: str = ""
    rotation_id: str | None = None
    previous_version: int | None = None
    new_version: int | None = None
    grace_until: datetime | None = None
    steps: list[StepResult] = field(default_factory=list)
    repository_level: bool = False  # the group's copies include Actions repository secrets

    @property
    def ok(self) -> bool:
        return self.result not in ("failed", "needs-owner")

    def to_json(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "environments": list(self.environments),
            "secrets": list(self.secrets),
            "strategy": self.strategy,
            "result": self.result,
            "message": self.message,
            "rotation_id": self.rotation_id,
            "previous_version": self.previous_version,
            "new_version": self.new_version,
            "grace_until": _stamp(self.grace_until) if self.grace_until else None,
            "steps": [
                {"step": s.step, "ok": s.ok, "detail": s.detail, "skipped": s.skipped}
                for s in self.steps
            ],
            "repository_level": self.repository_level,
        }


@dataclass
class _Run:
    """One rotation in progress in this process."""

    group: RotationGroup
    strategy: Strategy
    entry: JournalEntry
    outcome: RotationOutcome
    pending: dict[str, SecretValue] | None = None  # new values, once known in this process
    stop: bool = False

    @property
    def journal(self) -> RotationJournal:
        return self.entry.journal


class RotationEngine:
    """Rotates groups against one Vault mount and GitHub, journaling every step."""

    def __init__(
        self,
        policy: Policy,
        vault: VaultPort,
        github: GitHubPort,
        *,
        settings: StrategySettings | None = None,
        audit: AuditSink | None = None,
        clock: Clock = _now,
        on_step: Callable[[RotationGroup, StepResult], None] | None = None,
        actor: str | None = None,
        on_write: Callable[[ItemResult], None] | None = None,
        on_writes: Callable[[int], None] | None = None,
        apply_lock_timeout: float = APPLY_LOCK_TIMEOUT,
        probe: Probe | None = None,
    ) -> None:
        self.policy, self.vault, self.github = policy, vault, github
        self.settings = settings or StrategySettings()
        self.audit = audit or NullSink()
        self.clock = clock
        self.on_step = on_step
        self.on_write, self.on_writes = on_write, on_writes  # the sync step's GitHub writes
        self.actor = actor or actor_identity(vault)
        self.store = JournalStore(vault)
        self.apply_lock_timeout = apply_lock_timeout
        self.probe = probe  # the live checks a flag may require before it turns true

    # -- the three entry points -----------------------------------------------------------------

    def rotate(self, group: RotationGroup, force: bool = False) -> RotationOutcome:
        """Rotate a group from scratch (finishing a previous rotation whose grace is over).

        `force` (`rotate --force`, an emergency: the current credential leaked) rotates even
        inside a grace period, with no grace of its own: the leaked credential and a previous
        one still in its grace are both revoked once the new one is synced (see `_revoke`).
        """
        outcome = _outcome(group)
        try:
            existing = self._settle_previous(group, outcome, force)
            run = self._begin(group, existing, outcome, force)
        except EnvmatrixError as exc:
            return self._failed(group, outcome, "start", str(exc))
        return self._drive(run)

    def resume(self, group: RotationGroup) -> RotationOutcome:
        """Finish the group's interrupted rotation from its journal."""
        outcome = _outcome(group)
        entry = self.store.read(group.path)
        if entry is None or entry.journal.step.terminal:
            outcome.result = "nothing-to-resume"
            outcome.message = f"no rotation of {group.path} in progress; nothing to resume"
            return outcome
        return self._drive(self._attach(group, entry, outcome))

    def rollback(self, group: RotationGroup) -> RotationOutcome:
        """Within grace: make the previous version current again, re-sync, discard the new one."""
        outcome = _outcome(group)
        try:
            entry = self._rollback_entry(group)
            run = self._attach(group, entry, outcome)
            if run.journal.step is not Step.ROLLING_BACK:
                self._advance(run, Step.ROLLING_BACK, f"from v{run.journal.new_version}")
        except EnvmatrixError as exc:
            return self._failed(group, outcome, "rollback", str(exc))
        return self._drive(run)

    def finish_grace(self, group: RotationGroup) -> RotationOutcome | None:
        """Revoke the previous credential if the grace is over (`rotate --due`); None if idle."""
        entry = self.store.read(group.path)
        if entry is None or entry.journal.step.terminal:
            return None
        outcome = _outcome(group)
        if entry.journal.step in (Step.SYNCED, Step.REVOKED) and not self._grace_over(
            entry.journal
        ):
            return None
        if entry.journal.left_half_way and entry.journal.holder_lost(self.clock()):
            # its runner died (or its lease ran out): finish it, as --resume would
            return self._drive(self._attach(group, entry, outcome))
        if entry.journal.step not in (Step.SYNCED, Step.REVOKED):
            return self._failed(
                group,
                outcome,
                "start",
                entry.journal.held_message() + f"; finish it with {_resume_command(entry.journal)}",
            )
        return self._drive(self._attach(group, entry, outcome))

    # -- starting -------------------------------------------------------------------------------

    def _settle_previous(
        self, group: RotationGroup, outcome: RotationOutcome, force: bool = False
    ) -> JournalEntry | None:
        """The finished journal to begin over (a rotation past its grace is finished first).

        With `force`, a rotation in its grace (or revoked but not marked done) is begun over
        as it is: the new rotation revokes its previous credential too.
        """
        entry = self.store.read(group.path)
        if entry is None or entry.journal.step.terminal:
            return entry
        journal = entry.journal
        if force and journal.step in (Step.SYNCED, Step.REVOKED):
            return entry
        if journal.step in (Step.SYNCED, Step.REVOKED) and self._grace_over(journal):
            finished = self._drive(self._attach(group, entry, outcome))
            if not finished.ok:
                raise RuntimeFailure(f"the previous rotation of {group.path} could not be finished")
            return self.store.read(group.path)
        if journal.step is Step.SYNCED:
            raise RuntimeFailure(
                f"{group.path}: the previous credential is in its grace period until"
                f" {_stamp(journal.grace_until)}; rotate again after that, or undo with --rollback"
            )
        raise LockHeldError(f"{journal.held_message()}; finish it with {_resume_command(journal)}")

    def _begin(
        self,
        group: RotationGroup,
        over: JournalEntry | None,
        outcome: RotationOutcome,
        force: bool = False,
    ) -> _Run:
        now = self.clock()
        in_grace = over.journal if over and over.journal.step is Step.SYNCED else None
        journal = RotationJournal(
            id=uuid.uuid4().hex,
            path=group.path,
            environment=group.environment,
            environments=group.environments,
            secrets=tuple(group.keys),
            strategy=group.spec.strategy,
            step=Step.STARTED,
            holder=holder_identity(self.actor),
            started_at=now,
            updated_at=now,
            previous_version=self.vault.read_entry(group.path).version,
            grace=None if force else group.spec.grace,
            history={Step.STARTED.value: _stamp(now)},
            forced=force,
            retire_version=in_grace.previous_version if force and in_grace else None,
        )
        strategy = self._strategy(group)
        if journal.previous_version is not None:
            self._check_versions_kept(group)
        entry = self.store.begin(journal, over)
        run = _Run(group, strategy, entry, outcome)
        detail = f"lock taken by {self.actor}"
        if force:
            detail += "; forced (emergency): no grace, the current credential is retired"
        self._reached(run, Step.STARTED, detail)
        return run

    def _attach(self, group: RotationGroup, entry: JournalEntry, outcome: RotationOutcome) -> _Run:
        return _Run(group, self._strategy(group), entry, outcome)

    def _strategy(self, group: RotationGroup) -> Strategy:
        settings = self.settings
        if settings.read_secret is None:
            settings = replace(settings, read_secret=self._read_secret)
        return get_strategy(group.spec.strategy, group.spec.options, settings)

    def _read_secret(self, name: str, environment: str | None) -> SecretValue:
        """A policy secret's current value in Vault (e.g. a strategy's admin credential)."""
        spec = self.policy.secrets.get(name)
        if spec is None:
            raise UsageError(f"{name} is not a secret of the policy")
        path = spec.vault_path(environment or "")
        value = self.vault.read_values(path).get(spec.vault_key(name))
        if value is None or absence(value) is not None:
            raise UsageError(f"{name} has no value at {self.vault.mount}/{path}")
        return value

    def _rollback_entry(self, group: RotationGroup) -> JournalEntry:
        entry = self.store.read(group.path)
        journal = entry.journal if entry else None
        if entry is None or journal is None or journal.step.terminal:
            done = f" (last rotation {journal.step.value})" if journal else ""
            raise RuntimeFailure(
                f"{group.path}: no rotation within its grace period to roll back{done}"
            )
        if journal.step.before_cutover:
            raise RuntimeFailure(
                f"{group.path}: rotation {journal.id} was not promoted yet; "
                "nothing to roll back (finish it with --resume)"
            )
        if journal.step is Step.REVOKED or (
            journal.step is Step.SYNCED and self._grace_over(journal)
        ):
            raise RuntimeFailure(
                f"{group.path}: the grace period ended {_stamp(journal.grace_until)};"
                " the previous credential is revoked or due to be, so no rollback"
            )
        return entry  # a first-ever rotation (no previous version) rolls back to no value

    # -- the state machine ----------------------------------------------------------------------

    def _drive(self, run: _Run) -> RotationOutcome:
        handlers: dict[Step, Callable[[_Run], None]] = {
            Step.STARTED: self._create,
            Step.CREATED: self._stage,
            Step.STAGED: self._test,
            Step.TESTED: self._promote,
            Step.PROMOTED: self._sync,
            Step.SYNCED: self._revoke,
            Step.REVOKED: self._done,
            Step.ROLLING_BACK: self._roll_back,
        }
        while not run.stop and not run.journal.step.terminal:
            step = run.journal.step
            try:
                interrupt.check()  # Ctrl-C: stop between steps; the journal says where
                self._step(run, handlers[step])
            except EnvmatrixError as exc:
                return self._stopped(run, exc)
        return self._finished(run)

    def _step(self, run: _Run, handler: Callable[[_Run], None]) -> None:
        """One step; a strategy failure or lost race before cut-over abandons the rotation."""
        step = run.journal.step
        try:
            handler(run)
        except (StrategyFailed, _Abandon) as exc:
            if not step.before_cutover:
                raise
            self._abandon(run, exc)

    def _create(self, run: _Run) -> None:
        current = self._values_at(run.group.path, run.journal.previous_version)
        if run.journal.forced:
            self._before_provider(run, "emergency", current)
        self._before_provider(run, "intent", current)
        ctx = self._context(run, current, {"rotation_id": run.journal.id})
        created = self._call(run, "create", lambda: run.strategy.create(ctx))
        _check_created(run, created.values, created.handle)
        run.pending = dict(created.values)
        self._advance(
            run,
            Step.CREATED,
            f"new credential from {run.strategy.name}",
            handle={**run.journal.handle, **created.handle},
        )

    def _before_provider(self, run: _Run, hook: str, current: Mapping[str, SecretValue]) -> None:
        """Run a strategy's optional `intent`/`emergency` step once and journal its handle.

        `intent` returns what the strategy must know to recognise, after a crash inside
        `create`, what that create left at the provider (e.g. the access keys that existed
        before); it is journaled before the provider is called. `emergency` (forced rotations)
        retires the leaked credential first where the provider needs room for the new one.
        """
        action = getattr(run.strategy, hook, None)
        if action is None or f"{hook}_done" in run.journal.handle:
            return
        ctx = self._context(run, current, {"rotation_id": run.journal.id})
        noted = self._call(run, hook, lambda: action(ctx)) or {}
        handle = {**run.journal.handle, **{str(k): str(v) for k, v in noted.items()}}
        handle[f"{hook}_done"] = "yes"
        journal = run.journal.at(
            Step.STARTED, self.clock(), holder=holder_identity(self.actor), handle=handle
        )
        run.entry = self.store.advance(run.entry, journal)

    def _stage(self, run: _Run) -> None:
        if run.pending is None:
            # the values were lost with the process that created them: discard that credential
            # (the journal has its handle) and mint another one
            previous = self._previous_context(run)
            self._call(run, "discard", lambda: run.strategy.discard(previous, {}))
            self._create(run)
            assert run.pending is not None
        pending = pending_path(run.group.path)
        # with cas, so a mount with cas_required=true stages too (a leftover of a crashed run,
        # or a deleted one, is written over at the version Vault holds)
        self.vault.write_values(
            pending, run.pending, cas=self.vault.read_entry(pending).version or 0
        )
        self._advance(run, Step.STAGED, f"pending in Vault at {pending_path(run.group.path)}")

    def _test(self, run: _Run) -> None:
        pending = self._pending(run)
        ctx = self._context(run, self._values_at(run.group.path, run.journal.previous_version))
        self._call(run, "set", lambda: run.strategy.set(ctx, pending))
        self._call(run, "test", lambda: run.strategy.test(ctx, pending))
        skipped = skip_reason(run.strategy, "test")
        confirmed = "; ".join(getattr(run.strategy, "confirmed", ()))  # manual: its probes
        detail = skipped or confirmed or "the new credential works"
        self._advance(run, Step.TESTED, detail, skipped=skipped is not None)

    def _promote(self, run: _Run) -> None:
        pending, previous = self._pending(run), run.journal.previous_version
        current = self.vault.read_entry(run.group.path).version
        if current == previous:
            merged = {**self._values_at(run.group.path, previous), **pending}
            version = self.vault.write_values(run.group.path, merged, cas=previous or 0)
            failpoints.hit("rotation.promote", "vault-written")  # before the journal knows
        elif current is not None and self._holds(run.group.path, current, pending):
            version = current  # promoted before a crash, not yet journaled
        else:
            raise _Abandon(
                f"Vault {run.group.path} changed since the rotation began "
                f"(v{previous} -> v{current}); nothing was synced"
            )
        self._advance(
            run,
            Step.PROMOTED,
            f"Vault {run.group.path} v{previous} -> v{version}",
            new_version=version,
        )

    def _sync(self, run: _Run) -> None:
        self.vault.delete_document(pending_path(run.group.path))
        report = self._sync_copies(run)
        grace = parse_duration(run.journal.grace) if run.journal.grace else None
        until = self.clock() + grace if grace else None
        self._advance(
            run, Step.SYNCED, f"{len(report.results)} GitHub copies written", grace_until=until
        )

    def _sync_copies(self, run: _Run, rolled_back_from: int | None = None) -> ApplyReport:
        # under the mount's apply lock: an apply planned before the promotion must not land after
        # (an unsharded lock: it excludes every `--shard` apply too, see ApplyLock)
        lock = ApplyLock(
            self.vault, "rotate", self.actor, self.audit, timeout=self.apply_lock_timeout
        )
        with lock:
            github = guard_writes(self.github, run_checks(lock))  # stop if the lock is lost
            report = sync_cells(
                self.policy,
                run.group.holds,
                self.vault,
                github,
                self.audit,
                self.actor,
                on_result=self.on_write,
                on_start=self.on_writes,
            )
            _raise_if_sync_failed(run.group, report)
            if rolled_back_from is not None:
                removed = self._remove_rolled_back(run, rolled_back_from)
                report = ApplyReport(report.results + removed.results, report.blocked)
            self._sync_flags(run)
        return report

    def _remove_rolled_back(self, run: _Run, version: int) -> ApplyReport:
        """GitHub copies of keys the rolled-back-to version lacks (a first-ever rotation's
        value): removed where envmatrix wrote them from the rolled-back `version`."""
        report = remove_copies(
            self.policy,
            run.group.holds,
            (run.group.path, version),
            self.vault,
            self.github,
            self.audit,
            self.actor,
        )
        _raise_if_sync_failed(run.group, report)
        return report

    def _sync_flags(self, run: _Run) -> None:
        """Re-evaluate, in this run, the flag variables that require the group's secrets (under
        the apply lock the sync holds); a flag that cannot be written is a ✗ line, not a stop."""
        report = sync_flags(
            self.policy,
            run.group.secrets,
            self.vault,
            self.github,
            self.audit,
            self.actor,
            self.probe,
            run.group.environments,
        )
        if report.results:
            self._emit(run, _flags_step(report))

    def _revoke(self, run: _Run) -> None:
        if not self._grace_over(run.journal):
            run.stop = True
            return
        journal = run.journal
        retired = [v for v in (journal.previous_version, journal.retire_version) if v is not None]
        for version in retired:
            self._revoke_version(run, version)
        versions = " and ".join(f"v{v}" for v in retired) or "none"
        skipped = skip_reason(run.strategy, "revoke")
        if skipped is not None or not retired:
            reason = skipped or "there was no previous credential"
            self._advance(run, Step.REVOKED, reason, skipped=True)
            return
        self._advance(run, Step.REVOKED, f"previous credential (Vault {versions}) retired")

    def _revoke_version(self, run: _Run, version: int) -> None:
        previous = self.vault.read_values(run.group.path, version)
        ctx = self._context(run, self._values_at(run.group.path, run.journal.new_version))
        self._call(run, "revoke", lambda: run.strategy.revoke(ctx, previous))

    def _done(self, run: _Run) -> None:
        self._advance(run, Step.DONE, "rotation finished")

    def _roll_back(self, run: _Run) -> None:
        journal = run.journal
        if journal.restored_version is None:
            version = self._restore_previous(run)
            self._advance(
                run,
                Step.ROLLING_BACK,
                f"Vault {run.group.path} v{version} = v{journal.previous_version}"
                if journal.previous_version is not None
                else f"Vault {run.group.path} v{version}: no value, as before the rotation",
                restored_version=version,
            )
        report = self._sync_copies(run, rolled_back_from=journal.new_version)
        written = sum(r.change.action is not Action.DELETE for r in report.results)
        removed = len(report.results) - written
        detail = f"{written} GitHub copies written" + (
            f", {removed} removed (the rotation wrote their only value)" if removed else ""
        )
        self._emit(run, StepResult("resync", True, detail))
        assert journal.new_version is not None
        rejected = self._keys_of(run, self.vault.read_values(run.group.path, journal.new_version))
        ctx = self._context(run, self._values_at(run.group.path, run.journal.restored_version))
        self._call(run, "discard", lambda: run.strategy.discard(ctx, rejected))
        skipped = skip_reason(run.strategy, "discard")
        if skipped is not None:
            self._emit(run, StepResult("discard", True, skipped, skipped=True))
        self._advance(
            run, Step.ROLLED_BACK, "rolled back" if skipped else "new credential discarded"
        )

    def _restore_previous(self, run: _Run) -> int:
        """Write the previous values as the path's newest version (no values at all after a
        first-ever rotation: the path held nothing before it); returns that version."""
        journal = run.journal
        assert journal.new_version is not None
        try:
            previous = self._values_at(run.group.path, journal.previous_version)
        except VaultNotFound:
            raise RuntimeFailure(
                f"cannot roll back {run.group.path}: its previous version"
                f" v{journal.previous_version} is no longer in Vault (deleted, destroyed, or pruned"
                f" by max_versions{_kept(self.vault.kept_versions(run.group.path))})"
            ) from None
        current = self.vault.read_entry(run.group.path).version
        if current == journal.new_version:
            version = self.vault.write_values(run.group.path, previous, cas=journal.new_version)
            failpoints.hit("rotation.rollback", "vault-written")  # before the journal knows
            return version
        if current is not None and self._holds_exactly(run.group.path, current, previous):
            return current
        raise RuntimeFailure(
            f"Vault {run.group.path} changed since the rotation (now v{current});"
            " not rolling back over it"
        )

    def _check_versions_kept(self, group: RotationGroup) -> None:
        """Refuse a rotation Vault would make impossible to undo: promoting writes one version,
        so unless at least two are kept the previous credential's values are pruned at once,
        and neither a rollback nor its revoke after the grace period could read them."""
        kept = self.vault.kept_versions(group.path)
        if kept is not None and kept < 2:
            raise RuntimeFailure(
                f"{group.path}: Vault keeps max_versions={kept} version of it, so promoting a new"
                " credential would prune the previous one that rollback and the grace period need;"
                f" raise it (bao kv metadata put -mount={self.vault.mount} -max-versions=2"
                f" {group.path}, or the mount's config) and rotate again"
            )

    # -- journal, outcome, audit ----------------------------------------------------------------

    def _advance(
        self, run: _Run, step: Step, detail: str, *, skipped: bool = False, **changes: Any
    ) -> None:
        journal = run.journal.at(step, self.clock(), holder=holder_identity(self.actor), **changes)
        run.entry = self.store.advance(run.entry, journal)
        self._reached(run, step, detail, skipped)

    def _reached(self, run: _Run, step: Step, detail: str, skipped: bool = False) -> None:
        journal = run.journal
        self.audit.record(
            AuditEvent(
                AUDIT_ACTIONS[step],
                f"vault:{self.vault.mount}/{journal.path}",
                "ok",
                self.actor,
                journal.new_version or journal.previous_version,
                f"rotation {journal.id}: {step.value}",
            )
        )
        self._emit(run, StepResult(step.value, True, detail, skipped))
        failpoints.hit("rotation.after", step.value)

    def _emit(self, run: _Run, result: StepResult) -> None:
        run.outcome.steps.append(result)
        if self.on_step is not None:
            self.on_step(run.group, result)

    def _abandon(self, run: _Run, cause: EnvmatrixError) -> None:
        """Before cut-over: discard the new credential, drop the pending values, journal failed."""
        self._emit(run, StepResult(run.journal.step.value, False, str(cause)))
        pending = run.pending or self._pending_or_empty(run)
        ctx = self._previous_context(run)
        try:
            self._call(run, "discard", lambda: run.strategy.discard(ctx, pending))
        except StrategyFailed as exc:
            self._emit(run, StepResult("discard", False, str(exc)))
        self.vault.delete_document(pending_path(run.group.path))
        self._advance(run, Step.FAILED, "rotation abandoned; GitHub untouched", error=str(cause))

    def _stopped(self, run: _Run, cause: EnvmatrixError) -> RotationOutcome:
        step = run.journal.step
        self._emit(run, StepResult(_next_name(step), False, str(cause)))
        self.audit.record(
            AuditEvent(
                AUDIT_ACTIONS.get(step, "rotation"),
                f"vault:{self.vault.mount}/{run.group.path}",
                "failed",
                self.actor,
                run.journal.new_version,
                str(cause),
            )
        )
        hint = (
            ""
            if isinstance(cause, LockHeldError)
            else f"; the journal is at {step.value}: {_resume_command(run.journal)} continues it"
        )
        outcome = self._finished(run, f"{cause}{hint}")
        if isinstance(cause, AwaitingOwner):  # open, staged, waiting for the owner: not failed
            outcome.result = "needs-owner"
        return outcome

    def _finished(self, run: _Run, failure: str | None = None) -> RotationOutcome:
        journal, outcome = run.journal, run.outcome
        outcome.rotation_id, outcome.grace_until = journal.id, journal.grace_until
        outcome.previous_version, outcome.new_version = (
            journal.previous_version,
            journal.new_version,
        )
        outcome.result, outcome.message = _result(journal, failure)
        return outcome

    def _failed(
        self, group: RotationGroup, outcome: RotationOutcome, step: str, message: str
    ) -> RotationOutcome:
        result = StepResult(step, False, message)
        outcome.steps.append(result)
        if self.on_step is not None:
            self.on_step(group, result)
        outcome.result, outcome.message = "failed", message
        return outcome

    # -- values ---------------------------------------------------------------------------------

    def _context(
        self, run: _Run, current: Mapping[str, SecretValue], extra: Mapping[str, str] | None = None
    ) -> RotationContext:
        return RotationContext(
            run.group.path,
            run.group.environment,
            dict(run.group.keys),
            dict(run.group.spec.options),
            current,
            {**run.journal.handle, **(extra or {})},
        )

    def _previous_context(self, run: _Run) -> RotationContext:
        """A context whose `current` is the values the rotation began from (for discard)."""
        return self._context(run, self._values_at(run.group.path, run.journal.previous_version))

    def _values_at(self, path: str, version: int | None) -> dict[str, SecretValue]:
        return {} if version is None else self.vault.read_values(path, version)

    def _pending(self, run: _Run) -> dict[str, SecretValue]:
        if run.pending is None:
            run.pending = self.vault.read_values(pending_path(run.group.path))
        return run.pending

    def _pending_or_empty(self, run: _Run) -> dict[str, SecretValue]:
        if run.journal.step in (Step.STARTED, Step.CREATED):
            return {}
        try:
            return self._pending(run)
        except EnvmatrixError:
            return {}

    def _holds_exactly(self, path: str, version: int, expected: Mapping[str, SecretValue]) -> bool:
        """Whether `version` holds `expected` and no other key (a restore already written)."""
        values = self.vault.read_values(path, version)
        return values.keys() == expected.keys() and self._holds(path, version, expected)

    def _holds(self, path: str, version: int, expected: Mapping[str, SecretValue]) -> bool:
        values = self.vault.read_values(path, version)
        return all(values.get(k) == v for k, v in expected.items())

    def _keys_of(self, run: _Run, values: Mapping[str, SecretValue]) -> dict[str, SecretValue]:
        return {k: v for k, v in values.items() if k in run.group.keys.values()}

    def _call(self, run: _Run, step: str, action: Callable[[], Any]) -> Any:
        """Run a strategy step; whatever it raises becomes a StrategyFailed with a safe message."""
        try:
            return action()
        except AwaitingOwner:  # kept open for the owner (manual: a probe refused the value)
            raise
        except EnvmatrixError as exc:
            message = f"{run.strategy.name} {step}: {exc}"
        except Exception as exc:  # library text may carry a value: keep only the type
            message = f"{run.strategy.name} {step} failed ({type(exc).__name__})"
        raise StrategyFailed(message)

    def _grace_over(self, journal: RotationJournal) -> bool:
        return journal.grace_until is None or self.clock() >= journal.grace_until


def _flags_step(report: ApplyReport) -> StepResult:
    """`flags: FEATURE_X in o/r/production: false -> true` (✗ with the cause when one failed)."""
    lines = [
        f"{r.change.name} in {r.change.repository}/{r.change.environment}: "
        + (f"{r.change.detail.split(':', 1)[0]}" if r.ok else f"not written ({r.error})")
        for r in report.results
    ]
    return StepResult("flags", report.ok, "; ".join(lines))


def _raise_if_sync_failed(group: RotationGroup, report: ApplyReport) -> None:
    if report.ok:
        return
    if report.stopped is not None:  # interrupted or lock lost: the same stop, to the caller
        landed = report.summary()["written"]
        raise _stop_of(
            report,
            f"{report.stopped}; sync of {group.path} stopped after"
            f" {landed} of {landed + len(report.not_attempted)} writes",
        )
    problems = [
        f"{r.change.repository}/{r.change.environment or '(repository)'}/{r.change.name}: {r.error}"
        for r in report.failed
    ] + list(report.state_errors)
    raise RuntimeFailure(
        f"sync of {group.path} failed for {len(problems)} item(s), first: {problems[0]}"
    )


def _stop_of(report: ApplyReport, message: str) -> RunStopped:
    from envmatrix.errors import ExitCode, Interrupted, LockLost

    if report.stop_code in (ExitCode.INTERRUPTED, ExitCode.TERMINATED):
        return Interrupted(message, ExitCode(report.stop_code))
    return LockLost(message)


def _check_created(run: _Run, values: Mapping[str, SecretValue], handle: Mapping[str, str]) -> None:
    wanted = set(run.group.keys.values())
    if set(values) != wanted:
        raise StrategyFailed(
            f"{run.strategy.name} create gave keys {sorted(values)}, not {sorted(wanted)}"
        )
    for key, value in sorted(values.items()):
        if (why := absence(value)) is not None:  # GitHub's stand-in for a missing secret
            raise StrategyFailed(
                f"{run.strategy.name} create gave {key} a value that is {why}, not a secret;"
                " refused"
            )
    texts = {v.reveal() for v in values.values()}
    if any(str(h) in texts for h in handle.values()):
        raise StrategyFailed(
            f"{run.strategy.name} create put a secret value in its handle; refused"
        )


def _result(journal: RotationJournal, failure: str | None) -> tuple[str, str]:
    if failure is not None:
        return "failed", failure
    if journal.step is Step.FAILED:
        return "failed", f"rotation of {journal.path} abandoned: {journal.error}"
    if journal.step is Step.ROLLED_BACK and journal.previous_version is None:
        return "rolled-back", (
            f"{journal.path} holds no value again (v{journal.restored_version}), as before its"
            " first rotation; the GitHub copies that rotation wrote are removed"
        )
    if journal.step is Step.ROLLED_BACK:
        return (
            "rolled-back",
            f"{journal.path} is back at its previous value (v{journal.restored_version})",
        )
    if journal.step is Step.SYNCED:
        return "in-grace", (
            f"{journal.path} rotated to v{journal.new_version}; the previous credential"
            f" stays valid until {_stamp(journal.grace_until)}, then rotate --due revokes it"
        )
    return "done", f"{journal.path} rotated to v{journal.new_version}"


def _next_name(step: Step) -> str:
    following = {
        Step.STARTED: "create",
        Step.CREATED: "stage",
        Step.STAGED: "test",
        Step.TESTED: "promote",
        Step.PROMOTED: "sync",
        Step.SYNCED: "revoke",
        Step.REVOKED: "done",
        Step.ROLLING_BACK: "rollback",
    }
    return following.get(step, step.value)


def _kept(kept: int | None) -> str:
    return f"={kept}" if kept is not None else ""


def _resume_command(journal: RotationJournal) -> str:
    return resume_command(journal)


def resume_command(journal: RotationJournal, secret: str | None = None) -> str:
    """The command that finishes the journal's rotation (for `secret`, else its first one)."""
    name = secret or (journal.secrets[0] if journal.secrets else "NAME")
    return f"envmatrix rotate {name}{_environment_option(journal.environment)} --resume"


def _environment_option(environment: str | None) -> str:
    """`--environment X` for a command to suggest; nothing for a repository-scope group."""
    return f" --environment {environment}" if environment else ""


def _outcome(group: RotationGroup) -> RotationOutcome:
    return RotationOutcome(
        group.path,
        group.environments,
        tuple(group.keys),
        group.spec.strategy,
        repository_level=group.repository_level,
    )


DueFinder = Callable[[Policy, VaultPort, Sequence[str], datetime], list[str]]


def overdue_paths(
    policy: Policy, vault: VaultPort, environments: Sequence[str], at: datetime
) -> list[str]:
    """Vault paths whose rotation is due (rotation/schedule.py decides; never-rotated count)."""
    from envmatrix.rotation.schedule import load_statuses, overdue_statuses

    statuses = overdue_statuses(load_statuses(policy, environments, vault, at))
    return list(dict.fromkeys(s.path for s in statuses))


def rotate_due(
    engine: RotationEngine, environments: Sequence[str] = (), due: DueFinder = overdue_paths
) -> list[RotationOutcome]:
    """`rotate --due`: revoke what finished its grace, then rotate every group that is due."""
    outcomes: list[RotationOutcome] = []
    for path in rotating_paths(engine.policy, environments):
        if interrupt.pending():  # Ctrl-C: start nothing more
            return outcomes
        if (finished := _finish_grace_at(engine, path)) is not None:
            outcomes.append(finished)
    for path in due(engine.policy, engine.vault, environments, engine.clock()):
        if interrupt.pending():
            return outcomes
        outcomes.append(_rotate_due_path(engine, path))
    return outcomes


def _finish_grace_at(engine: RotationEngine, path: str) -> RotationOutcome | None:
    try:
        group = group_at(engine.policy, path)
    except EnvmatrixError as exc:
        return RotationOutcome(path, (), (), "-", "failed", str(exc))
    return engine.finish_grace(group)


def _rotate_due_path(engine: RotationEngine, path: str) -> RotationOutcome:
    try:
        group = group_at(engine.policy, path)
    except EnvmatrixError as exc:
        return RotationOutcome(path, (), (), "-", "failed", str(exc))
    if group.spec.strategy == "manual" and engine.settings.value_source is None:
        return _needs_owner(engine.policy, group)
    return engine.rotate(group)


def _needs_owner(policy: Policy, group: RotationGroup) -> RotationOutcome:
    owners = sorted({policy.secrets[name].owner for name in group.keys})
    contacts = ", ".join(f"{o} ({policy.owners[o].contact})" for o in owners if o in policy.owners)
    first = next(iter(group.keys))
    message = (
        f"{group.name} at {group.path} is due and rotates manually — owner: {contacts};"
        f" run envmatrix rotate {first}{_environment_option(group.environment)}"
    )
    outcome = _outcome(group)
    outcome.result, outcome.message = "needs-owner", message
    return outcome
