"""Shared test helpers. `run_cli` drives the real CLI in-process and returns what a user
would see: exit code, stdout, stderr.

Skip policy: with CI set (CI=true), a skipped test is a failure unless its reason starts
with one listed under "Skips allowed in CI" in README.md's Tests section (each with why).
Tests skip through `skip()` / `need()` so the reasons stay the listed ones."""

from __future__ import annotations

import os
import re
import shutil
import textwrap
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import NoReturn

import pytest

from goship.cli.main import main
from goship.ui import ui

REPO = Path(__file__).resolve().parent.parent
EXAMPLE = REPO / "examples" / "hello-gin"


@dataclass
class CliResult:
    code: int
    out: str
    err: str


@pytest.fixture
def run_cli(capfd: pytest.CaptureFixture[str]) -> Callable[..., CliResult]:
    # capfd, not capsys: what child processes (the Go toolchain) print is part of what a
    # user sees.
    def run(*args: str, cwd: Path | None = None) -> CliResult:
        old = Path.cwd()
        if cwd is not None:
            os.chdir(cwd)
        try:
            capfd.readouterr()
            code = main(list(args))
            captured = capfd.readouterr()
        finally:
            os.chdir(old)
            ui.verbosity = 0
        return CliResult(code, captured.out, captured.err)

    return run


@pytest.fixture
def write_toml(tmp_path: Path) -> Callable[[str], Path]:
    def write(text: str) -> Path:
        path = tmp_path / "goship.toml"
        path.write_text(textwrap.dedent(text))
        return path

    return write


def skip(reason: str) -> NoReturn:
    """The one way tests skip; under CI, only reasons README.md allows pass (see above)."""
    pytest.skip(reason)


def need(tool: str) -> str:
    path = shutil.which(tool)
    if path is None:
        skip(f"{tool} is not installed")
    return path


def in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() in {"1", "true", "yes"}


def allowed_skips(readme: Path = REPO / "README.md") -> list[str]:
    """The reasons listed in README.md's Tests section, as "- skip `reason`: why" lines."""
    section = re.search(r"^## Tests\n(.*?)(?=^## |\Z)", readme.read_text(), re.M | re.S)
    if section is None:
        return []
    return re.findall(r"^- skip `([^`]+)`", section.group(1), re.M)


def _skip_reason(report: pytest.TestReport) -> str:
    longrepr = report.longrepr
    text = longrepr[2] if isinstance(longrepr, tuple) else str(longrepr)
    return text.removeprefix("Skipped: ")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]):  # type: ignore[no-untyped-def]
    outcome = yield
    report: pytest.TestReport = outcome.get_result()
    if not report.skipped or not in_ci() or hasattr(report, "wasxfail"):
        return
    reason = _skip_reason(report)
    if any(reason.startswith(allowed) for allowed in allowed_skips()):
        return
    report.outcome = "failed"
    report.longrepr = (f"skipped in CI: {reason!r} is not a skip README.md allows (Tests "
                       "section, \"Skips allowed in CI\"): install what the test needs, or "
                       "list the reason there with why")
