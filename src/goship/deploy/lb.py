"""The load-balancer role on `proxy.lb.hosts`: `goship setup` and `deploy` install the
rendered balancer site (and, with Consul ACLs, its token file) on each of them over
goship's transport, `nginx -t` before a reload; a site nginx refuses is taken back.

What goes where is a pure function of the config (`plan`, tested as data); `apply` does it.
The balancer runs in the host's system nginx (/etc/nginx/conf.d), like an app host's site."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from goship.command import Cmd
from goship.config.load import Environment, Project
from goship.deploy.services import install_cmd
from goship.errors import ApplyError, ConfigError
from goship.render import edge as render_edge
from goship.render import lb as render_lb
from goship.transport.base import Transport

LAB_HOST = re.compile(r"^h([1-9][0-9]?)$")
DEFAULT_SITE = "/etc/nginx/sites-enabled/default"
DEFAULT_SITE_OFF = "/etc/nginx/goship-default-site.off"


@dataclass(frozen=True)
class LbFile:
    path: str
    text: str = field(repr=False)  # a token file's text is a secret
    mode: str = "644"


@dataclass(frozen=True)
class LbHost:
    """One balancer host: where it is (as written in proxy.lb.hosts) and what it gets."""

    spec: str
    files: tuple[LbFile, ...]
    # Debian's default site also claims default_server on the balancer's port: moved aside.
    move_default_site: bool
    dirs: tuple[str, ...] = ()  # made 0700 before nginx -t (the edge's control socket)


def _where(env: Environment) -> str:
    return f"env.{env.name}.proxy.lb.hosts"


def check_hosts(env: Environment) -> None:
    """Refuse, before any host is touched, balancer hosts this environment cannot reach or
    that collide with its app hosts."""
    lb, t = env.config.proxy.lb, env.target
    if not lb.hosts:
        return
    if t.kubernetes is not None:
        # The edge in front of the cluster's Services (render/edge.py): no app hosts to
        # collide with; the lab cluster's edge goes on its hosts, h1..h20.
        from goship.render.edge import ports

        ports(env.config)
        bad = [h for h in lb.hosts if not LAB_HOST.match(h)] if t.kubernetes.lab else []
        if bad:
            raise ConfigError("goship.toml", _where(env),
                              f"{bad[0]!r} is not a lab host; the lab cluster's edge goes on "
                              f"h1..h20", hint='e.g. hosts = ["h1"]')
        return
    if t.lab is not None:
        bad = [h for h in lb.hosts if not LAB_HOST.match(h)]
        if bad:
            raise ConfigError("goship.toml", _where(env),
                              f"{bad[0]!r} is not a lab host; a lab environment names them "
                              f"h1..h20", hint='e.g. hosts = ["h3"]')
        app_hosts = [f"h{i}" for i in range(1, t.lab + 1)]
    elif t.hosts is not None:
        app_hosts = list(t.hosts)
    else:
        raise ConfigError("goship.toml", _where(env),
                          f"env.{env.name} deploys to {t.kind}: the balancer goes on hosts "
                          f"goship reaches over SSH", hint="use it with an environment of "
                                                          "hosts = [...] or lab = N")
    shared = [h for h in lb.hosts if h in app_hosts]
    if shared and lb.discovery == "consul" and env.config.canary.state == "redis":
        # Both poll from init_worker_by_lua, and nginx takes one per http block.
        raise ConfigError("goship.toml", _where(env),
                          f"{shared[0]} serves the app with canary.state = \"redis\" and "
                          f"would run the Consul balancer too: nginx allows one "
                          f"init_worker_by_lua per host", hint="put the balancer on its own "
                                                                "host")
    if shared and lb.listen == env.config.proxy.listen:
        raise ConfigError("goship.toml", _where(env),
                          f"{shared[0]} also serves the app on port {lb.listen}, where the "
                          f"balancer would listen", hint="set proxy.lb.listen to another port "
                                                         "or put the balancer on its own host")


def plan(project: Project, env: Environment, app_addresses: list[str],
         values: dict[str, str]) -> list[LbHost]:
    """Each balancer host and its files. `app_addresses`: the environment's hosts as the
    balancer reaches them (static discovery); `values`: the environment's resolved
    run.env / env_file / secrets (the ACL token's source)."""
    config = env.config
    lb, app = config.proxy.lb, config.app.name
    if not lb.hosts:
        return []
    check_hosts(env)
    dirs: tuple[str, ...] = ()
    if env.target.kubernetes is not None:
        # app_addresses: the cluster's nodes
        site = render_edge.site(config, app_addresses, env.name, project.root)
        files = [LbFile(render_edge.tmpfiles_path(app), render_edge.tmpfiles(app)),
                 LbFile(render_lb.site_path(app), site)]
        dirs = (render_edge.control_dir(app),)
    else:
        site = render_lb.site(config, app_addresses, env.name, project.root)
        files = [LbFile(render_lb.site_path(app), site)]
    if lb.discovery == "consul" and config.consul.token_env is not None:
        files.append(LbFile(render_lb.token_path(app), token(env, values) + "\n", "600"))
    return [LbHost(h, tuple(files), move_default_site=not lb.server_names, dirs=dirs)
            for h in lb.hosts]


def token(env: Environment, values: dict[str, str]) -> str:
    """The ACL token `consul.token_env` names (deploy.consul.acl_token); never shown."""
    from goship.deploy.consul import acl_token

    value = acl_token(env.config, values)
    assert value is not None  # noqa: S101 (called only with consul.token_env set)
    return value


def transports(env: Environment) -> list[Transport]:
    """SSH to each balancer host, as to the environment's own hosts."""
    specs = env.config.proxy.lb.hosts
    if env.target.lab is not None or (env.target.kubernetes is not None
                                      and env.target.kubernetes.lab):
        from goship.lab.hosts import transport

        # check_hosts refused anything but h<N>
        return [transport(int(spec[1:])) for spec in specs]
    from goship.targets import ssh_transports

    return ssh_transports(env, specs)


def _install(t: Transport, f: LbFile) -> tuple[bool, str | None]:
    """Write the file if it differs (a 0600 file is never readable on the way): (changed,
    the site it replaced or None). A token file is never read back."""
    secret = f.mode == "600"
    old = None if secret else t.run(Cmd.of("cat", f.path))
    res = t.check(install_cmd(f.path, f.text, f.mode,
                              secrets=[f.text.strip()] if secret else []))
    return res.stdout.strip() == "changed", (old.stdout if old is not None and old.ok else None)


def apply_host(t: Transport, host: LbHost) -> str:
    """Install one balancer; returns what changed, for the user."""
    if host.move_default_site and t.run(Cmd.of("grep", "-q", "default_server",
                                               DEFAULT_SITE)).ok:
        t.check(Cmd.of("mv", DEFAULT_SITE, DEFAULT_SITE_OFF))
    for d in host.dirs:
        t.check(Cmd.of("install", "-d", "-m", "0700", d))
    changed: list[tuple[LbFile, str | None]] = []
    for f in host.files:
        did, old = _install(t, f)
        if did:
            changed.append((f, old))
    if not changed:
        return "balancer unchanged"
    test = t.run(Cmd.of("nginx", "-t"))
    if not test.ok:
        for f, old in changed:
            if f.mode == "600":
                continue  # a token never fails nginx -t; the new one stays
            if old is None:
                t.run(Cmd.of("rm", "-f", f.path))
            else:
                _install(t, LbFile(f.path, old, f.mode))
        lines = [ln for ln in (test.stderr or test.stdout).splitlines() if "[emerg]" in ln]
        raise ApplyError(f"{t.name}: nginx -t rejected the balancer, the old config is back "
                         f"in place: {(lines or ['no output'])[0].split('] ', 1)[-1]}")
    active = t.run(Cmd.of("systemctl", "is-active", "--quiet", "nginx")).ok
    # A token is read by nginx's master when it (re)loads: a reload picks it up too.
    t.check(Cmd.of("systemctl", "reload" if active else "start", "nginx"))
    return "balancer " + ", ".join(f.path for f, _ in changed)


def check(project: Project, env: Environment, values: dict[str, str] | None = None) -> None:
    """Refuse a bad balancer setting, or a Consul ACL token that is not there, before setup
    or deploy changes anything."""
    c = env.config
    needs_token = c.consul.token_env is not None and (
        c.consul.enabled or (c.proxy.lb.hosts and c.proxy.lb.discovery == "consul"))
    if c.proxy.lb.hosts:
        check_hosts(env)
    if needs_token:
        from goship.deploy.engine import env_values

        token(env, values if values is not None else env_values(project, env))


def _addresses(env: Environment) -> list[str]:
    """Where the balancer sends requests: the environment's hosts, or, in front of a
    Kubernetes cluster, its Ready nodes (the NodePorts answer on each)."""
    if env.target.kubernetes is not None:
        from goship.kube.cluster import Cluster

        return Cluster(env.target.kubernetes, env.config.kubernetes.namespace).node_addresses()
    from goship.targets import addresses

    return addresses(env)


def install(project: Project, env: Environment, values: dict[str, str], *,
            dry_run: bool = False, nodes: list[str] | None = None) -> list[str]:
    """`goship setup` / `deploy`: every balancer host made current. Lines for the user."""
    if not env.config.proxy.lb.hosts:
        return []
    hosts = plan(project, env, nodes if nodes is not None else _addresses(env), values)
    if dry_run:
        return [f"{h.spec}: would install {', '.join(f.path for f in h.files)} "
                f"(nginx -t, then reload)" for h in hosts]
    lines = []
    for host, t in zip(hosts, transports(env), strict=True):
        try:
            lines.append(f"{host.spec}: {apply_host(t, host)}")
        finally:
            t.close()
    return lines


# `goship remove`: the balancer's files go; Debian's default site comes back when goship
# moved it aside and no other goship balancer claims the port; nginx reloads if it runs.
UNINSTALL = r"""
rm -f -- "$1" "$2"
if [ -e "$3" ] && [ ! -e "$4" ] && ! ls /etc/nginx/conf.d/goship-*-lb.conf >/dev/null 2>&1
then mv -- "$3" "$4"; fi
nginx -t 2>&1 | grep '\[emerg\]' >&2 && exit 1
if systemctl is-active --quiet nginx; then systemctl reload nginx; fi
"""


def removal_lines(env: Environment) -> list[str]:
    """What `goship remove` takes off the balancer hosts, for the confirmation."""
    app = env.config.app.name
    return [f"{h}: remove the balancer site {render_lb.site_path(app)} (and its token file, if "
            f"any); nginx reloads" for h in env.config.proxy.lb.hosts]


def uninstall(env: Environment) -> list[str]:
    """`goship remove`: each balancer host without this app's site. Lines for the user; a
    host that fails is said and the others go on."""
    from goship.ui import ui

    app = env.config.app.name
    if not env.config.proxy.lb.hosts:
        return []
    lines = []
    for spec, t in zip(env.config.proxy.lb.hosts, transports(env), strict=True):
        try:
            res = t.run(Cmd.of("sh", "-c", UNINSTALL, "goship-lb-remove",
                               render_lb.site_path(app), render_lb.token_path(app),
                               DEFAULT_SITE_OFF, DEFAULT_SITE))
            if res.ok and env.target.kubernetes is not None:  # the edge's control socket
                res = t.run(Cmd.of("rm", "-rf", "--", render_edge.tmpfiles_path(app),
                                   render_edge.control_dir(app)))
            if res.ok:
                lines.append(f"{spec}: balancer site removed")
            else:
                ui.warn(f"{spec}: removing the balancer site: "
                        f"{(res.stderr or res.stdout).strip() or f'exit {res.code}'}")
        finally:
            t.close()
    return lines
