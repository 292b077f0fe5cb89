"""Issue 13's "Show" benchmark: envmatrix and a per-resource baseline side by side, under latency.

GitHub is the sandbox (in this process) with a delay fault of 50 ms on every request; Vault is a
real OpenBao dev server behind bench/latency_proxy.py (its own process) adding 5 ms per round
trip. The policy is N repositories x 3 environments x 20 secrets (bench/cpu_scale.py's shape).
Per size and per contender, on a fresh org (its own sandbox and Vault mount), in this order:

  plan, fresh org      nothing in GitHub yet
  first apply          everything created (ENVMATRIX_GITHUB_WRITE_INTERVAL=0)
  re-plan, unchanged   a plan with nothing changed since the previous plan (for envmatrix "now"
                       a plan right after the apply comes first and fills its ETag cache; that
                       one is printed too, as "plan after apply")

Contenders, each a child process (wall time and peak RSS from its own wait4 rusage):

  today     envmatrix, ENVMATRIX_GITHUB_CONCURRENCY=1, ENVMATRIX_GITHUB_WRITE_CONCURRENCY=1 and
            ENVMATRIX_NO_CACHE=1 (one request in flight, no conditional requests: the issue's
            "envmatrix today")
  now       envmatrix with its defaults (concurrency, ETag cache in ENVMATRIX_CACHE_DIR=<tmp>)
  baseline  a Terraform-style refresh this file implements (`--baseline-step`): a thread pool of
            10, one requests.Session per thread; plan = one GET per environment resource
            (GET /repos/{o}/{r}/environments/{e}), one GET per secret resource
            (GET .../environments/{e}/secrets/{name}) and one Vault read per secret resource;
            first apply = one PUT per environment and its read-back GET, then per secret
            resource its Vault read, its public-key GET, its PUT and its read-back GET (as
            terraform's github provider creates a resource: Create, then Read)

Figures per step: wall seconds, GitHub requests (what reached the sandbox's routes), requests
answered 304, the most GitHub requests in flight at once, primary rate-limit points spent (the
sandbox's own accounting), Vault round trips (the proxy's count) and peak RSS of the process.
The lower bound of GitHub requests is computed from the policy shape (see `lower_bound`).
Then ratios, the growth slope with repositories, the issue's baseline figures next to this
baseline's, and the issue's targets with PASS/MISS.

Usage: `.venv/bin/python bench/side_by_side.py [--sizes 10,50,200] [--quick]
[--contenders today,now,baseline]`; `--quick` = one size, 10 (a smoke run of about a minute).
"""

from __future__ import annotations

import argparse
import base64
import math
import os
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor, as_completed, wait
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import hvac
import requests
from nacl.public import PublicKey, SealedBox

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from cpu_scale import ENVIRONMENTS, SECRETS, write_policy  # noqa: E402

from envmatrix.adapters.vault import VaultAdapter  # noqa: E402
from envmatrix.demo.openbao import OpenBaoDevServer  # noqa: E402
from envmatrix.demo.run import seed_vault  # noqa: E402
from envmatrix.pipeline.desired import DesiredState, desired_state  # noqa: E402
from envmatrix.policy import load_policy  # noqa: E402
from envmatrix.sandbox import Fault, GitHubSandbox  # noqa: E402
from envmatrix.settings import GITHUB_CONCURRENCY_OTHER  # noqa: E402

TOKEN = "bench-token"
OWNER = "occ-labs"
GITHUB_DELAY = 0.05
VAULT_DELAY = 0.005
BASELINE_PARALLELISM = 10
CONTENDERS = ("today", "now", "baseline")
STEPS = ("plan, fresh org", "first apply", "plan after apply", "re-plan, unchanged")
# the issue's measured figures (wall seconds, GitHub requests) at 50 and 200 repositories
ISSUE_BASELINE = {
    50: {
        "plan, fresh org": (18.3, 3300),
        "re-plan, unchanged": (21, 3300),
        "first apply": (56, None),
    },
    200: {
        "plan, fresh org": (81, 13200),
        "re-plan, unchanged": (73, 13200),
        "first apply": (225, None),
    },
}
ISSUE_TODAY = {
    50: {"plan, fresh org": (5.8, 50), "re-plan, unchanged": (23, 350), "first apply": (222, None)},
    200: {
        "plan, fresh org": (22, 200),
        "re-plan, unchanged": (87, 1400),
        "first apply": (873, None),
    },
}


