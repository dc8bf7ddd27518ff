"""A release's plan: a pure function of (config, facts, artifact) -> one HostPlan per host
and the batches they run in. `--dry-run` prints it, `--json` emits it, and deploy,
rollback and the standby timers execute exactly it."""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from goship.config import Config
from goship.deploy import ports as portsel
from goship.deploy.apps import refuse_conflicts
from goship.deploy.layout import PortMap, other
from goship.deploy.release_command import ReleaseStep, plan_step
from goship.facts import AppClaim, Listener

# canary: the release starts beside the stable one, which keeps serving (routing rules
# send it traffic); promote: the running canary becomes live.
Action = Literal["deploy", "rollback", "canary", "promote"]
STANDBY_MARGIN = 3.0  # seconds: a standby this close to its stop is not trusted


@dataclass(frozen=True)
class Standby:
    """A color kept running, unserved, until `until` (epoch seconds)."""

    color: str
    release: str
    until: float


@dataclass(frozen=True)
class HostView:
    """What a plan reads of one host: gathered by one probe and parsed (tested as data)."""

    name: str
    manager: str  # systemd | supervisord
    lua: bool
    live_color: str | None
    live_release: str | None
    state: dict[str, Any]
    releases: dict[str, str | None]  # on disk: release id -> archive sha256 (None: unknown)
    listeners: dict[int, Listener] | None
    running: dict[str, list[int]]  # color -> ports whose instance is running
    env_kept: list[str]  # releases whose environment is kept on the host
    now: float
    leftovers: list[str] = field(default_factory=list)  # of an aborted run, app-relative
    apps: list[AppClaim] = field(default_factory=list)  # goship apps' sites on the host

    @property
    def standby(self) -> Standby | None:
        raw = self.state.get("standby")
        if not isinstance(raw, dict):
            return None
        try:
            return Standby(str(raw["color"]), str(raw["release"]), float(raw["until"]))
        except (KeyError, TypeError, ValueError):
            return None


@dataclass(frozen=True)
class Artifact:
    release: str
    sha256: str


@dataclass
class HostPlan:
    host: str
    action: str
    release: str
    live: dict[str, str] | None  # {"color", "release"} served now
    color: str  # where the release runs
    ports: PortMap  # both colors' ports once the plan is applied
    upload: Literal["upload", "skip", "on disk"]
    env: Literal["write", "restore", "write (none kept)"]
    start: Literal["start", "warm"]  # warm: the standby already runs the release
    stop_first: list[int]  # the color's old instances (leftovers) stopped before start
    gate: int  # consecutive 2xx answers the gate needs
    switch: Literal["first", "lua", "reload", "none"]
    after: Literal["standby", "stop", "nothing"]  # what happens to the old color
    standby_seconds: float
    drift: list[int]  # this app's instances on ports no color uses any more: stopped
    prune: list[str]
    notes: list[str] = field(default_factory=list)
    clean: list[str] = field(default_factory=list)  # leftovers of an aborted run, removed
    # After `after`'s stop is due: seconds at most the old color keeps running while clients
    # (websockets, SSE) hold connections to it; 0: it stops without waiting for them.
    drain_seconds: float = 0.0
    processes: list[dict[str, Any]] = field(default_factory=list)  # [processes.*]

    def lines(self) -> list[str]:
        live = (f"{self.live['release']} on {self.live['color']}" if self.live
                else "nothing yet")
        ports = ", ".join(str(p) for p in self.ports[self.color])
        start = (f"the canary already runs on {self.color}" if self.start == "warm" and
                 self.action == "promote" else
                 "reuse the warm standby" if self.start == "warm" else
                 f"start {self.color} on {ports}" +
                 (f" (stop its old instances on {_join(self.stop_first)} first)"
                  if self.stop_first else ""))
        out = [f"{self.host}: serves {live}; {self.action} to {self.release}",
               f"  upload: {self.upload}; environment: {self.env}",
               f"  {start}; gate: {self.gate} x 2xx; switch: {_switch(self.switch)}"]
        drain = (f", once its open connections (websockets, SSE) close, "
                 f"{self.drain_seconds:g}s at most" if self.drain_seconds else "")
        if self.after == "standby" and self.live:
            out.append(f"  then: {self.live['color']} stays warm for "
                       f"{self.standby_seconds:g}s (rollback window), then stops{drain}")
        elif self.after == "stop" and self.live:
            out.append(f"  then: drain and stop {self.live['color']}{drain}")
        from goship.deploy.processes import plan_lines

        out += plan_lines(self.processes)
        if self.drift:
            out.append(f"  drift: stop this app's instances on {_join(self.drift)}")
        if self.prune:
            out.append(f"  prune: {', '.join(self.prune)}")
        if self.clean:
            out.append(f"  clean up an aborted run: {', '.join(self.clean)}")
        out += [f"  note: {n}" for n in self.notes]
        return out


