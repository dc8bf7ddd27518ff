"""`goship lab up --consul`: a real Consul cluster on the lab hosts.

h1..h3 run Consul servers (one server, h1, in a lab of fewer than 3 hosts); every other
host runs a client agent. Each agent is a systemd unit of its host, bound to the host's lab
address, its HTTP API on 127.0.0.1:8500 (where deploys register instances) and on the lab
address (where tests and `lab status` read the catalog). No ACLs, no TLS: a rehearsal
network. Files come from the pure functions below; the binary from consul_build's cache.
Everything lives in the hosts' disks, so `lab down` removes it with the hosts."""

from __future__ import annotations

import json
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from goship.errors import LabError, UsageError
from goship.lab import consul_build, layout, tool_build
from goship.lab.layout import HostLayout
from goship.lab.tool_build import GoTool

UNIT = "goship-consul.service"
CONFIG_DIR = "/etc/goship-consul.d"
# A fresh directory of the host's disk (not below a path of the machine's own root).
DATA_DIR = "/var/lib/goship-consul"
HTTP_PORT = 8500
DATACENTER = "lab"
MAX_SERVERS = 3
READY_TIMEOUT = 90.0
Progress = Callable[[str], None]


def servers(hosts: list[HostLayout]) -> list[HostLayout]:
    """The server agents: h1..h3 with 3 hosts or more, else h1 alone."""
    return hosts[:MAX_SERVERS] if len(hosts) >= MAX_SERVERS else hosts[:1]


def node_name(h: HostLayout) -> str:
    return f"lab-{h.name}"


def agent_config(h: HostLayout, hosts: list[HostLayout]) -> dict[str, Any]:
    """The agent configuration file of host h (Consul's JSON config format)."""
    srv = servers(hosts)
    conf: dict[str, Any] = {
        "node_name": node_name(h),
        "datacenter": DATACENTER,
        "data_dir": DATA_DIR,
        "bind_addr": h.addr,
        "advertise_addr": h.addr,
        "client_addr": f"127.0.0.1 {h.addr}",
        "ports": {"http": HTTP_PORT, "grpc": -1, "grpc_tls": -1, "dns": -1},
        "retry_join": [s.addr for s in srv if s != h],
        "retry_interval": "1s",
        # The lab's LAN is namespaces on one machine: failure detection tuned like a fast
        # LAN, so a powered-off host leaves the catalog in ~2 s instead of Consul's WAN-safe
        # 5-7 s (memberlist's suspicion timeout scales with probe_interval).
        "gossip_lan": {"probe_interval": "250ms", "probe_timeout": "150ms",
                       "gossip_interval": "100ms", "suspicion_mult": 2},
        # Consul's recommended production setting (the default, 5, suits small dev
        # machines): a leader lost with its host is replaced in about a second.
        "performance": {"raft_multiplier": 1},
        "server": h in srv,
        "log_level": "WARN",
        "disable_update_check": True,
        "enable_script_checks": False,
        "enable_local_script_checks": False,
    }
    if h in srv:
        conf["bootstrap_expect"] = len(srv)
    return conf


def unit(binary: str) -> str:
    """The systemd unit that runs the agent."""
    return f"""[Unit]
Description=Consul agent (goship lab)
After=network-online.target

[Service]
ExecStart={binary} agent -config-dir={CONFIG_DIR}
ExecReload=/bin/kill -HUP $MAINPID
KillSignal=SIGTERM
Restart=always
RestartSec=1
LimitNOFILE=65536

[Install]
WantedBy=multi-user.target
"""


def host_files(h: HostLayout, hosts: list[HostLayout], binary: str) -> dict[str, str]:
    """Every file the cluster puts on host h: path -> content."""
    return {
        f"{CONFIG_DIR}/agent.json": json.dumps(agent_config(h, hosts), indent=2) + "\n",
        f"/etc/systemd/system/{UNIT}": unit(binary),
    }


def refused_resize(found: dict[str, Any] | None, hosts: list[HostLayout]) -> str | None:
    """Why `up --consul` on `hosts` cannot reuse the cluster `found` (None: it can). Clients
    may join; the servers (and so bootstrap_expect) are fixed once a leader was elected."""
    if found is None:
        return None
    want = [h.name for h in servers(hosts)]
    if found.get("servers") != want:
        return (f"the lab's Consul servers are {', '.join(found.get('servers') or [])}, "
                f"not {', '.join(want)}")
    return None


def check_servers(hosts: list[HostLayout]) -> None:
    why = refused_resize(status(), hosts)
    if why:
        raise UsageError(why, hint="`goship lab down` first, then `goship lab up --consul`")


def status() -> dict[str, Any] | None:
    """The cluster the lab state records, or None."""
    found = layout.read_state().get("consul")
    return found if isinstance(found, dict) else None


def http_url(h: HostLayout) -> str:
    return f"http://{h.addr}:{HTTP_PORT}"


def _get(url: str, timeout: float = 3) -> Any:
    with urllib.request.urlopen(url, timeout=timeout) as r:  # noqa: S310 (lab address)
        return json.loads(r.read().decode() or "null")


def try_get(url: str) -> Any:
    try:
        return _get(url)
    except (OSError, urllib.error.URLError, ValueError):
        return None


def alive_members(h: HostLayout) -> set[str]:
    """Names of the members host h's agent sees alive (serf status 1)."""
    members = try_get(f"{http_url(h)}/v1/agent/members") or []
    return {m["Name"] for m in members if isinstance(m, dict) and m.get("Status") == 1}


def leader(h: HostLayout) -> str:
    """The raft leader's address as host h's agent knows it ("" when none)."""
    found = try_get(f"{http_url(h)}/v1/status/leader")
    return found if isinstance(found, str) else ""


def _ssh(h: HostLayout, command: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    from goship.lab.hosts import ssh_argv

    return subprocess.run([*ssh_argv(h), command], capture_output=True, text=True,
                          timeout=timeout, check=False)


def unit_log(h: HostLayout, lines: int = 6) -> str:
    res = _ssh(h, f"journalctl -u {UNIT} -n {lines} --no-pager -o cat", 30)
    return " | ".join(x.strip() for x in res.stdout.splitlines() if x.strip()) or "(no log)"


def _install(h: HostLayout, hosts: list[HostLayout], b: GoTool) -> None:
    binary = tool_build.host_path(h, b.path, "goship-consul")
    for path, content in host_files(h, hosts, binary).items():
        target = h.root / path.lstrip("/")
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(target.name + ".goship-tmp")
        tmp.write_text(content)
        tmp.chmod(0o644)
        tmp.replace(target)
    # A running agent rereads its files (SIGHUP); a new one starts. (A HUP before the agent
    # has set its handlers would end it.)
    res = _ssh(h, f"systemctl daemon-reload && if systemctl is-active --quiet {UNIT}; then "
                  f"systemctl reload {UNIT}; fi && systemctl enable --now {UNIT}")
    if res.returncode != 0:
        raise LabError(f"{h.name}: the Consul agent did not start: {unit_log(h)}")


def _wait(what: str, check: Callable[[], bool], explain: Callable[[], str],
          timeout: float = READY_TIMEOUT) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.5)
    raise LabError(f"{what} after {timeout:g}s: {explain()}",
                   hint="`goship lab down` removes the lab")


def enable(hosts: list[HostLayout], progress: Progress = lambda _m: None) -> dict[str, Any]:
    """The cluster on `hosts` (h1 first): agents running, a leader elected, every member
    alive. Runs again harmlessly on a cluster that is up. Returns the state it records."""
    b = consul_build.ensure(progress)
    srv = servers(hosts)
    progress(f"starting Consul: server(s) {', '.join(h.name for h in srv)}, "
             f"{len(hosts) - len(srv)} client(s)")
    with ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(lambda h: _install(h, hosts, b), hosts))
    first = srv[0]
    _wait("Consul elected no leader", lambda: bool(leader(first)),
          lambda: "; ".join(f"{h.name}: {unit_log(h)}" for h in srv))
    wanted = {node_name(h) for h in hosts}
    _wait("Consul members not alive", lambda: wanted <= alive_members(first),
          lambda: "missing " + ", ".join(sorted(wanted - alive_members(first))))
    found = {"version": consul_build.CONSUL_VERSION, "servers": [h.name for h in srv],
             "clients": [h.name for h in hosts if h not in srv],
             "http": http_url(first), "leader": leader(first)}
    state = layout.read_state()
    state["consul"] = found
    layout.write_state(state)
    return found


def summary(found: dict[str, Any]) -> str:
    """One line for `lab up` / `lab status`."""
    srv, clients = found.get("servers") or [], found.get("clients") or []
    return (f"consul {found.get('version')}  servers {','.join(srv)}  "
            f"clients {','.join(clients) or '-'}  HTTP {found.get('http')}")


def live(found: dict[str, Any]) -> dict[str, Any]:
    """What the cluster says now: its leader and the members alive (from the first server)."""
    names = list(found.get("servers") or [])
    if not names:
        return {"leader": "", "alive": []}
    first = layout.parse_host(names[0])
    return {"leader": leader(first), "alive": sorted(alive_members(first))}

