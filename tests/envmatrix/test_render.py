"""Rendering for people: colour (and every other ANSI code) only on a terminal, never with
NO_COLOR."""

from __future__ import annotations

import io

import pytest

from envmatrix.pipeline.plan import Action, Change, Kind, Plan, Reason
from envmatrix.render import report as render

PLAN = Plan((Change(Action.CREATE, Kind.SECRET, "o/r", "prod", "A_KEY", Reason.MISSING, "why"),))


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def rendered(out: io.StringIO) -> str:
    render.render_plan(PLAN, render.console(out))
    return out.getvalue()


def test_a_terminal_gets_colour_and_bold(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NO_COLOR", raising=False)
    monkeypatch.setenv("TERM", "xterm-256color")
    assert "\x1b[" in rendered(Terminal())


@pytest.mark.parametrize("value", ["1", "true", "0"])  # no-color.org: any non-empty value
def test_no_color_means_no_ansi_code_at_all_even_on_a_terminal(
    monkeypatch: pytest.MonkeyPatch, value: str
) -> None:
    monkeypatch.setenv("NO_COLOR", value)
    text = rendered(Terminal())
    assert "\x1b" not in text
    assert "A_KEY" in text


def test_a_pipe_gets_no_ansi_code() -> None:
    assert "\x1b" not in rendered(io.StringIO())
