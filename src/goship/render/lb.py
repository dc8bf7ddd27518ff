"""`goship render lb` and what `goship setup`/`deploy` install on `proxy.lb.hosts`: one nginx
site spreading requests across the environment's hosts (`discovery = "static"`) or across
the passing instances Consul lists (`discovery = "consul"`, docs/consul.md)."""

from __future__ import annotations

import ipaddress
from pathlib import Path
from typing import Any

from goship.config import Config
from goship.errors import ConfigError
from goship.render.context import ident, lua_string
from goship.render.engine import render
from goship.render.inputs import RenderInput

# Seconds a blocking query waits for a change before Consul answers unchanged.
WAIT_SECONDS = 15
UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400}


def site_name(app: str) -> str:
    return f"goship-{app}-lb.conf"


def site_path(app: str) -> str:
    """Where the balancer's site lives on an LB host (the system nginx's conf.d)."""
    return f"/etc/nginx/conf.d/{site_name(app)}"


def token_path(app: str) -> str:
    """The ACL token of the balancer's Lua: 0600 root, read by nginx's master (root)."""
    return f"/etc/nginx/goship-{app}-lb.token"


def access_log(app: str) -> str:
    return f"/var/log/nginx/goship-{app}-lb.access.log"


def seconds(duration: str) -> float:
    """A validated duration (`10s`, `500ms`, `1m`) in seconds."""
    unit = "ms" if duration.endswith("ms") else duration[-1]
    return int(duration[: -len(unit)]) * UNITS[unit]


def agent_address(agent: str) -> tuple[str, int]:
    """`proxy.lb.consul` split; nginx's Lua connects without a resolver: an IP address."""
    host, _, port = agent.rpartition(":")
    if host == "localhost":
        host = "127.0.0.1"
    try:
        ipaddress.ip_address(host)
    except ValueError:
        raise ConfigError("goship.toml", "proxy.lb.consul",
                          f"{agent} is not an IP address: nginx's Lua connects without a "
                          f"resolver", hint='name the agent by address, e.g. '
                                            '"127.0.0.1:8500"') from None
    return host, int(port)


def discovery_values(config: Config) -> dict[str, Any]:
    """Everything the Consul discovery Lua needs, strings already quoted for Lua."""
    lb, app = config.proxy.lb, config.app.name
    host, port = agent_address(lb.consul)
    # The stable track only: a canary's instances get their share through each host's own
    # routing, never unweighted from the balancer.
    path = f"/v1/health/service/{app}?passing=true&stale&tag=track%3Dstable"
    token = config.consul.token_env is not None
    return {
        "ident": ident(app), "service": app, "balance": lb.balance,
        "agent_host_lua": lua_string(host), "agent_port": port, "path_lua": lua_string(path),
        "wait": WAIT_SECONDS, "max_fails": lb.max_fails,
        "fail_timeout": f"{seconds(lb.fail_timeout):g}",
        "token_file": token_path(app) if token else None,
        "token_file_lua": lua_string(token_path(app)),
        "token_key_lua": lua_string(f"goship_{ident(app)}_lb_token"),
        "access_log": access_log(app),
    }


def render_lb(r: RenderInput) -> dict[str, str]:
    return {site_name(r.app): site(r.config, r.hosts, r.env, r.root)}


def site(config: Config, hosts: list[str], env: str | None, root: Path | None) -> str:
    lb = config.proxy.lb
    if lb.discovery == "consul":
        return render("nginx.lb.conf.j2", root, app=config.app.name,
                      ident=ident(config.app.name), lb=lb, servers=[], env=env,
                      consul=discovery_values(config))
    if not hosts:
        raise ConfigError("goship render lb", "--env",
                          "the load balancer spreads across an environment's hosts",
                          hint="pass --env NAME of an environment with hosts or lab")
    unknown = sorted(set(lb.weights) - set(hosts))
    if unknown:
        raise ConfigError("goship.toml", "proxy.lb.weights",
                          f"{', '.join(unknown)} is not a host of env.{env} "
                          f"({', '.join(hosts)})", hint="use the hosts' addresses as keys")
    port = config.proxy.listen
    servers = [(h, port, lb.weights.get(h, 1)) for h in hosts]
    return render("nginx.lb.conf.j2", root, app=config.app.name, ident=ident(config.app.name),
                  lb=lb, servers=servers, env=env, consul=None)
