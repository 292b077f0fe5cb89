"""JSON bodies shaped like GitHub's (every field the OpenAPI schemas mark required)."""

from __future__ import annotations

import base64
from typing import Any
from urllib.parse import quote

from envmatrix.sandbox.state import (
    BranchPolicy,
    Environment,
    Organization,
    Repository,
    Reviewer,
    SecretRecord,
    Team,
    User,
    VariableRecord,
    iso,
)

JSON = dict[str, Any]
WEB = "https://github.com"


def node_id(kind: str, ident: int) -> str:
    """A GitHub-looking global node id."""
    return base64.b64encode(f"0{len(kind)}:{kind}{ident}".encode()).decode("ascii")


def simple_user(base: str, login: str, ident: int, kind: str = "Organization") -> JSON:
    """The ``simple-user`` schema (used for repository owners and reviewers)."""
    api = f"{base}/users/{login}"
    return {
        "login": login,
        "id": ident,
        "node_id": node_id(kind, ident),
        "avatar_url": f"https://avatars.githubusercontent.com/u/{ident}?v=4",
        "gravatar_id": "",
        "url": api,
        "html_url": f"{WEB}/{login}",
        "followers_url": f"{api}/followers",
        "following_url": f"{api}/following{{/other_user}}",
        "gists_url": f"{api}/gists{{/gist_id}}",
        "starred_url": f"{api}/starred{{/owner}}{{/repo}}",
        "subscriptions_url": f"{api}/subscriptions",
        "organizations_url": f"{api}/orgs",
        "repos_url": f"{api}/repos",
        "events_url": f"{api}/events{{/privacy}}",
        "received_events_url": f"{api}/received_events",
        "type": kind,
        "site_admin": False,
        "user_view_type": "public",
    }


_REPO_URL_SUFFIXES = {
    "archive_url": "/{archive_format}{/ref}",
    "assignees_url": "/assignees{/user}",
    "blobs_url": "/git/blobs{/sha}",
    "branches_url": "/branches{/branch}",
    "collaborators_url": "/collaborators{/collaborator}",
    "comments_url": "/comments{/number}",
    "commits_url": "/commits{/sha}",
    "compare_url": "/compare/{base}...{head}",
    "contents_url": "/contents/{+path}",
    "contributors_url": "/contributors",
    "deployments_url": "/deployments",
    "downloads_url": "/downloads",
    "events_url": "/events",
    "forks_url": "/forks",
    "git_commits_url": "/git/commits{/sha}",
    "git_refs_url": "/git/refs{/sha}",
    "git_tags_url": "/git/tags{/sha}",
    "hooks_url": "/hooks",
    "issue_comment_url": "/issues/comments{/number}",
    "issue_events_url": "/issues/events{/number}",
    "issues_url": "/issues{/number}",
    "keys_url": "/keys{/key_id}",
    "labels_url": "/labels{/name}",
    "languages_url": "/languages",
    "merges_url": "/merges",
    "milestones_url": "/milestones{/number}",
    "notifications_url": "/notifications{?since,all,participating}",
    "pulls_url": "/pulls{/number}",
    "releases_url": "/releases{/id}",
    "stargazers_url": "/stargazers",
    "statuses_url": "/statuses/{sha}",
    "subscribers_url": "/subscribers",
    "subscription_url": "/subscription",
    "tags_url": "/tags",
    "teams_url": "/teams",
    "trees_url": "/git/trees{/sha}",
}


def full_repository(base: str, repo: Repository) -> JSON:
    """The ``full-repository`` schema for ``GET /repos/{owner}/{repo}``."""
    api = f"{base}/repos/{repo.owner}/{repo.name}"
    created = iso(repo.created_at)
    body: JSON = {
        "id": repo.id,
        "node_id": node_id("Repository", repo.id),
        "name": repo.name,
        "full_name": repo.full_name,
        "owner": simple_user(base, repo.owner, repo.owner_id),
        "private": True,
        "html_url": f"{WEB}/{repo.full_name}",
        "description": None,
        "fork": False,
        "url": api,
        "git_url": f"git://github.com/{repo.full_name}.git",
        "ssh_url": f"git@github.com:{repo.full_name}.git",
        "clone_url": f"{WEB}/{repo.full_name}.git",
        "svn_url": f"{WEB}/{repo.full_name}",
        "mirror_url": None,
        "homepage": None,
        "language": "Python",
        "forks_count": 0,
        "forks": 0,
        "stargazers_count": 0,
        "watchers_count": 0,
        "watchers": 0,
        "size": 0,
        "default_branch": "main",
        "open_issues_count": 0,
        "open_issues": 0,
        "is_template": False,
        "topics": [],
        "has_issues": True,
        "has_projects": False,
        "has_wiki": False,
        "has_pages": False,
        "has_downloads": True,
        "has_discussions": False,
        "archived": False,
        "disabled": False,
        "visibility": "private",
        "pushed_at": created,
        "created_at": created,
        "updated_at": created,
        "permissions": {
            "admin": True,
            "maintain": True,
            "push": True,
            "triage": True,
            "pull": True,
        },
        "allow_forking": False,
        "web_commit_signoff_required": False,
        "license": None,
        "network_count": 0,
        "subscribers_count": 1,
    }
    body.update({key: api + suffix for key, suffix in _REPO_URL_SUFFIXES.items()})
    return body


