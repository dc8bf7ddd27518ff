"""Consul registration on deploy (`[consul] enabled = true`).

On each host the local agent learns about this app's instances through its HTTP API
(`PUT /v1/agent/service/register`, `.../maintenance/ID`, `.../deregister/ID`), called with
curl on the host itself (the agent listens on loopback). What to send is decided here from
config and facts alone (`plan_*`, tested as data); `apply` sends it through the transport.

- before the switch: each instance of the new color registered (id per app/color/port,
  tags with release, track and color, an HTTP check on the health path), out of
  maintenance; a failure fails the deploy before traffic moves.
- after the switch: the old color in maintenance while it stands by, deregistered when
  goship stops it. A standby the host's timer stops is reaped by Consul itself
  (`deregister_after` once its check is critical).
- an undo: the new color deregistered, the old one out of maintenance."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal
from urllib.parse import quote

from goship.command import Cmd
from goship.config.model import Config
from goship.errors import ApplyError, ConfigError, GoshipError
from goship.transport.base import Transport
from goship.ui import ui

if TYPE_CHECKING:
    from goship.config import Environment, Project


@dataclass(frozen=True)
class Call:
    """One agent API call: method, path below the agent's URL, JSON body or None."""

    method: str
    path: str
    body: dict[str, Any] | None = None


def service_id(app: str, color: str, port: int) -> str:
    return f"{app}-{color}-{port}"


def registration(config: Config, *, release: str, color: str, port: int, address: str | None,
                 track: str = "stable", env: str | None = None) -> dict[str, Any]:
    """The agent API body registering one instance (PascalCase, as the HTTP API spells it)."""
    c, app = config.consul, config.app.name
    sid = service_id(app, color, port)
    body: dict[str, Any] = {
        "ID": sid, "Name": app, "Port": port,
        "Tags": [*c.tags, f"release={release}", f"track={track}", f"color={color}"],
        "Meta": {**c.meta, "release": release, "track": track, "color": color,
                 **({"env": env} if env else {})},
        "Check": {
            "CheckID": f"{sid}-http", "Name": f"{app} health on {port}",
            # the agent on the same host probes the instance
            "HTTP": f"http://127.0.0.1:{port}{config.run.health.path}", "Method": "GET",
            "Interval": c.check_interval, "Timeout": c.check_timeout,
            "DeregisterCriticalServiceAfter": c.deregister_after,
            # goship's health gate has just proven it: discoverable at once, not after the
            # agent's first probe.
            "Status": "passing",
        },
    }
    if address:
        body["Address"] = address
    return body


def _maintenance(sid: str, enable: bool, reason: str = "") -> Call:
    query = f"enable={'true' if enable else 'false'}"
    if reason:
        query += f"&reason={quote(reason, safe='')}"
    return Call("PUT", f"/v1/agent/service/maintenance/{quote(sid, safe='')}?{query}")


def plan_register(config: Config, *, release: str, color: str, ports: list[int],
                  address: str | None, track: str = "stable",
                  env: str | None = None) -> list[Call]:
    """Before the switch: each instance of `color` registered and out of maintenance (a
    re-registered standby may still carry it)."""
    if not config.consul.enabled:
        return []
    app = config.app.name
    calls = []
    for port in ports:
        body = registration(config, release=release, color=color, port=port, address=address,
                            track=track, env=env)
        calls.append(Call("PUT", "/v1/agent/service/register", body))
        calls.append(_maintenance(service_id(app, color, port), False))
    return calls


def plan_standby(config: Config, *, color: str, ports: list[int], release: str | None
                 ) -> list[Call]:
    """The old color stands by, unserved: in maintenance, so nothing discovers it."""
    if not config.consul.enabled:
        return []
    reason = f"goship: standby ({release})" if release else "goship: standby"
    return [_maintenance(service_id(config.app.name, color, p), True, reason) for p in ports]


def plan_deregister(config: Config, *, color: str, ports: list[int]) -> list[Call]:
    """The color stopped: its instances leave the catalog."""
    if not config.consul.enabled:
        return []
    return [Call("PUT", "/v1/agent/service/deregister/"
                        f"{quote(service_id(config.app.name, color, p), safe='')}")
            for p in ports]


# What an ACL token may hold: it goes into an HTTP header line.
TOKEN = re.compile(r"^[A-Za-z0-9._~+/=-]{1,256}$")


def acl_token(config: Config, values: dict[str, str]) -> str | None:
    """The ACL token `consul.token_env` names, from the environment's resolved run.env,
    env_file and [secrets] (None: no token configured). Never shown."""
    name = config.consul.token_env
    if name is None:
        return None
    value = values.get(name)
    if not value:
        raise ConfigError("goship.toml", "consul.token_env",
                          f"{name} is not set by run.env_file or [secrets]",
                          hint=f"add {name}=... to the env file, or a [secrets.{name}] entry")
    if not TOKEN.match(value):
        raise ConfigError("goship.toml", "consul.token_env",
                          f"{name} does not look like a Consul token (one line of letters, "
                          f"digits and ._~+/=-)", hint="check the value in the env file")
    return value


