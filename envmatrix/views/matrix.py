"""The environment matrix: which secret is where, as one status per (repository, environment,
secret) cell, derived purely from the desired state and the plan `diff()` computed.

A cell's status is what the plan says about it, and nothing else, so the matrix can never
disagree with `plan --json`:

    plan change for the cell              status
    none (the policy wants it)            ok
    create / missing                      missing       (not in GitHub)
    update / vault-newer, source-changed  stale         (Vault holds something newer)
    update / changed-outside              drifted       (written outside envmatrix)
    update / visibility-differs           drifted       (an organization copy's visibility)
    blocked / missing-in-vault            blocked       (nothing in Vault to sync)
    blocked / empty-in-vault, too-large,  blocked       (nothing GitHub may be sent)
              limit-exceeded
    create or blocked / shadowed          shadowed      (jobs get a same-named repository or
                                                         organization secret instead)
    (the policy does not target it)       not-required

Orphans (`orphan` and pruned `delete` rows) are listed below the grid.

Plain variables (`variables:` in the policy) get rows of their own below a repository's secrets,
`kind: variable` in JSON, with the same statuses from the plan's `kind: variable` rows (a
value that differs from the policy's is `stale`). The matrix never shows a variable's value,
though variables are not secret: it is a document of where things are, not what they hold.
Flag variables are not rows: the flags table shows them.

Organization secrets and variables (`scope: organization`) sit in a section of their own, the
organization's login as its `repository`, columns `(organization)` and `(organization,
dependabot)`; a repository's Dependabot secrets in a column `(repository, dependabot)`. Cells
carry `scope`, `store` and, for organization copies, `visibility` and `selected_repositories`
(`visibility-differs` is drifted; an organization write a narrower secret overrides, shadowed).
Targets the policy no longer names (pipeline/recorded.py) add no column, only orphans.

A repository with `scope: repository` secrets gets one more column, `(repository)` (its Actions
repository secrets, environment `null` in JSON, as in `plan --json`): its repository secrets have a
status there and `not-required` under the environment columns; its environment secrets are
`not-required` in the `(repository)` column.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from enum import StrEnum
from functools import cached_property
from typing import TYPE_CHECKING, Any

from envmatrix.pipeline.desired import (
    REPOSITORY_LEVEL,
    DesiredState,
    SecretCell,
    Target,
    VariableCell,
)
from envmatrix.pipeline.plan import Action, Change, Kind, Plan, Reason
from envmatrix.rotation.schedule import overdue_cells

if TYPE_CHECKING:
    from envmatrix.views.flags import FlagReadiness
    from envmatrix.workflow import PlanRun


class Status(StrEnum):
    OK = "ok"
    MISSING = "missing"
    STALE = "stale"
    DRIFTED = "drifted"
    BLOCKED = "blocked"
    SHADOWED = "shadowed"
    NOT_REQUIRED = "not-required"


_STATUS_BY_CHANGE: Mapping[tuple[Action, Reason], Status] = {
    (Action.CREATE, Reason.MISSING): Status.MISSING,
    (Action.UPDATE, Reason.VAULT_NEWER): Status.STALE,
    (Action.UPDATE, Reason.SOURCE_CHANGED): Status.STALE,
    (Action.UPDATE, Reason.CHANGED_OUTSIDE): Status.DRIFTED,
    (Action.BLOCKED, Reason.MISSING_IN_VAULT): Status.BLOCKED,
    (Action.BLOCKED, Reason.MANAGED_ELSEWHERE): Status.BLOCKED,  # another policy's secret here
    (Action.BLOCKED, Reason.EMPTY_IN_VAULT): Status.BLOCKED,
    (Action.BLOCKED, Reason.TOO_LARGE): Status.BLOCKED,
    (Action.BLOCKED, Reason.LIMIT_EXCEEDED): Status.BLOCKED,
    (Action.CREATE, Reason.SHADOWED): Status.SHADOWED,
    (Action.BLOCKED, Reason.SHADOWED): Status.SHADOWED,
    (Action.UPDATE, Reason.VALUE_DIFFERS): Status.STALE,  # variables: the policy's value moved
    # organization copies: visibility or selected repositories changed in GitHub
    (Action.UPDATE, Reason.VISIBILITY_DIFFERS): Status.DRIFTED,
    (Action.UPDATE, Reason.SHADOWED): Status.SHADOWED,  # an organization copy a narrower wins
}

ORGANIZATION_LEVEL = "(organization)"
DEPENDABOT = "dependabot"


def column_label(environment: str | None, scope: str, store: str) -> str:
    """The column of a copy: its GitHub environment, `(repository)`, `(organization)`, with
    `, dependabot` inside the brackets for Dependabot secrets (`(repository, dependabot)`)."""
    if environment is not None:
        return environment
    label = ORGANIZATION_LEVEL if scope == "organization" else REPOSITORY_LEVEL
    return f"{label[:-1]}, {DEPENDABOT})" if store == DEPENDABOT else label


@dataclass(frozen=True)
class MatrixCell:
    """One secret in one GitHub environment of one repository (or at its repository level)."""

    repository: str
    environment: str | None  # GitHub environment name, as in plan --json; None: repository level
    logical_environment: str
    secret: str
    status: Status
    owner: str
    service: str | None
    detail: str
    rotation_overdue: bool = False
    kind: str = "secret"  # "secret" | "variable" (a plain Actions variable; no value shown)
    scope: str = "environment"  # "environment" | "repository" | "organization" (the column's)
    store: str = "actions"  # "actions" | "dependabot"
    visibility: str | None = None  # an organization copy the policy wants: all|private|selected
    selected_repositories: tuple[str, ...] = ()  # visibility selected: the repositories

    @property
    def is_variable(self) -> bool:
        return self.kind == "variable"

    @property
    def column(self) -> str:
        """The column this cell sits in: its GitHub environment, `(repository)`,
        `(organization)`, or one of those two as `(repository, dependabot)`."""
        return column_label(self.environment, self.scope, self.store)

    @property
    def access(self) -> str:
        """`visibility selected, 2 repositories`, `visibility all`; "" for a copy outside an
        organization."""
        if self.visibility is None:
            return ""
        if self.visibility != "selected":
            return f"visibility {self.visibility}"
        count = len(self.selected_repositories)
        return f"visibility selected, {count} repositor{'y' if count == 1 else 'ies'}"

    def to_json(self) -> dict[str, Any]:
        return {
            "repository": self.repository,
            "environment": self.environment,
            "secret": self.secret,
            "status": str(self.status),
            "owner": self.owner,
            "service": self.service,
            "logical_environment": self.logical_environment,
            "detail": self.detail,
            "rotation_overdue": self.rotation_overdue,
            "kind": self.kind,
            "scope": self.scope,
            "store": self.store,
            "visibility": self.visibility,
            "selected_repositories": list(self.selected_repositories),
        }


@dataclass(frozen=True)
class Orphan:
    """A secret in a targeted GitHub environment that the policy does not name."""

    repository: str
    environment: str | None  # None: a repository secret
    secret: str
    action: str  # "orphan" (left alone) or "delete" (pruned by the next apply)
    detail: str
    kind: str = "secret"  # "secret" | "variable"
    scope: str = "environment"  # where it is: environment | repository | organization
    store: str = "actions"  # actions | dependabot

    @property
    def column(self) -> str:
        return column_label(self.environment, self.scope, self.store)

    def to_json(self) -> dict[str, Any]:
        return {
            "repository": self.repository,
            "environment": self.environment,
            "secret": self.secret,
            "action": self.action,
            "detail": self.detail,
            "kind": self.kind,
            "scope": self.scope,
            "store": self.store,
        }


@dataclass(frozen=True)
class Matrix:
    """The grid (cells in row-major order per repository), the orphans below it, each flag's
    readiness per environment, and when it was made (`generated_at`, UTC; None: not stamped)."""

    cells: tuple[MatrixCell, ...]
    orphans: tuple[Orphan, ...] = ()
    contacts: Mapping[str, str] = field(default_factory=dict)
    flags: tuple[FlagReadiness, ...] = ()
    generated_at: datetime | None = None

    def repositories(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(c.repository for c in self.cells))

    def is_organization(self, repository: str) -> bool:
        """Whether a section is an organization's (its copies are `scope: organization`)."""
        return any(c.scope == "organization" for c in self._by_repository.get(repository, ()))

    def environments(self, repository: str) -> tuple[str, ...]:
        """The column labels of a repository (GitHub environments, `(repository)`), in order."""
        return tuple(dict.fromkeys(c.column for c in self._by_repository.get(repository, ())))

    def rows(self, repository: str) -> tuple[tuple[MatrixCell, ...], ...]:
        """One tuple of cells per secret (then per variable) of a repository, in column order."""
        by_secret: dict[tuple[str, str], list[MatrixCell]] = {}
        for cell in self._by_repository.get(repository, ()):
            by_secret.setdefault((cell.kind, cell.secret), []).append(cell)
        return tuple(tuple(row) for row in by_secret.values())

    def flags_of(self, repository: str) -> tuple[FlagReadiness, ...]:
        """The flag rows of a repository, in the order the policy declares them."""
        return tuple(f for f in self.flags if f.repository == repository)

    @cached_property
    def _by_repository(self) -> Mapping[str, tuple[MatrixCell, ...]]:
        """Cells grouped by repository once (a scan per repository grew with the org's square)."""
        grouped: dict[str, list[MatrixCell]] = {}
        for cell in self.cells:
            grouped.setdefault(cell.repository, []).append(cell)
        return {repository: tuple(cells) for repository, cells in grouped.items()}

    def to_json(self) -> dict[str, Any]:
        """`{"cells", "orphans", "flags"}`; no time stamp, so the document is stable."""
        return {
            "cells": [c.to_json() for c in self.cells],
            "orphans": [o.to_json() for o in self.orphans],
            "flags": [f.to_json() for f in self.flags],
        }


