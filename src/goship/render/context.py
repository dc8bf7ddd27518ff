"""What templates see: plain values derived from the config, one place for the names and
paths every renderer and deploy agree on."""

from __future__ import annotations

from dataclasses import dataclass

from goship.canary.redis_state import HOST_FILE
from goship.config import Config

# The host layout (colors, ports, paths) belongs to deploy; renderers read it from there.
from goship.deploy.layout import (
    COLOR_OFFSET,
    COLORS,
    Paths,
    PortMap,
    default_ports,
    ident,
    other,
    ports,
    program_name,
)

__all__ = ["COLORS", "COLOR_OFFSET", "Paths", "PortMap", "default_ports", "ident", "other",
           "ports", "program_name"]


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
    health_path: str = "/health"
    maintenance_file: str = ""  # goship maintenance's flag, read back after a restart

    @property
    def health_path_lua(self) -> str:
        return lua_string(self.health_path)

    @property
    def maintenance_file_lua(self) -> str:
        return lua_string(self.maintenance_file)

    # canary.state = "redis": the host file the Lua poller reads (empty: no poller)
    canary_redis_file: str = ""

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
               system: bool = True, port_map: PortMap | None = None) -> NginxSite:
    p = config.proxy
    pm = port_map or {c: ports(config, c) for c in COLORS}
    return NginxSite(
        app=config.app.name, color=color, upstream_ports=list(pm[color]),
        ports={c: list(pm[c]) for c in COLORS}, release=release, lua=lua,
        control_socket=control_socket(paths, system),
        track="stable", listen=p.listen, server_names=list(p.server_names), balance=p.balance,
        client_max_body_size=p.client_max_body_size, trusted_proxies=list(p.trusted_proxies),
        rate_limit=p.rate_limit,
        access_log=access_log or f"/var/log/nginx/goship-{config.app.name}.access.log",
        app_root=paths.root, tls=tls_site(config),
        static=[StaticDir(url=st.url, dir=st.dir.rstrip("/"), expires=st.expires)
                for st in p.static],
        stream_paths=list(p.stream_paths),
        health_path=config.run.health.path, maintenance_file=maintenance_file(paths),
        canary_redis_file=paths.join(HOST_FILE) if lua and config.canary.state == "redis"
        else "",
    )


def maintenance_file(paths: Paths) -> str:
    """`goship maintenance`'s flag on the host, as nginx reads it back after a restart."""
    return paths.join("maintenance")


def lua_string(text: str) -> str:
    """A Lua string literal of `text`, whatever it holds (decimal escapes for the rest)."""
    safe = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789./_-+@~:,")
    return '"' + "".join(c if c in safe else "".join(f"\\{b:03d}" for b in c.encode())
                         for c in text) + '"'