# -- the policy and the lower bound ------------------------------------------------------------


def repositories(n: int) -> list[str]:
    return [f"{OWNER}/service-{i:04d}" for i in range(n)]


def policy_file(tmp: Path, n: int, mount: str) -> Path:
    """N repositories x 3 environments x 20 secrets, Vault paths in `mount`."""
    return write_policy(tmp / f"policy-{mount}.yaml", "side-by-side", mount, repositories(n))


def lower_bound(n: int, step: str) -> int:
    """GitHub requests a plan (or apply) of this shape cannot go below, as issue 13 counts them:
    per repository its environments list and its repository secrets list (a job falls back to
    a repository secret of the same name), per owner its organization secrets list, per existing
    environment one secrets page per 100 secrets. A first apply adds, per environment, its
    creation (PUT), its public key (GET) and one PUT per secret."""
    environments = n * len(ENVIRONMENTS)
    per_plan = 2 * n + 1
    if step == "plan, fresh org":
        return per_plan
    if step == "first apply":
        return per_plan + environments * (2 + SECRETS)
    return per_plan + environments * math.ceil(SECRETS / 100)


# -- measuring ---------------------------------------------------------------------------------


@dataclass
class Figures:
    """One step of one contender at one size."""

    code: int
    wall: float
    requests: int
    answered_304: int
    max_in_flight: int
    points: int
    vault: int
    rss_mib: float
    bound: int
    note: str = ""
    derived_304: bool = False
    endpoints: dict[str, int] = field(default_factory=dict)

    @property
    def ratio(self) -> float:
        return self.requests / self.bound


@dataclass
class Child:
    code: int
    wall: float
    rss_mib: float
    stderr_tail: str


def run_child(argv: Sequence[str], env: dict[str, str], tmp: Path) -> Child:
    """Run one process to its end: exit code, wall seconds, its own peak RSS (MiB)."""
    errors = tmp / "stderr.txt"
    started = time.perf_counter()
    with errors.open("w") as stderr:
        process = subprocess.Popen(
            list(argv), cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=stderr
        )
        _, status, usage = os.wait4(process.pid, 0)
    wall = time.perf_counter() - started
    process.returncode = os.waitstatus_to_exitcode(status)
    lines = errors.read_text(errors="replace").strip().splitlines()
    return Child(process.returncode, wall, usage.ru_maxrss / 1024, lines[-1] if lines else "")


class VaultProxy:
    """bench/latency_proxy.py in its own process, in front of OpenBao."""

    def __init__(self, upstream: str, delay: float) -> None:
        script = str(ROOT / "bench" / "latency_proxy.py")
        args = [sys.executable, script, "--upstream", upstream, "--delay", str(delay)]
        self.process = subprocess.Popen(args, stdout=subprocess.PIPE, text=True)
        assert self.process.stdout is not None
        self.url = self.process.stdout.readline().strip().rsplit(" ", 1)[-1]
        if not self.url.startswith("http://"):
            self.close()
            raise RuntimeError("the Vault latency proxy did not start")

    def reset(self) -> None:
        requests.delete(f"{self.url}/_proxy/stats", timeout=10).raise_for_status()

    def round_trips(self) -> int:
        answer = requests.get(f"{self.url}/_proxy/stats", timeout=10)
        answer.raise_for_status()
        return int(answer.json()["round_trips"])

    def close(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=10)


def points_used(sandbox: GitHubSandbox) -> int:
    with sandbox.state.lock:
        return sandbox.state.rate.snapshot(sandbox.clock.now())["used"]


