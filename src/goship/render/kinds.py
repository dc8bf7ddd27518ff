"""What `goship render KIND` writes, and what deploy installs: file name -> content."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from goship import envquote
from goship.config import Config
from goship.errors import ConfigError
from goship.render.context import (
    COLORS,
    Paths,
    PortMap,
    ident,
    letsencrypt_dir,
    nginx_site,
    paths_key,
    ports,
)
from goship.render.engine import render
from goship.render.inputs import RenderInput


def systemd_units(config: Config, paths: Paths, root: Path | None = None) -> dict[str, str]:
    from goship.deploy import runfiles

    out = {}
    data = runfiles.data_root(paths)
    for color in COLORS:
        binary = f"{paths.color_link(color)}/{config.app.binary_name}"
        out[f"{config.app.name}-{color}@.service"] = render(
            "systemd.service.j2", root, app=config.app.name, color=color,
            user=config.service_user, color_dir=paths.color_link(color),
            binary=config.app.binary_name, port_env=config.run.port_env,
            exec_start=runfiles.systemd_exec(binary, list(config.run.args), color=color,
                                             data=data),
            workdir=(runfiles.workdir(paths, color, "%i") if config.run.config_files
                     else paths.color_link(color)),
            env_file=paths.env_file(color), drain=_secs(config.run.drain_timeout),
            nofile=config.run.limit_nofile, data_dir=paths.join("shared", "data"),
            start_interval=60, start_burst=5)
    if config.processes:
        from goship.deploy.processes import render_units

        out.update(render_units(config, paths, root))
    out[f"sysusers.d/{config.app.name}.conf"] = render(
        "sysusers.conf.j2", root, app=config.app.name, user=config.service_user,
        data_dir=paths.join("shared", "data"))
    return out


def env_script(env: dict[str, str]) -> str:
    """A wrapper that exports the service's environment and execs it. supervisord's own
    environment= cannot carry every value (its parser has no escapes); a shell-quoted
    export can."""
    lines = ["#!/bin/sh", "# Written by goship: the service's environment (secrets: mode 0700)."]
    lines += [f"export {k}={envquote.sh(v)}" for k, v in sorted(env.items())]
    lines.append('exec "$@"')
    return "\n".join(lines) + "\n"


def supervisord_programs(config: Config, paths: Paths, *, live: str | None,
                         user: str | None, log_dir: str,
                         root: Path | None = None,
                         port_map: PortMap | None = None,
                         releases: dict[str, str] | None = None) -> dict[str, str]:
    """`releases`: the release each color runs ({release} in run.args; the unit files of
    systemd read it from the color's environment instead)."""
    from goship.deploy import runfiles

    out = {}
    data = runfiles.data_root(paths)
    for color in COLORS:
        color_ports = port_map[color] if port_map else ports(config, color)
        binary = f"{paths.color_link(color)}/{config.app.binary_name}"
        release = (releases or {}).get(color, "RELEASE")
        commands = {p: runfiles.supervisord_command(
            [paths.env_script(color), binary], list(config.run.args), port=p, color=color,
            release=release, data=data) for p in color_ports}
        dirs = {p: (runfiles.workdir(paths, color, p) if config.run.config_files
                    else paths.color_link(color)) for p in color_ports}
        out[f"programs/{config.app.name}-{color}.conf"] = render(
            "supervisord.program.j2", root, app=config.app.name, color=color,
            program_prefix=f"{ident(config.app.name)}-{color}", ports=color_ports,
            color_dir=paths.color_link(color), binary=config.app.binary_name,
            port_env=config.run.port_env, env_script=paths.env_script(color), user=user,
            autostart=color == live, drain=int(config.run.drain_timeout + 0.999),
            log_dir=log_dir, commands=commands, dirs=dirs)
    if config.processes:
        from goship.deploy.processes import supervisord_programs as process_programs

        out.update(process_programs(config, paths, live=live, user=user, log_dir=log_dir,
                                    root=root, releases=releases))
    return out


def supervisord_main(config: Config, paths: Paths, log_dir: str,
                     root: Path | None = None) -> str:
    return render("supervisord.conf.j2", root, app=config.app.name, run_dir=paths.run_dir,
                  log_dir=log_dir)


def nginx_site_conf(config: Config, paths: Paths, color: str, release: str,
                    access_log: str | None = None, root: Path | None = None,
                    lua: bool = False, system: bool = True,
                    port_map: PortMap | None = None) -> str:
    return render("nginx.site.conf.j2", root,
                  s=nginx_site(config, paths, color, release, access_log, lua, system,
                               port_map))


LOCATIONS_BEGIN = "# goship-locations-begin\n"
LOCATIONS_END = "# goship-locations-end\n"


def split_site(text: str) -> tuple[str, str | None]:
    """A rendered site -> (the http-level part, the path app's locations or None)."""
    if LOCATIONS_BEGIN not in text:
        return text, None
    head, _, rest = text.partition(LOCATIONS_BEGIN)
    locations, _, tail = rest.partition(LOCATIONS_END)
    return head + tail, locations


def nginx_paths_server(listen: int, server_names: list[str], include: str,
                       root: Path | None = None) -> str:
    """The server the path apps on one listen port and set of server names share."""
    return render("nginx.paths-server.conf.j2", root, listen=listen,
                  server_names=server_names, include=include,
                  include_dir=include.rsplit("/", 1)[0])


def system_paths_files(config: Config) -> tuple[str, str]:
    """A path app's files in the system nginx: (its locations, the shared server)."""
    key = paths_key(config.proxy.listen, list(config.proxy.server_names))
    return (f"/etc/nginx/goship/paths/{key}/{config.app.name}.conf",
            f"/etc/nginx/conf.d/goship.paths-{key}.conf")


def nginx_main_conf(config: Config, paths: Paths, log_dir: str, mime_types: str,
                    modules: list[str], root: Path | None = None) -> str:
    return render("nginx.main.conf.j2", root, app=config.app.name, run_dir=paths.run_dir,
                  log_dir=log_dir, mime_types=mime_types, modules=modules)


# ---- the kinds -------------------------------------------------------------------------
def _systemd(r: RenderInput) -> dict[str, str]:
    return systemd_units(r.config, r.paths, r.root)


def _supervisord(r: RenderInput) -> dict[str, str]:
    logs = r.paths.logs
    return {"supervisord.conf": supervisord_main(r.config, r.paths, logs, r.root),
            **supervisord_programs(r.config, r.paths, live="blue",
                                   user=r.config.service_user, log_dir=logs, root=r.root)}


def _nginx(r: RenderInput) -> dict[str, str]:
    c = r.config
    lua = c.proxy.switch != "reload"
    site, locations = split_site(nginx_site_conf(c, r.paths, "blue", r.version,
                                                 root=r.root, lua=lua))
    out = {f"goship-{r.app}.conf": site}
    if locations is not None:
        loc_file, server_file = system_paths_files(c)
        out[loc_file.removeprefix("/etc/nginx/")] = locations
        out[server_file.removeprefix("/etc/nginx/conf.d/")] = nginx_paths_server(
            c.proxy.listen, list(c.proxy.server_names),
            f"{loc_file.rsplit('/', 1)[0]}/*.conf", r.root)
    if c.proxy.tls.mode == "letsencrypt":
        tls = c.proxy.tls
        values = dict(app=r.app, names=c.proxy.server_names, email=tls.email,
                      webroot=tls.webroot, live=letsencrypt_dir(c))
        out[f"letsencrypt/goship-{r.app}-issue.sh"] = render(
            "certbot.issue.sh.j2", r.root, **values)
        out[f"letsencrypt/renewal-hooks/deploy/goship-{r.app}-reload-nginx.sh"] = render(
            "certbot.deploy-hook.sh.j2", r.root, **values)
    return out


def _renderers() -> dict[str, Callable[[RenderInput], dict[str, str]]]:
    from goship.render import ci, consul, docker, kubernetes, lb, logs, monitoring, windows

    return {
        "systemd": _systemd, "supervisord": _supervisord, "nginx": _nginx, "lb": lb.render_lb,
        "windows": windows.render_windows, "dockerfile": docker.render_dockerfile,
        "kubernetes": kubernetes.render_kubernetes, "consul": consul.render_consul,
        "prometheus": monitoring.render_prometheus, "grafana": monitoring.render_grafana,
        "logs": logs.render_logs, "ci": ci.render_ci,
    }


KINDS = ("systemd", "supervisord", "nginx", "lb", "windows", "dockerfile", "kubernetes",
         "consul", "prometheus", "grafana", "logs", "ci")
NEEDS_HOSTS = ("lb",)


def render_kind(kind: str, r: RenderInput) -> dict[str, str]:
    """Files for `goship render KIND`, as deploy would install them on a host."""
    renderers = _renderers()
    if kind not in renderers:
        raise ConfigError("goship render", kind, f"unknown kind; expected one of: "
                          f"{', '.join((*KINDS, 'all'))}")
    return renderers[kind](r)


def _secs(value: float) -> str:
    return f"{value:g}s"
