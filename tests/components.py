"""The Go-built lab components (Consul, Kubernetes, sops/age): scripts/test.sh builds them in
the background, at idle CPU priority, while ruff, mypy and the tests that do not need them
run. A test marked `components("consul")` (or "kubernetes", "secrets") waits for that one
before its own timeout starts, and fails with the build's log when the build failed.
Without GOSHIP_COMPONENTS_STATE (pytest run by hand) they were built beforehand, and each
test says what is missing itself."""

from __future__ import annotations

import os
import time
from pathlib import Path

NAMES = ("consul", "kubernetes", "secrets")  # scripts/components.sh's steps
# A build that takes longer than this is stuck: the tests that need it fail rather than
# hold CI until its own limit.
LIMIT = 45 * 60


def state() -> Path | None:
    value = os.environ.get("GOSHIP_COMPONENTS_STATE")
    return Path(value) if value else None


def _ready(where: Path, names: tuple[str, ...]) -> bool:
    # Each step marks itself done; the whole build's exit status ends every wait.
    return (where / "status").exists() or all((where / f"{n}.done").exists() for n in names)


def wait(names: tuple[str, ...]) -> float:
    """Block until `names` are built, or the build ended (or LIMIT passed); the seconds
    waited."""
    unknown = set(names) - set(NAMES)
    if unknown or not names:
        raise ValueError(f"components({', '.join(names)}): expected some of {NAMES}")
    where = state()
    if where is None:
        return 0.0
    start = time.monotonic()
    while not _ready(where, names) and time.monotonic() - start < LIMIT:
        time.sleep(1)
    return time.monotonic() - start


def failure(names: tuple[str, ...]) -> str | None:
    """Why `names` are not there (None: built, or built beforehand)."""
    where = state()
    if where is None or all((where / f"{n}.done").exists() for n in names):
        return None
    status = where / "status"
    if not status.exists():
        return f"the lab components were still building after {LIMIT // 60} minutes"
    code = status.read_text().strip()
    log = (where / "log").read_text(errors="replace") if (where / "log").exists() else ""
    return (f"building the lab components failed (scripts/components.sh exited {code}); "
            f"the end of its log:\n{log[-3000:]}")
