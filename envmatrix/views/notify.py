"""Owners hear about it: the policy's `notifications:` channels get blocked secrets, outside
changes, overdue and failed rotations found by plan, apply, rotate and `rotation due`.

- When: `--notify`, or `CI=true` on the default branch (`GITHUB_REF` = `refs/heads/<default
  branch>`, read from the event payload at `GITHUB_EVENT_PATH`) or in a scheduled run
  (`GITHUB_EVENT_NAME=schedule`). Elsewhere in CI (pull requests, other branches) nothing is sent.
- What: only notices that are new since the last notification. The keys of the notices each
  channel was told are kept in Vault at `<mount>/envmatrix/notifications/<policy name>` (one
  packed string per channel, `sent:<its variable>`, under OpenBao's JSON string limit); a notice
  that went away and comes back is sent again, and so is one a channel failed to deliver.
- How: one message per owner per run and channel; Slack channels get `{"text": ...}`, webhooks
  `{"policy", "owner", "contact", "notices": [{kind, secret, environment, repository, detail}]}`.
  Never a value: notices carry names, environments and envmatrix's own value-free details.
- A channel whose variable is unset is skipped with one warning (its record is left as it is);
  a channel that fails is a warning too (the command's own result stands), and what it failed
  to deliver is not recorded: the next run sends it again.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass

from envmatrix.adapters.webhook import post_json
from envmatrix.errors import EnvmatrixError
from envmatrix.pipeline.desired import owner_with_contact
from envmatrix.pipeline.plan import Action, Change, Plan, Reason
from envmatrix.policy import Policy
from envmatrix.ports import VaultPort
from envmatrix.rotation.engine import RotationOutcome
from envmatrix.rotation.schedule import RotationStatus
from envmatrix.views.probe import ProbeResult

NOTIFICATIONS_PREFIX = "envmatrix/notifications"
SENT_FIELD = "sent"  # `sent:<channel's variable>`: the keys of the notices that channel was told


@dataclass(frozen=True)
class Notice:
    """One thing an owner should hear about; never a value."""

    kind: str  # blocked | changed-outside | rotation-overdue | rotation-failed |
    # rotation-needs-owner | probe-failed
    secret: str
    environment: str  # logical or GitHub environment name; "(repository)" for repository level
    repository: str
    owner: str
    detail: str

    @property
    def key(self) -> str:
        return f"{self.kind}|{self.repository}|{self.environment}|{self.secret}"

    def to_json(self) -> dict[str, str]:
        return {
            "kind": self.kind,
            "secret": self.secret,
            "environment": self.environment,
            "repository": self.repository,
            "detail": self.detail,
        }


def plan_notices(changes: Plan | Iterable[Change]) -> list[Notice]:
    """Blocked secrets and GitHub copies changed outside envmatrix, from a plan's rows."""
    found = []
    for change in changes.changes if isinstance(changes, Plan) else changes:
        if change.owner is None:
            continue
        if change.action is Action.BLOCKED:
            kind = "blocked"
        elif change.reason is Reason.CHANGED_OUTSIDE:
            kind = "changed-outside"
        else:
            continue
        found.append(
            Notice(
                kind,
                change.name,
                change.environment or "(repository)",
                change.repository,
                change.owner,
                change.detail,
            )
        )
    return found


def overdue_notices(statuses: Iterable[RotationStatus]) -> list[Notice]:
    """Rotations past their due time."""
    return [
        Notice(
            "rotation-overdue",
            s.secret,
            s.environment,
            ",".join(s.repositories),
            s.owner,
            f"rotation ({s.strategy}) was due {s.next_due:%Y-%m-%d %H:%M} UTC",
        )
        for s in statuses
        if s.overdue
    ]


def failed_rotation_notices(policy: Policy, outcomes: Iterable[RotationOutcome]) -> list[Notice]:
    """Rotations that failed, and manual ones kept open for their owner (a probe refused the new
    value): one notice per secret and environment of the group (the message is envmatrix's own,
    value-free)."""
    found = []
    kinds = {"failed": "rotation-failed", "needs-owner": "rotation-needs-owner"}
    for outcome in outcomes:
        kind = kinds.get(outcome.result)
        if kind is None:
            continue
        for secret in outcome.secrets:
            spec = policy.secrets.get(secret)
            for environment in outcome.environments or ("(repository)",):
                owner = spec.owner if spec is not None else ""
                found.append(Notice(kind, secret, environment, "", owner, outcome.message))
    return found


