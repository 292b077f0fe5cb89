"""render/actions.py: the workflow-command and `$GITHUB_OUTPUT` formats as the runner reads them."""

from __future__ import annotations

import pytest

from envmatrix.render.actions import active, annotation, output_text
from tests.test_action import parse_output_file


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (("error", "plain"), "::error::plain"),
        (("warning", "a::b", "T"), "::warning title=T::a::b"),
        (("error", "50% done\nnext", "x:y,z"), "::error title=x%3Ay%2Cz::50%25 done%0Anext"),
        (
            ("warning", "m", "t", ".github/workflows/a.yml", 12),
            "::warning title=t,file=.github/workflows/a.yml,line=12::m",
        ),
    ],
)
def test_annotation_escapes_properties_and_message(args: tuple[str, ...], expected: str) -> None:
    assert annotation(*args) == expected  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "outputs",
    [
        {"has_changes": "true", "create": "3"},
        {"missing": ""},
        {"overdue": "A,B", "note": "two\nlines", "crlf": "x\r\ny"},
        {"tricky": "value=with=equals", "delimiter_like": "EOF\nghadelimiter_0"},
    ],
)
def test_output_text_round_trips_through_the_runners_reading(outputs: dict[str, str]) -> None:
    read = parse_output_file(output_text(outputs))
    assert read == {k: v.replace("\r\n", "\n") for k, v in outputs.items()}


@pytest.mark.parametrize(
    ("environ", "expected"),
    [({"GITHUB_ACTIONS": "true"}, True), ({"GITHUB_ACTIONS": "false"}, False), ({}, False)],
)
def test_active_only_in_actions(environ: dict[str, str], expected: bool) -> None:
    assert active(environ) is expected
