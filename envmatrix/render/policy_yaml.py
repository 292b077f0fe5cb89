"""The policy file `envmatrix import` writes: YAML (ruamel, round-trip) with comments saying what
to fill in and what was not imported. Never a secret value: the draft holds none."""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq

from envmatrix.views.import_ import PLACEHOLDER_OWNER, ImportDraft

HEADER = f"""\
A starting policy written by `envmatrix import` from what GitHub holds, matched against the
Vault mount's key names (no secret value was read). Before the first apply:
- every entry's owner is the placeholder `{PLACEHOLDER_OWNER}`: declare the real owners under
  owners: and name them on each entry;
- check each vault: reference, then run `envmatrix plan`: the adopted secrets show as
  update / changed-outside until the first apply rewrites them from Vault;
- scope: organization entries are the organization's own secrets and variables, seen by every
  repository their visibility reaches: keep them only in the policy that should own them."""


def draft_yaml(draft: ImportDraft) -> str:
    """The draft as a policy file: header, the policy, then the not-imported list as comments."""
    document = _commented(draft.policy_data())
    document.yaml_set_start_comment(HEADER)
    for key in ("secrets", "variables"):
        if not document[key]:
            del document[key]
    yaml = YAML()
    yaml.indent(mapping=2, sequence=4, offset=2)
    yaml.width = 100
    out = io.StringIO()
    yaml.dump(document, out)
    return out.getvalue() + _left_out_comment(draft)


def not_imported_lines(draft: ImportDraft) -> list[str]:
    """One line per item left out, for stderr."""
    return [item.line() for item in draft.not_imported]


def _left_out_comment(draft: ImportDraft) -> str:
    if not draft.not_imported:
        return ""
    lines = ["", "# Not imported (GitHub holds these; add them by hand or fix Vault and re-run):"]
    lines += [f"# - {' '.join(line.split())}" for line in not_imported_lines(draft)]
    return "\n".join(lines) + "\n"


def _commented(data: Any) -> Any:
    """Plain data as ruamel's round-trip types (flow style for short lists of names)."""
    if isinstance(data, Mapping):
        commented = CommentedMap()
        for key, value in data.items():
            commented[key] = _commented(value)
        return commented
    if isinstance(data, Sequence) and not isinstance(data, str):
        seq = CommentedSeq(_commented(v) for v in data)
        seq.fa.set_flow_style()
        return seq
    return data
