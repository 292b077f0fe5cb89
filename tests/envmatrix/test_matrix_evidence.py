"""The matrix for release managers and as committed evidence, end to end on OpenBao and the
GitHub sandbox: flags (blocked where, by which secret, whom to ask), the time stamp (HTML and
table, never Markdown or JSON), the HTML page in a real headless Chromium, and
`matrix --check FILE` (exit 0 while FILE is current, 1 with a diff once the world moved)."""

from __future__ import annotations

import http.server
import re
import threading
from collections.abc import Iterator
from html.parser import HTMLParser
from pathlib import Path

import pytest

from envmatrix.adapters.vault import VaultAdapter
from envmatrix.demo.run import seed_vault
from envmatrix.policy import load_policy
from envmatrix.sandbox import GitHubSandbox
from tests.envmatrix.headless_chromium import png_distinct_bytes, png_size, render
from tests.envmatrix.support_gates import example_policy, run, use_services

REPO = "occ-labs/operator-console"
LEFT_OUT = ("SUPABASE_SERVICE_KEY", "production")


@pytest.fixture
def world(
    tmp_path: Path,
    vault: VaultAdapter,
    vault_env: dict[str, str],
    sandbox: GitHubSandbox,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> Path:
    """The example policy applied, with SUPABASE_SERVICE_KEY missing in Vault for production:
    FEATURE_AI_ESCALATIONS is ready in staging and blocked in production."""
    policy = example_policy(tmp_path, vault.mount)
    use_services(monkeypatch, sandbox, vault_env)
    monkeypatch.chdir(tmp_path)
    seed_vault(load_policy(policy), vault, leave_out=LEFT_OUT)
    code, _, err = run(capsys, "apply", "--yes", "--policy", str(policy))
    assert code == 0, err
    return policy


class FlagRows(HTMLParser):
    """The flag table's cells, row by row, and the page's <time> stamp."""

    def __init__(self) -> None:
        super().__init__()
        self.rows: list[list[str]] = []
        self.ready: list[str] = []
        self.stamp: str | None = None
        self._in_flags = self._in_cell = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        if tag == "table":
            self._in_flags = values.get("class") == "flags"
        elif tag == "tr" and self._in_flags:
            self.rows.append([])
        elif tag == "td" and self._in_flags:
            self._in_cell = True
            self.rows[-1].append("")
            if "data-ready" in values:
                self.ready.append(f"{values['data-flag']}/{values['data-environment']}")
        elif tag == "time":
            self.stamp = values.get("datetime")

    def handle_endtag(self, tag: str) -> None:
        if tag == "td":
            self._in_cell = False
        if tag == "table":
            self._in_flags = False

    def handle_data(self, data: str) -> None:
        if self._in_cell:
            self.rows[-1][-1] += data


BLOCKED_ROW = [
    "FEATURE_AI_ESCALATIONS",
    "production",
    "✗ blocked",
    "SUPABASE_SERVICE_KEY (✗ blocked)",
    "reliability (reliability@occ.example)",
]
READY_ROW = ["FEATURE_AI_ESCALATIONS", "staging", "✓ ready", "", ""]


def test_every_format_shows_which_flag_is_blocked_where_by_what_and_whom_to_ask(
    world: Path, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    policy = str(world)
    page = tmp_path / "matrix.html"
    code, _, err = run(capsys, "matrix", "-f", "html", "--out", str(page), "-p", policy)
    assert code == 0, err
    parsed = FlagRows()
    parsed.feed(page.read_text(encoding="utf-8"))
    assert sorted(row for row in parsed.rows if row) == sorted([BLOCKED_ROW, READY_ROW])
    assert parsed.stamp is not None and re.fullmatch(
        r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", parsed.stamp
    )

    code, markdown, _ = run(capsys, "matrix", "-f", "markdown", "-p", policy)
    assert code == 0 and f"#### Flags in {REPO}" in markdown
    assert "| `FEATURE_AI_ESCALATIONS` | production | ✗ blocked | " + " | ".join(
        BLOCKED_ROW[3:]
    ) in (markdown)
    assert "Generated" not in markdown  # stable, for matrix --check

    code, table, _ = run(capsys, "matrix", "-p", policy)
    assert code == 0 and re.search(r"^Generated \d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC$", table, re.M)
    blocked = next(
        line
        for line in table.splitlines()
        if "production" in line and "✗ blocked" in line and "FEATURE" in line
    )
    assert all(word in blocked for word in BLOCKED_ROW[3:])

    code, out, _ = run(capsys, "matrix", "--json", "-p", policy)
    assert code == 0 and '"ready": false' in out and "generated" not in out.lower()


def test_the_html_matrix_renders_in_headless_chromium_without_a_single_request(
    world: Path, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    page = tmp_path / "matrix.html"
    code, _, err = run(capsys, "matrix", "-f", "html", "--out", str(page), "-p", str(world))
    assert code == 0, err
    rendered = render(page, tmp_path)
    with capsys.disabled():
        print(f"\nscreenshot of the HTML matrix: {rendered.screenshot}")
    assert png_size(rendered.screenshot) == (1280, 900)
    assert png_distinct_bytes(rendered.screenshot) > 20  # tables, text and colours drawn
    assert rendered.page_requests() == []


class QuietHandler(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # noqa: N802
        self.send_response(404)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002
        pass


@pytest.fixture
def local_server() -> Iterator[str]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), QuietHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_the_chromium_check_sees_a_request_a_page_makes_and_a_blank_page(
    tmp_path: Path, local_server: str
) -> None:
    """The control for the test above: the same harness reports a page's request, and a page
    with nothing on it as (almost) one colour."""
    page = tmp_path / "leaky.html"
    page.write_text(
        f'<!DOCTYPE html><html><head><link rel="stylesheet" href="{local_server}/x.css">'
        "</head><body></body></html>"
    )
    rendered = render(page, tmp_path)
    assert rendered.page_requests() == [f"{local_server}/x.css"]
    assert png_distinct_bytes(rendered.screenshot) <= 20


# -- matrix --check ----------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["matrix.md", "matrix.json", "matrix.html", "matrix.txt"])
def test_check_is_0_while_the_committed_matrix_is_current_and_1_with_a_diff_after_a_change(
    world: Path,
    sandbox: GitHubSandbox,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    name: str,
) -> None:
    policy, committed = str(world), tmp_path / name
    fmt = {"md": "markdown", "json": "json", "html": "html", "txt": "table"}[name.split(".")[1]]
    code, _, err = run(capsys, "matrix", "-f", fmt, "--out", str(committed), "-p", policy)
    assert code == 0, err
    before = committed.read_bytes()

    code, out, err = run(capsys, "matrix", "--check", str(committed), "-p", policy)
    assert (code, err) == (0, "") and "matches" in out

    sandbox.advance_clock(5)  # someone pastes a value by hand: the cell drifts
    sandbox.write_secret_outside(REPO, "staging", "SUPABASE_URL", "pasted")
    code, out, err = run(capsys, "matrix", "--check", str(committed), "-p", policy)
    assert code == 1 and "no longer matches" in err and err.count("\n") == 1
    assert f"envmatrix matrix --format {fmt} --out {committed}" in err  # the hint regenerates it
    lines = out.splitlines()
    assert lines[0] == f"--- {committed} (committed)" and lines[1] == "+++ matrix now"
    removed = [line for line in lines if line.startswith("-") and not line.startswith("---")]
    added = [line for line in lines if line.startswith("+") and not line.startswith("+++")]
    assert any("ok" in line for line in removed) and any("drifted" in line for line in added)
    assert len(lines) <= 61  # short
    assert committed.read_bytes() == before  # never rewritten


def test_check_takes_the_format_from_format_over_the_suffix(
    world: Path, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    committed = tmp_path / "EVIDENCE"
    run(capsys, "matrix", "-f", "markdown", "--out", str(committed), "-p", str(world))
    code, _, err = run(capsys, "matrix", "--check", str(committed), "-p", str(world))
    assert code == 3 and "--format" in err  # no suffix to go by
    code, _, _ = run(
        capsys, "matrix", "--check", str(committed), "-f", "markdown", "-p", str(world)
    )
    assert code == 0
    code, out, _ = run(capsys, "matrix", "--check", str(committed), "-f", "json", "-p", str(world))
    assert code == 1 and "+++ matrix now" in out


@pytest.mark.parametrize(
    ("name", "marker"),
    [("matrix.md", "| Secret"), ("matrix.json", '"cells"'), ("matrix.html", "<!DOCTYPE html>")],
)
def test_out_takes_the_format_from_the_suffix_as_check_reads_it(
    world: Path, capsys: pytest.CaptureFixture[str], tmp_path: Path, name: str, marker: str
) -> None:
    written = tmp_path / name
    code, _, err = run(capsys, "matrix", "--out", str(written), "-p", str(world))
    assert code == 0, err
    assert marker in written.read_text()
    code, out, err = run(capsys, "matrix", "--check", str(written), "-p", str(world))
    assert (code, err) == (0, "") and "matches" in out
    unknown = tmp_path / "matrix.evidence"  # no suffix to go by: the table, as before
    code, _, err = run(capsys, "matrix", "--out", str(unknown), "-p", str(world))
    assert code == 0 and unknown.read_text().startswith("Generated ")  # the table format


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--check", "missing.md"), "no such file"),
        (("--check", "m.md", "--out", "m.md"), "--check and --out"),
        (("--check", "m.pdf"), "suffix '.pdf'"),
        (("--check", "m.md", "-f", "pdf"), "--format 'pdf'"),
    ],
)
def test_check_usage_errors_are_exit_3_before_anything_connects(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    args: tuple[str, ...],
    message: str,
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "m.md").write_text("## Secrets matrix\n")
    policy = example_policy(tmp_path, "secret")
    # no Vault or GitHub configured at all: a usage error must come first
    code, out, err = run(capsys, "matrix", *args, "-p", str(policy))
    assert code == 3 and message in err and err.count("\n") == 1
    assert (tmp_path / "m.md").read_text() == "## Secrets matrix\n"
