"""`envmatrix demo` (what `make demo` runs) does the whole job on its own servers."""

from __future__ import annotations

import io

from rich.console import Console

from envmatrix.demo.run import run_demo


def test_demo_runs_the_main_job_end_to_end() -> None:
    buffer = io.StringIO()
    assert run_demo(Console(file=buffer, width=200, no_color=True)) == 0
    text = buffer.getvalue()
    for expected in (
        "blocked secret      SUPABASE_SERVICE_KEY",  # missing in Vault: owner named
        "owner: reliability (reliability@occ.example)",
        "flag-not-ready: unset -> false",  # the flag waits in production
        "Checked every GitHub copy against Vault: 0 mismatches.",
        "flag-ready: false -> true",  # the owner adds the secret: the flag flips
        "changed-outside: GitHub copy updated",  # a hand edit is noticed
        "No changes. GitHub matches the policy and Vault.",
        "Demo finished: every step did what it should.",
        "protection-differs",  # the go-live: production protected by apply
        "create  variable    SUPABASE_REGION",
        "7. final plan",
        "SUPABASE_REGION (variable)",  # the matrix shows the variable, never its value
    ):
        assert expected in text, expected
    assert "demo-" not in text  # generated values never shown
    final_plan, matrix = text.split("7. final plan")[1].split("8. the environment")
    assert "No changes. GitHub matches the policy and Vault." in final_plan
    assert "eu-central-1" not in matrix
