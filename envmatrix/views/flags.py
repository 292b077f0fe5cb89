"""Feature-flag readiness: a flag is ready in (repository, environment) when every secret it
requires is in that GitHub environment and in sync with Vault (matrix status `ok`), and, when the
flag names a probe, the probe passed there.

Readiness is computed purely from matrix cells (`flag_readiness`); probes, which call out to a
service, are applied on top (`apply_probes`) by the caller that can reach the service.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from envmatrix.errors import UsageError
from envmatrix.pipeline.desired import DesiredState, FlagCell, did_you_mean, owner_with_contact
from envmatrix.views.matrix import MatrixCell, Status, matrix_cells

if TYPE_CHECKING:
    from envmatrix.workflow import PlanRun

# A probe runner: (probe kind, logical environment) -> None when it passed, else why it failed.
ProbeRunner = Callable[[str, str], "str | None"]


@dataclass(frozen=True)
class Blocker:
    """One reason a flag is not ready: a secret that is not in sync, or a failed probe."""

    secret: str | None  # None for a probe
    status: str  # a matrix status, or "probe-failed"
    owner: str | None
    contact: str | None
    detail: str

    def describe(self) -> str:
        """`SUPABASE_SERVICE_KEY blocked: <detail> — owner: reliability (reliability@...)`."""
        what = f"{self.secret} {self.status}" if self.secret else self.status
        owner = f" — owner: {owner_with_contact(self.owner, self.contact)}" if self.owner else ""
        detail = self.detail.split(" — owner:", 1)[0]  # blocked details already name the owner
        return f"{what}: {detail}{owner}"

    def to_json(self) -> dict[str, Any]:
        return {
            "secret": self.secret,
            "status": self.status,
            "owner": self.owner,
            "contact": self.contact,
            "detail": self.detail,
        }


@dataclass(frozen=True)
class FlagReadiness:
    """Whether one flag can be switched on in one GitHub environment, and what stops it."""

    flag: str
    repository: str
    environment: str  # GitHub environment name
    logical_environment: str
    requires: tuple[str, ...]
    blockers: tuple[Blocker, ...]
    variable: bool  # whether apply writes the flag as a GitHub environment variable
    probe: str | None = None
    github_variable: str | None = None  # the variable's current value in GitHub, if any

    @property
    def ready(self) -> bool:
        return not self.blockers

    def to_json(self) -> dict[str, Any]:
        return {
            "flag": self.flag,
            "repository": self.repository,
            "environment": self.environment,
            "logical_environment": self.logical_environment,
            "ready": self.ready,
            "requires": list(self.requires),
            "blocking": [b.to_json() for b in self.blockers],
            "variable": self.variable,
            "probe": self.probe,
            "github_variable": self.github_variable,
        }


def flag_readiness(
    desired: DesiredState,
    cells: Iterable[MatrixCell],
    probes: Mapping[str, str | None] | None = None,
    variables: Mapping[tuple[str, str | None, str], str] | None = None,
) -> tuple[FlagReadiness, ...]:
    """Readiness of every flag cell of the desired state, from the matrix cells alone.

    `probes` maps a flag name to its probe kind; `variables` maps (repository, GitHub
    environment, flag) to the variable's current value. Both only annotate the result.
    """
    by_key = {(c.repository, c.environment, c.secret): c for c in cells}
    return tuple(
        _readiness(desired, flag, by_key, (probes or {}).get(flag.name), variables or {})
        for flag in desired.flags
    )


def _readiness(
    desired: DesiredState,
    flag: FlagCell,
    cells: Mapping[tuple[str, str | None, str], MatrixCell],
    probe: str | None,
    variables: Mapping[tuple[str, str | None, str], str],
) -> FlagReadiness:
    target = flag.target
    assert target.github_environment is not None  # flags are environment-scoped (policy.py)
    blockers = []
    for name in flag.requires:
        cell = cells.get((target.repository, target.github_environment, name))
        if cell is None or cell.status is not Status.OK:
            blockers.append(_secret_blocker(desired, name, cell))
    key = (target.repository, target.github_environment, flag.name)
    return FlagReadiness(
        flag.name,
        target.repository,
        target.github_environment,
        target.logical_environment,
        flag.requires,
        tuple(blockers),
        flag.variable,
        probe,
        variables.get(key),
    )


def _secret_blocker(desired: DesiredState, name: str, cell: MatrixCell | None) -> Blocker:
    if cell is None:  # the policy loader forbids this; say so rather than crash
        return Blocker(name, str(Status.NOT_REQUIRED), None, None, "not targeted here")
    return Blocker(
        name, str(cell.status), cell.owner, desired.contacts.get(cell.owner), cell.detail
    )


def apply_probes(
    readiness: Iterable[FlagReadiness], run_probe: ProbeRunner
) -> tuple[FlagReadiness, ...]:
    """Run each flag's probe where its secrets are otherwise ready (once per kind and
    environment) and add a blocker when it fails."""
    outcomes: dict[tuple[str, str], str | None] = {}
    result = []
    for item in readiness:
        if item.probe is None or not item.ready:
            result.append(item)
            continue
        key = (item.probe, item.logical_environment)
        if key not in outcomes:
            outcomes[key] = run_probe(*key)
        failure = outcomes[key]
        if failure is not None:
            # a declared probe's failure names the credential's owner (views/probe.ProbeFailure)
            owner, contact = getattr(failure, "owner", None), getattr(failure, "contact", None)
            detail = f"probe {item.probe}: {failure}"
            blocker = Blocker(None, "probe-failed", owner, contact, detail)
            item = replace(item, blockers=(blocker,))
        result.append(item)
    return tuple(result)


def select(
    readiness: Iterable[FlagReadiness], flag: str, environment: str, repository: str | None
) -> tuple[FlagReadiness, ...]:
    """The readiness rows `flags check` looks at; a flag or place the policy lacks is a usage
    error. `environment` is a logical name."""
    readiness = tuple(readiness)
    rows = [r for r in readiness if r.flag == flag and r.logical_environment == environment]
    if not rows:
        hint = (
            ""
            if any(r.flag == flag for r in readiness)
            else did_you_mean(flag, [r.flag for r in readiness])
        )
        raise UsageError(
            f"flag {flag} is not declared for environment {environment} in the policy{hint}"
        )
    if repository is not None:
        targeted = [r.repository for r in rows]
        rows = [r for r in rows if r.repository.lower() == repository.lower()]
        if not rows:
            raise UsageError(
                f"flag {flag} does not target repository {repository}"
                f"{did_you_mean(repository, targeted)} ({', '.join(dict.fromkeys(targeted))})"
            )
    return tuple(rows)


def readiness_for_run(
    run: PlanRun, run_probe: ProbeRunner | None = None
) -> tuple[FlagReadiness, ...]:
    """Readiness of every flag of a plan run, with probes applied when a runner is given."""
    cells = matrix_cells(run.desired, run.plan)
    probes = {name: spec.probe for name, spec in run.policy.flags.items()}
    variables = {
        (t.repository, t.github_environment, name): v.value
        for t, env in run.observed.github.items()
        if env is not None
        for name, v in env.variables.items()
    }
    readiness = flag_readiness(run.desired, cells, probes, variables)
    return apply_probes(readiness, run_probe) if run_probe is not None else readiness


def readiness_for_policy(
    policy_path: str,
    environments: Sequence[str],
    with_probes: bool = True,
    allow_pull_request: bool = False,
) -> tuple[FlagReadiness, ...]:
    """Load the policy, plan the selected environments and compute flag readiness (the
    `flags` commands). Connects to Vault and GitHub from the environment. In a
    pull-request-triggered run the probes are withheld (a flag waiting for one is not ready,
    its blocker says why) unless `allow_pull_request`."""
    from envmatrix.connect import connect
    from envmatrix.policy import load_policy
    from envmatrix.views.probe import probe_runner
    from envmatrix.workflow import make_plan

    policy = load_policy(policy_path)
    with connect(policy) as connections:
        run = make_plan(policy_path, connections, environments, policy)
        runner = (
            probe_runner(policy, connections.vault, allow_pull_request=allow_pull_request)
            if with_probes
            else None
        )
        return readiness_for_run(run, runner)
