"""Conditional GitHub reads: an on-disk ETag cache for GET requests (issue 13, item 2).

A GET that was answered before is sent again with `If-None-Match: <its ETag>`; a 304 Not
Modified (which GitHub does not charge to the primary rate limit when the request is
authenticated) reuses the stored body and `Link` header, so a plan of an org in which nothing
changed costs no rate-limit points. The server decides every time: nothing is ever served
without the server's 304 for the same URL and the same credentials, so an outside write, a
write by envmatrix itself, a deleted environment or repository (404: the entry is dropped) and
a page added to or removed from a list (the page's body or `Link` changes) are all seen.

Where (`cache_folder`): `ENVMATRIX_CACHE_DIR`, else `${XDG_CACHE_HOME:-~/.cache}/envmatrix/github`;
off with `ENVMATRIX_NO_CACHE=1` and in runs a pull request triggered (`GITHUB_EVENT_NAME`
pull_request, pull_request_target, pull_request_review, pull_request_review_comment): a pull
request's code must not read or plant answers another run trusts.

Layout: `<folder>/<sha256(identity)>/<sha256(url)>.json`. The identity (`token_identity`,
`app_identity`) is the API URL plus a SHA-256 of the token, or the App id and installation, so
two tokens never share entries and no token is stored. Folders are 0700 and files 0600, owned by
the user running envmatrix; a folder that is not (group/other bits, another owner, a symlink) is
refused with one warning and the run goes on without the cache. A file holds the URL (path and
query), the ETag, the `Link` header and the body of the answer — lists of names, timestamps and
visibility, and variables' values, which are not secret; GitHub never answers a secret's value.
A file that is corrupt, truncated, from another version, of another URL, or whose body does not
match its checksum is ignored (and replaced by the next answer). Writes replace a file
atomically (a temporary file renamed over it), so concurrent runs see one answer or the other.
Nothing here raises: a cache that cannot be read or written is a warning, never an error.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import stat
import tempfile
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit

from envmatrix.files import make_private_folders

_log = logging.getLogger(__name__)

FORMAT = 1  # the layout of one entry; entries of another format are ignored
PULL_REQUEST_EVENTS = frozenset(
    {"pull_request", "pull_request_target", "pull_request_review", "pull_request_review_comment"}
)
MAX_ENTRY_BYTES = 8 * 1024 * 1024  # an answer larger than this is neither stored nor read
_UNCACHED = ("/rate_limit", "/access_tokens", "/installation")  # free, or credentials


def cache_folder(environ: Mapping[str, str]) -> Path | None:
    """The cache folder the environment asks for, or None when the cache is off
    (`ENVMATRIX_NO_CACHE` set to anything but empty or `0`, or a pull-request-triggered run)."""
    if environ.get("ENVMATRIX_NO_CACHE", "").strip() not in ("", "0"):
        return None
    if environ.get("GITHUB_EVENT_NAME", "").strip() in PULL_REQUEST_EVENTS:
        return None
    explicit = environ.get("ENVMATRIX_CACHE_DIR", "").strip()
    if explicit:
        return Path(explicit).expanduser()
    base = environ.get("XDG_CACHE_HOME", "").strip()
    root = Path(base) if base and Path(base).is_absolute() else Path.home() / ".cache"
    return root / "envmatrix" / "github"


def token_identity(api_url: str, token: str) -> str:
    """The cache identity of a token login: the API URL and a SHA-256 of the token."""
    return f"token {api_url.rstrip('/')} {hashlib.sha256(token.encode()).hexdigest()}"


def app_identity(api_url: str, app_id: str | int, installation: int) -> str:
    """The cache identity of a GitHub App installation (its tokens change every hour)."""
    return f"app {api_url.rstrip('/')} {app_id} installation {installation}"


@dataclass(frozen=True)
class CachedAnswer:
    """One stored answer: its ETag, its `Link` header (None: a single page) and its body."""

    etag: str
    link: str | None
    body: str


class GitHubCache:
    """The cache folder of one run; `scope(identity)` gives one identity's entries."""

    def __init__(self, folder: str | Path) -> None:
        self.folder = Path(folder)
        self._lock = threading.Lock()
        self._scopes: dict[str, CacheScope | None] = {}
        self._warned: set[str] = set()

    @classmethod
    def from_environment(cls, environ: Mapping[str, str]) -> GitHubCache | None:
        """The cache `cache_folder(environ)` names, or None when it is off."""
        folder = cache_folder(environ)
        return None if folder is None else cls(folder)

    def scope(self, identity: str) -> CacheScope | None:
        """The entries of `identity` (its folder made 0700 when missing), or None (with one
        warning) when the cache folder cannot be used."""
        with self._lock:
            if identity not in self._scopes:
                self._scopes[identity] = self._open(identity)
            return self._scopes[identity]

    def _open(self, identity: str) -> CacheScope | None:
        folder = self.folder / hashlib.sha256(identity.encode()).hexdigest()
        try:
            make_private_folders(folder)
        except OSError as exc:
            self.warn(f"{self.folder}: cannot create the GitHub cache ({exc.strerror}); not used")
            return None
        for path in (self.folder, folder):
            refusal = _unsafe_folder(path)
            if refusal is not None:
                self.warn(f"{path}: {refusal}; the GitHub cache is not used")
                return None
        return CacheScope(folder, self)

    def warn(self, message: str) -> None:
        """Log `message` once per run."""
        if message not in self._warned:
            self._warned.add(message)
            _log.warning(message)


class CacheScope:
    """One identity's stored answers, keyed by URL (path and query). Thread-safe: every
    entry is a file replaced atomically."""

    def __init__(self, folder: Path, cache: GitHubCache) -> None:
        self.folder = folder
        self._cache = cache

    def get(self, url: str) -> CachedAnswer | None:
        """The answer stored for `url`, or None (none, or unusable: ignored)."""
        path = self._path(url)
        try:
            fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
        except OSError:
            return None
        try:
            info = os.fstat(fd)
            if not stat.S_ISREG(info.st_mode) or info.st_size > MAX_ENTRY_BYTES:
                return None
            if info.st_uid != os.geteuid() or stat.S_IMODE(info.st_mode) & 0o077:
                self._cache.warn(f"{path}: not private to you (mode, owner); ignored")
                return None
            with os.fdopen(os.dup(fd), "rb") as handle:
                raw = handle.read(MAX_ENTRY_BYTES + 1)
        except OSError:
            return None
        finally:
            os.close(fd)
        return _parse_entry(raw, url)

    def put(self, url: str, etag: str, link: str | None, body: str) -> None:
        """Store the answer for `url` (replacing any); a failure is a warning."""
        entry = {
            "format": FORMAT,
            "url": url,
            "etag": etag,
            "link": link,
            "body": body,
            "sha256": hashlib.sha256(body.encode()).hexdigest(),
        }
        data = json.dumps(entry, separators=(",", ":")).encode()
        if len(data) > MAX_ENTRY_BYTES:
            return
        try:
            _replace(self._path(url), data)
        except OSError as exc:
            self._cache.warn(f"{self.folder}: cannot write the GitHub cache ({exc.strerror})")

    def forget(self, url: str) -> None:
        """Drop the entry of `url` (the server no longer answers it)."""
        try:
            self._path(url).unlink(missing_ok=True)
        except OSError:
            pass

    def _path(self, url: str) -> Path:
        return self.folder / (hashlib.sha256(url.encode()).hexdigest() + ".json")


def cache_key(base_path: str, url: str, parameters: Mapping[str, Any] | None) -> str:
    """The path and sorted query a request goes to, whether `url` is relative to the API
    (`/repos/...`, under `base_path`, e.g. `/api/v3`) or absolute (a `Link` URL)."""
    parts = urlsplit(url)
    path = base_path.rstrip("/") + url.split("?", 1)[0] if url.startswith("/") else parts.path
    query = dict(parse_qsl(parts.query, keep_blank_values=True))
    query.update(
        {
            k: str(v).lower() if isinstance(v, bool) else str(v)
            for k, v in (parameters or {}).items()
        }
    )
    return f"{path}?{urlencode(sorted(query.items()))}" if query else path


def cacheable(verb: str, key: str) -> bool:
    """GETs, except the free rate-limit overview and App installation/token endpoints."""
    path = key.split("?", 1)[0]
    return verb.upper() == "GET" and not path.endswith(_UNCACHED)


def conditional_reads(requester: Any, scope: CacheScope, base_path: str) -> None:
    """Make `requester`'s GETs conditional on `scope`'s entries.

    Wraps this instance's `requestJson` (PyGithub's call every JSON request passes through,
    pages included; wrap it after the request counting, so a 304 is counted as one): a stored
    answer's ETag goes out as `If-None-Match`; a 304 is handed back to PyGithub as a 200 with
    the stored body and `Link`; a 200 with an ETag is stored; a 404 or 410 drops the entry."""
    send = requester.requestJson

    def conditional(
        verb: str,
        url: str,
        parameters: dict[str, Any] | None = None,
        headers: dict[str, Any] | None = None,
        *args: Any,
        **kwargs: Any,
    ) -> Any:
        key = cache_key(base_path, url, parameters)
        if not cacheable(verb, key):
            return send(verb, url, parameters, headers, *args, **kwargs)
        cached = scope.get(key)
        if cached is not None:
            headers = {**(headers or {}), "If-None-Match": cached.etag}
        status, answer_headers, output = send(verb, url, parameters, headers, *args, **kwargs)
        lowered = {str(k).lower(): v for k, v in (answer_headers or {}).items()}
        if status == 304 and cached is not None:
            merged = dict(answer_headers or {})
            if cached.link is not None and "link" not in lowered:
                merged["link"] = cached.link
            return 200, merged, cached.body
        if status == 200 and isinstance(output, str) and lowered.get("etag"):
            link = lowered.get("link")
            scope.put(key, str(lowered["etag"]), None if link is None else str(link), output)
        elif status in (404, 410) or (status == 200 and cached is not None):
            scope.forget(key)
        return status, answer_headers, output

    requester.requestJson = conditional


def _parse_entry(raw: bytes, url: str) -> CachedAnswer | None:
    try:
        entry = json.loads(raw)
    except ValueError:
        return None
    if not isinstance(entry, dict) or entry.get("format") != FORMAT or entry.get("url") != url:
        return None
    etag, link, body = entry.get("etag"), entry.get("link"), entry.get("body")
    if not isinstance(etag, str) or not etag or not isinstance(body, str):
        return None
    if link is not None and not isinstance(link, str):
        return None
    if entry.get("sha256") != hashlib.sha256(body.encode()).hexdigest():
        return None
    return CachedAnswer(etag, link, body)


def _replace(path: Path, data: bytes) -> None:
    """Write `data` to a new 0600 file beside `path` and rename it over `path`. No fsync: an
    entry lost or torn by a crash is only a cache miss (the checksum catches it)."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _unsafe_folder(path: Path) -> str | None:
    """Why `path` may not hold cache entries (None: it may)."""
    try:
        info = os.lstat(path)
    except OSError as exc:
        return f"cannot read the folder ({exc.strerror})"
    if stat.S_ISLNK(info.st_mode):
        return "is a symbolic link"
    if not stat.S_ISDIR(info.st_mode):
        return "is not a folder"
    if info.st_uid != os.geteuid():
        return "is owned by another user"
    if stat.S_IMODE(info.st_mode) & 0o077:
        return f"has mode {stat.S_IMODE(info.st_mode):04o} (must be 0700)"
    return None
