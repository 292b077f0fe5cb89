"""Addresses for messages: a URL or DSN with any credentials in it cut out.

A Vault address, a GitHub API URL or a PostgreSQL URI may carry `user:password@` (and a DSN's
query may carry `password=`). Every message that names an address shows `url_for_display(url)`
instead of the address itself.
"""

from __future__ import annotations

REDACTED = "***"


def url_for_display(url: str) -> str:
    """`url` without userinfo, query or fragment: `https://u:p@vault:8200/x?t=1` becomes
    `https://***@vault:8200/x?***`.

    Safe by construction rather than exact: everything up to the *last* `@` counts as userinfo,
    because an unencoded `/`, `?` or `#` in a password makes URL parsers split it elsewhere; an
    address whose path holds an `@` loses that part of its path, never shows a password.
    Also takes text without a scheme (`user:pw@host:8200`).
    """
    scheme, separator, rest = url.partition("://")
    if not separator:
        scheme, rest = "", url
    if "@" in rest:
        rest = f"{REDACTED}@{rest.rsplit('@', 1)[1]}"
    for mark in ("?", "#"):
        if mark in rest:
            rest = rest.split(mark, 1)[0] + f"{mark}{REDACTED}"
    return f"{scheme}{separator}{rest}"


def host_for_display(url: str) -> str:
    """`host[:port]` of `url`, without userinfo; empty when there is none."""
    shown = url_for_display(url)
    authority = shown.partition("://")[2] or shown
    authority = authority.split("/", 1)[0].split("?", 1)[0].split("#", 1)[0]
    return authority.removeprefix(f"{REDACTED}@")