@dataclass
class FleetPlan:
    action: str
    env: str
    strategy: str
    batches: list[list[str]]
    hosts: list[HostPlan]
    release_command: ReleaseStep | None = None  # run once, before any host starts

    def lines(self) -> list[str]:
        out = [f"{self.action} {self.env}: {self.strategy}, {len(self.hosts)} host(s)"]
        if self.release_command is not None:
            out += self.release_command.lines()
        if self.strategy == "rolling":
            out += [f"batch {i + 1}: {', '.join(b)}" for i, b in enumerate(self.batches)]
        for hp in self.hosts:
            out += hp.lines()
        return out

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _join(ports: list[int]) -> str:
    return ", ".join(str(p) for p in ports)


def _switch(mode: str) -> str:
    return {"first": "install the nginx site (first release here)",
            "lua": "Lua, no reload", "reload": "nginx -t, reload",
            "none": "none (the stable release stays live; the canary gets its share by the "
                    "routing rules)"}[mode]


def site_digest(config: Config, port_map: PortMap, lua: bool) -> str:
    """What the nginx site depends on besides the live color and the ports (both travel
    through the control socket): when it is unchanged a switch is a Lua flip; otherwise
    nginx reloads. `port_map` only matters without Lua."""
    from goship import __version__

    data = {"proxy": config.proxy.model_dump(mode="json"),
            "canary": config.canary.model_dump(mode="json"),
            "ports": None if lua else port_map, "lua": lua,
            "app": config.app.name, "base": config.deploy.base_path, "v": __version__}
    return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()[:16]


def plan_processes(config: Config, color: str, live: str | None) -> list[dict[str, Any]]:
    from goship.deploy.processes import plan

    return plan(config, color, live)


def plan_host(config: Config, view: HostView, action: Action, release: str,
              artifact: Artifact | None) -> HostPlan:
    """One host's part of a deploy (artifact given), a rollback to `release`, a canary
    start (artifact given) or the promotion of the running canary `release`."""
    if action in ("deploy", "canary"):
        refuse_conflicts(config, view.name, view.apps)  # exit 2 before any change
    live = ({"color": view.live_color, "release": view.live_release or "?"}
            if view.live_color else None)
    recorded = portsel.recorded_ports(view.state, config)
    standby = view.standby
    notes: list[str] = []
    # Only a rollback reuses the standby: a deploy may carry another run.env than the one
    # the standby started with.
    warm_ok = (action == "rollback" and standby is not None and standby.release == release
               and live is not None
               and standby.color == other(view.live_color or "blue")
               and view.now < standby.until - STANDBY_MARGIN
               and bool(view.running.get(standby.color))
               and set(view.running.get(standby.color, [])) >= set(recorded[standby.color]))
    color = other(view.live_color) if view.live_color else "blue"
    promoting = action == "promote" and live is not None
    if warm_ok or promoting:
        # The standby, or the canary being promoted, already runs the release.
        new_ports = recorded[color]
        start: Literal["start", "warm"] = "warm"
        stop_first: list[int] = []
    else:
        # Ports this color must not take, and who has them (said when a port moves).
        reserved = {config.proxy.listen: "nginx (proxy.listen)"}
        if config.proxy.tls.mode != "off":
            reserved[config.proxy.tls.listen] = "nginx (proxy.tls.listen)"
        if view.live_color:
            reserved |= dict.fromkeys(recorded[view.live_color],
                                      f"the live color ({view.live_color})")
        # Another goship app's live ports, even while its instance restarts (its other
        # color's are only defaults until it runs: its own preflight moves them then).
        reserved |= {p: f"goship app {a.app} ({a.color})" for a in view.apps
                     if a.app != config.app.name and a.color
                     for p in a.ports.get(a.color, [])}
        # Ports count as this app's only where it ran: recorded, or a host deployed before
        # ports were recorded (then the default scheme is what it used).
        known = "ports" in view.state or view.live_color is not None
        owned = recorded if known else {c: [] for c in recorded}
        choice = portsel.choose(config, color, view.listeners, recorded, reserved, view.name,
                                owned)
        new_ports, start = choice.ports, "start"
        notes += choice.notes
        stop_first = sorted(set(view.running.get(color, [])))
        if standby is not None and standby.color == color and stop_first \
                and view.now < standby.until:
            notes.append(f"the warm standby ({standby.release} on {color}) is stopped: "
                         f"{release} takes its color")
    port_map = dict(recorded)
    port_map[color] = new_ports
    if artifact is None:
        upload: Literal["upload", "skip", "on disk"] = "on disk"
    elif view.releases.get(release) == artifact.sha256:
        upload = "skip"
    else:
        upload = "upload"
    if artifact is None and release in view.env_kept:
        env: Literal["write", "restore", "write (none kept)"] = "restore"
    elif artifact is None:
        env = "write (none kept)"
        notes.append(f"no environment kept for {release}: it starts with the current "
                     f"run.env and run.env_file")
    else:
        env = "write"
    if promoting:
        env = "restore" if release in view.env_kept else env
    if live is None:
        switch: Literal["first", "lua", "reload", "none"] = "first"
    elif action == "canary":
        switch = "none"  # the stable color stays live; routing rules reach the canary
    elif view.lua and view.state.get("site") == site_digest(config, port_map, view.lua):
        switch = "lua"
    else:
        switch = "reload"
    window = config.deploy.rollback_window
    after: Literal["standby", "stop", "nothing"] = (
        "nothing" if live is None or action == "canary" else
        "standby" if window > 0 else "stop")
    drain = drain_seconds(config, view.manager, after, notes)
    gate = 1 if (warm_ok or promoting or action == "rollback") else \
        config.run.health.successes
    # The old color's instances on ports it no longer records (fewer instances, a changed
    # base_port): stopped after the switch. The new color's are stopped before its start.
    old = other(color)
    drift = sorted(p for p in view.running.get(old, []) if p not in recorded[old])
    # The standby always holds the color a deploy takes: it never outlives the deploy.
    keep = {release, *([view.live_release] if view.live_release else [])}
    prune = _prune(view, config.deploy.keep_releases, keep,
                   add=release if upload == "upload" and release not in view.releases
                   else None)
    if action == "canary":
        drift, prune = [], []  # nothing of the stable side changes while a canary runs
    return HostPlan(host=view.name, action=action, release=release, live=live, color=color,
                    ports=port_map, upload=upload, env=env, start=start,
                    stop_first=stop_first, gate=gate, switch=switch, after=after,
                    standby_seconds=window if after == "standby" else 0.0, drift=drift,
                    prune=prune, notes=notes, clean=sorted(view.leftovers),
                    drain_seconds=drain,
                    processes=plan_processes(config, color, live["color"] if live else None))


