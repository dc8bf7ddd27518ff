"""Is the canary worse than stable? Three answers: pass, fail, or not enough data yet.

Error rate: Beta(1+errors, 1+ok) posteriors for both tracks, P(canary > stable + delta) by
a fixed-seed Monte Carlo. It is checked every few seconds, so a fail needs a strict 0.99
and real evidence (at least 3 canary errors); a pass needs P < 0.05, which with zero
errors takes about 600 canary requests at the default delta: zero errors in n requests
only proves a rate below about 3/n. Latency: p99 of canary against
max(stable p99 x ratio, stable p99 + floor), and an absolute cap. Zero errors count as
zero, never as missing."""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field
from typing import Literal

from goship.config.model import Canary

Outcome = Literal["pass", "fail", "wait"]
SAMPLES = 4000


@dataclass
class Arm:
    requests: int = 0
    errors: int = 0
    latencies: list[float] = field(default_factory=list)  # seconds

    def add(self, status: int, latency: float | None) -> None:
        self.requests += 1
        if status >= 500:
            self.errors += 1
        if latency is not None:
            self.latencies.append(latency)

    @property
    def rate(self) -> float:
        return self.errors / self.requests if self.requests else 0.0

    def quantile(self, q: float) -> float | None:
        if not self.latencies:
            return None
        data = sorted(self.latencies)
        return data[min(len(data) - 1, max(0, math.ceil(q * len(data)) - 1))]

    def summary(self) -> dict[str, float | int | None]:
        p95, p99 = self.quantile(0.95), self.quantile(0.99)
        return {"requests": self.requests, "errors": self.errors,
                "error_rate": round(self.rate, 5),
                "p95_ms": None if p95 is None else round(p95 * 1000, 1),
                "p99_ms": None if p99 is None else round(p99 * 1000, 1)}


@dataclass
class Verdict:
    outcome: Outcome
    reason: str
    numbers: dict[str, object]


def prob_worse(canary: Arm, stable: Arm, delta: float) -> float:
    # Fixed seed: the same data always gives the same answer. Not for secrets.
    rng = random.Random(20260101)  # noqa: S311
    worse = 0
    for _ in range(SAMPLES):
        pc = rng.betavariate(1 + canary.errors, 1 + canary.requests - canary.errors)
        ps = rng.betavariate(1 + stable.errors, 1 + stable.requests - stable.errors)
        if pc > ps + delta:
            worse += 1
    return worse / SAMPLES


def wilson_low(errors: int, n: int, z: float = 2.326) -> float:
    """A one-sided 99% lower bound on an error rate."""
    if n == 0:
        return 0.0
    p = errors / n
    centre = p + z * z / (2 * n)
    spread = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return max(0.0, (centre - spread) / (1 + z * z / n))


def analyse(canary: Arm, stable: Arm, elapsed: float, th: Canary) -> Verdict:
    p_worse = prob_worse(canary, stable, th.error_delta)
    numbers: dict[str, object] = {"canary": canary.summary(), "stable": stable.summary(),
                                  "p_canary_worse": round(p_worse, 4),
                                  "seconds": round(elapsed, 1)}
    if canary.errors >= 3 and wilson_low(canary.errors, canary.requests) > th.max_error_rate:
        return Verdict("fail", f"canary 5xx rate {canary.rate:.2%} is above the cap "
                       f"{th.max_error_rate:.2%} ({canary.errors}/{canary.requests})", numbers)
    if canary.errors >= 3 and p_worse > 0.99:
        return Verdict("fail", f"canary 5xx rate {canary.rate:.2%} against stable "
                       f"{stable.rate:.2%}: worse by more than {th.error_delta:.2%} with "
                       f"probability {p_worse:.3f}", numbers)
    c99, s99 = canary.quantile(0.99), stable.quantile(0.99)
    if canary.requests >= th.step_min_requests and c99 is not None:
        if c99 * 1000 > th.p99_cap_ms:
            return Verdict("fail", f"canary p99 {c99 * 1000:.0f} ms is above the cap "
                           f"{th.p99_cap_ms:.0f} ms", numbers)
        if s99 is not None:
            limit = max(s99 * th.latency_ratio, s99 + th.latency_floor_ms / 1000)
            if c99 > limit:
                return Verdict("fail", f"canary p99 {c99 * 1000:.0f} ms against stable "
                               f"{s99 * 1000:.0f} ms (limit {limit * 1000:.0f} ms)", numbers)
    if canary.requests < th.step_min_requests:
        return Verdict("wait", f"not enough data: {canary.requests} of "
                       f"{th.step_min_requests} canary requests", numbers)
    if elapsed < th.step_min_seconds:
        return Verdict("wait", f"step has run {elapsed:.0f}s of {th.step_min_seconds:.0f}s",
                       numbers)
    if p_worse >= 0.05:
        return Verdict("wait", f"not enough data: P(canary worse) = {p_worse:.3f}, a pass "
                       f"needs < 0.05 (more canary requests)", numbers)
    return Verdict("pass", f"canary {canary.rate:.2%} 5xx over {canary.requests} requests "
                   f"against stable {stable.rate:.2%}; P(worse) = {p_worse:.3f}", numbers)


def guard(canary: Arm, stable: Arm) -> str | None:
    """The fast guard over the last few seconds: a burst of canary 5xx far above stable."""
    if canary.errors >= 5 and canary.rate >= max(5 * stable.rate, 0.05):
        return (f"burst of canary 5xx: {canary.errors}/{canary.requests} "
                f"({canary.rate:.1%}) against stable {stable.rate:.1%}")
    return None
