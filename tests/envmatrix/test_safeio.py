"""Hostile files and streams (envmatrix/safeio.py): refused, never a hang or a MemoryError.

The end-to-end tests run the real CLI in a subprocess under an address-space limit (RLIMIT_AS)
and a timeout, so a regression fails here instead of hanging or exhausting the CI machine.
"""

from __future__ import annotations

import io
import json
import os
import resource
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from envmatrix.errors import UnsafeInput
from envmatrix.safeio import load_yaml, read_regular_file, read_stream, run_bounded
from tests.world import World

MEMORY_LIMIT = 1536 * 1024 * 1024  # as the case reproductions: far above what envmatrix needs
HANG_GUARD = 120  # seconds; each run takes about one


def _doubling_bomb(levels: int) -> str:
    lines = ['a0: &a0 ["${{ secrets.APP_TOKEN }}"]']
    lines += [f"a{i}: &a{i} [*a{i - 1}, *a{i - 1}]" for i in range(1, levels + 1)]
    return "\n".join(lines) + f"\njobs: {{d: {{environment: production, steps: *a{levels}}}}}\n"


def _billion_laughs() -> str:
    lines = ['l0: &l0 "lol"']
    lines += [f"l{i}: &l{i} [{', '.join([f'*l{i - 1}'] * 10)}]" for i in range(1, 10)]
    return "\n".join(lines) + "\njobs: {d: {steps: *l9}}\n"


BOMBS = {
    "doubling aliases (2^30 nodes)": _doubling_bomb(30),
    "billion laughs": _billion_laughs(),
    "a recursive alias": "jobs: &j {d: {steps: [*j]}}\n",
    "20,000 nested brackets": "jobs: " + "[" * 20_000 + "]" * 20_000 + "\n",
}


# -- the helpers themselves ----------------------------------------------------------------------


@pytest.mark.parametrize("text", list(BOMBS.values()), ids=list(BOMBS))
@pytest.mark.parametrize("typ", ["safe", "rt"])
def test_load_yaml_refuses_what_expands_without_bound(text: str, typ: str) -> None:
    with pytest.raises(UnsafeInput):
        load_yaml(text, max_nodes=100_000, typ=typ)


def test_load_yaml_counts_aliases_as_often_as_they_are_used() -> None:
    shared = "base: &b {x: 1, y: 2}\n" + "".join(f"k{i}: *b\n" for i in range(20))
    assert load_yaml(shared, max_nodes=200)["k19"] == {"x": 1, "y": 2}
    with pytest.raises(UnsafeInput, match="more than 50 YAML nodes"):
        load_yaml(shared, max_nodes=50)
    assert load_yaml("", max_nodes=1) is None


def _fifo(tmp: Path) -> Path:
    os.mkfifo(tmp / "fifo")
    return tmp / "fifo"


def _big(tmp: Path) -> Path:
    (tmp / "big").write_bytes(b"x" * 2049)
    return tmp / "big"


def _zero_link(tmp: Path) -> Path:
    (tmp / "zero").symlink_to("/dev/zero")
    return tmp / "zero"


SPECIAL: dict[str, tuple[Callable[[Path], Path], str]] = {
    "a FIFO": (_fifo, "a FIFO"),
    "a folder": (lambda tmp: tmp, "a folder"),
    "/dev/zero": (lambda tmp: Path("/dev/zero"), "a character device"),
    "a symlink to /dev/zero": (_zero_link, "a character device"),
    "a file over the cap": (_big, "larger than 2048 bytes"),
}


@pytest.mark.parametrize("case", list(SPECIAL), ids=list(SPECIAL))
def test_read_regular_file_refuses_special_and_oversized_files(case: str, tmp_path: Path) -> None:
    make, reason = SPECIAL[case]
    with pytest.raises(UnsafeInput, match=reason):
        read_regular_file(make(tmp_path), 2048)


def test_read_regular_file_and_read_stream_return_what_fits(tmp_path: Path) -> None:
    (tmp_path / "ok").write_bytes(b"x" * 2048)
    assert read_regular_file(tmp_path / "ok", 2048) == b"x" * 2048
    assert read_stream(io.BytesIO(b"abc"), 3) == b"abc"
    with pytest.raises(UnsafeInput):
        read_stream(io.BytesIO(b"abcd"), 3)
    with pytest.raises(FileNotFoundError):
        read_regular_file(tmp_path / "missing", 10)


def test_run_bounded_keeps_output_up_to_the_limit_and_kills_a_flood(tmp_path: Path) -> None:
    echo = [sys.executable, "-c", "import sys; sys.stdout.write(sys.stdin.read())"]
    done = run_bounded(echo, input=b"hello", limit=10, timeout=60, cwd=tmp_path, env={})
    assert (done.returncode, done.stdout) == (0, b"hello")
    flood = [sys.executable, "-c", "import sys\nwhile True: sys.stdout.write('x' * 65536)"]
    with pytest.raises(UnsafeInput, match="printed more than 100000 bytes"):
        run_bounded(flood, input=b"", limit=100_000, timeout=60, cwd=tmp_path, env={})
    failing = [sys.executable, "-c", "import sys; sys.exit(3)"]
    failed = run_bounded(failing, input=b"", limit=10, timeout=60, cwd=tmp_path, env={})
    assert failed.returncode == 3


def test_run_bounded_stops_a_child_that_outlives_its_timeout(tmp_path: Path) -> None:
    sleeper = [sys.executable, "-c", "import time; time.sleep(600)"]
    with pytest.raises(subprocess.TimeoutExpired):
        run_bounded(sleeper, input=b"", limit=10, timeout=0.5, cwd=tmp_path, env={})


# -- the commands, in a subprocess under a memory limit and a hang guard ---------------------


def _capped(*argv: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    def limit_memory() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (MEMORY_LIMIT, MEMORY_LIMIT))

    environ = {
        "PATH": os.environ.get("PATH", ""),
        "HOME": os.environ.get("HOME", "/tmp"),
        **(env or {}),
    }
    return subprocess.run(
        [sys.executable, "-m", "envmatrix", *argv],
        capture_output=True,
        text=True,
        timeout=HANG_GUARD,
        preexec_fn=limit_memory,
        env=environ,
        cwd=Path(__file__).resolve().parents[2],
    )


def _policy_bomb() -> str:
    return "version: 1\n" + "\n".join(_billion_laughs().splitlines()[:-1]) + "\nsecrets: *l9\n"


POLICIES: dict[str, Callable[[Path], Path]] = {
    "billion laughs": lambda tmp: _write(tmp / "p.yaml", _policy_bomb()),
    "doubling aliases": lambda tmp: _write(
        tmp / "p.yaml", "version: 1\n" + _doubling_bomb(30).replace("jobs:", "owners:")
    ),
    "a FIFO": _fifo,
    "/dev/zero": lambda tmp: Path("/dev/zero"),
    "50 MB": lambda tmp: _write(tmp / "p.yaml", "version: 1\n#" + "x" * 50_000_000 + "\n"),
    "deep nesting": lambda tmp: _write(tmp / "p.yaml", "version: 1\nx: " + "[" * 20_000 + "\n"),
}


def _write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


@pytest.mark.parametrize("case", list(POLICIES), ids=list(POLICIES))
def test_validate_refuses_a_hostile_policy_in_one_line(case: str, tmp_path: Path) -> None:
    policy = POLICIES[case](tmp_path)
    result = _capped("validate", "--policy", str(policy))
    assert result.returncode == 3, result.stderr
    assert result.stderr.count("\n") == 1 and result.stderr.startswith(f"error: {policy}")
    # validate lists its problems on stdout: a hostile file is one problem, in one line
    assert result.stdout.count("\n") == 1 and result.stdout.startswith(f"{policy}")
    assert "internal error" not in result.stderr + result.stdout


GOOD_WORKFLOW = (
    "jobs: {d: {environment: production, steps: [{run: 'echo ${{ secrets.SUPABASE_URL }}'}]}}\n"
)


def _workflows(tmp: Path) -> Path:
    folder = tmp / "workflows"
    folder.mkdir()
    (folder / "good.yml").write_text(GOOD_WORKFLOW)
    for i, text in enumerate(BOMBS.values()):
        (folder / f"bomb{i}.yml").write_text(text)
    os.mkfifo(folder / "fifo.yml")
    (folder / "zero.yml").symlink_to("/dev/zero")
    (folder / "huge.yaml").write_text("jobs: {}\n#" + "x" * 50_000_000 + "\n")
    (folder / "folder.yml").mkdir()
    return folder


HOSTILE = (
    "bomb0.yml",
    "bomb1.yml",
    "bomb2.yml",
    "bomb3.yml",
    "fifo.yml",
    "zero.yml",
    "huge.yaml",
    "folder.yml",
)


def test_scan_skips_hostile_workflows_with_the_reason_and_reads_the_rest(tmp_path: Path) -> None:
    policy = Path(__file__).resolve().parents[2] / "policies" / "example.yaml"
    result = _capped(
        "scan", "--workflows", str(_workflows(tmp_path)), "--policy", str(policy), "--json"
    )
    assert result.returncode in (0, 1), result.stderr
    report = json.loads(result.stdout)
    skipped = {line.split(":", 1)[0]: line for line in report["skipped"]}
    assert set(HOSTILE) <= set(skipped)
    assert "a FIFO" in skipped["fifo.yml"] and "character device" in skipped["zero.yml"]
    assert "larger than" in skipped["huge.yaml"] and "nested too deeply" in skipped["bomb3.yml"]
    assert [job["workflow"] for job in report["jobs"]] == ["good.yml"]


def test_matrix_with_hostile_workflows_renders_and_notes_them(world: World, tmp_path: Path) -> None:
    world.seed()
    result = _capped(
        "matrix", "--workflows", str(_workflows(tmp_path)), "--format", "json", env=world.env
    )
    assert result.returncode == 0, result.stderr
    assert "internal error" not in result.stderr
    assert all(name in result.stdout for name in HOSTILE)
