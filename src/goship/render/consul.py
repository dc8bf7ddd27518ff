"""Consul service definitions, one per instance, and the matching bodies for the agent's
`PUT /v1/agent/service/register` (field names as Consul documents them: snake_case in
agent config files, PascalCase in the HTTP API)."""

from __future__ import annotations

from typing import Any

from goship.render.context import ports
from goship.render.engine import render
from goship.render.inputs import RenderInput


def instances(r: RenderInput) -> list[tuple[str | None, int]]:
    """(address, port) of each instance of the blue color: per host with --env."""
    blue = ports(r.config, "blue")
    hosts: list[str | None] = list(r.hosts) or [None]
    return [(h, p) for h in hosts for p in blue]


def definition(r: RenderInput, address: str | None, port: int) -> dict[str, Any]:
    c = r.config.consul
    sid = f"{r.app}-{port}"
    check: dict[str, Any] = {
        "id": f"{sid}-http", "name": f"{r.app} health on {port}",
        # the agent on the same host probes the instance
        "http": f"http://127.0.0.1:{port}{r.config.run.health.path}", "method": "GET",
        "interval": c.check_interval, "timeout": c.check_timeout,
        "deregister_critical_service_after": c.deregister_after,
    }
    service: dict[str, Any] = {
        "id": sid, "name": r.app, "port": port,
        "tags": [*c.tags, f"version={r.version}", "track=stable", "color=blue"],
        "meta": {**c.meta, "version": r.version, "track": "stable", "color": "blue",
                 **({"env": r.env} if r.env else {})},
        "check": check,
    }
    if address:
        service["address"] = address
    return {"service": service}


API_NAMES = {"id": "ID", "http": "HTTP", "deregister_critical_service_after":
             "DeregisterCriticalServiceAfter"}


def api_body(definition: dict[str, Any]) -> dict[str, Any]:
    """The agent API's spelling of the same service (PascalCase keys; meta stays as is)."""
    def conv(d: dict[str, Any]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for k, v in d.items():
            key = API_NAMES.get(k, k[:1].upper() + k[1:])
            out[key] = conv(v) if isinstance(v, dict) and k != "meta" else v
        return out
    return conv(definition["service"])


def render_consul(r: RenderInput) -> dict[str, str]:
    out = {}
    for address, port in instances(r):
        d = definition(r, address, port)
        prefix = f"{address}/" if address else ""
        name = d["service"]["id"]
        out[f"{prefix}{name}.json"] = render("consul.service.json.j2", r.root, service=d)
        out[f"{prefix}register/{name}.json"] = render("consul.service.json.j2", r.root,
                                                      service=api_body(d))
    return out
