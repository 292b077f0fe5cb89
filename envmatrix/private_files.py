"""Files envmatrix writes are private: created 0600, in folders it creates 0700, whatever the umask.

Audit rows, plans, matrices and calendars hold no values, but they name token holders, paths,
owners and failure causes; on a shared runner no other local user should read them. Modes are
set with `fchmod`/`chmod` right after creation and before any data is written, so a permissive
umask (022, 002) cannot widen them. Existing folders are left as they are (they are not ours);
an existing file envmatrix owns and rewrites in place (the audit database) is narrowed to 0600.
"""

from __future__ import annotations

import os
import stat
import tempfile
from pathlib import Path

FILE_MODE = 0o600
FOLDER_MODE = 0o700


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


def write_private_text(path: str | Path, text: str) -> None:
    """Replace `path` atomically with `text` (UTF-8), mode 0600. Raises OSError."""
    write_private_bytes(path, text.encode("utf-8"))


def write_private_bytes(path: str | Path, data: bytes, mode: int = FILE_MODE) -> None:
    """Replace `path` atomically with `data`: readers see the old file or the new one, never
    half. The new file has `mode` (default 0600). Raises OSError."""
    target = Path(path)
    directory = target.parent if str(target.parent) else Path(".")
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=f".{target.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, mode)  # before any data: mkstemp's 0600, or the caller's choice
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
