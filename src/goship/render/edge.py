"""goship's edge for a Kubernetes environment: the balancer role (`proxy.lb.hosts`) in
front of the cluster's Services instead of hosts. It reaches every node at the stable
Service's NodePort (`kubernetes.node_port`) and a canary's at the next port, and routes
between them with the same Lua as an app host's site (nginx.canary.j2): rules, weight and
analysis as on hosts, with no ingress controller in the cluster."""

from __future__ import annotations

from pathlib import Path

from goship.config import Config
from goship.errors import ConfigError
from goship.render.context import ident
from goship.render.engine import render
from goship.render.lb import access_log


def control_dir(app: str) -> str:
    """The control socket's directory (0700 root; /run empties at boot, tmpfiles.d makes
    it again before nginx starts, or nginx could not bind the socket)."""
    return f"/run/goship/{app}-edge"


def control_socket(app: str) -> str:
    return f"{control_dir(app)}/control.sock"


def tmpfiles_path(app: str) -> str:
    return f"/etc/tmpfiles.d/goship-{app}-edge.conf"


def tmpfiles(app: str) -> str:
    return f"d {control_dir(app)} 0700 root root -\n"


def ports(config: Config) -> tuple[int, int]:
    """(stable, canary) NodePorts the edge reaches."""
    port = config.kubernetes.node_port
    if port is None or port >= 32767:
        raise ConfigError("goship.toml", "kubernetes.node_port",
                          "an edge (proxy.lb.hosts) on a Kubernetes environment reaches the "
                          "Services at their NodePort on every node: node_port for the "
                          "stable one, the next port for a canary's",
                          hint="set kubernetes.node_port to a free port in 30000-32766")
    return port, port + 1


def site(config: Config, nodes: list[str], env: str | None, root: Path | None) -> str:
    if not nodes:
        raise ConfigError("goship render lb", "--env",
                          "the edge reaches the cluster's nodes, and none was found",
                          hint="deploy to the environment, or check its nodes are Ready")
    stable, canary = ports(config)
    app = config.app.name
    return render("nginx.edge.conf.j2", root, app=app, ident=ident(app), env=env,
                  lb=config.proxy.lb, nodes=nodes, stable_port=stable, canary_port=canary,
                  access_log=access_log(app), control_socket=control_socket(app))
