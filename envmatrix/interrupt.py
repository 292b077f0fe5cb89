"""Ctrl-C and SIGTERM: stop after the write in flight, never in the middle of one.

`handling()` (cli.main) installs handlers for SIGINT and SIGTERM for the length of a command.
Outside a `writing()` block a signal stops the command at once (KeyboardInterrupt: nothing is
being written). Inside one — apply's writes, a rotation — the first signal is only noted; the
run stops at its next `check()` (before its next write, or between rotation steps) with
`Interrupted`, reports what landed and what did not, releases its lock and exits 130 (SIGINT)
or 143 (SIGTERM; CI cancels a job with SIGTERM, then SIGKILL). A second signal stops at once.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType

from envmatrix.errors import ExitCode, Interrupted

_SIGNALS = {
    signal.SIGINT: ("Ctrl-C", ExitCode.INTERRUPTED),
    signal.SIGTERM: ("SIGTERM", ExitCode.TERMINATED),
}


class _State:
    received: int | None = None  # the first signal of this command
    pending: bool = False  # noted inside writing(), not acted on yet
    writing: int = 0  # nesting depth of writing() blocks
    wrote: bool = False  # a writing() block was entered: writes may have landed


_state = _State()


@contextmanager
def handling() -> Iterator[None]:
    """Install the handlers for one command (main thread only), restore the old ones after."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {number: signal.getsignal(number) for number in _SIGNALS}
    _state.received, _state.pending, _state.writing, _state.wrote = None, False, 0, False
    for number in _SIGNALS:
        signal.signal(number, _on_signal)
    try:
        yield
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)


@contextmanager
def writing() -> Iterator[None]:
    """A stretch of writes: a signal inside it takes effect at the next `check()`."""
    _state.writing += 1
    _state.wrote = True
    try:
        yield
    finally:
        _state.writing -= 1


def check() -> None:
    """Raise Interrupted when a signal arrived; call it before each write."""
    if _state.pending and _state.received is not None:
        name, code = _SIGNALS[signal.Signals(_state.received)]
        raise Interrupted(f"interrupted ({name}) after the write in flight", code)


def pending() -> bool:
    """A signal arrived inside `writing()` and the run has not stopped for it yet."""
    return _state.pending


def exit_code() -> ExitCode:
    """130 for Ctrl-C (also when no signal was seen: a KeyboardInterrupt), 143 for SIGTERM."""
    if _state.received is None:
        return ExitCode.INTERRUPTED
    return _SIGNALS[signal.Signals(_state.received)][1]


def stopped_at_once_message() -> str:
    """The line for a command stopped by a signal outside (or by a second signal inside) writes."""
    name = "Ctrl-C" if _state.received in (None, signal.SIGINT) else "SIGTERM"
    if not _state.wrote:
        return f"interrupted ({name}) before anything was written"
    return (
        f"interrupted ({name}) during a write; what landed is in `envmatrix audit`, and"
        " plan shows what is left"
    )


def _on_signal(number: int, frame: FrameType | None) -> None:
    if _state.writing and not _state.pending:
        _state.received, _state.pending = number, True
        return
    if _state.received is None:
        _state.received = number
    raise KeyboardInterrupt
