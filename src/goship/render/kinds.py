"""What `goship render KIND` writes, and what deploy installs: file name -> content."""

from __future__ import annotations

import shlex
from pathlib import Path

from goship.config import Config
from goship.errors import ConfigError, NotYetError
from goship.render.context import COLORS, Paths, ident, nginx_site, ports
from goship.render.engine import render

BUILT = ("systemd", "supervisord", "nginx")
PLANNED = ("windows", "dockerfile", "kubernetes", "consul", "prometheus", "grafana", "logs",
           "ci")


def systemd_units(config: Config, paths: Paths, root: Path | None = None) -> dict[str, str]:
    out = {}
    for color in COLORS:
        out[f"{config.app.name}-{color}@.service"] = render(
            "systemd.service.j2", root, app=config.app.name, color=color,
            user=config.service_user, color_dir=paths.color_link(color),
            binary=config.app.binary_name, port_env=config.run.port_env,
            env_file=paths.env_file, drain=_secs(config.run.drain_timeout),
            nofile=config.run.limit_nofile, data_dir=paths.join("shared", "data"),
            start_interval=60, start_burst=5)
    out[f"sysusers.d/{config.app.name}.conf"] = render(
        "sysusers.conf.j2", root, app=config.app.name, user=config.service_user,
        data_dir=paths.join("shared", "data"))
    return out


def env_script(env: dict[str, str]) -> str:
    """A wrapper that exports the service's environment and execs it. supervisord's own
    environment= cannot carry every value (its parser has no escapes); a shell-quoted
    export can."""
    lines = ["#!/bin/sh", "# Written by goship: the service's environment (secrets: mode 0700)."]
    lines += [f"export {k}={shlex.quote(v)}" for k, v in sorted(env.items())]
    lines.append('exec "$@"')
    return "\n".join(lines) + "\n"


def supervisord_programs(config: Config, paths: Paths, *, live: str | None,
                         user: str | None, log_dir: str,
                         root: Path | None = None) -> dict[str, str]:
    out = {}
    for color in COLORS:
        out[f"programs/{config.app.name}-{color}.conf"] = render(
            "supervisord.program.j2", root, app=config.app.name, color=color,
            program_prefix=f"{ident(config.app.name)}-{color}", ports=ports(config, color),
            color_dir=paths.color_link(color), binary=config.app.binary_name,
            port_env=config.run.port_env, env_script=paths.join("run", "env.sh"), user=user,
            autostart=color == live, drain=int(config.run.drain_timeout + 0.999),
            log_dir=log_dir)
    return out


def supervisord_main(config: Config, paths: Paths, log_dir: str,
                     root: Path | None = None) -> str:
    return render("supervisord.conf.j2", root, app=config.app.name, run_dir=paths.run_dir,
                  log_dir=log_dir)


def nginx_site_conf(config: Config, paths: Paths, color: str, release: str,
                    access_log: str | None = None, root: Path | None = None,
                    lua: bool = False, system: bool = True) -> str:
    return render("nginx.site.conf.j2", root,
                  s=nginx_site(config, paths, color, release, access_log, lua, system))


def nginx_main_conf(config: Config, paths: Paths, log_dir: str, mime_types: str,
                    modules: list[str], root: Path | None = None) -> str:
    return render("nginx.main.conf.j2", root, app=config.app.name, run_dir=paths.run_dir,
                  log_dir=log_dir, mime_types=mime_types, modules=modules)


def render_kind(kind: str, config: Config, root: Path) -> dict[str, str]:
    """Files for `goship render KIND`, as deploy would install them on a host."""
    paths = Paths(config.deploy.base_path, config.app.name)
    if kind == "nginx" and config.proxy.tls.mode != "off":
        raise NotYetError("proxy.tls (TLS server blocks in the nginx site)", 5)
    if kind == "systemd":
        return systemd_units(config, paths, root)
    if kind == "supervisord":
        logs = paths.logs
        return {"supervisord.conf": supervisord_main(config, paths, logs, root),
                **supervisord_programs(config, paths, live="blue", user=config.service_user,
                                       log_dir=logs, root=root)}
    if kind == "nginx":
        lua = config.proxy.switch != "reload"
        return {f"goship-{config.app.name}.conf":
                nginx_site_conf(config, paths, "blue", "RELEASE", root=root, lua=lua)}
    if kind in PLANNED:
        raise NotYetError(f"goship render {kind}", 5)
    raise ConfigError("goship render", kind, f"unknown kind; expected one of: "
                      f"{', '.join((*BUILT, *PLANNED, 'all'))}")


def _secs(value: float) -> str:
    return f"{value:g}s"