def measure(
    sandbox: GitHubSandbox, proxy: VaultProxy, bound: int, action: Callable[[], Child]
) -> Figures:
    sandbox.reset_counts()
    proxy.reset()
    before = points_used(sandbox)
    child = action()
    sandbox.wait_until_idle()
    points = points_used(sandbox) - before
    counts = sandbox.request_counts()
    total = sum(counts.values())
    log = sandbox.request_log()
    if len(log) == total:
        answered_304, derived = sum(1 for r in log if r.status == 304), False
    else:  # the log keeps the last 10,000: every answer but a 304 (and GET /rate_limit) is charged
        free = counts[("GET", "rate-limit/get")]
        answered_304, derived = total - points - free, True
    return Figures(
        code=child.code,
        wall=child.wall,
        requests=total,
        answered_304=answered_304,
        max_in_flight=sandbox.max_in_flight(),
        points=points,
        vault=proxy.round_trips(),
        rss_mib=child.rss_mib,
        bound=bound,
        note="" if child.code in (0, 2) else f"exit {child.code}: {child.stderr_tail}",
        derived_304=derived,
        endpoints={f"{m} {op}": k for (m, op), k in sorted(counts.items())},
    )


@dataclass
class Bench:
    bao: OpenBaoDevServer
    proxy: VaultProxy
    tmp: Path
    endpoints: bool = False
    # sizes at which "today"'s first apply (serial, ~15 min at 200) only sets the world up, with
    # "now"'s settings, and is not measured: no target compares it
    setup_today_apply: frozenset[int] = frozenset()
    results: dict[tuple[int, str, str], Figures] = field(default_factory=dict)

    def new_mount(self, n: int, contender: str) -> Path:
        mount = f"sbs{n}{contender}"
        admin = hvac.Client(url=self.bao.addr, token=self.bao.token)
        admin.sys.enable_secrets_engine("kv", path=mount, options={"version": "2"})
        admin.adapter.close()
        time.sleep(0.5)  # a new KV v2 mount upgrades itself first
        path = policy_file(self.tmp, n, mount)
        seed_vault(load_policy(path), VaultAdapter(self.bao.addr, self.bao.token, mount))
        return path

    def environ(self, sandbox: GitHubSandbox, policy: Path, contender: str) -> dict[str, str]:
        mine = ("GH_", "GITHUB_", "VAULT_", "ENVMATRIX_")
        env = {k: v for k, v in os.environ.items() if not k.startswith(mine)}
        env.update(
            {
                "VAULT_ADDR": self.proxy.url,
                "VAULT_TOKEN": self.bao.token,
                "GITHUB_API_URL": sandbox.url,
                "GITHUB_TOKEN": TOKEN,
                "ENVMATRIX_POLICY": str(policy),
                "ENVMATRIX_AUDIT_DB": str(self.tmp / f"audit-{policy.stem}.sqlite"),
                "ENVMATRIX_GITHUB_WRITE_INTERVAL": "0",
                "ENVMATRIX_CACHE_DIR": str(self.tmp / f"cache-{policy.stem}"),
            }
        )
        if contender == "today":
            env["ENVMATRIX_GITHUB_CONCURRENCY"] = "1"
            env["ENVMATRIX_GITHUB_WRITE_CONCURRENCY"] = "1"
            env["ENVMATRIX_NO_CACHE"] = "1"
        return env

    def run(self, n: int, contender: str) -> None:
        policy = self.new_mount(n, contender)
        with GitHubSandbox(token=TOKEN, repositories=repositories(n), rate_limit=10**8) as sandbox:
            sandbox.inject(Fault(delay=GITHUB_DELAY))
            env = self.environ(sandbox, policy, contender)
            for step in STEPS:
                if step == "plan after apply" and contender != "now":
                    continue  # without a cache it is the re-plan itself
                argv = self.argv(contender, step, policy)
                if contender == "today" and step == "first apply" and n in self.setup_today_apply:
                    quick = self.environ(sandbox, policy, "now")
                    run_child(argv, quick, self.tmp)
                    print(
                        f"   {contender:8s} {step:19s} (set up with now's settings, not measured)"
                    )
                    continue
                figures = measure(
                    sandbox,
                    self.proxy,
                    lower_bound(n, step),
                    lambda argv=argv: run_child(argv, env, self.tmp),  # type: ignore[misc]
                )
                self.results[(n, contender, step)] = figures
                print(f"   {contender:8s} {step:19s} {row(figures)}", flush=True)
                if self.endpoints:
                    for endpoint, count in figures.endpoints.items():
                        print(f"   {'':28s} {count:7d}  {endpoint}")

    @staticmethod
    def argv(contender: str, step: str, policy: Path) -> list[str]:
        if contender == "baseline":
            kind = "apply" if step == "first apply" else "plan"
            return [sys.executable, __file__, "--baseline-step", kind, "--policy", str(policy)]
        command = ["apply", "--yes"] if step == "first apply" else ["plan", "--json"]
        return [sys.executable, "-m", "envmatrix", *command]


