"""Rendered configs: golden files for every template, strict variables, overrides.
The real tools check them in tests/e2e/test_render_checks.py.

Update the golden files after a deliberate template change with:
    GOSHIP_UPDATE_GOLDEN=1 .venv/bin/pytest tests/unit/test_render.py
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest

from goship.config import Config, load
from goship.errors import ConfigError
from goship.render.context import Paths
from goship.render.inputs import RenderInput
from goship.render.kinds import KINDS, nginx_site_conf
from goship.render.kinds import render_kind as render_input
from tests.conftest import EXAMPLE, REPO, CliResult

GOLDEN = REPO / "tests" / "golden"
Run = Callable[..., CliResult]
HOSTS = ["10.0.0.11", "10.0.0.12"]


def render_kind(kind: str, config: Config, root: Path, **kw: object) -> dict[str, str]:
    """The example's files as `goship render KIND --env production` writes them, with a
    fixed version so the golden files do not follow the repository's commits."""
    args: dict[str, object] = {"env": "production", "hosts": HOSTS, "version": "v1.2.3"}
    args.update(kw)
    return render_input(kind, RenderInput(config=config, root=root, **args))  # type: ignore[arg-type]


@pytest.mark.parametrize("kind", KINDS)
def test_golden(kind: str) -> None:
    config = load(EXAMPLE / "goship.toml").base
    files = render_kind(kind, config, EXAMPLE)
    if kind == "nginx":
        files["goship-hello-gin.reload.conf"] = nginx_site_conf(
            config, Paths("/srv", "hello-gin"), "green", "v1.2.3-abc", lua=False)
    for name, text in files.items():
        golden = GOLDEN / kind / name
        if os.environ.get("GOSHIP_UPDATE_GOLDEN"):
            golden.parent.mkdir(parents=True, exist_ok=True)
            golden.write_text(text)
        assert golden.exists(), f"no golden file {golden}: run with GOSHIP_UPDATE_GOLDEN=1"
        assert text == golden.read_text(), f"{kind}/{name} differs from its golden file"


def test_systemd_unit_essentials() -> None:
    config = load(EXAMPLE / "goship.toml").base
    unit = render_kind("systemd", config, EXAMPLE)["hello-gin-green@.service"]
    for line in ("User=hello-gin", "WorkingDirectory=/srv/hello-gin/green",
                 "ExecStart=/srv/hello-gin/green/hello-gin", "Environment=PORT=%i",
                 "EnvironmentFile=-/srv/hello-gin/shared/env.green", "Restart=on-failure",
                 "TimeoutStopSec=10s", "LimitNOFILE=65536", "WantedBy=multi-user.target",
                 "StartLimitBurst=5", "NoNewPrivileges=yes", "ProtectSystem=strict"):
        assert f"\n{line}\n" in unit, line


def test_nginx_site_essentials() -> None:
    config = load(EXAMPLE / "goship.toml").base
    site = nginx_site_conf(config, Paths("/srv", "hello-gin"), "blue", "v1", lua=False)
    assert "listen 80 default_server;" in site  # no server_names: the host's default site
    assert "server 127.0.0.1:8080 max_fails=3 fail_timeout=10s;" in site
    assert "least_conn;" in site
    assert "proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;" in site
    assert "server_tokens off;" in site
    assert '"upstream_response_time":"$upstream_response_time"' in site
    lua = nginx_site_conf(config, Paths("/srv", "hello-gin"), "blue", "v1", lua=True)
    assert "balancer_by_lua_block" in lua
    # under /run: a reboot clears a socket file a crash left, which would stop nginx
    assert "listen unix:/run/goship/hello-gin/nginx-control.sock;" in lua


def test_supervisord_environment_survives_any_value() -> None:
    import subprocess

    from goship.render.kinds import env_script

    hostile = {"TOKEN": 'a"b%c\\d\'e $(id) `id`', "MULTI": "line1\nline2", "EMPTY": ""}
    script = env_script(hostile)
    out = subprocess.run(["sh", "-c", script, "env.sh", "env"], capture_output=True,
                         text=True, check=True).stdout
    assert f"TOKEN={hostile['TOKEN']}\n" in out
    assert "MULTI=line1\nline2\n" in out
    assert "EMPTY=\n" in out


def test_undefined_variable_names_the_template_and_line(tmp_path: Path) -> None:
    (tmp_path / "goship.toml").write_text((EXAMPLE / "goship.toml").read_text())
    override = tmp_path / "goship" / "templates"
    override.mkdir(parents=True)
    (override / "systemd.service.j2").write_text("[Unit]\n\nDescription={{ no_such_var }}\n")
    config = load(tmp_path / "goship.toml").base
    with pytest.raises(ConfigError) as info:
        render_kind("systemd", config, tmp_path)
    assert "systemd.service.j2:3: template error: 'no_such_var' is undefined" in \
        info.value.line()


def test_override_wins(tmp_path: Path, run_cli: Run) -> None:
    (tmp_path / "goship.toml").write_text((EXAMPLE / "goship.toml").read_text())
    override = tmp_path / "goship" / "templates"
    override.mkdir(parents=True)
    (override / "sysusers.conf.j2").write_text("# mine for {{ app }}\n")
    r = run_cli("render", "systemd", cwd=tmp_path)
    assert r.code == 0, r.err
    assert "# mine for hello-gin" in r.out


def test_render_all_writes_an_index(tmp_path: Path, run_cli: Run) -> None:
    r = run_cli("--config", str(EXAMPLE / "goship.toml"), "render", "all", "--out",
                str(tmp_path))
    assert r.code == 0, r.err
    index = (tmp_path / "INDEX.md").read_text()
    assert "- systemd/hello-gin-blue@.service" in index
    assert "- kubernetes/deployment.yaml" in index
    assert "- windows/hello-gin.xml" in index
    # the load balancer needs the hosts of an environment: said, not silently left out
    assert "Not rendered without --env: lb" in index
    assert "not rendered without --env" in r.err
    assert (tmp_path / "nginx" / "goship-hello-gin.conf").exists()
    assert (tmp_path / "dockerfile" / ".goship-probe" / "main.go").exists()
    r = run_cli("--config", str(EXAMPLE / "goship.toml"), "render", "all", "--env", "lab",
                "--out", str(tmp_path / "lab"))
    assert r.code == 0, r.err
    assert (tmp_path / "lab" / "lb" / "goship-hello-gin-lb.conf").exists()


def test_unknown_kind(run_cli: Run) -> None:
    r = run_cli("--config", str(EXAMPLE / "goship.toml"), "render", "helm")
    assert r.code == 2
    assert "unknown kind; expected one of: systemd, supervisord, nginx, lb, windows" in r.err
