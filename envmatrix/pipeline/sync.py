"""Sync a chosen set of secret cells: the one entry rotation uses into the plan/apply pipeline.

`sync_cells` runs desired -> observe -> diff -> apply over the cells a caller picks and nothing
else, so a rotation writes exactly the GitHub copies of the secrets it rotated (never a flag,
never a prune, never another secret of the same environment).
"""

from __future__ import annotations

from collections.abc import Callable

from envmatrix.audit.events import AuditSink
from envmatrix.pipeline.apply import Applier, ApplyReport, ItemResult
from envmatrix.pipeline.desired import SecretCell, desired_state
from envmatrix.pipeline.observe import observe
from envmatrix.pipeline.plan import Kind, diff
from envmatrix.policy import Policy
from envmatrix.ports import GitHubPort, VaultPort


def sync_cells(
    policy: Policy,
    wanted: Callable[[SecretCell], bool],
    vault: VaultPort,
    github: GitHubPort,
    audit: AuditSink,
    actor: str,
    on_result: Callable[[ItemResult], None] | None = None,
    on_start: Callable[[int], None] | None = None,
) -> ApplyReport:
    """Make every GitHub copy of the cells `wanted` accepts match Vault, with envmatrix's apply.

    It starts from every environment of the policy, so repository-scope copies (which belong to
    no one environment) are among the candidates. Environments the cells need are created as
    apply would; rows for other secrets never reach the applier. `on_start` and `on_result`
    follow the writes as they land (see `Applier`).
    """
    desired = desired_state(policy).only_secrets(wanted)
    names = {cell.name for cell in desired.secrets}
    observed = observe(desired, vault, github)
    plan = diff(desired, observed).only(
        lambda c: c.kind is Kind.ENVIRONMENT or (c.kind is Kind.SECRET and c.name in names)
    )
    applier = Applier(
        vault, github, observed.sync, audit, actor, on_result=on_result, on_start=on_start
    )
    return applier.apply(plan)