def environment_url(base: str, repo: Repository, env: Environment) -> str:
    """API URL of an environment; the name is percent-encoded like GitHub does."""
    return f"{base}/repos/{repo.full_name}/environments/{quote(env.name, safe='')}"


def _team(base: str, ident: int, slug: str, org: str) -> JSON:
    """The ``team`` schema (a team as a reviewer)."""
    api = f"{base}/teams/{ident}"
    return {
        "id": ident,
        "node_id": node_id("Team", ident),
        "url": api,
        "html_url": f"{WEB}/orgs/{org}/teams/{slug}",
        "name": slug,
        "slug": slug,
        "description": None,
        "privacy": "closed",
        "notification_setting": "notifications_enabled",
        "permission": "pull",
        "members_url": f"{api}/members{{/member}}",
        "repositories_url": f"{api}/repos",
        "parent": None,
        "type": "organization",
    }


def _reviewer(
    base: str, reviewer: Reviewer, users: dict[int, User], teams: dict[int, Team]
) -> JSON:
    """A required reviewer; a user or team the sandbox does not know gets a made-up name."""
    if reviewer.type == "Team":
        team = teams.get(reviewer.id)
        slug, org = (team.slug, team.org) if team else (f"team-{reviewer.id}", "sandbox")
        return {"type": "Team", "reviewer": _team(base, reviewer.id, slug, org)}
    user = users.get(reviewer.id)
    login = user.login if user else f"user-{reviewer.id}"
    return {"type": "User", "reviewer": simple_user(base, login, reviewer.id, kind="User")}


def public_user(base: str, user: User) -> JSON:
    """The ``public-user`` schema for ``GET /users/{username}``."""
    return {
        **simple_user(base, user.login, user.id, kind="User"),
        "name": None,
        "company": None,
        "blog": "",
        "location": None,
        "email": None,
        "hireable": None,
        "bio": None,
        "public_repos": 0,
        "public_gists": 0,
        "followers": 0,
        "following": 0,
        "created_at": iso(user.created_at),
        "updated_at": iso(user.created_at),
    }


def team_full(base: str, team: Team, org: Organization) -> JSON:
    """The ``team-full`` schema for ``GET /orgs/{org}/teams/{team_slug}``."""
    api = f"{base}/orgs/{org.login}"
    created = iso(team.created_at)
    organization: JSON = {
        "login": org.login,
        "id": org.id,
        "node_id": node_id("Organization", org.id),
        "url": api,
        "repos_url": f"{api}/repos",
        "events_url": f"{api}/events",
        "hooks_url": f"{api}/hooks",
        "issues_url": f"{api}/issues",
        "members_url": f"{api}/members{{/member}}",
        "public_members_url": f"{api}/public_members{{/member}}",
        "avatar_url": f"https://avatars.githubusercontent.com/u/{org.id}?v=4",
        "description": None,
        "html_url": f"{WEB}/{org.login}",
        "has_organization_projects": True,
        "has_repository_projects": True,
        "public_repos": 0,
        "public_gists": 0,
        "followers": 0,
        "following": 0,
        "type": "Organization",
        "created_at": created,
        "updated_at": created,
        "archived_at": None,
    }
    return {
        **_team(base, team.id, team.slug, org.login),
        "members_count": 0,
        "repos_count": 0,
        "created_at": created,
        "updated_at": created,
        "organization": organization,
        "organization_id": org.id,
    }


