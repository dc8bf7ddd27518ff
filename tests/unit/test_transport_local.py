"""The local transport runs real processes; it must quote, report and write safely."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from goship.command import Cmd
from goship.envfile import parse_env_file
from goship.errors import CommandFailed, ConfigError
from goship.transport import LocalTransport


def test_run_passes_arguments_verbatim(tmp_path: Path) -> None:
    t = LocalTransport()
    weird = tmp_path / "a b; touch pwned"
    t.check(Cmd.of("mkdir", str(weird)))
    assert weird.is_dir()
    assert not Path("pwned").exists()


def test_check_raises_with_masked_output() -> None:
    t = LocalTransport()
    cmd = Cmd.of("sh", "-c", "echo token=$0 >&2; exit 3", "hunter22", secrets=["hunter22"])
    with pytest.raises(CommandFailed) as info:
        t.check(cmd)
    assert info.value.code == 3
    assert "hunter22" not in info.value.line()
    assert "token=******" in info.value.line()


def test_missing_program_is_127() -> None:
    assert LocalTransport().run(Cmd.of("goship-no-such-tool")).code == 127


def test_put_is_atomic_and_private_from_the_first_byte(tmp_path: Path) -> None:
    t = LocalTransport()
    target = tmp_path / "env"
    t.put(str(target), b"DB_PASSWORD=x\n", mode=0o600)
    assert os.stat(target).st_mode & 0o777 == 0o600
    assert t.get(str(target)) == b"DB_PASSWORD=x\n"
    assert [p.name for p in tmp_path.iterdir()] == ["env"]  # no temp file left


def test_env_file(tmp_path: Path) -> None:
    f = tmp_path / ".env"
    f.write_text('# comment\nexport A=1\nB="two words"\n\nC=\n')
    assert parse_env_file(f) == {"A": "1", "B": "two words", "C": ""}
    f.write_text("GOOD=1\nthis line has the secret s3cr3t\n")
    with pytest.raises(ConfigError) as info:
        parse_env_file(f)
    assert f"{f}:2: expected KEY=VALUE" in info.value.line()
    assert "s3cr3t" not in info.value.line()
