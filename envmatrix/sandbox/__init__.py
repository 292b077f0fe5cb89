"""A GitHub REST API sandbox: a real local HTTP server for the operations envmatrix uses.

It speaks exactly the 63 operations of ``tests/data/github-openapi/api.github.com.subset.json``
(repositories, environments with their protection and deployment branch policies, users and
teams looked up for reviewers, environment/repository/organization secrets and variables (org
ones with visibility and selected repositories), Dependabot repository and organization secrets,
``/rate_limit``, GitHub App installations and installation tokens) with GitHub's status codes,
error bodies, pagination ``Link`` headers, ETags and rate-limit headers, plus fault injection
(:class:`Fault`) and an admin API under ``/_sandbox/``. Only the standard library, PyNaCl and
PyJWT (a dependency of PyGithub; App JWTs) are used, so it ships inside the package.

Example::

    with GitHubSandbox(token="sandbox-token", repositories=("o/r",)) as sb:
        gh = github.Github(auth=github.Auth.Token("sandbox-token"), base_url=sb.url)
"""

from __future__ import annotations

from envmatrix.sandbox.faults import Fault
from envmatrix.sandbox.server import GitHubSandbox, RequestRecord

__all__ = ["Fault", "GitHubSandbox", "RequestRecord"]
