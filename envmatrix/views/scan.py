"""Workflow scan: compare the secrets workflows reference with the ones the policy declares.

For each job of each workflow file (`*.yml`, `*.yaml`): its GitHub environment
(`environment: NAME` or `environment: {name: NAME}`), mapped back to the policy's logical
environment, and every `secrets.NAME` reference anywhere in the job (`${{ secrets.NAME }}`,
`if:` expressions, `secrets['NAME']`). Findings:

- `undeclared`: a job for a policy environment references a secret the policy does not declare
  for that environment (GitHub would substitute an empty string).
- `no-environment`: a job without an environment references a secret the policy manages; the
  policy writes environment secrets, which such a job cannot see.
- `unused`: a secret the policy declares for an environment that no job for it references.

A `scope: repository` secret is declared for every job, with or without an environment (every
job of the repository sees its Actions repository secrets); it is `unused` (environment null)
only when no job at all references it.

An `environment:` given by expression is worked out where GitHub's inputs allow it
(views/workflow_runs.py): matrix values (with include/exclude), workflow_dispatch/workflow_call
input defaults and `choice` options, same-repository callers' `with:`. A job runs once per
value found. What cannot be worked out is reported as "environment unknown" (never skipped); such
a job could run in any environment: its references count as uses everywhere and are checked
against every environment's secrets.

Reusable workflows (`on: workflow_call`) are checked per call: with `secrets: inherit` the
callee's jobs see what the caller sees; with an explicit `secrets:` mapping only the mapped names
reach them (`not-passed`: a callee job references a secret its caller does not pass and its
environment does not hold — GitHub gives it an empty string). What a mapping passes is checked on
the calling job, which has no environment. `undeclared`, `no-environment` and `not-passed`
are the references that would be empty strings (`empty_string` in JSON).

Jobs in environments the policy does not manage are skipped. GITHUB_TOKEN is GitHub's own and
ignored.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ruamel.yaml.error import YAMLError

from envmatrix.errors import UnsafeInput, UsageError
from envmatrix.pipeline.desired import did_you_mean, policy_repositories, resolve_repository
from envmatrix.policy import Policy
from envmatrix.safeio import load_yaml, read_regular_file
from envmatrix.views.workflow_runs import JobRun, PassedSecret, job_runs

_REFERENCE = re.compile(
    r"""\bsecrets\s*(?:\.\s*([A-Za-z_][A-Za-z0-9_]*)|\[\s*['"]([A-Za-z_][A-Za-z0-9_]*)['"]\s*\])"""
)
IGNORED = frozenset({"GITHUB_TOKEN"})
ANY_ENVIRONMENT = "*"  # a job whose environment is an expression
MAX_WORKFLOW_BYTES = 1024 * 1024  # far above any real workflow; a bigger file is skipped
MAX_WORKFLOW_NODES = 1_000_000  # YAML nodes with aliases expanded (bounds the walk, too)


@dataclass(frozen=True, order=True)
class JobReferences:
    """The secrets one workflow job references and the environment it runs in."""

    workflow: str
    job: str
    github_environment: str | None
    environment: str | None  # logical name; ANY_ENVIRONMENT if unknown; None if unmanaged
    secrets: tuple[str, ...]
    caller: str | None = None  # "ci.yml job deploy": this run of a reusable workflow's job
    passed: tuple[PassedSecret, ...] | None = None  # a caller's `secrets:` mapping; None: all
    environment_expression: str | None = None  # `environment:` as written, if an expression
    calls: str | None = None  # `uses:` of a job calling a reusable workflow

    @property
    def environment_unknown(self) -> bool:
        return self.environment == ANY_ENVIRONMENT

    def to_json(self) -> dict[str, Any]:
        return {
            "workflow": self.workflow,
            "job": self.job,
            "environment": self.environment,
            "github_environment": self.github_environment,
            "secrets": list(self.secrets),
            "caller": self.caller,
            "environment_unknown": self.environment_unknown,
            "environment_expression": self.environment_expression,
            "passed": None
            if self.passed is None
            else {p.name: list(p.from_secrets) for p in self.passed},
            "calls": self.calls,
        }


@dataclass(frozen=True, order=True)
class ScanFinding:
    """One mismatch between workflows and the policy."""

    kind: str  # "undeclared" | "no-environment" | "not-passed" | "unused"
    secret: str
    environment: str | None  # logical environment
    workflow: str | None
    job: str | None
    owner: str | None
    detail: str
    caller: str | None = None  # the calling job, for a reusable workflow's job

    def to_json(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "secret": self.secret,
            "environment": self.environment,
            "workflow": self.workflow,
            "job": self.job,
            "owner": self.owner,
            "detail": self.detail,
            "caller": self.caller,
            "empty_string": self.kind != "unused",
        }


@dataclass(frozen=True)
class ScanReport:
    """All jobs read and the findings."""

    jobs: tuple[JobReferences, ...]
    findings: tuple[ScanFinding, ...]
    skipped: tuple[str, ...] = ()  # why a file or job was not checked

    @property
    def undeclared(self) -> tuple[ScanFinding, ...]:
        return tuple(f for f in self.findings if f.kind != "unused")

    @property
    def unused(self) -> tuple[ScanFinding, ...]:
        return tuple(f for f in self.findings if f.kind == "unused")

    def to_json(self) -> dict[str, Any]:
        return {
            "undeclared": [f.to_json() for f in self.undeclared],
            "unused": [f.to_json() for f in self.unused],
            "jobs": [j.to_json() for j in self.jobs],
            "skipped": list(self.skipped),
            "environment_unknown": [j.to_json() for j in self.environment_unknown],
            "empty_string": self.empty_string(),
        }

    @property
    def environment_unknown(self) -> tuple[JobReferences, ...]:
        """Jobs whose environment could not be worked out (checked against every one)."""
        return tuple(j for j in self.jobs if j.environment_unknown)

    def empty_string(self) -> list[dict[str, Any]]:
        """The job runs GitHub would give an empty string, with the secrets concerned."""
        runs: dict[tuple[Any, ...], list[str]] = {}
        for f in self.undeclared:
            runs.setdefault((f.workflow, f.job, f.caller, f.environment), []).append(f.secret)
        return [
            {"workflow": w, "job": j, "caller": c, "environment": e, "secrets": sorted(names)}
            for (w, j, c, e), names in runs.items()
        ]


def scan_workflows(policy: Policy, folder: str | Path, repository: str | None = None) -> ScanReport:
    """Read every workflow file in `folder` and compare it with the policy."""
    repository = resolve_repository(policy, repository)
    root = Path(folder)
    if not root.is_dir():
        raise UsageError(f"--workflows {folder}: not a directory")
    documents: dict[str, Any] = {}
    skipped: list[str] = []
    for path in sorted([*root.glob("*.yml"), *root.glob("*.yaml")]):
        try:
            documents[path.name] = _workflow_document(path)
        except _Unreadable as exc:
            skipped.append(f"{path.name}: {exc}")
    try:
        jobs = _references(
            policy, documents, [repository] if repository else policy_repositories(policy)
        )
    except RecursionError:  # deeper than the YAML parser's own limit: refuse, do not crash
        raise UsageError(f"--workflows {folder}: a workflow is nested too deeply") from None
    return compare(policy, jobs, repository, tuple(skipped))


class _Unreadable(Exception):
    """A workflow file that is skipped (the message says why), not a failed scan."""


def read_jobs(policy: Policy, path: Path) -> list[JobReferences]:
    """The jobs of one workflow file (read alone: no callers) and the secrets each references."""
    try:
        return _references(policy, {path.name: _workflow_document(path)}, [])
    except RecursionError:
        raise _Unreadable("nested too deeply") from None


def _workflow_document(path: Path) -> dict[str, Any]:
    """One workflow file's YAML, bounded (size, nodes); _Unreadable says why it is skipped."""
    try:
        text = read_regular_file(path, MAX_WORKFLOW_BYTES).decode("utf-8")
        document = load_yaml(text, max_nodes=MAX_WORKFLOW_NODES)
    except UnsafeInput as exc:
        raise _Unreadable(str(exc)) from None
    except (OSError, UnicodeDecodeError, YAMLError, ValueError):
        raise _Unreadable("not readable YAML") from None
    jobs = document.get("jobs") if isinstance(document, dict) else None
    if not isinstance(jobs, dict):
        raise _Unreadable("no jobs")
    return document  # type: ignore[no-any-return]


def _references(
    policy: Policy, documents: Mapping[str, Any], repositories: Iterable[str]
) -> list[JobReferences]:
    """Every run of every job (views/workflow_runs.py) with the secrets the job references."""
    names: dict[tuple[str, str], tuple[str, ...]] = {}
    for workflow, document in documents.items():
        for job_id, job in document["jobs"].items():
            if isinstance(job, dict):
                found = {n for text in _strings(job) for n in references(text)}
                names[(workflow, str(job_id))] = tuple(sorted(found))
    return list(
        dict.fromkeys(
            _job(policy, run, names[(run.workflow, run.job)])
            for run in job_runs(documents, repositories)
        )
    )


def _job(policy: Policy, run: JobRun, secrets: tuple[str, ...]) -> JobReferences:
    logical = (
        logical_environment(policy, run.environment) if run.environment_known else ANY_ENVIRONMENT
    )
    return JobReferences(
        run.workflow,
        run.job,
        run.environment,
        logical,
        secrets,
        run.caller,
        run.passed,
        run.expression,
        run.calls,
    )


def logical_environment(policy: Policy, github_env: str | None) -> str | None:
    """A job's GitHub environment -> the policy's logical name (ANY_ENVIRONMENT for
    expressions, None when absent or not managed by the policy)."""
    if github_env is None:
        return None
    if "${{" in github_env:
        return ANY_ENVIRONMENT
    for name, spec in policy.environments.items():
        if spec.github.lower() == github_env.lower():
            return name
    return None


def references(text: str) -> set[str]:
    """Secret names referenced in a string, upper-cased (GitHub names are case-insensitive)."""
    found = {(m.group(1) or m.group(2)).upper() for m in _REFERENCE.finditer(text)}
    return found - IGNORED


def _strings(node: Any) -> Iterator[str]:
    if isinstance(node, str):
        yield node
    elif isinstance(node, dict):
        for key, value in node.items():
            yield str(key)
            yield from _strings(value)
    elif isinstance(node, list):
        for item in node:
            yield from _strings(item)


def compare(
    policy: Policy,
    jobs: Iterable[JobReferences],
    repository: str | None = None,
    skipped: tuple[str, ...] = (),
) -> ScanReport:
    """Findings for jobs against the policy (pure)."""
    declared = _declared(policy, repository)
    shared = _repository_level(policy, repository)
    jobs = tuple(sorted(jobs, key=_job_order))
    findings = [f for job in jobs for f in _job_findings(policy, declared, shared, job)]
    findings += _unused(policy, declared, jobs) + _unused_shared(policy, shared, jobs)
    notes = [
        f"{j.workflow}: job {j.job}: environment {j.github_environment} is not in the policy"
        for j in jobs
        if j.github_environment and j.environment is None and j.secrets
    ]
    notes += [
        f"{j.workflow}: job {j.job} calls {j.calls}, which is not in the folder (not checked)"
        for j in jobs
        if j.calls is not None and not _called_in(j, jobs)
    ]
    return ScanReport(jobs, tuple(findings), skipped + tuple(dict.fromkeys(notes)))


def unknown_environment_line(job: JobReferences) -> str:
    """`w.yml job j: environment ${{ ... }} cannot be worked out ...` for human output."""
    called = f" (called by {job.caller})" if job.caller else ""
    uses = f"; its secrets ({', '.join(job.secrets)}) are checked" if job.secrets else ""
    return (
        f"{job.workflow} job {job.job}{called}: environment {job.github_environment} cannot be "
        f"worked out from literals, matrix values, inputs or callers{uses} against every "
        "environment"
    )


def _job_order(job: JobReferences) -> tuple[Any, ...]:
    return (
        job.workflow,
        job.job,
        job.caller or "",
        job.github_environment or "",
        job.environment or "",
        job.secrets,
    )


def _called_in(caller: JobReferences, jobs: tuple[JobReferences, ...]) -> bool:
    label = f"{caller.workflow} job {caller.job}"
    return any(j.caller == label for j in jobs)


def _declared(policy: Policy, repository: str | None) -> dict[str, set[str]]:
    """Logical environment -> secret names the policy declares there."""
    declared: dict[str, set[str]] = {env: set() for env in policy.environments}
    for name, spec in policy.secrets.items():
        if _targets(policy, name, repository):
            for env in spec.environments:
                declared[env].add(name)
    return declared


def _repository_level(policy: Policy, repository: str | None) -> frozenset[str]:
    """The scope: repository secrets (of one repository, if given): declared for every job."""
    return frozenset(
        name
        for name, spec in policy.secrets.items()
        if spec.repository_level and _targets(policy, name, repository)
    )


def _targets(policy: Policy, name: str, repository: str | None) -> bool:
    repos = policy.repositories_for(policy.secrets[name])
    return repository is None or repository.lower() in {r.lower() for r in repos}


def _job_findings(
    policy: Policy, declared: Mapping[str, set[str]], shared: frozenset[str], job: JobReferences
) -> Iterator[ScanFinding]:
    managed = set().union(*declared.values())
    # a caller's explicit `secrets:` passes only what it maps: repository secrets included
    names = set(job.secrets) if job.passed is not None else set(job.secrets) - shared
    for name in sorted(names):
        problem = _problem(declared, managed, job, name)
        if problem is not None:
            kind, detail = problem
            environment = job.environment if job.environment in declared else None
            called = f" (called by {job.caller})" if job.caller else ""
            yield ScanFinding(
                kind,
                name,
                environment,
                job.workflow,
                job.job,
                _owner(policy, name),
                f"{job.workflow} job {job.job}{called} {detail}",
                job.caller,
            )


def _problem(
    declared: Mapping[str, set[str]], managed: set[str], job: JobReferences, name: str
) -> tuple[str, str] | None:
    if job.passed is not None:
        return _not_passed(declared, managed, job, job.passed, name)
    env = job.environment
    if job.github_environment is None:
        if name in managed:
            return "no-environment", f"has no environment; {name} is an environment secret"
        return None
    if env == ANY_ENVIRONMENT and name not in managed:
        hint = did_you_mean(name, managed)
        return "undeclared", f"references {name}; the policy declares it nowhere{hint}"
    if env is not None and env in declared and name not in declared[env]:
        hint = "" if name in managed else did_you_mean(name, declared[env])
        return "undeclared", f"references {name}; the policy does not declare it for {env}{hint}"
    return None


def _not_passed(
    declared: Mapping[str, set[str]],
    managed: set[str],
    job: JobReferences,
    passed: tuple[PassedSecret, ...],
    name: str,
) -> tuple[str, str] | None:
    """A reusable workflow's job called with an explicit `secrets:` mapping: `name` reaches it
    only if mapped (the calling job's own check covers the mapped value) or its environment's."""
    env = job.environment
    if name in {p.name for p in passed}:
        return None
    if env == ANY_ENVIRONMENT and name in managed:
        return None  # it may be the unknown environment's own secret
    if job.github_environment is not None and env is None:
        return None  # an environment the policy does not manage may hold it
    if env is not None and env in declared and name in declared[env]:
        return None
    where = f"; {env} does not hold it" if env in declared else ""
    return "not-passed", (
        f"references {name}, which its caller neither maps under secrets: "
        f"nor passes with secrets: inherit{where}"
    )


def _unused(
    policy: Policy, declared: Mapping[str, set[str]], jobs: tuple[JobReferences, ...]
) -> list[ScanFinding]:
    used: dict[str, set[str]] = {env: set() for env in declared}
    for job in jobs:
        for env in declared if job.environment == ANY_ENVIRONMENT else [job.environment]:
            if env in used:
                used[env].update(job.secrets)
    return [
        ScanFinding(
            "unused",
            name,
            env,
            None,
            None,
            _owner(policy, name),
            f"{name} is declared for {env} but no workflow job for {env} references it",
        )
        for env, names in declared.items()
        for name in sorted(names - used[env])
    ]


def _unused_shared(
    policy: Policy, shared: frozenset[str], jobs: tuple[JobReferences, ...]
) -> list[ScanFinding]:
    used = {name for job in jobs for name in job.secrets}
    return [
        ScanFinding(
            "unused",
            name,
            None,
            None,
            None,
            _owner(policy, name),
            f"{name} is a repository secret but no workflow job references it",
        )
        for name in sorted(shared - used)
    ]


def _owner(policy: Policy, name: str) -> str | None:
    spec = policy.secrets.get(name)
    return spec.owner if spec is not None else None
