"""The exit codes: one list (ExitCode), shown by --help and docs/cli.md alike; the typed
transport errors."""

from __future__ import annotations

import re

import pytest

from goship.cli.main import main
from goship.command import Cmd
from goship.deploy.lock import LockHeld
from goship.errors import (
    CommandTimedOut,
    ExitCode,
    GoshipError,
    TransportError,
    Unreachable,
    UsageError,
)
from goship.transport import LocalTransport
from tests.conftest import REPO


def test_help_lists_every_exit_code(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    listed = dict(re.findall(r"^\s+(\d+)\s+(.+)$", out.split("Exit codes:", 1)[1], re.M))
    assert listed == {str(int(c)): c.meaning for c in ExitCode}
    assert listed["4"].startswith("another goship holds the deploy lock")


def test_docs_list_the_same_exit_codes() -> None:
    doc = (REPO / "docs" / "cli.md").read_text().split("## Exit codes", 1)[1]
    rows = dict(re.findall(r"^\| (\d+) \| (.+) \|$", doc.split("\n## ", 1)[0], re.M))
    assert rows == {str(int(c)): c.meaning for c in ExitCode}


def test_each_error_carries_its_exit_code() -> None:
    assert GoshipError("x").exit_code == ExitCode.FAILED == 1
    assert UsageError("x").exit_code == ExitCode.USAGE == 2
    assert LockHeld("x").exit_code == ExitCode.LOCK_HELD == 4
    assert Unreachable("h: cannot connect").exit_code == ExitCode.FAILED


def test_a_timed_out_command_is_its_own_error() -> None:
    with pytest.raises(CommandTimedOut) as info:
        LocalTransport("here").run(Cmd.of("sleep", "5"), timeout=0.2)
    assert isinstance(info.value, TransportError)
    assert info.value.line() == "here: `sleep 5` timed out after 0.2s"
