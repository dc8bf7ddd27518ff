"""Secrets from a manager, as data: which files are sops files, what their names are, how
sops' JSON becomes the environment, what a [secrets] command's result becomes, and that no
error, `config show` or render ever holds a value. Real sops/age: tests/e2e/test_secrets.py."""

from __future__ import annotations

import json
import shlex
import sys
from pathlib import Path
from typing import Any

import pytest

from goship import secrets
from goship.config import parse
from goship.errors import ConfigError, ConfigErrors, PrerequisiteError
from goship.secrets import command, sops

# Shaped as sops v3 writes them (values shortened): metadata as `sops_*` lines, or a
# top-level `sops` map.
SOPS_DOTENV = """DB_PASS=ENC[AES256_GCM,data:DMitKt==,iv:Bf=,tag:iL==,type:str]
API_TOKEN=ENC[AES256_GCM,data:qbpk5co=,iv:Vb=,tag:IU==,type:str]
sops_age__list_0__map_recipient=age1z9lf88zlvzj2xmv28xzhkuqkfleachmahpfhy7xwkqxt96um8g4qn6tluz
sops_lastmodified=2026-11-23T09:10:33Z
sops_mac=ENC[AES256_GCM,data:J3==,iv:rf=,tag:Pz==,type:str]
sops_unencrypted_suffix=_unencrypted
sops_version=3.13.3
"""
SOPS_YAML = """DB_PASS: ENC[AES256_GCM,data:cS3zTMne1w==,iv:PM=,tag:4M==,type:str]
"N": ENC[AES256_GCM,data:kQ==,iv:kp=,tag:Bn==,type:int]
sops:
    age:
        - recipient: age1z9lf88zlvzj2xmv28xzhkuqkfleachmahpfhy7xwkqxt96um8g4qn6tluz
    lastmodified: "2026-11-23T09:10:33Z"
    mac: ENC[AES256_GCM,data:+f==,iv:uc=,tag:7F==,type:str]
    version: 3.13.3
"""
SOPS_JSON = json.dumps({"DB_PASS": "ENC[AES256_GCM,data:iA==,type:str]",
                        "B": "ENC[AES256_GCM,data:hQ==,type:bool]",
                        "sops": {"mac": "ENC[...]", "version": "3.13.3"}}, indent="\t")


@pytest.mark.parametrize(("text", "kind"), [
    (SOPS_DOTENV, "dotenv"),
    (SOPS_YAML, "yaml"),
    (SOPS_JSON, "json"),
    ("DB_PASS=plain\nGIN_MODE=release\n", None),
    # A plain file whose variable happens to start with sops_: no sops_mac/sops_version.
    ("sops_enabled=1\nX=2\n", None),
    ("sops: true\nX: 1\n", None),  # a `sops` key that is not sops' metadata map
    ('{"sops": "no", "X": 1}', None),
    ('{"X": 1}', None),
    ("{not json", None),
    ("", None),
])
def test_a_sops_file_is_known_by_its_metadata(text: str, kind: str | None) -> None:
    assert sops.detect(text) == kind


@pytest.mark.parametrize(("text", "kind"), [
    (SOPS_DOTENV, "dotenv"), (SOPS_YAML, "yaml"), (SOPS_JSON, "json")])
def test_names_are_read_without_decrypting(tmp_path: Path, text: str, kind: Any) -> None:
    path = tmp_path / "env"
    path.write_text(text)
    want = {"dotenv": ["API_TOKEN", "DB_PASS"], "yaml": ["DB_PASS", "N"],
            "json": ["B", "DB_PASS"]}[kind]
    assert sops.names(path, kind) == want


def test_sops_json_output_becomes_the_environment() -> None:
    out = json.dumps({"DB_PASS": "p@ss w0rd", "N": 3, "F": 1.5, "ON": True, "OFF": False,
                      "EMPTY": "", "ML": "line1\nline2"}).encode()
    assert sops.flat(out, ".env.prod") == {"DB_PASS": "p@ss w0rd", "N": "3", "F": "1.5",
                                           "ON": "true", "OFF": "false", "EMPTY": "",
                                           "ML": "line1\nline2"}


@pytest.mark.parametrize(("out", "line"), [
    (b'{"DB": {"user": "hidden-value"}}',
     ".env.prod: DB: a nested value cannot be an environment variable"),
    (b'{"bad-name": "hidden-value"}', ".env.prod: bad-name: not an environment variable"),
    (b'["hidden-value"]', ".env.prod: a sops env file must hold KEY: value pairs"),
    (b"hidden-value", ".env.prod: sops printed something that is not JSON"),
    (b'{"X": "a\\u0000hidden-value"}', ".env.prod: X: a NUL byte in the value"),
])
def test_bad_decrypted_shapes_name_the_key_never_the_value(out: bytes, line: str) -> None:
    with pytest.raises(ConfigError) as info:
        sops.flat(out, ".env.prod")
    assert info.value.line().startswith(line)
    assert "hidden-value" not in info.value.line()
    assert info.value.exit_code == 2


def test_sops_failure_reason_is_one_line() -> None:
    stderr = b"""Failed to get the data key required to decrypt the SOPS file.

Group 0: FAILED
  age1z9lf88zlvzj2xmv28xzhkuqkfleachmahpfhy7xwkqxt96um8g4qn6tluz: FAILED
    - | failed to load age identities. Errors while loading age
      | identities: failed to open SOPS_AGE_KEY_FILE file: open
      | /nonexistent: no such file or directory.

Recovery failed because no master key was able to decrypt the file.
"""
    assert sops.reason(stderr) == ("Failed to get the data key required to decrypt the SOPS "
                                   "file. failed to load age identities.")
    assert sops.reason(b"") == "no message"
    assert "\n" not in sops.reason(b"x" * 1000 + b"\n" + b"y\n")


def test_dotenv_quotes_are_removed_as_for_a_plain_env_file() -> None:
    assert [sops.unquote(v) for v in ('"q w"', "'x'", '"', 'a"', "plain")] == \
        ["q w", "x", '"', 'a"', "plain"]


def test_missing_sops_is_a_prerequisite_error(tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    with pytest.raises(PrerequisiteError) as info:
        sops.binary()
    assert info.value.exit_code == 2
    assert info.value.line() == ("run.env_file is sops-encrypted and sops is not installed; "
                                 "install sops (https://getsops.io) or run "
                                 "scripts/secrets-tools.sh")


# ---- [secrets] commands -------------------------------------------------------------------

@pytest.mark.parametrize(("code", "out", "value"), [
    (0, b"hunter2\n", "hunter2"),
    (0, b"hunter2\r\n", "hunter2"),
    (0, b"hunter2", "hunter2"),
    (0, b"two\nlines\n", "two\nlines"),  # only the one trailing newline goes
    (0, b"  spaced  \n", "  spaced  "),
    (0, "pässword\n".encode(), "pässword"),
])
def test_a_command_s_stdout_is_the_value(code: int, out: bytes, value: str) -> None:
    assert command.value("DB_PASS", "pass", code, out) == value


@pytest.mark.parametrize(("code", "out", "line"), [
    (1, b"hunter2\n", "goship.toml: secrets.DB_PASS: pass exited 1 (its output is not shown); "
                      "run the command yourself to see why"),
    (-9, b"hunter2", "goship.toml: secrets.DB_PASS: pass was killed by signal 9 (its output "
                     "is not shown)"),
    (0, b"\n", "goship.toml: secrets.DB_PASS: pass printed nothing"),
    (0, b"", "goship.toml: secrets.DB_PASS: pass printed nothing"),
    (0, b"hunter2\xff", "goship.toml: secrets.DB_PASS: pass printed something that is not "
                        "UTF-8 text"),
    (0, b"hun\0ter2", "goship.toml: secrets.DB_PASS: pass printed a NUL byte"),
])
def test_a_failed_command_names_the_secret_and_status_never_the_output(
        code: int, out: bytes, line: str) -> None:
    with pytest.raises(ConfigError) as info:
        command.value("DB_PASS", "pass", code, out)
    assert info.value.line().startswith(line)
    assert "ter2" not in info.value.line()
    assert info.value.exit_code == 2


def test_commands_run_as_argv_without_a_shell(tmp_path: Path) -> None:
    # No shell: `$HOME` and `;` reach printf as they are written.
    assert command.run("X", "printf '%s' '$HOME;x'", 5, cwd=tmp_path) == "$HOME;x"
    # A shell only when asked for, in the project directory.
    (tmp_path / "db.secret").write_text("from-file\n")
    assert command.run("X", "sh -c 'cat db.secret'", 5, cwd=tmp_path) == "from-file"


def test_real_command_failures(tmp_path: Path) -> None:
    loud = "sh -c 'echo leaked-out; echo leaked-err >&2; exit 3'"
    cases = [(loud, 5.0, "goship.toml: secrets.DB: sh exited 3 (its output is not shown)"),
             ("no-such-secret-tool get x", 5.0,
              "goship.toml: secrets.DB: command not found: no-such-secret-tool"),
             (f"{shlex.quote(sys.executable)} -c 'import time; time.sleep(30)'", 0.5,
              "goship.toml: secrets.DB: "),
             ]
    for cmd, timeout, line in cases:
        with pytest.raises(ConfigError) as info:
            command.run("DB", cmd, timeout, cwd=tmp_path)
        assert info.value.line().startswith(line), info.value.line()
        assert "leaked" not in info.value.line()
    assert "timed out after 0.5s" in info.value.line()


# ---- config ------------------------------------------------------------------------------

BASE: dict[str, Any] = {"app": {"name": "shop"}}


def test_secrets_table_parses_and_merges_per_environment() -> None:
    project = parse({**BASE, "secrets": {"DB_PASS": {"command": "pass show shop/db"}},
                     "env": {"prod": {"hosts": ["app1"], "secrets": {
                         "DB_PASS": {"command": "pass show shop/db-prod", "timeout": 5.0},
                         "API_KEY": {"command": "vault kv get -field=key shop"}}}}})
    assert project.base.secrets["DB_PASS"].command == "pass show shop/db"
    assert project.base.secrets["DB_PASS"].timeout == 30.0
    prod = project.env("prod").config.secrets
    assert (prod["DB_PASS"].command, prod["DB_PASS"].timeout) == ("pass show shop/db-prod", 5)
    assert set(prod) == {"DB_PASS", "API_KEY"}


@pytest.mark.parametrize(("secrets_", "run", "expected"), [
    ({"DB": {"command": "pass show 'unclosed"}}, {},
     "secrets.DB.command: cannot be split into arguments (No closing quotation)"),
    ({"DB": {"command": "   "}}, {}, "secrets.DB.command: must name a command"),
    ({"DB": {"command": "a\nb"}}, {}, "secrets.DB.command: must be one line"),
    ({"DB": {}}, {}, "secrets.DB.command: required key is missing"),
    ({"DB": {"command": "x", "timout": 3}}, {}, "secrets.DB.timout: unknown key"),
    ({"DB": {"command": "x", "timeout": 0}}, {}, "secrets.DB.timeout"),
    ({"DB-PASS": {"command": "x"}}, {}, "secrets.DB-PASS"),
    ({"DB": "pass show db"}, {}, "secrets.DB"),
    ({"DB": {"command": "x"}}, {"env": {"DB": "plain"}},
     "secrets.DB: DB is also set in run.env; keep one"),
    ({"PORT": {"command": "x"}}, {}, "secrets.PORT: PORT is run.port_env"),
])
def test_bad_secrets_get_one_line(secrets_: Any, run: Any, expected: str) -> None:
    with pytest.raises(ConfigErrors) as info:
        parse({**BASE, "run": run, "secrets": secrets_}, file="goship.toml")
    lines = [e.line() for e in info.value.errors]
    assert any(expected in line for line in lines), lines
    assert all(line.startswith("goship.toml: ") for line in lines)


def test_resolve_order_env_then_file_then_commands(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text("A=file\nB=file\n")
    config = parse({**BASE, "run": {"env_file": ".env", "env": {"A": "env", "C": "env"}},
                    "secrets": {"B": {"command": "printf from-command"}}}).base
    assert secrets.resolve(tmp_path, config) == {"A": "file", "B": "from-command",
                                                 "C": "env"}
    assert secrets.secret_names(tmp_path, config) == ["A", "B"]


# ---- outputs -----------------------------------------------------------------------------

TOML = """[app]
name = "shop"
[run]
env_file = ".env.prod"
[secrets]
DB_PASS = { command = "sh -c 'echo ran >> ran.txt; printf cmd-value-%s 77'" }
[env.prod]
hosts = ["10.255.255.1"]
"""


def test_config_show_and_render_never_run_a_command_nor_decrypt(tmp_path: Path,
                                                                run_cli: Any) -> None:
    (tmp_path / "goship.toml").write_text(TOML)
    (tmp_path / ".env.prod").write_text(SOPS_DOTENV)
    for argv in (["config", "show", "prod"], ["config", "show", "prod", "--json"],
                 ["render", "kubernetes", "--env", "prod"]):
        r = run_cli(*argv, cwd=tmp_path)
        assert r.code == 0, r.err
        assert "cmd-value-77" not in r.out + r.err
        assert "DB_PASS" in r.out, argv
        assert "API_TOKEN" in r.out, argv
        assert "sops_mac" not in r.out
    assert not (tmp_path / "ran.txt").exists()
    r = run_cli("config", "show", "prod", "--json", cwd=tmp_path)
    data = json.loads(r.out)
    assert data["run"]["env_file_keys"] == {"API_TOKEN": "******", "DB_PASS": "******"}
    assert data["secrets"]["DB_PASS"]["command"].startswith("sh -c")


def test_render_kubernetes_masks_command_secrets_unless_asked(tmp_path: Path,
                                                              run_cli: Any) -> None:
    (tmp_path / "goship.toml").write_text(TOML.replace('env_file = ".env.prod"\n', ""))
    r = run_cli("render", "kubernetes", "--env", "prod", cwd=tmp_path)
    assert r.code == 0, r.err
    assert 'DB_PASS: "REDACTED"' in r.out
    out = tmp_path / "out"
    r = run_cli("render", "kubernetes", "--env", "prod", "--show-secrets", "--out", str(out),
                cwd=tmp_path)
    assert r.code == 0, r.err
    secret = out / "secret.yaml"
    assert 'DB_PASS: "cmd-value-77"' in secret.read_text()
    assert secret.stat().st_mode & 0o077 == 0
    assert "cmd-value-77" not in r.out + r.err


def test_a_failing_secret_stops_deploy_before_any_host(tmp_path: Path, run_cli: Any) -> None:
    # 10.255.255.1 is never answered: reaching for it would hang or say it is unreachable.
    (tmp_path / "goship.toml").write_text(
        TOML.replace('env_file = ".env.prod"\n', "").replace(
            "printf cmd-value-%s 77'", "printf cmd-value-%s 77; exit 5'"))
    for argv in (["deploy", "prod"], ["deploy", "prod", "--dry-run"], ["setup", "prod"],
                 ["rollback", "prod"]):
        r = run_cli(*argv, cwd=tmp_path)
        assert r.code == 2, r.out + r.err
        assert r.err.strip().splitlines() == [
            "goship: goship.toml: secrets.DB_PASS: sh exited 5 (its output is not shown); "
            "run the command yourself to see why"], argv
        assert "cmd-value-77" not in r.out + r.err


def test_an_image_never_holds_a_command_secret(tmp_path: Path, run_cli: Any) -> None:
    """The Dockerfile (and `package --image`, which bakes public_env only) names the secret
    as run-time environment; the command is not run."""
    from goship.render.inputs import public_env

    (tmp_path / "goship.toml").write_text(TOML.replace('env_file = ".env.prod"\n', ""))
    r = run_cli("render", "dockerfile", cwd=tmp_path)
    assert r.code == 0, r.err
    assert "pass DB_PASS when the" in " ".join(r.out.split())
    assert "cmd-value-77" not in r.out
    assert not (tmp_path / "ran.txt").exists()
    assert "DB_PASS" not in public_env(parse({**BASE, "secrets": {
        "DB_PASS": {"command": "x"}}}).base)


def test_a_multiline_secret_for_docker_is_refused_before_any_host(tmp_path: Path,
                                                                  run_cli: Any) -> None:
    # printf (no shell) turns the two characters \n into a newline.
    (tmp_path / "goship.toml").write_text(
        '[app]\nname = "shop"\n[run]\nmanager = "docker"\n[secrets]\n'
        """DB_PASS = { command = "printf 'cmd-value\\\\n77'" }\n"""
        '[env.prod]\nhosts = ["10.255.255.1"]\n')
    r = run_cli("deploy", "prod", cwd=tmp_path)
    assert r.code == 2, r.out + r.err
    assert r.err.strip().splitlines() == [
        "goship: run.env: DB_PASS holds a newline, which a Docker env file cannot carry; put "
        "the value on one line (or base64 it)"]


def test_a_sops_file_without_sops_stops_deploy_before_any_host(
        tmp_path: Path, run_cli: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", "/usr/bin:/bin")  # git, no sops
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    (tmp_path / "goship.toml").write_text(TOML)
    (tmp_path / ".env.prod").write_text(SOPS_DOTENV)
    r = run_cli("deploy", "prod", cwd=tmp_path)
    assert r.code == 2, r.out + r.err
    assert r.err.strip().splitlines() == [
        "goship: run.env_file is sops-encrypted and sops is not installed; install sops "
        "(https://getsops.io) or run scripts/secrets-tools.sh"]


def test_a_command_secret_runs_once_per_command(tmp_path: Path) -> None:
    """deploy asks for the values three times when a balancer needs the Consul token (the
    check, the release, the balancer): a secrets manager is asked once, and each caller gets
    its own copy."""
    from goship.config.load import load
    from goship.deploy import lb
    from goship.deploy.engine import env_values

    (tmp_path / "goship.toml").write_text(
        TOML.replace('env_file = ".env.prod"\n', "")
        + '[consul]\nenabled = true\ntoken_env = "DB_PASS"\n')
    project = load(tmp_path / "goship.toml")
    env = project.env("prod")
    lb.check(project, env)
    first = env_values(project, env)
    first["DB_PASS"] = "changed by a caller"
    assert env_values(project, env)["DB_PASS"] == "cmd-value-77"
    assert (tmp_path / "ran.txt").read_text() == "ran\n"
    again = load(tmp_path / "goship.toml")  # the next command asks again
    env_values(again, again.env("prod"))
    assert (tmp_path / "ran.txt").read_text() == "ran\nran\n"
