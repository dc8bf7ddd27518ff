"""The automatic canary walk, whatever runs the two tracks: each step's weight, the fast
guard every guard interval, the analysis against stable, then promote or abort. Hosts
(canary.engine) and a Kubernetes cluster behind goship's edge (kube.canary) implement the
few calls it needs."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Protocol

from goship.canary import analysis, metrics
from goship.canary.routing import Rules
from goship.config.model import Canary
from goship.ui import ui


@dataclass
class Report:
    action: str
    ok: bool
    release: str
    reason: str
    numbers: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0
    abort_seconds: float | None = None


class Tracks(Protocol):
    def set_weight(self, weight: float) -> Rules: ...

    def tally(self) -> metrics.Tally:
        """What the proxies logged since the last call."""

    def crashed(self) -> str | None:
        """Why the canary's instances are not running, or None."""

    def abort(self, reason: str) -> float:
        """Weight 0 everywhere, then the canary goes."""

    def promote(self) -> None: ...


def walk(tracks: Tracks, rules: Rules, steps: list[float], th: Canary) -> Report:
    started = time.monotonic()
    tracks.tally()  # skip what came before the walk

    def aborted(reason: str, numbers: dict[str, Any]) -> Report:
        t0 = time.monotonic()
        tracks.abort(reason)
        return Report("canary", False, rules.release, reason, numbers,
                      time.monotonic() - started, time.monotonic() - t0)

    for weight in steps:
        if weight >= 100:
            break
        if weight != rules.weight:
            rules = tracks.set_weight(weight)
        ui.info(f"canary {rules.release}: weight {weight:g}%")
        step_started = time.monotonic()
        step = metrics.Tally()
        while True:
            time.sleep(th.guard_interval)
            window = tracks.tally()
            step.merge(window)
            crashed = tracks.crashed()
            burst = analysis.guard(window.canary, window.stable)
            if crashed or burst:
                return aborted(f"fast guard: {crashed or burst}",
                               {"canary": step.canary.summary(),
                                "stable": step.stable.summary()})
            elapsed = time.monotonic() - step_started
            verdict = analysis.analyse(step.canary, step.stable, elapsed, th)
            ui.info(f"  {verdict.outcome}: {verdict.reason}")
            if verdict.outcome == "pass":
                break
            if verdict.outcome == "fail" or elapsed > th.step_timeout:
                reason = verdict.reason if verdict.outcome == "fail" else (
                    f"step {weight:g}% timed out after {th.step_timeout:g}s with "
                    f"{verdict.reason}: raise the weight, route a header to the canary, "
                    "or add load")
                return aborted(reason, verdict.numbers)
    tracks.promote()
    return Report("canary", True, rules.release, "every step passed; promoted", {},
                  time.monotonic() - started)
