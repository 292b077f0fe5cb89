"""A real headless Chromium (Debian's `chromium`; `.ci/run` installs it) for checking pages:
a screenshot, and Chromium's own network log of every URL request the run made.

Chromium 156 still starts two requests of its own whatever the flags (an on-demand component
check at update.googleapis.com and a sign-in ListAccounts at accounts.google.com); the log tells
them apart from a page's requests: the browser starts them itself (initiator "not an origin"),
while everything a page loads carries the page as its initiator ("null" for a file:// page).
"""

from __future__ import annotations

import json
import shutil
import struct
import subprocess
import zlib
from dataclasses import dataclass
from pathlib import Path

CHROMIUM = "chromium"
FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-features=NetworkTimeServiceQuerying",  # else it asks clients2.google.com the time
    "--window-size=1280,900",
)
BROWSER_INITIATED = "not an origin"


@dataclass(frozen=True)
class UrlRequest:
    url: str
    initiator: str

    @property
    def by_page(self) -> bool:
        return self.initiator != BROWSER_INITIATED


@dataclass(frozen=True)
class Rendered:
    screenshot: Path
    requests: tuple[UrlRequest, ...]

    def page_requests(self) -> list[str]:
        """URLs the page made Chromium fetch (the file:// page itself is not a network request)."""
        return [r.url for r in self.requests if r.by_page and not r.url.startswith("file://")]


def chromium() -> str:
    found = shutil.which(CHROMIUM)
    assert found, "Debian's chromium is needed: apt-get install -y chromium (.ci/run does it)"
    return found


def render(page: Path, folder: Path) -> Rendered:
    """Open `page` in headless Chromium; the screenshot and the net log go into `folder`."""
    screenshot, net_log = folder / "matrix.png", folder / "net.json"
    command = [
        chromium(),
        *FLAGS,
        f"--user-data-dir={folder / 'profile'}",
        f"--screenshot={screenshot}",
        f"--log-net-log={net_log}",
        page.resolve().as_uri(),
    ]
    done = subprocess.run(command, capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stderr[-2000:]
    return Rendered(screenshot, url_requests(net_log))


def url_requests(net_log: Path) -> tuple[UrlRequest, ...]:
    """Every URL request Chromium's net log records starting (`URL_REQUEST_START_JOB`)."""
    log = json.loads(net_log.read_text(encoding="utf-8"))
    start = log["constants"]["logEventTypes"]["URL_REQUEST_START_JOB"]
    return tuple(
        UrlRequest(e["params"]["url"], e["params"].get("initiator", ""))
        for e in log["events"]
        if e["type"] == start and "url" in e.get("params", {})
    )


def png_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", f"{path} is not a PNG"
    width, height = struct.unpack(">II", data[16:24])
    return width, height


def png_distinct_bytes(path: Path) -> int:
    """How many distinct byte values the image's (filtered) pixel data holds: a blank page
    holds two or three, a page with text and coloured cells dozens."""
    data, pixels, offset = path.read_bytes(), b"", 8
    while offset < len(data):
        (length,) = struct.unpack(">I", data[offset : offset + 4])
        kind = data[offset + 4 : offset + 8]
        if kind == b"IDAT":
            pixels += data[offset + 8 : offset + 8 + length]
        offset += 12 + length
    return len(set(zlib.decompress(pixels)))