def branch_policy(policy: BranchPolicy) -> JSON:
    """The ``deployment-branch-policy`` schema."""
    return {
        "id": policy.id,
        "node_id": node_id("DeploymentBranchPolicy", policy.id),
        "name": policy.name,
        "type": policy.type,
    }


def _protection_rules(
    base: str, env: Environment, users: dict[int, User], teams: dict[int, Team]
) -> list[JSON]:
    rules: list[JSON] = []
    if env.wait_timer:
        rule_id = env.id * 10 + 1
        rules.append(
            {
                "id": rule_id,
                "node_id": node_id("Gate", rule_id),
                "type": "wait_timer",
                "wait_timer": env.wait_timer,
            }
        )
    if env.reviewers:
        rule_id = env.id * 10 + 2
        rules.append(
            {
                "id": rule_id,
                "node_id": node_id("Gate", rule_id),
                "type": "required_reviewers",
                "prevent_self_review": env.prevent_self_review,
                "reviewers": [_reviewer(base, r, users, teams) for r in env.reviewers],
            }
        )
    if env.branch_policy is not None:
        rule_id = env.id * 10 + 3
        rules.append({"id": rule_id, "node_id": node_id("Gate", rule_id), "type": "branch_policy"})
    return rules


def environment(
    base: str,
    repo: Repository,
    env: Environment,
    users: dict[int, User] | None = None,
    teams: dict[int, Team] | None = None,
) -> JSON:
    """The ``environment`` schema; `users` and `teams` (by id) name the reviewers."""
    body: JSON = {
        "id": env.id,
        "node_id": node_id("Environment", env.id),
        "name": env.name,
        "url": environment_url(base, repo, env),
        "html_url": f"{WEB}/{repo.full_name}/deployments/activity_log?environments_filter="
        + quote(env.name, safe=""),
        "created_at": iso(env.created_at),
        "updated_at": iso(env.updated_at),
        "protection_rules": _protection_rules(base, env, users or {}, teams or {}),
    }
    # GitHub sends null when unset, but the schema's $ref is not nullable: omit it instead so
    # that responses validate against the published description.
    if env.branch_policy is not None:
        body["deployment_branch_policy"] = dict(env.branch_policy)
    return body


def secret(record: SecretRecord) -> JSON:
    """The ``actions-secret`` schema."""
    return {
        "name": record.name,
        "created_at": iso(record.created_at),
        "updated_at": iso(record.updated_at),
    }


def org_secret(base: str, org: Organization, record: SecretRecord, store: str = "actions") -> JSON:
    """The ``organization-actions-secret`` schema (``organization-dependabot-secret`` for
    `store` "dependabot": the same fields)."""
    return _with_access(secret(record), base, org, record, f"{store}/secrets")


def org_variable(base: str, org: Organization, record: VariableRecord) -> JSON:
    """The ``organization-actions-variable`` schema."""
    return _with_access(variable(record), base, org, record, "actions/variables")


def _with_access(
    body: JSON, base: str, org: Organization, record: SecretRecord | VariableRecord, kind: str
) -> JSON:
    """`body` with an organization secret's/variable's visibility and, for selected, the URL
    of its repositories (`kind` "actions/secrets", "dependabot/secrets", "actions/variables")."""
    body["visibility"] = record.visibility or "all"
    if record.visibility == "selected":
        body["selected_repositories_url"] = (
            f"{base}/orgs/{org.login}/{kind}/{record.name}/repositories"
        )
    return body


def minimal_repository(base: str, repo: Repository) -> JSON:
    """The ``minimal-repository`` schema (selected repositories of an org secret/variable)."""
    full = full_repository(base, repo)
    return {k: v for k, v in full.items() if k != "license"}  # an object there, never null


def variable(record: VariableRecord) -> JSON:
    """The ``actions-variable`` schema."""
    return {
        "name": record.name,
        "value": record.value,
        "created_at": iso(record.created_at),
        "updated_at": iso(record.updated_at),
    }


def rate_limit_overview(core: dict[str, int]) -> JSON:
    """The ``rate-limit-overview`` schema; only ``core`` is tracked, the rest are static."""
    reset = core["reset"]

    def static(limit: int) -> dict[str, int]:
        return {"limit": limit, "remaining": limit, "used": 0, "reset": reset}

    return {
        "resources": {
            "core": dict(core),
            "search": static(30),
            "graphql": static(5000),
            "code_search": static(10),
            "integration_manifest": static(5000),
        },
        "rate": dict(core),
    }
