"""What envmatrix's log shows, with and without `ENVMATRIX_DEBUG`: an allow-list, not a filter.

Libraries log what they send and receive: botocore logs whole response bodies (a freshly minted
AWS secret access key among them), PyGithub logs headers and bodies, urllib3 and httpx log URLs.
A filter that masks known values cannot catch a value a provider mints and a library logs before
envmatrix sees it, so the log is built the other way round:

- records of envmatrix's own loggers (`envmatrix.*`, `rotation.*`, `cli`) are shown as logged;
  their messages are built from names, paths and statuses, and values are `SecretValue`s, which
  format as asterisks;
- of every other logger, only the messages listed in `_LIBRARY_SHAPES` are shown, and never
  their text: a fixed line is rebuilt from chosen arguments — `http: GET /v1/secret/data/app ->
  200` (method, path and status; no host, query, headers or body). The path is shown only for the
  origins envmatrix is configured with (`VAULT_ADDR`, `GITHUB_API_URL`, `show_paths_for`); a
  request elsewhere (e.g. to a Supabase project URL, itself a Vault value) shows
  `(path not shown)`;
- everything else is dropped, at every level.

`configure(environ)` installs this on the root logger: DEBUG when `ENVMATRIX_DEBUG` is set to
anything but empty/`0`, else WARNING (so a library's warning is dropped too, instead of Python
printing it on stderr as is).
"""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import urlsplit

OWN_LOGGERS = ("envmatrix", "rotation", "cli")
DEFAULT_GITHUB_API = "https://api.github.com"
_METHOD = re.compile(r"^[A-Z]{3,7}$")
_shown_origins: set[tuple[str, str, int | None]] = set()


def debug_enabled(environ: Mapping[str, str]) -> bool:
    """`ENVMATRIX_DEBUG` set to anything but empty or `0`."""
    return environ.get("ENVMATRIX_DEBUG", "").strip() not in ("", "0")


def configure(environ: Mapping[str, str]) -> None:
    """Replace any handler this module installed before; leave other handlers alone."""
    root = logging.getLogger()
    for handler in [h for h in root.handlers if isinstance(h, AllowListHandler)]:
        root.removeHandler(handler)
    _shown_origins.clear()
    for variable, default in (("VAULT_ADDR", None), ("GITHUB_API_URL", DEFAULT_GITHUB_API)):
        address = environ.get(variable) or default
        if address:
            show_paths_for(address)
    level = logging.DEBUG if debug_enabled(environ) else logging.WARNING
    root.addHandler(AllowListHandler(level))
    root.setLevel(level)


def show_paths_for(address: str) -> None:
    """Show request paths to `address`'s origin (an address from configuration, not Vault)."""
    origin = _origin(address)
    if origin is not None:
        _shown_origins.add(origin)


class AllowListHandler(logging.Handler):
    """Writes allowed records to the current `sys.stderr`, one line each."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            line = shown_line(record)
            if line is not None:
                sys.stderr.write(f"{record.levelname} {line}\n")
        except Exception:  # a log line must never break a run, nor show why it failed
            pass


def shown_line(record: logging.LogRecord) -> str | None:
    """The line to show for `record`, or None when it is not on the allow-list."""
    if _is_own(record.name):
        return f"{record.name}: {record.getMessage()}"
    template = record.msg if isinstance(record.msg, str) else None
    shape = _LIBRARY_SHAPES.get((record.name, template))
    if shape is None or not isinstance(record.args, tuple):
        return None
    return shape(record.args)


def _is_own(name: str) -> bool:
    return any(name == own or name.startswith(own + ".") for own in OWN_LOGGERS)


def _urllib3_request(args: tuple[Any, ...]) -> str | None:
    # urllib3.connectionpool: '%s://%s:%s "%s %s %s" %s %s'
    # (scheme, host, port, method, url, http version, status, length)
    scheme, host, port, method, url, _version, status = args[:7]
    return _request_line(method, f"{scheme}://{host}:{port}", str(url), status)


def _httpx_request(args: tuple[Any, ...]) -> str | None:
    # httpx: 'HTTP Request: %s %s "%s %d %s"' (method, URL, http version, status, reason)
    method, url, _version, status = args[:4]
    return _request_line(method, str(url), str(url), status)


def _request_line(method: Any, origin_url: str, target: str, status: Any) -> str | None:
    if not isinstance(method, str) or not _METHOD.match(method) or not isinstance(status, int):
        return None
    origin = _origin(origin_url)
    shown = origin is not None and origin in _shown_origins
    path = _path(target) if shown else "(path not shown)"
    return f"http: {method} {path} -> {status}"


def _origin(address: str) -> tuple[str, str, int | None] | None:
    try:
        parts = urlsplit(address)
        port = parts.port or {"http": 80, "https": 443}.get(parts.scheme)
    except ValueError:
        return None
    if not parts.hostname:
        return None
    return parts.scheme, parts.hostname.lower(), port


def _path(target: str) -> str:
    """The path of a request target (absolute URL or origin-form), no query, no userinfo."""
    try:
        path = urlsplit(target).path if "://" in target else target.split("?", 1)[0]
    except ValueError:
        return "(path not shown)"
    path = path.split("#", 1)[0]
    return path if "@" not in path else "(path not shown)"


_LIBRARY_SHAPES: dict[tuple[str, str | None], Callable[[tuple[Any, ...]], str | None]] = {
    ("urllib3.connectionpool", '%s://%s:%s "%s %s %s" %s %s'): _urllib3_request,
    ("httpx", 'HTTP Request: %s %s "%s %d %s"'): _httpx_request,
}
