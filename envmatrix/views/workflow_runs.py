"""What GitHub gives each workflow job: its environment and how its secrets reach it.

The scan (views/scan.py) reads workflow files as plain YAML; this module works out, for every
job, the runs GitHub would make of it — without running anything:

- the environment: `environment: NAME`, `environment: {name: NAME, url: ...}`, or an expression
  (`${{ matrix.env }}`, `${{ inputs.environment }}`, `${{ github.event.inputs.x }}`, a template
  such as `deploy-${{ matrix.env }}`, `a || 'b'`). Expressions are evaluated per matrix
  combination (the job's `strategy.matrix` with `include`/`exclude`, as GitHub expands it) and
  per set of inputs: a `workflow_call` workflow gets its inputs from each same-repository caller's
  `with:` (itself evaluated in the caller's matrix and inputs) or, when nothing in the folder
  calls it, from the inputs' `default`s; a `workflow_dispatch` workflow gets each `choice` option
  and each `default`. A value that cannot be worked out is `None`: "environment unknown".
- the secrets: a top-level run (and `secrets: inherit`) sees every repository/organization secret
  plus its environment's; a call with an explicit `secrets:` mapping passes only the names it
  maps (`passed`), so the callee's `secrets.X` is empty unless mapped or an environment secret.

Shapes: `job_runs(documents)` takes `{file name: loaded YAML}` and returns `JobRun`s; nothing here
reads files, prints or raises (bad shapes count as "unknown").
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

MAX_RUNS_PER_WORKFLOW = 256  # input sets per workflow: a bound, far above real workflows
MAX_MATRIX_COMBINATIONS = 256  # GitHub runs at most 256 jobs per matrix
MAX_EVALUATIONS_PER_JOB = 4096  # (input set, matrix combination) pairs looked at per job
MAX_CALL_DEPTH = 10  # GitHub allows 4 levels of nesting; deeper (or a cycle) is not followed

_EXPRESSION = re.compile(r"\$\{\{(.*?)\}\}", re.DOTALL)
_PATH = re.compile(
    r"^(matrix|inputs|github\.event\.inputs)\s*(?:\.\s*([A-Za-z_][\w-]*)|\[\s*'([^']*)'\s*\])$"
)
_LITERAL = re.compile(r"^'((?:[^']|'')*)'$")
_CALLER_SECRET = re.compile(
    r"""\bsecrets\s*(?:\.\s*([A-Za-z_][A-Za-z0-9_]*)|\[\s*['"]([A-Za-z_][A-Za-z0-9_]*)['"]\s*\])"""
)


@dataclass(frozen=True, order=True)
class PassedSecret:
    """One entry of a caller's `secrets:` mapping: the callee's name and what fills it.

    `from_secrets`: the caller's `secrets.X` names the value is built from (upper case);
    empty when the value is a literal or another context (`inputs`, `vars`).
    """

    name: str
    from_secrets: tuple[str, ...] = ()


@dataclass(frozen=True)
class _Inputs:
    """One set of input values a workflow runs with (None: not known)."""

    inputs: tuple[tuple[str, str | None], ...] = ()
    event_inputs: tuple[tuple[str, str | None], ...] = ()
    passed: tuple[PassedSecret, ...] | None = None  # None: all secrets (top level or inherit)
    caller: str | None = None  # "ci.yml job deploy" for a reusable workflow's run


@dataclass(frozen=True)
class JobRun:
    """One way GitHub runs one job: its environment (None: none given) and its secrets' route.

    `environment_known` is False when `environment` names an expression that could not be
    worked out; `environment` then holds the expression as written.
    """

    workflow: str
    job: str
    environment: str | None
    environment_known: bool = True
    expression: str | None = None  # the `environment:` as written, when an expression
    caller: str | None = None
    passed: tuple[PassedSecret, ...] | None = None
    calls: str | None = None  # the `uses:` of a job that calls a reusable workflow
    called: str | None = None  # the file `calls` names, when it is in the folder


def job_runs(documents: Mapping[str, Any], repositories: Iterable[str] = ()) -> list[JobRun]:
    """Every run of every job of the workflow files `documents` ({file name: YAML data}).

    `repositories`: the names (`owner/name`) the folder may belong to; a `uses:` naming one of
    them (`owner/name/.github/workflows/f.yml@ref`) calls the folder's own `f.yml`.
    """
    graph = _Graph(documents, repositories)
    runs: list[JobRun] = []
    for name in sorted(documents):
        runs.extend(graph.runs_of(name))
    return runs


class _Graph:
    """The workflow files and the calls between them (same repository only)."""

    def __init__(self, documents: Mapping[str, Any], repositories: Iterable[str]) -> None:
        self.documents = {n: d for n, d in documents.items() if isinstance(d, dict)}
        self.repositories = {r.lower() for r in repositories}
        self._inputs: dict[str, list[_Inputs]] = {}

    def runs_of(self, name: str) -> Iterator[JobRun]:
        jobs = self.documents[name].get("jobs")
        if not isinstance(jobs, dict):
            return
        input_sets = self.input_sets(name, ())
        for job_id, job in jobs.items():
            if isinstance(job, dict):
                runs = self._job_runs(name, str(job_id), job, input_sets)
                yield from _dedupe(itertools.islice(runs, MAX_EVALUATIONS_PER_JOB))

    def _job_runs(
        self, name: str, job_id: str, job: Mapping[str, Any], input_sets: list[_Inputs]
    ) -> Iterator[JobRun]:
        uses = job.get("uses")
        if isinstance(uses, str):  # a calling job has no environment of its own
            yield JobRun(name, job_id, None, calls=uses, called=self.called_file(uses))
            return
        written = _environment_value(job.get("environment"))
        for inputs in input_sets:
            for combination in _matrix_combinations(job):
                yield _run(name, job_id, written, inputs, combination)

    def input_sets(self, name: str, stack: tuple[str, ...]) -> list[_Inputs]:
        """The input sets workflow `name` runs with: its callers' and its own triggers'."""
        if name in self._inputs:
            return self._inputs[name]
        if name in stack or len(stack) >= MAX_CALL_DEPTH:
            return [_Inputs(caller="(a call cycle)")]
        triggers = _triggers(self.documents[name])
        sets: list[_Inputs] = []
        calls = list(self._callers(name))
        for caller_file, caller_id, caller_job in calls:
            for caller_inputs in self.input_sets(caller_file, (*stack, name)):
                given = _called(triggers, caller_file, caller_id, caller_job, caller_inputs)
                sets.extend(itertools.islice(given, MAX_RUNS_PER_WORKFLOW))
                if len(sets) >= MAX_RUNS_PER_WORKFLOW:
                    break
        if set(triggers) - {"workflow_call"} or not calls:
            sets.extend(_standalone(triggers))
        result = list(dict.fromkeys(sets))[:MAX_RUNS_PER_WORKFLOW] or [_Inputs()]
        self._inputs[name] = result  # GitHub refuses call cycles: one answer per file is enough
        return result

    def _callers(self, name: str) -> Iterator[tuple[str, str, Mapping[str, Any]]]:
        for caller_file, document in sorted(self.documents.items()):
            jobs = document.get("jobs")
            for job_id, job in jobs.items() if isinstance(jobs, dict) else ():
                if isinstance(job, dict) and self.called_file(job.get("uses")) == name:
                    yield caller_file, str(job_id), job

    def called_file(self, uses: Any) -> str | None:
        """The file name of a same-repository reusable workflow `uses:` names (else None)."""
        if not isinstance(uses, str):
            return None
        path = uses.strip()
        if not path.startswith("./"):
            path, _, _ = path.partition("@")
            owner_repo = "/".join(path.split("/")[:2]).lower()
            if owner_repo not in self.repositories:
                return None
        leaf = path.rsplit("/", 1)[-1]
        return leaf if leaf in self.documents else None


def _run(
    name: str, job_id: str, written: str | None, inputs: _Inputs, matrix: Mapping[str, Any] | None
) -> JobRun:
    common = {"caller": inputs.caller, "passed": inputs.passed}
    if written is None or "${{" not in written:
        return JobRun(name, job_id, written, **common)  # type: ignore[arg-type]
    value = evaluate(written, _Context(matrix, dict(inputs.inputs), dict(inputs.event_inputs)))
    if value is None or value.strip() == "" or "${{" in value:
        return JobRun(name, job_id, written, False, written, **common)  # type: ignore[arg-type]
    return JobRun(name, job_id, value.strip(), True, written, **common)  # type: ignore[arg-type]


def _dedupe(runs: Iterator[JobRun]) -> list[JobRun]:
    return list(dict.fromkeys(runs))


def _environment_value(value: Any) -> str | None:
    if isinstance(value, dict):
        value = value.get("name")
    if value is None or isinstance(value, (dict, list)):
        return None
    return str(value)


# -- triggers and inputs ---------------------------------------------------------------------


def _triggers(document: Mapping[Any, Any]) -> dict[str, Any]:
    """`on:` as {event: settings}; YAML 1.1 readers turn the key `on` into True."""
    on = document.get("on", document.get(True))
    if isinstance(on, str):
        return {on: {}}
    if isinstance(on, list):
        return {str(event): {} for event in on}
    if isinstance(on, dict):
        return {str(k): (v if isinstance(v, dict) else {}) for k, v in on.items()}
    return {}


def _input_specs(triggers: Mapping[str, Any], event: str) -> dict[str, dict[str, Any]]:
    inputs = triggers.get(event, {}).get("inputs")
    if not isinstance(inputs, dict):
        return {}
    return {str(k): (v if isinstance(v, dict) else {}) for k, v in inputs.items()}


def _default(spec: Mapping[str, Any]) -> str | None:
    """An input's value when none is given: its default; "" for an optional input without one
    (GitHub's empty string); None (unknown) for a required one or a default by expression."""
    value = spec.get("default")
    if value is None:
        return None if spec.get("required") is True else ""
    if isinstance(value, (dict, list)) or "${{" in str(value):
        return None
    return _text(value)


def _standalone(triggers: Mapping[str, Any]) -> list[_Inputs]:
    """Input sets of a run GitHub starts itself: each `choice` option, else the default."""
    specs = _input_specs(triggers, "workflow_dispatch") or _input_specs(triggers, "workflow_call")
    choices: list[list[tuple[str, str | None]]] = []
    for key, spec in specs.items():
        options = spec.get("options") if spec.get("type") == "choice" else None
        values: list[str | None] = (
            [_text(o) for o in options if not isinstance(o, (dict, list))]
            if isinstance(options, list) and options
            else [_default(spec)]
        )
        choices.append([(key, v) for v in dict.fromkeys(values)])
    sets = []
    for combination in itertools.islice(itertools.product(*choices), MAX_RUNS_PER_WORKFLOW):
        given = tuple(combination)
        sets.append(_Inputs(given, given if "workflow_dispatch" in triggers else ()))
    return sets


def _called(
    triggers: Mapping[str, Any],
    caller_file: str,
    caller_id: str,
    caller_job: Mapping[str, Any],
    caller_inputs: _Inputs,
) -> Iterator[_Inputs]:
    """The input sets one calling job gives: its `with:` per its own matrix combination."""
    specs = _input_specs(triggers, "workflow_call")
    given = caller_job.get("with")
    given = given if isinstance(given, dict) else {}
    passed = _passed(caller_job.get("secrets"), caller_inputs.passed)
    label = f"{caller_file} job {caller_id}"
    for combination in _matrix_combinations(caller_job):
        context = _Context(
            combination, dict(caller_inputs.inputs), dict(caller_inputs.event_inputs)
        )
        values = {key: _default(spec) for key, spec in specs.items()}
        for key, value in given.items():
            values[str(key)] = (
                None if isinstance(value, (dict, list)) else evaluate(_text(value), context)
            )
        yield _Inputs(tuple(sorted(values.items())), caller_inputs.event_inputs, passed, label)


def _passed(
    mapping: Any, callers_own: tuple[PassedSecret, ...] | None
) -> tuple[PassedSecret, ...] | None:
    """What a call passes: None for `secrets: inherit` (what the caller has), else the mapping."""
    if mapping == "inherit":
        return callers_own
    if not isinstance(mapping, dict):
        return ()
    own = None if callers_own is None else {p.name: p for p in callers_own}
    passed = []
    for key, value in mapping.items():
        names = _secret_names(str(value))
        if own is not None:  # the caller's own secrets came through a mapping too
            names = tuple(sorted({n for x in names if x in own for n in own[x].from_secrets}))
        passed.append(PassedSecret(str(key).upper(), names))
    return tuple(sorted(passed))


def _secret_names(text: str) -> tuple[str, ...]:
    return tuple(
        sorted({(m.group(1) or m.group(2)).upper() for m in _CALLER_SECRET.finditer(text)})
    )


# -- matrix ----------------------------------------------------------------------------------


def _matrix_combinations(job: Mapping[str, Any]) -> list[dict[str, Any] | None]:
    """The job's matrix combinations as GitHub expands them; [None] when it has a matrix that
    cannot be read (an expression), [{}] when it has none."""
    strategy = job.get("strategy")
    matrix = strategy.get("matrix") if isinstance(strategy, dict) else None
    if matrix is None:
        return [{}]
    if not isinstance(matrix, dict):
        return [None]
    axes = {k: v for k, v in matrix.items() if k not in ("include", "exclude")}
    if not all(isinstance(v, list) for v in axes.values()):
        return [None]
    combinations = [
        dict(zip(axes, values, strict=True))
        for values in itertools.islice(itertools.product(*axes.values()), MAX_MATRIX_COMBINATIONS)
    ]
    combinations = _excluded(combinations, matrix.get("exclude"))
    if not axes:
        combinations = []
    combinations = _included(combinations, set(axes), matrix.get("include"))
    return combinations[:MAX_MATRIX_COMBINATIONS] or [{}]  # type: ignore[return-value]


def _excluded(combinations: list[dict[str, Any]], exclude: Any) -> list[dict[str, Any]]:
    rules = [r for r in exclude if isinstance(r, dict)] if isinstance(exclude, list) else []
    return [
        c for c in combinations if not any(all(c.get(k) == v for k, v in r.items()) for r in rules)
    ]


def _included(
    combinations: list[dict[str, Any]], original: set[str], include: Any
) -> list[dict[str, Any]]:
    """GitHub's rule: an include entry extends every combination whose original values it does
    not overwrite (added values may be overwritten); one that fits none is a new combination."""
    entries = [e for e in include if isinstance(e, dict)] if isinstance(include, list) else []
    base = [dict(c) for c in combinations]
    result = [dict(c) for c in combinations]
    for entry in entries:
        fits = [
            i
            for i, c in enumerate(base)
            if all(c[k] == v for k, v in entry.items() if k in original)
        ]
        for i in fits:
            result[i].update(entry)
        if not fits:
            result.append(dict(entry))
    return result


# -- expressions -----------------------------------------------------------------------------


@dataclass(frozen=True)
class _Context:
    matrix: Mapping[str, Any] | None  # None: a matrix that cannot be read
    inputs: Mapping[str, str | None]
    event_inputs: Mapping[str, str | None]


def evaluate(text: str, context: _Context) -> str | None:
    """`text` with each `${{ expr }}` replaced by its value; None if any cannot be worked out.

    Understood: `matrix.K`, `inputs.K`, `github.event.inputs.K` (also `x['K']`), string literals
    `'...'`, and `a || b`. Anything else (`needs`, `vars`, functions) is unknown.
    """
    parts: list[str] = []
    last = 0
    for match in _EXPRESSION.finditer(text):
        value = _expression(match.group(1).strip(), context)
        if value is None:
            return None
        parts += [text[last : match.start()], value]
        last = match.end()
    return "".join([*parts, text[last:]])


def _expression(expr: str, context: _Context) -> str | None:
    alternatives = _split_or(expr)
    if len(alternatives) > 1:
        for alternative in alternatives:
            value = _expression(alternative, context)
            if value is None:
                return None
            if value != "":
                return value
        return ""
    literal = _LITERAL.match(expr)
    if literal:
        return literal.group(1).replace("''", "'")
    path = _PATH.match(expr)
    if path is None:
        return None
    source, key = path.group(1), path.group(2) or path.group(3)
    if source == "matrix":
        if context.matrix is None or key not in context.matrix:
            return None
        value = context.matrix[key]
        return None if isinstance(value, (dict, list)) else _text(value)
    values = context.inputs if source == "inputs" else context.event_inputs
    return values.get(key)


def _split_or(expr: str) -> list[str]:
    """`a || b` -> [a, b], outside string literals; [expr] when there is no `||`."""
    parts, current, quoted, i = [], "", False, 0
    while i < len(expr):
        if expr[i] == "'":
            quoted = not quoted
        if not quoted and expr.startswith("||", i):
            parts.append(current.strip())
            current, i = "", i + 2
            continue
        current += expr[i]
        i += 1
    return [*parts, current.strip()]


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)
