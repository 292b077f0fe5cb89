"""Fault injection for the GitHub sandbox.

A :class:`Fault` says which requests it matches (method, path regex, operationId), what happens
to them (an error status, a delay, a connection reset, an HTML page, truncated JSON) and when
(skip the first ``after`` matches, fire ``times`` times, fire with a seeded probability).
:class:`FaultBook` holds the active faults and decides, per request, which one fires.
"""

from __future__ import annotations

import random
import re
import threading
from dataclasses import asdict, dataclass, field, fields
from typing import Any


@dataclass
class Fault:
    """One injected failure. ``None`` matchers match everything."""

    method: str | None = None
    path: str | None = None
    operation: str | None = None
    status: int | None = None
    retry_after: int | None = None
    secondary: bool = False
    delay: float = 0  # seconds before the request is handled (and answered)
    late_answer: float = 0  # seconds between handling the request and sending its answer
    reset: bool = False
    html: bool = False
    truncate: bool = False
    times: int | None = None
    after: int = 0
    probability: float | None = None
    seed: int | None = None

    def __post_init__(self) -> None:
        if self.probability is not None and not 0 <= self.probability <= 1:
            raise ValueError("probability must be within [0, 1]")
        if self.times is not None and self.times < 0:
            raise ValueError("times must be >= 0")
        if self.after < 0:
            raise ValueError("after must be >= 0")
        if self.delay < 0 or self.late_answer < 0:
            raise ValueError("delay and late_answer must be >= 0")

    @property
    def answers(self) -> bool:
        """True when the fault replaces the handler's answer (anything beyond a pure delay)."""
        return self.status is not None or self.reset or self.html or self.truncate or self.secondary

    def matches(self, method: str, path: str, operation: str) -> bool:
        """Whether this fault applies to a request (before counting ``after``/``times``)."""
        if self.method is not None and self.method.upper() != method.upper():
            return False
        if self.operation is not None and self.operation != operation:
            return False
        return self.path is None or re.search(self.path, path) is not None

    def to_json(self) -> dict[str, Any]:
        """The fault's fields as a JSON-ready dict (the admin API's wire format)."""
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Fault:
        """Build a fault from admin-API JSON; unknown keys are an error, not silently ignored."""
        known = {f.name for f in fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise ValueError(f"unknown Fault fields: {sorted(unknown)}")
        return cls(**data)


@dataclass
class _ArmedFault:
    """A fault plus its own counters and random stream (so seeds are per fault)."""

    fault: Fault
    rng: random.Random
    seen: int = 0
    fired: int = 0

    def should_fire(self) -> bool:
        self.seen += 1
        if self.seen <= self.fault.after:
            return False
        if self.fault.times is not None and self.fired >= self.fault.times:
            return False
        if self.fault.probability is not None and self.rng.random() >= self.fault.probability:
            return False
        self.fired += 1
        return True


@dataclass
class FaultBook:
    """Thread-safe list of active faults; the first matching fault that fires wins."""

    _armed: list[_ArmedFault] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, fault: Fault) -> None:
        """Activate a fault (after the ones already active)."""
        with self._lock:
            self._armed.append(_ArmedFault(fault, random.Random(fault.seed)))

    def clear(self) -> None:
        """Remove every fault."""
        with self._lock:
            self._armed.clear()

    def pick(self, method: str, path: str, operation: str) -> Fault | None:
        """The fault that fires for this request, if any; advances the matching counters."""
        with self._lock:
            for armed in self._armed:
                if armed.fault.matches(method, path, operation) and armed.should_fire():
                    return armed.fault
        return None
