"""One retry policy for everything ltoboot asks of a network (downloads, a LAVA server):
exponential backoff with tenacity, a server's Retry-After honoured up to a bound, a bounded
number of attempts. A failure worth another attempt is raised as Transient."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import tenacity


@dataclass(frozen=True)
class Policy:
    """How hard to try. Tests shrink the waits; users keep the defaults."""

    attempts: int = 5
    backoff: float = 1.0  # first wait in seconds, doubled each retry ...
    backoff_max: float = 30.0  # ... up to this
    retry_after_max: float = 120.0  # a server's Retry-After is honoured up to this
    connect_timeout: float = 10.0
    read_timeout: float = 60.0


class Transient(Exception):
    """A failure worth another attempt: no connection, a timeout, 429, 5xx, a short body."""

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class _Wait(tenacity.wait.wait_base):
    """Exponential backoff, or longer when the server asked for it (Retry-After)."""

    def __init__(self, policy: Policy) -> None:
        self.policy = policy
        self.exponential = tenacity.wait_exponential(multiplier=policy.backoff,
                                                     max=policy.backoff_max)

    def __call__(self, state: tenacity.RetryCallState) -> float:
        wait = self.exponential(state)
        error = state.outcome.exception() if state.outcome else None
        asked = getattr(error, "retry_after", None)
        if asked is not None:
            wait = max(wait, min(asked, self.policy.retry_after_max))
        return float(wait)


def retrying(policy: Policy,
             before_sleep: Callable[[tenacity.RetryCallState], None] | None = None
             ) -> tenacity.Retrying:
    """Call through the result (`retrying(p)(fn, *args)`): Transient is retried as `policy`
    says, then re-raised; anything else goes straight through."""
    return tenacity.Retrying(retry=tenacity.retry_if_exception_type(Transient),
                             stop=tenacity.stop_after_attempt(policy.attempts),
                             wait=_Wait(policy), before_sleep=before_sleep, reraise=True)