def cell_status(change: Change | None) -> Status:
    """The status of a cell the policy wants, given the plan's change for it (None: in sync)."""
    if change is None:
        return Status.OK
    try:
        return _STATUS_BY_CHANGE[(change.action, change.reason)]
    except KeyError:
        raise ValueError(f"no matrix status for {change.action}/{change.reason}") from None


def matrix_cells(
    desired: DesiredState, plan: Plan, environment_order: Sequence[str] = ()
) -> tuple[MatrixCell, ...]:
    """Every (repository, environment, secret) cell: rows are the secrets a repository gets in
    any environment, columns its targeted environments (in `environment_order`, then by name)."""
    changes = _secret_changes(plan)
    wanted = {(c.target, c.name): c for c in desired.secrets}
    targets_of = _targets_by_repository(desired)
    secrets_of: dict[str, list[SecretCell]] = {}
    for c in desired.secrets:
        secrets_of.setdefault(c.target.repository, []).append(c)
    cells: list[MatrixCell] = []
    for repository in sorted(targets_of):
        targets = _columns(targets_of[repository], repository, environment_order)
        for name, sample in _rows(secrets_of.get(repository, ()), repository).items():
            for target in targets:
                cell = wanted.get((target, name))
                change = changes.get((*_address(target), name))
                cells.append(_cell(target, sample, cell, change))
    return tuple(cells)


def _targets_by_repository(desired: DesiredState) -> dict[str, list[Target]]:
    """The columns of each section: the targets the policy names (a recorded target, one it
    no longer names, adds only orphans below the grid)."""
    targets_of: dict[str, list[Target]] = {}
    for t in desired.targets:
        if t not in desired.recorded:
            targets_of.setdefault(t.repository, []).append(t)
    return targets_of


def _address(target: Target) -> tuple[str, str | None, str, str]:
    """(repository, environment, scope, store): a copy's place, as plan rows name it."""
    return (target.repository, target.github_environment, target.scope, target.store)


def _change_address(change: Change) -> tuple[str, str | None, str, str, str]:
    scope = change.scope or ("environment" if change.environment is not None else "repository")
    return (change.repository, change.environment, scope, change.store or "actions", change.name)


def build_matrix(
    desired: DesiredState, plan: Plan, environment_order: Sequence[str] = ()
) -> Matrix:
    """The matrix (secret rows, then variable rows, per repository) and its orphans, from one
    plan."""
    orphans = tuple(
        Orphan(
            c.repository,
            c.environment,
            c.name,
            str(c.action),
            c.detail,
            str(c.kind),
            _change_address(c)[2],
            c.store or "actions",
        )
        for c in plan.changes
        if c.kind in (Kind.SECRET, Kind.VARIABLE) and c.action in (Action.ORPHAN, Action.DELETE)
    )
    secrets = matrix_cells(desired, plan, environment_order)
    variables = variable_matrix_cells(desired, plan, environment_order)
    by_repository = sorted(
        (*secrets, *variables), key=lambda c: c.repository
    )  # stable: each repository's secret rows stay before its variable rows
    return Matrix(tuple(by_repository), orphans, desired.contacts)


def variable_matrix_cells(
    desired: DesiredState, plan: Plan, environment_order: Sequence[str] = ()
) -> tuple[MatrixCell, ...]:
    """Every (repository, environment, variable) cell of the policy's plain variables, laid
    out as `matrix_cells` lays out secrets; statuses from the plan's `kind: variable` rows."""
    changes = {
        _change_address(c): c
        for c in plan.changes
        if c.kind is Kind.VARIABLE and c.action not in (Action.ORPHAN, Action.DELETE)
    }
    wanted = {(v.target, v.name): v for v in desired.variables}
    targets_of = _targets_by_repository(desired)
    cells: list[MatrixCell] = []
    for repository in sorted(targets_of):
        targets = _columns(targets_of[repository], repository, environment_order)
        rows = {v.name: v for v in desired.variables if v.target.repository == repository}
        for name, sample in sorted(rows.items()):
            for target in targets:
                change = changes.get((*_address(target), name))
                cells.append(_variable_cell(target, sample, wanted.get((target, name)), change))
    return tuple(cells)


def _variable_cell(
    target: Target, sample: VariableCell, cell: VariableCell | None, change: Change | None
) -> MatrixCell:
    if cell is None:
        status = Status.NOT_REQUIRED
        detail = (
            "a repository variable: every environment sees it"
            if sample.target.is_repository_level and not target.is_repository_level
            else "the policy does not target this environment"
        )
    else:
        status = cell_status(change)
        source = f"Vault {cell.vault_ref}" if cell.vault_ref else "the policy's value"
        detail = change.detail if change is not None else f"in sync with {source}"
    return _matrix_cell(target, sample.name, status, sample.owner, None, detail, cell, "variable")


def _secret_changes(plan: Plan) -> dict[tuple[str, str | None, str, str, str], Change]:
    return {
        _change_address(c): c
        for c in plan.changes
        if c.kind is Kind.SECRET and c.action not in (Action.ORPHAN, Action.DELETE)
    }


def _columns(targets: Iterable[Target], repository: str, order: Sequence[str]) -> list[Target]:
    rank = {name: i for i, name in enumerate(order)}
    mine = [t for t in targets if t.repository == repository]
    last = len(rank) + 1  # the repository level comes after every environment

    def position(t: Target) -> tuple[int, str, str]:
        place = last if t.github_environment is None else rank.get(t.logical_environment, len(rank))
        return (place, t.logical_environment, t.store)

    return sorted(mine, key=position)


def _rows(cells: Iterable[SecretCell], repository: str) -> dict[str, SecretCell]:
    """The secrets a repository gets somewhere, by name, each with one cell for owner/service."""
    rows: dict[str, SecretCell] = {}
    for cell in cells:
        if cell.target.repository == repository:
            rows.setdefault(cell.name, cell)
    return dict(sorted(rows.items()))


def _cell(
    target: Target, sample: SecretCell, cell: SecretCell | None, change: Change | None
) -> MatrixCell:
    if cell is None:
        status, detail = Status.NOT_REQUIRED, _not_required_detail(target, sample)
    else:
        status = cell_status(change)
        detail = change.detail if change is not None else f"in sync with Vault {cell.vault_ref}"
    return _matrix_cell(target, sample.name, status, sample.owner, sample.service, detail, cell)


def _matrix_cell(
    target: Target,
    name: str,
    status: Status,
    owner: str,
    service: str | None,
    detail: str,
    cell: SecretCell | VariableCell | None,
    kind: str = "secret",
) -> MatrixCell:
    """The matrix cell of secret/variable `name` at `target`; `cell` is the policy's wish
    there (None: not required), which gives an organization copy's visibility."""
    return MatrixCell(
        target.repository,
        target.github_environment,
        target.logical_environment,
        name,
        status,
        owner,
        service,
        detail,
        kind=kind,
        scope=target.scope,
        store=target.store,
        visibility=cell.visibility if cell is not None else None,
        selected_repositories=cell.selected if cell is not None else (),
    )


def _not_required_detail(target: Target, sample: SecretCell) -> str:
    if target.store != sample.target.store:
        if sample.target.store == DEPENDABOT:
            where = column_label(None, sample.target.scope, DEPENDABOT)
            return f"a Dependabot secret (see the {where} column)"
        return "an Actions secret, not a Dependabot secret"
    if target.is_repository_level:
        return "an environment secret, not a repository secret"
    if sample.target.is_repository_level:
        return "a repository secret: every environment sees it (see the (repository) column)"
    return "the policy does not target this environment"


def matrix_for_run(
    run: PlanRun, repository: str | None = None, generated_at: datetime | None = None
) -> Matrix:
    """The matrix of a plan run, columns in the policy's environment order, with each flag's
    readiness (from the cells; probes are not run) and the time stamp, optionally one
    repository only."""
    from envmatrix.views.flags import readiness_for_run  # flags.py builds on this module

    matrix = build_matrix(run.desired, run.plan, tuple(run.policy.environments))
    overdue = overdue_cells(run.rotations)
    matrix = replace(
        matrix,
        cells=tuple(
            replace(c, rotation_overdue=(c.secret, c.logical_environment) in overdue)
            if c.status is not Status.NOT_REQUIRED and not c.is_variable
            else c
            for c in matrix.cells
        ),
        flags=readiness_for_run(run),
        generated_at=generated_at,
    )
    if repository is None:
        return matrix
    keep = repository.lower()
    return replace(
        matrix,
        cells=tuple(c for c in matrix.cells if c.repository.lower() == keep),
        orphans=tuple(o for o in matrix.orphans if o.repository.lower() == keep),
        flags=tuple(f for f in matrix.flags if f.repository.lower() == keep),
    )