def drain_seconds(config: Config, manager: str, after: str, notes: list[str]) -> float:
    """How long the old color may keep its clients' long connections once its stop is due
    (run.drain_timeout_long); 0 when nothing stops or the manager cannot wait for them."""
    long = config.run.drain_timeout_long
    if after == "nothing" or long <= 0:
        return 0.0
    if manager not in ("systemd", "supervisord"):
        notes.append(f"{manager}: long connections are not drained (run.drain_timeout_long); "
                     f"the old color stops after run.drain_timeout")
        return 0.0
    return long


def _prune(view: HostView, keep: int, protect: set[str], add: str | None) -> list[str]:
    """Releases removed after the switch: the oldest by deploy history beyond
    deploy.keep_releases, never the live, the new or the standby release."""
    on_disk = set(view.releases) | ({add} if add else set())
    history = [r for r in view.state.get("history", []) if isinstance(r, str)]
    candidates = [r for r in on_disk if r not in protect]
    ranked = [r for r in history if r in candidates] + \
        sorted(set(candidates) - set(history))
    excess = len(on_disk) - keep
    return ranked[:max(0, excess)]


def batches(config: Config, names: list[str]) -> list[list[str]]:
    if config.deploy.strategy != "rolling":
        return [list(names)]
    b = config.deploy.batch
    size = max(1, b) if isinstance(b, int) else \
        max(1, round(len(names) * int(b.rstrip("%")) / 100))
    return [names[i:i + size] for i in range(0, len(names), size)]


def plan_fleet(config: Config, env: str, views: list[HostView], action: Action,
               releases: dict[str, str], artifacts: dict[str, Artifact | None], *,
               release_host: str | None = None, local: bool = False) -> FleetPlan:
    """`releases` and `artifacts` by host name (hosts of several architectures get their
    own build). `release_host`: the host deploy.release_host names (None: the first)."""
    hosts = [plan_host(config, v, action, releases[v.name], artifacts.get(v.name))
             for v in views]
    names = [v.name for v in views]
    return FleetPlan(action=action, env=env, strategy=config.deploy.strategy
                     if config.deploy.strategy != "canary" else "bluegreen",
                     batches=batches(config, names), hosts=hosts,
                     release_command=plan_step(config, action, names, release_host,
                                               releases, local=local))
