"""What templates see: plain values derived from the config, one place for the names and
paths every renderer and deploy agree on."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import PurePosixPath

from goship.config import Config

COLORS = ("blue", "green")
COLOR_OFFSET = {"blue": 0, "green": 100}


def ports(config: Config, color: str) -> list[int]:
    """blue: base_port .. base_port+n-1; green: base_port+100 ..: the two colors never
    share a port, so the new release starts while the old one still serves."""
    base = config.run.base_port + COLOR_OFFSET[color]
    return [base + i for i in range(config.run.instances)]


def other(color: str) -> str:
    return "green" if color == "blue" else "blue"


def ident(name: str) -> str:
    """An nginx/supervisord identifier from an app name."""
    return re.sub(r"[^a-z0-9_]", "_", name)


@dataclass(frozen=True)
class Paths:
    """Where an app lives on a host (design: releases, shared, current, state, journal)."""

    base: str
    app: str

    @property
    def root(self) -> str:
        return str(PurePosixPath(self.base) / self.app)

    def join(self, *parts: str) -> str:
        return str(PurePosixPath(self.root, *parts))

    @property
    def releases(self) -> str:
        return self.join("releases")

    def release(self, rid: str) -> str:
        return self.join("releases", rid)

    @property
    def shared(self) -> str:
        return self.join("shared")

    def env_file(self, color: str) -> str:
        """What a color's instances read: a copy of their release's environment."""
        return self.join("shared", f"env.{color}")

    def release_env(self, rid: str) -> str:
        """A release's environment as it was deployed: a rollback brings it back."""
        return self.join("shared", "envs", rid)

    def env_script(self, color: str) -> str:
        """supervisord's wrapper that exports a color's environment."""
        return self.join("run", f"env.{color}.sh")

    @property
    def current(self) -> str:
        return self.join("current")

    def color_link(self, color: str) -> str:
        return self.join(color)

    @property
    def state(self) -> str:
        return self.join("state.json")

    @property
    def journal(self) -> str:
        return self.join("journal.jsonl")

    @property
    def lock(self) -> str:
        return self.join(".lock")

    @property
    def incoming(self) -> str:
        return self.join("incoming")

    @property
    def logs(self) -> str:
        return self.join("logs")

    @property
    def run_dir(self) -> str:
        """goship's own nginx and supervisord (hosts without systemd, local mode)."""
        return self.join("run")


@dataclass(frozen=True)
class TlsSite:
    cert: str
    key: str
    chain: str | None
    listen: int
    hsts: bool
    stapling: bool
    resolvers: list[str]
    webroot: str


@dataclass(frozen=True)
class StaticDir:
    url: str
    dir: str
    expires: str


def letsencrypt_dir(config: Config) -> str:
    return f"/etc/letsencrypt/live/{config.proxy.server_names[0]}"


def tls_site(config: Config) -> TlsSite | None:
    t = config.proxy.tls
    if t.mode == "off":
        return None
    chain: str | None = t.chain
    if t.mode == "letsencrypt":
        live = letsencrypt_dir(config)
        cert, key, chain = f"{live}/fullchain.pem", f"{live}/privkey.pem", f"{live}/chain.pem"
    else:
        cert, key = t.cert or "", t.key or ""  # the model requires both for "files"
    return TlsSite(cert=cert, key=key, chain=chain, listen=t.listen, hsts=t.hsts,
                   stapling=t.stapling, resolvers=list(t.resolvers), webroot=t.webroot)


@dataclass(frozen=True)
class NginxSite:
    app: str
    color: str
    upstream_ports: list[int]
    ports: dict[str, list[int]]
    release: str
    track: str
    listen: int
    server_names: list[str]
    balance: str
    client_max_body_size: str
    trusted_proxies: list[str]
    rate_limit: int | None
    access_log: str
    app_root: str
    tls: TlsSite | None
    static: list[StaticDir]
    stream_paths: list[str]
    lua: bool = False
    control_socket: str = ""

    @property
    def default_server(self) -> bool:
        return not self.server_names

    @property
    def ident(self) -> str:
        return ident(self.app)


def control_socket(paths: Paths, system: bool) -> str:
    """Where nginx listens for goship's switches. The system nginx: under /run, which a
    reboot empties (a stale socket file left by a crash would stop nginx from starting);
    the directory comes back at boot from tmpfiles.d. goship's own nginx: its run dir."""
    if system:
        return f"/run/goship/{paths.app}/nginx-control.sock"
    return paths.join("run", "nginx-control.sock")


def nginx_site(config: Config, paths: Paths, color: str, release: str,
               access_log: str | None = None, lua: bool = False,
               system: bool = True) -> NginxSite:
    p = config.proxy
    return NginxSite(
        app=config.app.name, color=color, upstream_ports=ports(config, color),
        ports={c: ports(config, c) for c in COLORS}, release=release, lua=lua,
        control_socket=control_socket(paths, system),
        track="stable", listen=p.listen, server_names=list(p.server_names), balance=p.balance,
        client_max_body_size=p.client_max_body_size, trusted_proxies=list(p.trusted_proxies),
        rate_limit=p.rate_limit,
        access_log=access_log or f"/var/log/nginx/goship-{config.app.name}.access.log",
        app_root=paths.root, tls=tls_site(config),
        static=[StaticDir(url=st.url, dir=st.dir.rstrip("/"), expires=st.expires)
                for st in p.static],
        stream_paths=list(p.stream_paths),
    )


def program_name(app: str, color: str, port: int) -> str:
    return f"{ident(app)}-{color}-{port}"
