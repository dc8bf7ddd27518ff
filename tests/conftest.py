"""Shared test helpers. `run_cli` drives the real CLI in-process and returns what a user
would see: exit code, stdout, stderr."""

from __future__ import annotations

import os
import shutil
import textwrap
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

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


def need(tool: str) -> str:
    path = shutil.which(tool)
    if path is None:
        pytest.skip(f"{tool} is not installed")
    return path
