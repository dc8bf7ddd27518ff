"""What runs where: per host the live release and color, instance health, nginx, the last
journal entry, drift; and the logs of every host merged."""

from __future__ import annotations

import sys
import threading
from collections import Counter
from typing import Any

from goship.command import Cmd
from goship.config import Environment, Project
from goship.deploy.engine import close, connect, each, fleet
from goship.deploy.host import Host


def host_status(h: Host, consul_token: str | None = None) -> dict[str, Any]:
    color = h.live_color
    instances = {}
    if color:
        pids = h.services.pids(color)
        extra = h.services.details(color)  # docker: container, image, health, restarts
        path = h.config.run.health.path
        for port in h.port_map[color]:
            res = h.t.run(Cmd.of("curl", "-s", "-o", "/dev/null", "-w", "%{http_code}",
                                 "--max-time", "2", f"http://127.0.0.1:{port}{path}"))
            instances[str(port)] = {"pid": pids.get(port), "health": res.stdout.strip() or "000",
                                    **extra.get(port, {})}
            if h.config.consul.enabled:
                instances[str(port)]["consul"] = _consul_health(h, color, port, consul_token)
    nginx_up = h.t.run(Cmd.of("sh", "-c", 'kill -0 "$(cat "$1" 2>/dev/null)" 2>/dev/null',
                              "goship-alive", h.nginx.pid_file)).ok
    last = h.read_journal(1)
    standby = h.state.get("standby") if isinstance(h.state.get("standby"), dict) else None
    if standby:
        import time

        left = float(standby.get("until", 0)) - time.time()
        alive = [p for p, pid in h.services.pids(str(standby.get("color"))).items() if pid]
        standby = {**standby, "seconds_left": max(0, round(left)),
                   "running": bool(alive) and left > 0}
    draining = _draining(h, color)
    processes = _processes(h, color)
    # Instances of this app on ports no color records: left by an earlier config (another
    # base_port, more instances) and not stopped yet.
    stray = sorted(p for c, ps in h.services.running().items() for p in ps
                   if p not in h.port_map.get(c, []))
    from goship.deploy import maintenance

    m = maintenance.read(h)
    out: dict[str, Any] = {}
    if h.nginx.lua and h.config.canary.state == "redis":
        out["canary_redis"] = _redis_poll(h)
    return {
        **out,
        "maintenance": {"on": m.on, "hold": m.hold, "retry_after": m.retry_after}
        if m.on else {"on": False},
        "stray": stray,
        "release": h.live_release, "color": color, "manager": h.services.name,
        "instances": instances, "nginx": "running" if nginx_up else "stopped",
        "previous": (h.state.get("previous") or {}).get("release"),
        "releases": h.releases_on_disk(), "last": last[0] if last else None,
        "ports": {c: list(p) for c, p in h.port_map.items()}, "standby": standby,
        "draining": draining, **({"processes": processes} if processes else {}),
    }


def _processes(h: Host, color: str | None) -> list[dict[str, Any]]:
    """[processes.*] on the live color (systemd hosts)."""
    if not h.config.processes or h.services.name not in ("systemd", "supervisord"):
        return []
    from goship.deploy.processes import for_host

    return for_host(h).status(color)


def _draining(h: Host, live: str | None) -> dict[str, Any] | None:
    """The old color a drain keeps running for its clients' long connections (websockets,
    SSE): how many connections it still holds and when it stops at the latest. None once it
    stopped."""
    import time

    from goship.deploy.scripts import CONNECTIONS

    raw = h.state.get("draining")
    if not isinstance(raw, dict) or raw.get("color") == live:
        return None
    color, until = str(raw.get("color")), float(raw.get("until", 0) or 0)
    ports = [int(p) for p in raw.get("ports", []) if str(p).isdigit()]
    if not ports or not any(h.services.pids(color).values()):
        return None
    res = h.t.run(Cmd.of("sh", "-c", CONNECTIONS, "goship-connections", *map(str, ports)))
    count = int(res.stdout.strip()) if res.stdout.strip().isdigit() else None
    now = time.time()
    return {**raw, "connections": count, "seconds_left": max(0, round(until - now)),
            "started": now >= float(raw.get("from", 0) or 0)}


def _redis_poll(h: Host) -> dict[str, Any]:
    """canary.state = "redis": what this host's nginx last got from Redis (its Lua poller
    records it in the shared dict; read through the control socket)."""
    from goship.canary import redis_sync
    from goship.errors import ApplyError

    try:
        state = redis_sync.poll(h)
    except ApplyError as e:
        return {"reachable": False, "error": e.message, "line": e.message}
    return {**state.as_dict(), "line": state.line()}


def _consul_health(h: Host, color: str, port: int, token: str | None) -> str:
    """The instance's health as the host's Consul agent reports it ([consul] enabled)."""
    from goship.deploy import consul

    sid = consul.service_id(h.config.app.name, color, port)
    res = h.t.run(consul.health_query(h.config.consul.agent, sid, token))
    return consul.parse_health(res.stdout)


def status(env: Environment, project: Project | None = None) -> dict[str, Any]:
    from goship.deploy import consul

    token = consul.token_for(project, env)
    with fleet(env) as hosts:
        got = each(hosts, lambda h: host_status(h, token), env.config.deploy.concurrency)
        rows: dict[str, dict[str, Any]] = {**got.succeeded, **{
            name: {"error": str(err)} for name, err in got.failed.items()}}
        live = Counter(r.get("release") for r in rows.values() if r.get("release"))
        expected = live.most_common(1)[0][0] if live else None
        for r in rows.values():
            r["drift"] = bool(expected and r.get("release") != expected) or \
                bool(r.get("stray"))
        return {"env": env.name, "expected": expected,
                "hosts": {h.name: rows[h.name] for h in hosts}}


def logs(env: Environment, *, host: str | None, follow: bool, since: str | None,
         lines: int) -> None:
    hosts = connect(env)
    if host:
        hosts = [h for h in hosts if h.name == host] or _no_host(host, hosts)
    try:
        procs = []
        for h in hosts:
            app = h.services.logs_cmd(follow, since, lines)
            tail = ["tail", "-q", "-n", str(lines), *(["-F"] if follow else []),
                    h.nginx.access_log]
            procs.append((h.name, "app", h.t.stream(app)))
            procs.append((h.name, "nginx", h.t.stream(Cmd.of(*tail))))
        lock = threading.Lock()

        def pump(name: str, kind: str, stream: Any) -> None:
            for raw in stream:
                line = raw.decode(errors="replace").rstrip("\n")
                with lock:
                    sys.stdout.write(f"[{name} {kind}] {line}\n")
                    sys.stdout.flush()

        threads = [threading.Thread(target=pump, args=(n, k, p.stdout), daemon=True)
                   for n, k, p in procs]
        for t in threads:
            t.start()
        try:
            for t in threads:
                t.join()
        except KeyboardInterrupt:
            pass
        finally:
            for _, _, p in procs:
                p.terminate()
    finally:
        close(hosts)


def _no_host(name: str, hosts: list[Host]) -> list[Host]:
    from goship.errors import UsageError

    raise UsageError(f"--host {name}: not a host of this environment",
                     hint=f"choose one of: {', '.join(h.name for h in hosts)}")
