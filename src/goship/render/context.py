"""What templates see: plain values derived from the config, one place for the names and
paths every renderer and deploy agree on."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field

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
    # proxy.path: the site is locations under the prefix, in a server path apps share
    path: str | None = None
    strip_path: bool = False
    claim_listen: list[int] = field(default_factory=list)

    @property
    def claim_json(self) -> str:
        """What the site claims on the host (read back by the facts probe: `goship apps`,
        the conflict check between apps)."""
        return json.dumps({"app": self.app, "listen": self.claim_listen or [self.listen],
                           "server_names": self.server_names, "path": self.path,
                           "release": self.release, "color": self.color,
                           "ports": self.ports}, sort_keys=True, separators=(",", ":"))

    @property
    def path_regex(self) -> str:
        return (self.path or "").replace(".", r"\.")

    @property
    def path_locations(self) -> list[PathLocation]:
        """The prefix (and the prefix itself, without the slash), then stream paths."""
        if not self.path:
            return []
        return [PathLocation(f"^~ {self.path}/", self.path, False),
                PathLocation(f"= {self.path}", self.path, False),
                *(PathLocation(sp, sp, True) for sp in self.stream_paths)]

    @property
    def default_server(self) -> bool:
        return not self.server_names

    @property
    def ident(self) -> str:
        return ident(self.app)


@dataclass(frozen=True)
class PathLocation:
    match: str  # what follows `location`
    path: str
    stream: bool


def paths_key(listen: int, server_names: list[str]) -> str:
    """The path apps sharing one server: same listen port, same server names."""
    if not server_names:
        return f"{listen}-default"
    digest = hashlib.sha256(" ".join(sorted(server_names)).encode()).hexdigest()[:10]
    return f"{listen}-names-{digest}"


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
        path=p.path, strip_path=p.strip_path,
        claim_listen=[p.listen] + ([p.tls.listen] if p.tls.mode != "off" else []),
    )


def maintenance_file(paths: Paths) -> str:
    """`goship maintenance`'s flag on the host, as nginx reads it back after a restart."""
    return paths.join("maintenance")


def lua_string(text: str) -> str:
    """A Lua string literal of `text`, whatever it holds (decimal escapes for the rest)."""
    safe = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789./_-+@~:,")
    return '"' + "".join(c if c in safe else "".join(f"\\{b:03d}" for b in c.encode())
                         for c in text) + '"'

