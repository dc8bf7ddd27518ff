"""The Go-built lab components (Consul, Kubernetes, sops/age): scripts/test.sh builds them in
the background, at idle CPU priority, while ruff, mypy and the tests that do not need them
run. A test marked `components` waits for that build before its own timeout starts, and
fails with the build's log when it failed. Without GOSHIP_COMPONENTS_STATE (pytest run by
hand) they were built beforehand, and each test says what is missing itself."""

from __future__ import annotations

import os
import time
from pathlib import Path

# A build that takes longer than this is stuck: the tests that need it fail rather than
# hold CI until its own limit.
LIMIT = 45 * 60


def state() -> Path | None:
    value = os.environ.get("GOSHIP_COMPONENTS_STATE")
    return Path(value) if value else None


def wait() -> float:
    """Block until the background build ended (or LIMIT passed); the seconds waited."""
    where = state()
    if where is None:
        return 0.0
    start = time.monotonic()
    while not (where / "status").exists() and time.monotonic() - start < LIMIT:
        time.sleep(1)
    return time.monotonic() - start


def failure() -> str | None:
    """Why the components are not there (None: built, or built beforehand)."""
    where = state()
    if where is None:
        return None
    status = where / "status"
    if not status.exists():
        return f"the lab components were still building after {LIMIT // 60} minutes"
    code = status.read_text().strip()
    if code == "0":
        return None
    log = (where / "log").read_text(errors="replace") if (where / "log").exists() else ""
    return (f"building the lab components failed (scripts/components.sh exited {code}); "
            f"the end of its log:\n{log[-3000:]}")
