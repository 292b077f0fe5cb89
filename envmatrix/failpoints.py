"""Failpoints: named places where a test can make the process die, to prove crash safety.

`ENVMATRIX_FAILPOINTS="apply.after-put@3,rotation.after=staged"` kills the process with SIGKILL
the 3rd time `hit("apply.after-put")` runs, and the first time `hit("rotation.after", "staged")`
runs. Unset (always, outside tests) it costs one environment lookup. Like etcd's gofail.
"""

from __future__ import annotations

import os
import signal
from collections import Counter

_seen: Counter[str] = Counter()


def hit(name: str, detail: str = "") -> None:
    """Die here if a test asked for it."""
    spec = os.environ.get("ENVMATRIX_FAILPOINTS")
    if not spec:
        return
    point = f"{name}={detail}" if detail else name
    _seen[point] += 1
    for item in spec.split(","):
        wanted, _, nth = item.strip().partition("@")
        if wanted == point and _seen[point] == int(nth or 1):
            os.kill(os.getpid(), signal.SIGKILL)