def _curl_quoted(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def command(agent: str, call: Call, token: str | None = None) -> Cmd:
    """curl on the host: fails (non-zero, the agent's answer on stderr) on any HTTP error.
    With a token, curl reads its header and the body as a config on stdin (`-K -`): the
    token is in no command line, no file and no output."""
    argv = ["curl", "-sS", "--fail-with-body", "--max-time", "10", "-X", call.method]
    body = json.dumps(call.body, sort_keys=True) if call.body is not None else ""
    if token is not None:
        config = (f"header = {_curl_quoted('X-Consul-Token: ' + token)}\n"
                  f"data-binary = {_curl_quoted(body)}\n")
        return Cmd.of(*argv, "-K", "-", f"http://{agent}{call.path}",
                      secrets=[token]).with_stdin(config.encode())
    cmd = Cmd.of(*argv, "--data-binary", "@-", f"http://{agent}{call.path}")
    return cmd.with_stdin(body.encode())


def apply(t: Transport, agent: str, calls: list[Call], what: str,
          token: str | None = None) -> None:
    """Send the calls, all together; raises ApplyError naming the first that failed."""
    if not calls:
        return
    results = t.run_all([command(agent, c, token) for c in calls], timeout=30)
    for call, res in zip(calls, results, strict=True):
        if not res.ok:
            detail = (res.stdout + " " + res.stderr).strip() or f"exit {res.code}"
            if token:
                detail = detail.replace(token, "***")
            raise ApplyError(f"{t.name}: Consul {what} failed ({call.method} {call.path}): "
                             f"{detail}",
                             hint="is the Consul agent running on the host "
                                  f"(curl http://{agent}/v1/agent/self)?")



def query(agent: str, path: str, token: str | None = None, *, max_time: int = 10,
          fail: bool = True, write_code: bool = False) -> Cmd:
    """A read of the agent's API by curl on the host; a token, as for `command`, goes in a
    curl config on stdin, never on a command line."""
    argv = ["curl", "-sS" if fail else "-s", *(["--fail-with-body"] if fail else []),
            "--max-time", str(max_time), *(["-w", "\\n%{http_code}"] if write_code else [])]
    if token is None:
        return Cmd.of(*argv, f"http://{agent}{path}")
    config = f"header = {_curl_quoted('X-Consul-Token: ' + token)}\n"
    return Cmd.of(*argv, "-K", "-", f"http://{agent}{path}",
                  secrets=[token]).with_stdin(config.encode())


def services_query(agent: str, token: str | None = None) -> Cmd:
    """The services the host's agent holds (`goship remove`)."""
    return query(agent, "/v1/agent/services", token)


def plan_remove(config: Config, services: dict[str, Any]) -> list[Call]:
    """`goship remove`: every instance of this app the agent holds (from `services_query`'s
    answer, whatever color, port or state) leaves the catalog; other services stay."""
    import re

    app = config.app.name
    own = re.compile(rf"^{re.escape(app)}-(?:blue|green)-\d+$")
    return [Call("PUT", f"/v1/agent/service/deregister/{quote(sid, safe='')}")
            for sid, svc in sorted(services.items())
            if own.match(sid) and isinstance(svc, dict) and svc.get("Service") == app]

def health_query(agent: str, sid: str, token: str | None = None) -> Cmd:
    """The agent's aggregated health of one service (`goship status`): body, then the code."""
    return query(agent, f"/v1/agent/health/service/id/{quote(sid, safe='')}?format=text",
                 token, max_time=2, fail=False, write_code=True)


def parse_health(out: str) -> str:
    """passing, warning, critical or maintenance as the agent says; `not registered` (404);
    `no agent` when curl got no answer."""
    body, _, code = out.rstrip("\n").rpartition("\n")
    if code == "404":
        return "not registered"
    if code in ("200", "429", "503"):
        word = body.strip()
        return word if word in ("passing", "warning", "critical", "maintenance") else \
            {"200": "passing", "429": "warning", "503": "critical"}[code]
    return "no agent"


def agent_queries(agent: str, token: str | None = None) -> list[Cmd]:
    """`goship doctor`: the agent's own view (`/v1/agent/self`) and the cluster's leader."""
    return [query(agent, p, token, max_time=3) for p in ("/v1/agent/self", "/v1/status/leader")]


def token_for(project: Project | None, env: Environment) -> str | None:
    """consul.token_env's token for a command that only reads or removes (status, doctor,
    remove): None when none is configured; a token that cannot be read is said once and
    the command goes on without it (the agent then answers what anonymous calls may)."""
    c = env.config.consul
    if not c.enabled or not c.token_env or project is None:
        return None
    from goship.deploy.engine import env_values

    try:
        return acl_token(env.config, env_values(project, env))
    except GoshipError as e:
        ui.warn(f"consul.token_env: {e.message}")
        return None


def judge_agent(agent: str, self_out: str | None, leader_out: str | None
                ) -> tuple[Literal["ok", "fail"], str, str]:
    """(level, detail, fix) of the doctor's consul check, from the two answers (None: the
    call failed)."""
    fix = f"start the Consul agent on the host, its HTTP API on {agent} ([consul] agent)"
    if self_out is None:
        return "fail", f"no Consul agent answers at {agent}", fix
    try:
        conf = json.loads(self_out).get("Config", {})
        leader = json.loads(leader_out) if leader_out is not None else ""
    except (ValueError, AttributeError):
        return "fail", f"{agent} does not answer as a Consul agent", fix
    what = (f"Consul {conf.get('Version', '?')} agent {conf.get('NodeName', '?')} "
            f"({'server' if conf.get('Server') else 'client'}) in {conf.get('Datacenter', '?')}")
    if not leader:
        return "fail", f"{what}: the cluster has no leader", \
            "registration needs a leader: check the Consul servers (consul members)"
    return "ok", f"{what}, leader {leader}", ""
