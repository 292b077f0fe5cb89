"""Files envmatrix writes: whole or not at all, and private, whatever the umask.

`write_atomic` writes to a temporary file beside the target and renames it over the target, so
a reader sees the old file or the new one, never half of one. A new file is created 0600 (plan
files, calendars and matrices name secrets, owners and Vault paths — never values — but they are
still nobody else's business); a file that exists keeps the mode its owner gave it. A target
that cannot be written (missing folder, a folder in its place, no permission) is a `UsageError`
naming the path, with nothing left behind.

Files another library opens (the SQLite audit database and its -wal/-shm/-journal, which SQLite
creates with the database's mode) are made 0600 first with `ensure_private_file`; folders
envmatrix creates are 0700 (`make_private_folders`), existing folders are left as they are.
"""

from __future__ import annotations

import os
import stat
import tempfile
from pathlib import Path

from envmatrix.errors import UsageError

FILE_MODE = 0o600
FOLDER_MODE = 0o700


def write_atomic(path: str | Path, data: str | bytes, what: str = "file") -> None:
    """Replace `path` with `data` (text is UTF-8) atomically; UsageError if it can't."""
    target = Path(path)
    tmp = _temporary_copy(path, data, what)
    try:
        if target.is_file():
            os.chmod(tmp, stat.S_IMODE(target.stat().st_mode))
        os.replace(tmp, target)
    except OSError as exc:  # e.g. the path is a folder
        Path(tmp).unlink(missing_ok=True)
        raise UsageError(f"{path}: cannot write the {what} ({exc.strerror})") from None
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def create_atomic(path: str | Path, data: str | bytes, what: str = "file") -> None:
    """Create `path` with `data` (text is UTF-8) in one step, never over an existing file: the
    data goes to a temporary file that is then hard-linked into place (the link fails when
    `path` exists). Created 0600, as `write_atomic` creates. UsageError if `path` exists or
    cannot be written."""
    target = Path(path)
    tmp = _temporary_copy(path, data, what)
    try:
        os.link(tmp, target)
    except FileExistsError:
        raise UsageError(f"{path} exists; pass --force to replace it") from None
    except OSError as exc:
        raise UsageError(f"{path}: cannot write the {what} ({exc.strerror})") from None
    finally:
        Path(tmp).unlink(missing_ok=True)


def _temporary_copy(path: str | Path, data: str | bytes, what: str) -> str:
    """Write `data` (text is UTF-8) to a new 0600 temporary file beside `path`, flushed to
    disk; its path. UsageError (and no temporary file left) if it cannot be written."""
    target = Path(path)
    payload = data.encode("utf-8") if isinstance(data, str) else data
    try:
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    except OSError as exc:
        raise UsageError(f"{path}: cannot write the {what} ({exc.strerror})") from None
    try:
        with os.fdopen(fd, "wb") as handle:  # mkstemp creates it 0600
            handle.write(payload)
            handle.flush()
            os.fsync(handle.fileno())
    except OSError as exc:
        Path(tmp).unlink(missing_ok=True)
        raise UsageError(f"{path}: cannot write the {what} ({exc.strerror})") from None
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return tmp


def make_private_folders(folder: str | Path) -> None:
    """Create `folder` and its missing parents 0700; existing ones are left alone."""
    missing: list[Path] = []
    current = Path(folder)
    while not current.exists() and current != current.parent:
        missing.append(current)
        current = current.parent
    for path in reversed(missing):
        try:
            path.mkdir(mode=FOLDER_MODE)
        except FileExistsError:  # made meanwhile by a concurrent run
            continue
        os.chmod(path, FOLDER_MODE)


def ensure_private_file(path: str | Path) -> None:
    """Create `path` empty with mode 0600 when it is absent (its folders 0700); an existing file
    that we own is narrowed to 0600. For files another library then opens (SQLite)."""
    target = Path(path)
    make_private_folders(target.parent)
    fd = os.open(target, os.O_RDWR | os.O_CREAT | getattr(os, "O_CLOEXEC", 0), FILE_MODE)
    try:
        narrow(fd)
    finally:
        os.close(fd)


def narrow(fd: int) -> None:
    """Mode 0600 on an open file that we own and that has group or other bits."""
    info = os.fstat(fd)
    if stat.S_IMODE(info.st_mode) & 0o077 and info.st_uid == os.geteuid():
        os.fchmod(fd, stat.S_IMODE(info.st_mode) & 0o700 or FILE_MODE)