def probe_notices(results: Iterable[ProbeResult]) -> list[Notice]:
    """Failed probes (from `probe`, and the flags' probes apply ran), one per secret and
    environment; the detail is the probe's own value-free words."""
    return [
        Notice(
            "probe-failed",
            r.secret or r.probe,
            r.environment or "(repository)",
            "",
            r.owner,
            f"probe {r.probe} failed: {r.detail}",
        )
        for r in results
        if not r.ok and r.owner
    ]


def should_notify(environ: Mapping[str, str], requested: bool) -> bool:
    """`--notify`, or CI on the default branch or a schedule."""
    if requested:
        return True
    if environ.get("CI", "").lower() != "true":
        return False
    if environ.get("GITHUB_EVENT_NAME") == "schedule":
        return True
    default = _default_branch(environ)
    return default is not None and environ.get("GITHUB_REF") == f"refs/heads/{default}"


def _default_branch(environ: Mapping[str, str]) -> str | None:
    path = environ.get("GITHUB_EVENT_PATH")
    if not path:
        return None
    try:
        with open(path, encoding="utf-8") as handle:
            event = json.load(handle)
    except (OSError, ValueError):
        return None
    branch = event.get("repository", {}).get("default_branch") if isinstance(event, dict) else None
    return branch if isinstance(branch, str) and branch else None


@dataclass(frozen=True)
class NotifyResult:
    sent: int  # messages delivered
    new: int  # notices new since the last notification


def notify(
    policy: Policy,
    notices: Sequence[Notice],
    vault: VaultPort,
    environ: Mapping[str, str],
    warn: Callable[[str], None],
    command: str,
) -> NotifyResult:
    """Send the notices new since the last notification, one message per owner per channel,
    and record in Vault, per channel, what it was told. A notice a channel failed to deliver
    (an HTTP error, a refused connection) is not recorded for that channel, so the next run
    sends it again. Channel failures become warnings."""
    if not policy.notifications:
        return NotifyResult(0, 0)
    channels = []
    for channel in policy.notifications:
        url = environ.get(channel.url_env, "")
        if not url:
            warn(f"notifications: {channel.kind} channel skipped: {channel.url_env} is not set")
        else:
            channels.append((channel, url))
    path = f"{NOTIFICATIONS_PREFIX}/{policy.identity or 'default'}"
    document = vault.read_document(path)
    stored = dict(document.data) if document is not None else {}
    current = {n.key: n for n in notices}
    sent, new_anywhere = 0, set[str]()
    changed = False
    for channel, url in channels:
        field = f"{SENT_FIELD}:{channel.url_env}"
        previous = _keys(stored.get(field, stored.get(SENT_FIELD, "")))
        new = [n for key, n in current.items() if key not in previous]
        new_anywhere.update(n.key for n in new)
        delivered = {key for key in current if key in previous}  # told before, still current
        by_owner: dict[str, list[Notice]] = {}
        for notice in new:
            by_owner.setdefault(notice.owner, []).append(notice)
        for owner, owned in sorted(by_owner.items()):
            message = _message(policy, owner, owned, command, channel.kind)
            try:
                post_json(url, message, channel.url_env)
            except EnvmatrixError as exc:  # not delivered: not recorded, sent again next run
                warn(f"notifications: {exc}")
                continue
            sent += 1
            delivered.update(n.key for n in owned)
        record = "\n".join(sorted(delivered))
        if stored.get(field) != record:
            stored[field], changed = record, True
    if changed:
        stored.pop(SENT_FIELD, None)  # the one shared record of older versions: now per channel
        vault.write_document(path, stored)
    return NotifyResult(sent, len(new_anywhere))


def _keys(raw: object) -> set[str]:
    return set(raw.split("\n")) if isinstance(raw, str) and raw else set()


def _message(
    policy: Policy, owner: str, notices: list[Notice], command: str, kind: str
) -> dict[str, object]:
    contact = policy.owners[owner].contact if owner in policy.owners else None
    if kind == "webhook":
        return {
            "policy": policy.identity,
            "command": command,
            "owner": owner,
            "contact": contact,
            "notices": [n.to_json() for n in notices],
        }
    lines = [f"envmatrix {command} ({policy.identity}) for {owner_with_contact(owner, contact)}:"]
    lines += [
        f"• {n.kind}: {n.secret} in {n.repository + '/' if n.repository else ''}{n.environment}"
        f" — {n.detail}"
        for n in notices
    ]
    return {"text": "\n".join(lines)}