# -- the baseline (runs as its own process: `--baseline-step plan|apply`) ------------------------


class Baseline:
    """A Terraform-style per-resource client: one requests.Session per worker thread."""

    def __init__(self, desired: DesiredState, environ: dict[str, str]) -> None:
        self.desired = desired
        self.github_url = environ["GITHUB_API_URL"].rstrip("/")
        self.vault_url = environ["VAULT_ADDR"].rstrip("/")
        self.github_headers = {
            "Authorization": f"token {environ['GITHUB_TOKEN']}",
            "Accept": "application/vnd.github+json",
            "X-GitHub-Api-Version": "2022-11-28",
        }
        self.vault_headers = {"X-Vault-Token": environ["VAULT_TOKEN"]}
        self._local = threading.local()
        self.failures: list[str] = []
        self._lock = threading.Lock()

    def _session(self) -> requests.Session:
        session = getattr(self._local, "session", None)
        if session is None:
            session = self._local.session = requests.Session()
        return session

    def _github(self, method: str, path: str, ok: tuple[int, ...], body: Any = None) -> Any:
        answer = self._session().request(
            method, self.github_url + path, headers=self.github_headers, json=body, timeout=60
        )
        if answer.status_code not in ok:
            with self._lock:
                self.failures.append(f"{method} {path}: {answer.status_code}")
        return answer.json() if answer.status_code == 200 else None

    def _vault_value(self, path: str, key: str) -> str:
        url = f"{self.vault_url}/v1/{self.desired.mount}/data/{path}"
        answer = self._session().get(url, headers=self.vault_headers, timeout=60)
        answer.raise_for_status()
        return str(answer.json()["data"]["data"][key])

    def refresh(self) -> None:
        """One GET per environment resource, per secret resource and per secret's Vault read."""
        tasks: list[Callable[[], object]] = []
        for target in self.desired.targets:
            if target.github_environment is not None:
                url = f"/repos/{target.repository}/environments/{target.github_environment}"
                tasks.append(lambda url=url: self._github("GET", url, (200, 404)))  # type: ignore[misc]
        for cell in self.desired.secrets:
            env = cell.target.github_environment
            url = f"/repos/{cell.target.repository}/environments/{env}/secrets/{cell.name}"
            tasks.append(lambda url=url: self._github("GET", url, (200, 404)))  # type: ignore[misc]
            tasks.append(lambda c=cell: self._vault_value(c.vault_path, c.vault_key))  # type: ignore[misc]
        with ThreadPoolExecutor(BASELINE_PARALLELISM) as pool:
            for future in as_completed([pool.submit(t) for t in tasks]):
                future.result()

    def create(self) -> None:
        """Each environment (PUT), then each of its secrets as soon as it exists: Vault read,
        public-key GET, PUT of the sealed value; never more than 10 resources at once."""
        by_target: dict[Any, list[Any]] = {}
        for cell in self.desired.secrets:
            by_target.setdefault(cell.target, []).append(cell)
        with ThreadPoolExecutor(BASELINE_PARALLELISM) as pool:
            environments: dict[Future[Any], Any] = {}
            for target in by_target:
                url = f"/repos/{target.repository}/environments/{target.github_environment}"
                environments[pool.submit(self._create_environment, url)] = target
            secrets: list[Future[None]] = []
            for done in as_completed(environments):
                done.result()
                secrets += [
                    pool.submit(self._create_secret, c) for c in by_target[environments[done]]
                ]
            for future in wait(secrets).done:
                future.result()

    def _create_environment(self, url: str) -> None:
        self._github("PUT", url, (200,), {})
        self._github("GET", url, (200,))  # the provider's read-back

    def _create_secret(self, cell: Any) -> None:
        value = self._vault_value(cell.vault_path, cell.vault_key)
        base = f"/repos/{cell.target.repository}/environments/{cell.target.github_environment}"
        key = self._github("GET", f"{base}/secrets/public-key", (200,))
        if key is None:
            return
        sealed = SealedBox(PublicKey(base64.b64decode(key["key"]))).encrypt(value.encode())
        body = {"encrypted_value": base64.b64encode(sealed).decode(), "key_id": key["key_id"]}
        self._github("PUT", f"{base}/secrets/{cell.name}", (201, 204), body)
        self._github("GET", f"{base}/secrets/{cell.name}", (200,))  # the provider's read-back


