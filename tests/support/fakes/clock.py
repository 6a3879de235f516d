"""A clock the platform fakes run on, which a test moves by hand."""

from __future__ import annotations


class FakeClock:
    """``FakeWeCom(clock=clock)`` or ``FakeDingTalk(clock=clock)``, then ``clock.advance(61)``."""

    def __init__(self, start: float = 1_700_000_000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds
