"""Files envmatrix writes: whole or not at all, and private.

`write_atomic` writes to a temporary file beside the target and renames it over the target, so
a reader sees the old file or the new one, never half of one. A new file is created 0600 (plan
files, calendars and matrices name secrets, owners and Vault paths — never values — but they are
still nobody else's business); a file that exists keeps the mode its owner gave it. A target that cannot be written (missing folder, a folder in its
place, no permission) is a `UsageError` naming the path, with nothing left behind.
"""

from __future__ import annotations

import os
import stat
import tempfile
from pathlib import Path

from envmatrix.errors import UsageError

PRIVATE_FILE = 0o600


def write_atomic(path: str | Path, data: str | bytes, what: str = "file") -> None:
    """Replace `path` with `data` (text is UTF-8) atomically; UsageError if it can't."""
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
        if target.is_file():
            os.chmod(tmp, stat.S_IMODE(target.stat().st_mode))
        os.replace(tmp, target)
    except OSError as exc:  # e.g. the path is a folder
        Path(tmp).unlink(missing_ok=True)
        raise UsageError(f"{path}: cannot write the {what} ({exc.strerror})") from None
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
