"""A user path goship cannot write or read: one line naming it and the fix, exit 2 (not an
internal error)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from tests.conftest import EXAMPLE, CliResult

Run = Callable[..., CliResult]


def one_line(r: CliResult) -> str:
    lines = [line for line in r.err.splitlines() if line.strip()]
    assert len(lines) == 1, r.err
    assert "internal error" not in lines[0]
    return lines[0]


@pytest.mark.parametrize("where", ["under_a_file", "read_only"])
def test_render_out_that_cannot_be_written(tmp_path: Path, run_cli: Run, where: str) -> None:
    if where == "under_a_file":
        (tmp_path / "file").write_text("x")
        out = tmp_path / "file" / "deploy"
    else:
        out = Path("/sys/goship-render-test")  # sysfs: not even root creates files there
    r = run_cli("--config", str(EXAMPLE / "goship.toml"), "render", "systemd", "--out",
                str(out))
    assert r.code == 2, r.err
    line = one_line(r)
    assert str(out) in line
    assert "--out" in line


def project(tmp_path: Path) -> Path:
    (tmp_path / "goship.toml").write_text('[app]\nname = "shop"\n[run]\nenv_file = ".env"\n')
    return tmp_path / ".env"


@pytest.mark.parametrize("command", [["render", "kubernetes"], ["config", "show"]])
@pytest.mark.parametrize("bad", ["latin1", "directory"])
def test_an_env_file_goship_cannot_read(tmp_path: Path, run_cli: Run, command: list[str],
                                        bad: str) -> None:
    env = project(tmp_path)
    if bad == "latin1":
        env.write_bytes("PASSWORD=caf\u00e9\n".encode("latin-1"))
    else:
        env.mkdir()
    r = run_cli(*command, cwd=tmp_path)
    assert r.code == 2, r.out + r.err
    line = one_line(r)
    assert ".env" in line
    assert "run.env_file" in line or "UTF-8" in line
    assert "caf" not in line  # never a value of the file


def test_file_sd_that_cannot_be_written_names_the_key(tmp_path: Path) -> None:
    from goship.errors import ConfigError
    from goship.render.monitoring import write_file_sd

    (tmp_path / "file").write_text("x")
    with pytest.raises(ConfigError) as info:
        write_file_sd(tmp_path / "file" / "targets.json", [])
    assert "metrics.file_sd" in info.value.line()
    assert str(tmp_path / "file" / "targets.json") in info.value.line()


def test_a_go_mod_that_is_not_utf8_is_named(tmp_path: Path, run_cli: Run) -> None:
    (tmp_path / "goship.toml").write_text('[app]\nname = "shop"\n')
    (tmp_path / "go.mod").write_bytes(b"module caf\xe9\n\ngo 1.22\n")
    r = run_cli("render", "dockerfile", cwd=tmp_path)
    assert r.code == 2, r.err
    assert "go.mod" in one_line(r)


def test_an_env_file_with_a_nul_byte_is_refused(tmp_path: Path, run_cli: Run) -> None:
    env = project(tmp_path)
    env.write_bytes(b"TOKEN=abc\x00def\n")
    r = run_cli("render", "kubernetes", cwd=tmp_path)
    assert r.code == 2, r.err
    line = one_line(r)
    assert ".env:1" in line
    assert "abc" not in line
