"""The CLI as a user meets it: exit codes, one-line errors, help with examples."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest

from goship.cli.main import COMMANDS
from tests.conftest import EXAMPLE, CliResult

Run = Callable[..., CliResult]


def test_version(run_cli: Run) -> None:
    r = run_cli("--version")
    assert r.code == 0
    assert r.out.startswith("goship 0.")


def test_version_does_not_import_heavy_modules() -> None:
    import subprocess
    import sys

    code = ("import sys; from goship.cli.main import main; main(['--version']); "
            "heavy = [m for m in ('pydantic', 'jinja2', 'goship.config', 'goship.lab') "
            "if m in sys.modules]; print('HEAVY', heavy)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout
    assert "HEAVY []" in out


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_every_command_has_help_with_an_example(run_cli: Run, command: str) -> None:
    r = run_cli(command, "--help")
    assert r.code == 0, r.err
    assert "Example:" in r.out
    assert f"goship {command}" in r.out


@pytest.mark.parametrize("sub", ["up", "status", "ssh", "stop", "start", "cut", "heal", "down"])
def test_lab_subcommands_have_examples(run_cli: Run, sub: str) -> None:
    r = run_cli("lab", sub, "--help")
    assert r.code == 0
    assert "Example:" in r.out


def test_unknown_command_is_a_usage_error(run_cli: Run) -> None:
    r = run_cli("deplyo")
    assert r.code == 2
    assert "No such command" in r.err


def test_unbuilt_capabilities_say_not_yet(run_cli: Run,
                                          write_toml: Callable[[str], Path]) -> None:
    path = write_toml("""
        [app]
        name = "shop"
        [deploy]
        strategy = "canary"
        [env.prod]
        hosts = ["app1"]
        """)
    r = run_cli("--config", str(path), "deploy", "prod")
    assert r.code == 3
    assert r.out == ""
    assert 'not yet: deploy.strategy = "canary" (use `goship deploy ENV --canary`) is not ' \
        "built yet (tracked in issue #7)" in r.err
    assert r.err.count("\n") == 1


def test_config_error_is_one_line_and_exit_2(run_cli: Run,
                                             write_toml: Callable[[str], Path]) -> None:
    path = write_toml("""
        [app]
        name = "shop"
        [run]
        instances = "two"
    """)
    r = run_cli("--config", str(path), "config", "check")
    assert r.code == 2
    assert r.err == (f"goship: {path}: run.instances: expected an integer, found 'two' "
                     "(string); write instances as a whole number without quotes\n")


def test_config_check_finds_goship_toml_in_parent_dirs(run_cli: Run, tmp_path: Path,
                                                       write_toml: Callable[[str], Path]) -> None:
    write_toml('[app]\nname = "shop"\n[env.local]\nlocal = true\n')
    sub = tmp_path / "cmd" / "server"
    sub.mkdir(parents=True)
    r = run_cli("config", "check", cwd=sub)
    assert r.code == 0, r.err
    assert "valid (environments: local)" in r.err


def test_no_config_anywhere(run_cli: Run, tmp_path: Path) -> None:
    r = run_cli("config", "show", cwd=tmp_path)
    assert r.code == 2
    assert "goship.toml: not found" in r.err
    assert "goship init" in r.err


def test_config_show_merges_env_and_masks_secrets(run_cli: Run,
                                                  write_toml: Callable[[str], Path]) -> None:
    path = write_toml("""
        [app]
        name = "shop"
        [run]
        env_file = ".env.prod"
        [run.env]
        GIN_MODE = "release"
        STRIPE_API_KEY = "sk_live_123456"
        [env.prod]
        hosts = ["deploy@app1:2222"]
        [env.prod.run]
        instances = 4
    """)
    (path.parent / ".env.prod").write_text("DB_PASSWORD=hunter2hunter2\nREDIS_URL=redis://x\n")
    r = run_cli("--config", str(path), "config", "show", "prod")
    assert r.code == 0, r.err
    assert "instances = 4" in r.out
    assert 'hosts = ["deploy@app1:2222"]' in r.out
    assert 'GIN_MODE = "release"' in r.out
    assert "sk_live_123456" not in r.out
    assert "hunter2hunter2" not in r.out
    assert "redis://x" not in r.out
    assert 'DB_PASSWORD = "******"' in r.out

    import json

    j = run_cli("--config", str(path), "config", "show", "prod", "--json")
    data = json.loads(j.out)
    assert data["env"] == {"name": "prod", "hosts": ["deploy@app1:2222"]}
    assert data["run"]["instances"] == 4
    assert data["run"]["env"]["STRIPE_API_KEY"] == "******"
    assert data["run"]["user"] == "shop"


def test_config_show_output_is_valid_toml(run_cli: Run) -> None:
    import tomllib

    r = run_cli("--config", str(EXAMPLE / "goship.toml"), "config", "show", "lab")
    assert r.code == 0, r.err
    data = tomllib.loads(r.out)
    assert data["env"]["lab"] == 2
    assert data["app"]["stamp"]["main.version"] == "{version}"


def test_unexpected_error_goes_to_the_debug_log(run_cli: Run, tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    log = tmp_path / "debug.log"
    monkeypatch.setenv("GOSHIP_DEBUG_LOG", str(log))

    def boom(*_: object, **__: object) -> None:
        raise RuntimeError("kaboom")

    monkeypatch.setattr("goship.config.show.effective", boom)
    r = run_cli("--config", str(EXAMPLE / "goship.toml"), "config", "show")
    assert r.code == 70
    assert "internal error: RuntimeError: kaboom" in r.err
    assert str(log) in r.err
    assert "Traceback" not in r.err
    text = log.read_text()
    assert "Traceback" in text
    assert "RuntimeError: kaboom" in text
    assert os.stat(log).st_mode & 0o777 == 0o600


def test_quiet_hides_progress_not_results(run_cli: Run, tmp_path: Path) -> None:
    project = tmp_path / "p"
    project.mkdir()
    (project / "go.mod").write_text("module example.com/p\n\ngo 1.22\n")
    (project / "main.go").write_text('package main\n\nfunc main() {}\n')
    r = run_cli("-q", "init", str(project), "--stdout")
    assert r.code == 0, r.err
    assert "[app]" in r.out
    assert "found:" not in r.err
