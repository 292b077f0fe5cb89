"""Run a GitHub sandbox in the foreground.

``python -m envmatrix.sandbox --host 127.0.0.1 --port 0 --token T --repo o/r [--repo ...]
[--app-id N --app-public-key FILE] [--user LOGIN ...] [--team ORG/SLUG ...]`` prints exactly
one line, ``sandbox listening on http://HOST:PORT``, once it accepts connections, and stops
cleanly on SIGTERM or SIGINT.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from types import FrameType

from envmatrix.sandbox.server import GitHubSandbox


def _parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m envmatrix.sandbox", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--token", default="sandbox-token")
    parser.add_argument("--repo", action="append", default=[], help="owner/name; repeatable")
    parser.add_argument("--rate-limit", type=int, default=5000)
    parser.add_argument("--user", action="append", default=[], help="a reviewer login; repeatable")
    parser.add_argument("--team", action="append", default=[], help="org/slug; repeatable")
    parser.add_argument("--app-id", type=int, help="register a GitHub App with this ID")
    parser.add_argument(
        "--app-public-key",
        help="the App's RSA public key (PEM file); the App is installed on every owner",
    )
    args = parser.parse_args(argv)
    if (args.app_id is None) != (args.app_public_key is None):
        parser.error("--app-id and --app-public-key go together")
    return args


def main(argv: list[str] | None = None) -> int:
    """Start the sandbox, announce its URL, serve until a signal arrives."""
    args = _parse(argv)
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    sandbox = GitHubSandbox(
        host=args.host,
        port=args.port,
        token=args.token,
        repositories=args.repo,
        rate_limit=args.rate_limit,
    )
    if args.app_id is not None:
        with open(args.app_public_key, encoding="ascii") as key:
            sandbox.register_app(args.app_id, key.read())
    for login in args.user:
        sandbox.add_user(login)
    for team in args.team:
        org, _, slug = team.partition("/")
        sandbox.add_team(org, slug)
    sandbox.start()
    try:
        print(f"sandbox listening on {sandbox.url}", flush=True)
        # Event.wait with a timeout lets the main thread run the signal handler promptly.
        while not stop.wait(0.2):
            pass
    finally:
        sandbox.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
