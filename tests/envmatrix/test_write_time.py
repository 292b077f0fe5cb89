"""The one-second blind spot, narrowed (issue 10 item 10), on OpenBao and the GitHub sandbox.

GitHub's `updated_at` and `Date` have one-second resolution. Apply records each write at the
`updated_at` GitHub gave it (read back once per target), not at the response's Date header, which
can be a second or more later (a slow answer, another server's clock). An outside write in any
second after envmatrix's own write is then `changed-outside`; only the write's own second stays
blind (README, Known limits).
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from envmatrix.adapters.github import GitHubAdapter
from envmatrix.audit.events import NullSink
from envmatrix.pipeline.apply import Applier
from envmatrix.pipeline.desired import desired_state
from envmatrix.pipeline.observe import observe
from envmatrix.pipeline.plan import diff
from envmatrix.ports import WriteReceipt
from envmatrix.secret import SecretValue
from tests.rotation.rotation_support import REPOS, load, seed, write_policy


class LateDate:
    """The real adapter, with each write answered `late` seconds after it landed (the Date
    header of a slow response); everything else passes through."""

    def __init__(self, github: GitHubAdapter, late: int) -> None:
        self._github, self._late = github, late

    def __getattr__(self, name: str) -> Any:
        return getattr(self._github, name)

    def put_environment_secret(self, *args: Any) -> WriteReceipt:
        receipt = self._github.put_environment_secret(*args)
        return WriteReceipt(receipt.server_time + timedelta(seconds=self._late))


def apply_all(path: Path, vault: Any, github: Any) -> None:
    desired = desired_state(load(path))
    observed = observe(desired, vault, github)
    report = Applier(vault, github, observed.sync, NullSink(), "test").apply(
        diff(desired, observed)
    )
    assert report.ok


def reasons(path: Path, vault: Any, github: Any) -> dict[tuple[str, str | None, str], str]:
    desired = desired_state(load(path))
    plan = diff(desired, observe(desired, vault, github))
    return {(c.repository, c.environment, c.name): str(c.reason) for c in plan.writes}


@pytest.mark.parametrize(("late", "outside_after"), [(0, 1), (1, 1), (2, 1), (2, 2), (3, 2)])
def test_an_outside_write_after_envmatrix_own_second_is_changed_outside(
    tmp_path: Path, vault: Any, sandbox: Any, late: int, outside_after: int
) -> None:
    path = write_policy(
        tmp_path, vault.mount, {"max_age": "30d", "strategy": "generate"}, ["production"]
    )
    seed(load(path), vault, sandbox)
    github = LateDate(GitHubAdapter(sandbox.url, "sandbox-token"), late)
    apply_all(path, vault, github)
    assert reasons(path, vault, github) == {}  # our own writes are not outside writes
    sandbox.clock.advance(outside_after)  # still at or before the late Date header's second
    sandbox.write_secret_outside(REPOS[0], "production", "API_TOKEN", "typed-by-hand")
    assert reasons(path, vault, github) == {
        (REPOS[0], "production", "API_TOKEN"): "changed-outside"
    }


def test_a_stale_or_later_read_back_keeps_the_date_header(
    tmp_path: Path, vault: Any, sandbox: Any
) -> None:
    """A listing that shows a time after the Date header (somebody wrote after our answer) is
    not taken as ours: the record keeps the Date, so that write is caught at the next plan."""
    path = write_policy(
        tmp_path, vault.mount, {"max_age": "30d", "strategy": "generate"}, ["production"]
    )
    seed(load(path), vault, sandbox)
    github = GitHubAdapter(sandbox.url, "sandbox-token")
    apply_all(path, vault, github)
    vault.write_values(
        "apps/production/api", {"token": SecretValue("v2"), "client_id": SecretValue("c")}
    )

    class WriteRightAfter(LateDate):
        def put_environment_secret(self, *args: Any) -> WriteReceipt:
            receipt = self._github.put_environment_secret(*args)
            sandbox.clock.advance(1)
            sandbox.write_secret_outside(args[0], args[1], args[2], "raced-by-hand")
            return receipt

    apply_all(path, vault, WriteRightAfter(github, 0))
    assert set(reasons(path, vault, github).values()) == {"changed-outside"}