def baseline_main(step: str, policy: str) -> int:
    baseline = Baseline(desired_state(load_policy(policy)), dict(os.environ))
    baseline.refresh() if step == "plan" else baseline.create()
    for failure in baseline.failures[:5]:
        print(f"baseline: {failure}", file=sys.stderr)
    return 1 if baseline.failures else 0


# -- the report ----------------------------------------------------------------------------------

HEADER = (
    f"   {'':8s} {'':19s} {'wall s':>8} {'GitHub':>7} {'304':>6} {'in fl':>5} {'points':>7}"
    f" {'Vault':>6} {'RSS MiB':>8} {'bound':>6} {'ratio':>6}"
)


def row(f: Figures) -> str:
    answered = f"{f.answered_304}{'*' if f.derived_304 else ''}"
    return (
        f"{f.wall:8.2f} {f.requests:7d} {answered:>6} {f.max_in_flight:5d} {f.points:7d}"
        f" {f.vault:6d} {f.rss_mib:8.1f} {f.bound:6d} {f.ratio:6.2f}"
        + (f"  !! {f.note}" if f.note else "")
    )


def verdict(ok: bool | None) -> str:
    return "n/a " if ok is None else "PASS" if ok else "MISS"


Results = dict[tuple[int, str, str], Figures]


def report(results: Results, sizes: list[int]) -> None:
    """Ratios, growth slopes, the issue's figures next to these and the targets."""
    report_ratios(results, sizes)
    slopes = report_growth(results, sizes)
    report_issue_figures(results)
    print(f"\n== issue 13's targets (measured at {max(sizes)} repositories unless said)")
    for name, ok, detail in targets(results, max(sizes), slopes):
        print(f"   {verdict(ok)}  {name}: {detail}")


def report_ratios(results: Results, sizes: list[int]) -> None:
    print("\n== ratios")
    for n in sizes:
        now = results.get((n, "now", "re-plan, unchanged"))
        today = results.get((n, "today", "re-plan, unchanged"))
        base = results.get((n, "baseline", "re-plan, unchanged"))
        parts = [f"{n:4d} repositories: re-plan"]
        if now and today:
            parts.append(f"{today.wall / now.wall:.1f}x faster than today")
        if now and base:
            parts.append(f"{base.wall / now.wall:.1f}x faster than the baseline")
        if now:
            parts.append(f"requests/bound {now.ratio:.2f} ({now.requests}/{now.bound})")
        print("   " + ", ".join(parts))
        base_apply = results.get((n, "baseline", "first apply"))
        for contender in CONTENDERS[:2]:
            apply = results.get((n, contender, "first apply"))
            if apply and base_apply:
                speed = base_apply.wall / apply.wall
                print(f"   {'':17s} first apply: {contender} at {speed:.2f}x the baseline's speed")


