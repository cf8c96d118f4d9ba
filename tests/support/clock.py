"""A clock the tests move by hand (conftest's `clock` fixture), so that expiry is tested
without sleeping."""

from __future__ import annotations


class FakeClock:
    """A clock that moves only when told to, so expiry is tested without sleeping."""

    def __init__(self, now: float = 1_700_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds
