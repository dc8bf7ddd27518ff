"""Environment values in rendered files: quoted by the rules of each reader (hostile values
cannot inject a line), and secrets only where secrets belong (issue #12, section 6)."""

from __future__ import annotations

import configparser
import subprocess
from pathlib import Path
from typing import Any

import pytest

from goship import envquote
from goship.config import parse
from goship.errors import ConfigError
from goship.render.inputs import RenderInput
from goship.render.kinds import env_script, render_kind

HOSTILE = [
    "plain", "", "two words", " lead and trail ", 'say "hi" now', "it's", "$HOME ${X} $(id)",
    "`id`", "back\\slash\\", "#not a comment", "a=b;c&d|e", "ünïcødé ✓ 日本", "%(here)s %",
    "tab\tin", "line1\nline2", "\nRUN touch /pwned", "ends with \\", "\u2018smart\u2019 quotes",
]
ONE_LINE = [v for v in HOSTILE if "\n" not in v]


def config(**over: Any) -> Any:
    return parse({"app": {"name": "shop"}, **over}).base


# ---- each syntax, read back by its reader -------------------------------------------
def test_sh_form_read_back_by_sh() -> None:
    env = {f"V{i}": v for i, v in enumerate(HOSTILE)}
    script = env_script(env)
    for shell in ("sh", "bash"):
        out = subprocess.run([shell, "-c", script, "env.sh", "env", "-0"],
                             capture_output=True, check=True).stdout.decode()
        got = dict(item.split("=", 1) for item in out.split("\0") if item)
        for k, v in env.items():
            assert got[k] == v, (shell, k)


def _systemd_parse(text: str) -> dict[str, str]:
    """systemd's env-file grammar (src/basic/env-file.c, parse_env_file_internal) for the
    lines goship writes: KEY=value or KEY="value" with \\ escaping \\ " ` $ and a
    backslash-newline joining lines. The real systemd reads them in
    tests/e2e/test_render_tools.py."""
    out: dict[str, str] = {}
    i = 0
    while i < len(text):
        eq = text.index("=", i)
        key = text[i:eq]
        i = eq + 1
        value = []
        if text[i] == '"':
            i += 1
            while text[i] != '"':
                if text[i] == "\\":
                    nxt = text[i + 1]
                    if nxt == "\n":
                        pass
                    elif nxt in '"\\`$':
                        value.append(nxt)
                    else:
                        value.append("\\" + nxt)
                    i += 2
                else:
                    value.append(text[i])
                    i += 1
            i += 1
            assert text[i] == "\n"
            i += 1
        else:
            end = text.index("\n", i)
            value.append(text[i:end])
            i = end + 1
        out[key] = "".join(value)
    return out


def test_systemd_form_read_back_by_systemds_grammar() -> None:
    env = {f"V{i}": v for i, v in enumerate(HOSTILE)}
    text = "".join(f"{k}={envquote.systemd(v)}\n" for k, v in env.items())
    assert _systemd_parse(text) == env


def test_host_env_file_is_written_with_envquote() -> None:
    from goship.deploy import services

    assert services._env_quote is envquote.systemd


def test_supervisord_form_read_back_by_supervisors_parser() -> None:
    from supervisor.datatypes import dict_of_key_value_pairs

    for v in ["plain", "two words", "it's", 'say "hi" now', "$HOME", "%(here)s %", "a,b=c",
              "#x", "ünï ✓"]:
        line = f"environment=K={envquote.supervisord(v)},PORT=\"8080\"\n"
        parser = configparser.ConfigParser()  # supervisor reads with %-interpolation
        parser.read_string("[program:x]\n" + line)
        assert dict_of_key_value_pairs(parser.get("program:x", "environment")) == \
            {"K": v, "PORT": "8080"}, v
    for bad in ["a\nb", "'q", 'both \' and "']:
        with pytest.raises(ValueError, match="supervisord"):
            envquote.supervisord(bad)


def test_powershell_form_closes_only_at_its_own_quote() -> None:
    assert envquote.powershell("it's") == "'it''s'"
    # PowerShell ends a single-quoted string at typographic quotes too
    assert envquote.powershell("a\u2019b") == "'a\u2019\u2019b'"
    assert envquote.powershell("$x `n") == "'$x `n'"


# ---- the rendered files --------------------------------------------------------------
def test_a_newline_cannot_inject_a_dockerfile_instruction(tmp_path: Path) -> None:
    cfg = config(run={"env": {"GREETING": "hi\nRUN touch /pwned"}})
    with pytest.raises(ConfigError) as info:
        render_kind("dockerfile", RenderInput(config=cfg, root=tmp_path))
    assert "run.env.GREETING" in info.value.line()
    assert "newline" in info.value.line()


def test_dockerfile_env_values_are_quoted(tmp_path: Path) -> None:
    cfg = config(run={"env": {f"V{i}": v for i, v in enumerate(ONE_LINE)}})
    text = render_kind("dockerfile", RenderInput(config=cfg, root=tmp_path))["Dockerfile"]
    for i, v in enumerate(ONE_LINE):
        assert f"V{i}={envquote.dockerfile(v)}" in text


SECRET_ENV = {"GIN_MODE": "release", "DB_PASSWORD": "hunter2-in-toml",
              "API_KEY": "k-123-in-toml"}
FILE_SECRETS = {"STRIPE": "sk_live_from_file", "PLAIN_FROM_FILE": "file-value"}


def _render(kind: str, tmp_path: Path, show: bool = False) -> str:
    cfg = config(run={"env": SECRET_ENV})
    files = render_kind(kind, RenderInput(config=cfg, root=tmp_path, secrets=FILE_SECRETS,
                                          show_secrets=show))
    return "\n".join(f"# ---- {n}\n{t}" for n, t in files.items())


@pytest.mark.parametrize("kind", ["dockerfile", "windows"])
@pytest.mark.parametrize("show", [False, True])
def test_no_secret_in_an_image_or_a_windows_file(tmp_path: Path, kind: str,
                                                 show: bool) -> None:
    text = _render(kind, tmp_path, show)
    for secret in ["hunter2-in-toml", "k-123-in-toml", *FILE_SECRETS.values()]:
        assert secret not in text
    assert "GIN_MODE" in text
    # the secrets' names are said, so the user knows what to set at run time
    assert "DB_PASSWORD" in text
    assert "API_KEY" in text


def test_kubernetes_secrets_go_to_the_secret_only(tmp_path: Path) -> None:
    cfg = config(run={"env": SECRET_ENV})
    for show in (False, True):
        files = render_kind("kubernetes", RenderInput(config=cfg, root=tmp_path,
                                                      secrets=FILE_SECRETS,
                                                      show_secrets=show))
        configmap, secret = files["configmap.yaml"], files["secret.yaml"]
        assert "GIN_MODE" in configmap
        for name in ("DB_PASSWORD", "API_KEY", "STRIPE", "PLAIN_FROM_FILE"):
            assert name not in configmap
            assert f"  {name}: " in secret
        for value in ["hunter2-in-toml", "k-123-in-toml", *FILE_SECRETS.values()]:
            assert value not in configmap
            assert (value in secret) is show


def test_a_url_with_a_password_is_a_secret_whatever_its_name(tmp_path: Path) -> None:
    cfg = config(run={"env": {"DATABASE_URL": "postgres://u:pw-in-url@db/x",
                              "HOME_URL": "https://example.com/"}})
    r = RenderInput(config=cfg, root=tmp_path)
    for kind in ("dockerfile", "windows", "kubernetes"):
        files = render_kind(kind, r)
        public = "\n".join(t for n, t in files.items() if n != "secret.yaml")
        assert "pw-in-url" not in public, kind
        assert "https://example.com/" in public, kind
    assert "  DATABASE_URL: " in render_kind("kubernetes", r)["secret.yaml"]