def report_growth(results: Results, sizes: list[int]) -> dict[tuple[str, str], list[float]]:
    """Print and return, per (contender, step), wall seconds per added repository per span."""
    print("\n== growth with repositories (wall and GitHub requests per added repository)")
    slopes: dict[tuple[str, str], list[float]] = {}
    for contender in CONTENDERS:
        for step in STEPS:
            points = [
                (n, results[(n, contender, step)]) for n in sizes if (n, contender, step) in results
            ]
            spans = list(zip(points, points[1:], strict=False))
            if not spans:
                continue
            walls = [(b.wall - a.wall) / (m - n) for (n, a), (m, b) in spans]
            reqs = [(b.requests - a.requests) / (m - n) for (n, a), (m, b) in spans]
            slopes[(contender, step)] = walls
            text = "; ".join(
                f"{n}->{m}: {w * 1000:6.1f} ms, {r:6.1f} req"
                for ((n, _), (m, _)), w, r in zip(spans, walls, reqs, strict=True)
            )
            print(f"   {contender:8s} {step:19s} {text}")
    return slopes


def report_issue_figures(results: Results) -> None:
    print("\n== the issue's figures next to this run's (the baseline should be within 20 %)")
    for contender, table in (("baseline", ISSUE_BASELINE), ("today", ISSUE_TODAY)):
        for n, steps in table.items():
            for step, (wall, reqs) in steps.items():
                f = results.get((n, contender, step))
                if f is None:
                    continue
                line = f"   {contender:8s} {n:4d} {step:19s} issue {wall:6.1f} s"
                line += f" / {reqs:6d} req" if reqs else " " * 13
                line += f"   here {f.wall:6.1f} s ({(f.wall - wall) / wall:+4.0%})"
                if reqs:
                    line += f" / {f.requests:6d} req ({(f.requests - reqs) / reqs:+4.0%})"
                print(line)


Check = tuple[str, bool | None, str]


def targets(
    results: Results, largest: int, slopes: dict[tuple[str, str], list[float]]
) -> list[Check]:
    """The issue's targets, each with PASS (True), MISS (False) or n/a (None) and the figure."""
    note = "" if largest >= 200 else f" (at {largest}; the target is at 200)"
    return [
        *replan_targets(results, largest, note),
        *request_targets(results),
        *apply_and_memory_targets(results, largest, note),
        *growth_targets(slopes),
    ]


def replan_targets(results: Results, largest: int, note: str) -> list[Check]:
    now = results.get((largest, "now", "re-plan, unchanged"))
    today = results.get((largest, "today", "re-plan, unchanged"))
    base = results.get((largest, "baseline", "re-plan, unchanged"))
    checks: list[Check] = []
    if now and today:
        x = today.wall / now.wall
        checks.append(("re-plan >= 10x faster than today", x >= 10, f"{x:.1f}x{note}"))
    if now and base:
        x = base.wall / now.wall
        checks.append(("re-plan >= 5x faster than the baseline", x >= 5, f"{x:.1f}x{note}"))
    if now:
        free = now.points == 0 and now.answered_304 == now.requests
        detail = f"{now.points} points, {now.answered_304}/{now.requests} answered 304"
        checks.append(("re-plan of an unchanged org costs 0 points (all 304)", free, detail))
    return checks


def request_targets(results: Results) -> list[Check]:
    checks: list[Check] = []
    for label, steps in (
        (
            "plan requests / lower bound <= 1.05 (every size, every plan)",
            set(STEPS) - {"first apply"},
        ),
        ("first apply requests / lower bound <= 1.05", {"first apply"}),
    ):
        mine = [(n, s, f) for (n, c, s), f in results.items() if c == "now" and s in steps]
        if mine:
            n, step, worst = max(mine, key=lambda t: t[2].ratio)
            detail = f"worst {worst.ratio:.3f} ({n}, {step}: {worst.requests}/{worst.bound})"
            checks.append((label, worst.ratio <= 1.05, detail))
    for contender, cap in (("now", GITHUB_CONCURRENCY_OTHER), ("today", 1)):
        flights = [f.max_in_flight for (_, c, _), f in results.items() if c == contender]
        if flights:
            label = f"{contender}: never more than {cap} in flight (the cap)"
            checks.append((label, max(flights) <= cap, f"at most {max(flights)}"))
    return checks


def apply_and_memory_targets(results: Results, largest: int, note: str) -> list[Check]:
    checks: list[Check] = []
    now = results.get((largest, "now", "first apply"))
    base = results.get((largest, "baseline", "first apply"))
    if now and base:
        label = "first apply (write interval 0) no slower than the baseline"
        checks.append(
            (label, now.wall <= base.wall, f"{now.wall:.1f} s vs {base.wall:.1f} s{note}")
        )
    rss = [f.rss_mib * 1.048576 for (n, c, _), f in results.items() if c == "now" and n == largest]
    if rss:
        checks.append(("peak RSS < 150 MB", max(rss) < 150, f"{max(rss):.0f} MB{note}"))
    return checks


def growth_targets(slopes: dict[tuple[str, str], list[float]]) -> list[Check]:
    """Linear: the last span's cost per added repository is at most the first span's + 25 %
    (noise on a shared machine); growth with the square of the org would double it from 50
    to 200 repositories."""
    checks: list[Check] = []
    for step in ("plan, fresh org", "re-plan, unchanged", "first apply"):
        walls = slopes.get(("now", step))
        if walls is None or len(walls) < 2:
            checks.append((f"linear growth: {step}", None, "needs 3 sizes"))
            continue
        detail = " -> ".join(f"{w * 1000:.1f}" for w in walls) + " ms per added repository"
        checks.append((f"linear growth: {step}", walls[-1] <= 1.25 * walls[0], detail))
    return checks


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench/side_by_side.py", description=__doc__)
    parser.add_argument("--sizes", default="10,50,200", metavar="N,N,...")
    parser.add_argument("--quick", action="store_true", help="one size: 10 repositories")
    parser.add_argument("--contenders", default=",".join(CONTENDERS), metavar="NAME,...")
    parser.add_argument("--endpoints", action="store_true", help="GitHub requests by endpoint")
    parser.add_argument(
        "--skip-today-apply-from",
        type=int,
        default=10**9,
        metavar="N",
        help="at N repositories and more, today's first apply only sets the world up (unmeasured)",
    )
    parser.add_argument("--baseline-step", choices=("plan", "apply"), help=argparse.SUPPRESS)
    parser.add_argument("--policy", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.baseline_step:
        return baseline_main(args.baseline_step, args.policy)
    sizes = [10] if args.quick else sorted({int(s) for s in args.sizes.split(",") if s.strip()})
    contenders = [c.strip() for c in args.contenders.split(",") if c.strip()]
    unknown = set(contenders) - set(CONTENDERS)
    if unknown or not sizes or min(sizes) < 1:
        parser.error(f"sizes are positive numbers; contenders are {', '.join(CONTENDERS)}")
    print(
        f"policy: N repositories x {len(ENVIRONMENTS)} environments x {SECRETS} secrets;"
        f" GitHub sandbox answering in {GITHUB_DELAY * 1000:.0f} ms,"
        f" Vault (OpenBao) behind a {VAULT_DELAY * 1000:.0f} ms proxy;"
        f" baseline parallelism {BASELINE_PARALLELISM}"
    )
    print(
        "columns: wall seconds, GitHub requests, answered 304 (* = from the rate-limit accounting),"
        " most in flight, primary rate-limit points, Vault round trips, peak RSS,"
        " lower bound of GitHub requests, requests/bound"
    )
    with (
        tempfile.TemporaryDirectory() as tmp,
        OpenBaoDevServer() as bao,
        closing(VaultProxy(bao.addr, VAULT_DELAY)) as proxy,
    ):
        bench = Bench(bao, proxy, Path(tmp), args.endpoints)
        bench.setup_today_apply = frozenset(n for n in sizes if n >= args.skip_today_apply_from)
        for n in sizes:
            print(f"\n== {n} repositories ({n * len(ENVIRONMENTS) * SECRETS} secret cells)")
            print(HEADER)
            for contender in CONTENDERS:
                if contender in contenders:
                    bench.run(n, contender)
        report(bench.results, sizes)
    return 0


@contextmanager
def closing(proxy: VaultProxy) -> Iterator[VaultProxy]:
    try:
        yield proxy
    finally:
        proxy.close()


if __name__ == "__main__":
    sys.exit(main())
