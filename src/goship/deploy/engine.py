"""Deploy and rollback across hosts. Every failure restores every host already switched
to the release it served before, and the summary says which host, which step, why."""

from __future__ import annotations

import os
import subprocess
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from goship.config import Environment, Project
from goship.deploy import consul, processes, release_command
from goship.deploy.host import Host, open_host
from goship.deploy.lock import HostChanged, Lock
from goship.deploy.plan import Artifact as PlanArtifact
from goship.deploy.plan import (
    FleetPlan,
    HostPlan,
    HostView,
    batches,
    plan_fleet,
    plan_host,
    site_digest,
)
from goship.deploy.pool import borrow
from goship.deploy.release_command import ReleaseStep
from goship.deploy.runfiles import apply_files, plan_files
from goship.errors import ApplyError, GoshipError, Unreachable, UsageError
from goship.targets import transports
from goship.transport.base import Transport
from goship.ui import ui


@dataclass
class Artifact:
    release_id: str
    version: str
    data: bytes
    sha256: str


@dataclass
class Move:
    """One host's part of a release, carrying its plan: colors, ports and every choice are
    fixed from the host's facts before anything runs, so an undo can never stop what was
    serving."""

    host: Host
    plan: HostPlan
    artifact: Artifact | None
    step: str = "plan"
    switched: bool = False
    old_workers: set[int] = field(default_factory=set)
    timings: dict[str, float] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    restored: bool = False  # failed within deploy.max_failures: back on its old release
    staged: bool = False  # the release and its environment on the host, nothing started
    launched: bool = False  # the new color was touched (stopped first, started)
    before: dict[str, Any] = field(default_factory=dict)  # state before, for an undo
    # [processes.*] with overlap = false whose old color's instances this move stopped
    stopped_workers: list[str] = field(default_factory=list)

    @property
    def release(self) -> str:
        return self.plan.release

    @property
    def new_color(self) -> str:
        return self.plan.color

    @property
    def old_color(self) -> str | None:
        return self.plan.live["color"] if self.plan.live else None

    @property
    def old_release(self) -> str | None:
        return self.plan.live["release"] if self.plan.live else None

    @property
    def serving(self) -> tuple[str | None, str | None]:
        """(color, release) the host serves once this move is over: a host restored within
        deploy.max_failures serves what it served before (nothing, on a first deploy)."""
        if self.restored:
            return self.old_color, self.old_release
        return self.new_color, self.release


class StepFailed(ApplyError):
    def __init__(self, host: str, step: str, detail: str) -> None:
        super().__init__(f"{host}: {step} failed: {detail}")
        self.host, self.step, self.detail = host, step, detail


@dataclass
class Outcome:
    action: str
    env: str
    release: str
    hosts: dict[str, dict[str, Any]]
    ok: bool
    seconds: float
    failure: str | None = None
    restored: list[str] = field(default_factory=list)
    plan: dict[str, Any] | None = None  # the plan this run executed


def parallel(items: Iterable[Any], fn: Callable[[Any], Any], limit: int) -> list[
        tuple[Any, BaseException | None]]:
    """Run fn on every item; return (item, error) pairs, never raising for one item."""
    items = list(items)

    def safe(x: Any) -> BaseException | None:
        try:
            fn(x)
            return None
        except BaseException as e:
            return e

    with borrow(len(items), limit) as pool:
        return list(zip(items, pool.map(safe, items), strict=True))


@dataclass
class GroupResult:
    """What a call on every host gave: each host's value or its error (fabric's
    GroupResult): one host's failure never hides the others' answers."""

    succeeded: dict[str, Any] = field(default_factory=dict)
    failed: dict[str, BaseException] = field(default_factory=dict)

    def raise_first(self) -> None:
        for name, err in self.failed.items():
            if isinstance(err, GoshipError):
                raise err
            raise ApplyError(f"{name}: {type(err).__name__}: {err}")


def each(hosts: list[Host], fn: Callable[[Host], Any], limit: int) -> GroupResult:
    """fn on every host in parallel; the results by host name, in the hosts' order."""
    values: dict[str, Any] = {}

    def one(h: Host) -> None:
        values[h.name] = fn(h)

    out = GroupResult()
    for h, err in parallel(hosts, one, limit):
        if err is None:
            out.succeeded[h.name] = values[h.name]
        else:
            out.failed[h.name] = err
    return out


def connect(env: Environment) -> list[Host]:
    ts = transports(env)
    results: dict[int, Host | BaseException] = {}

    def one(i_t: tuple[int, Transport]) -> None:
        i, t = i_t
        try:
            results[i] = open_host(t, env)
        except BaseException as e:
            results[i] = e

    with borrow(len(ts), env.config.deploy.concurrency) as pool:
        list(pool.map(one, enumerate(ts)))
    hosts: list[Host] = []
    problems = []
    for i, t in enumerate(ts):
        r = results[i]
        if isinstance(r, Host):
            hosts.append(r)
        elif env.config.deploy.on_unreachable == "skip" and isinstance(r, Unreachable):
            ui.warn(f"{t.name}: unreachable, skipped (deploy.on_unreachable = \"skip\")")
            t.close()
        else:
            problems.append(r)
    if problems:
        for h in hosts:
            h.t.close()
        first = problems[0]
        if isinstance(first, GoshipError):
            raise first
        raise first
    if not hosts:
        raise ApplyError("no host could be reached")
    return hosts


def close(hosts: list[Host]) -> None:
    for h in hosts:
        try:
            h.t.settle()  # the last records (journal, unlock) answer here
        except GoshipError as e:
            ui.warn(f"{h.name}: {e.message}")
        # The command is over: its remote shells end by themselves, nobody waits for them.
        h.t.close(wait=False)


@contextmanager
def fleet(env: Environment) -> Iterator[list[Host]]:
    """The environment's hosts, connected and with their facts; closed however the block
    ends. The one place that owns connect and close."""
    from goship.render.engine import warm

    # The nginx site is rendered at every switch, the unit at every boot link: compile
    # them while the hosts answer.
    threading.Thread(target=warm, args=("nginx.site.conf.j2", "systemd.service.j2"),
                     daemon=True).start()
    hosts = connect(env)
    try:
        yield hosts
    finally:
        close(hosts)


class Deployer:
    def __init__(self, project: Project, env: Environment, *, force: bool = False,
                 wait: bool = False, command: str = "deploy") -> None:
        self.project, self.env = project, env
        self.config = env.config
        self.force, self.wait, self.command = force, wait, command
        self.limit = self.config.deploy.concurrency
        # consul.token_env's value (set by `release` from the resolved env values)
        self.consul_token: str | None = None

    # ---- single-host steps -------------------------------------------------------------
    def prepare(self, m: Move, env_values: dict[str, str]) -> None:
        """Everything before the switch: the release on disk, its environment, its color
        running and healthy (or the warm standby proven healthy)."""
        h, p = m.host, m.plan
        started = time.monotonic()
        if p.start == "warm":
            m.step = "prepare host"
            m.before = {"ports": {c: list(v) for c, v in h.port_map.items()},
                        "standby": h.state.get("standby")}
            # The standby runs this release with its own environment, on a host the deploy
            # that left it there set up: prove it answers, nothing else.
            m.launched = True
            h.use_ports(p.ports)
            h.services.cancel_stop(m.new_color)
            m.notes.append(f"warm standby on {m.new_color}: no start")
            self._gate(m, started, known=h.standby_pids(m.new_color))
            self.workers_up(m)
            self.consul_register(m)
            h.t.settle()
            return
        if not m.staged:
            self.stage(m, env_values)
        self.launch(m, started)

    def stage(self, m: Move, env_values: dict[str, str]) -> None:
        """The release on disk with its environment kept, nothing started or changed of
        what runs: what the release command needs, and all an abort leaves behind."""
        h, p = m.host, m.plan
        m.step = "prepare host"
        m.before = {"ports": {c: list(v) for c, v in h.port_map.items()},
                    "standby": h.state.get("standby")}
        h.ensure_layout()
        h.clean(p.clean)
        h.nginx.prepare_tls()
        h.use_ports(p.ports)
        # The color's own copy is made at launch: until then a running standby keeps
        # reading the environment it started with.
        if p.env != "restore" or not h.restore_env(m.new_color, m.release, use=False):
            # The release's own id too: {release} in run.args reads it under systemd.
            h.write_env({**env_values, "GOSHIP_RELEASE": m.release}, m.new_color, m.release,
                        use=False)
        if m.artifact is not None:
            m.step = "upload"
            if p.upload == "skip" and h.has_release(m.release, m.artifact.sha256):
                m.notes.append("release already on the host: upload skipped")
            else:
                t0 = time.monotonic()
                h.upload(m.release, m.artifact.data, m.artifact.sha256)
                m.timings["upload"] = time.monotonic() - t0
        m.staged = True

    def launch(self, m: Move, started: float) -> None:
        """The staged release started on its color and gated."""
        h, p = m.host, m.plan
        m.step = "prepare host"
        m.launched = True
        h.use_env(m.new_color, m.release)
        releases = {m.new_color: m.release,
                    **({m.old_color: m.old_release} if m.old_color and m.old_release else {})}
        h.services.install(m.new_color, m.old_color or m.new_color, self.project.root,
                           releases)
        h.nginx.prepare(self.project.root)
        h.services.cancel_stop(m.new_color)
        m.step = f"start {m.new_color}"
        # Whatever runs on the new color is a leftover or the standby: stop it first.
        h.services.stop(m.new_color, sorted({*p.stop_first, *p.ports[m.new_color]}))
        h.point_color(m.new_color, m.release)
        # run.data_dirs linked to shared/, run.config_files rendered for each instance.
        apply_files(h.t, plan_files(self.config, h.paths, m.new_color, m.release,
                                    p.ports[m.new_color]),
                    owner=None if h.local else self.config.service_user)
        h.services.start(m.new_color)
        self._gate(m, started)
        self.workers_up(m)
        self.consul_register(m)
        h.t.settle()

    def release_step(self, moves: list[Move], step: ReleaseStep | None,
                     env_values: dict[str, str]) -> None:
        """deploy.release_command, once, on its host (staged first when it is not yet):
        under the lock, before any host starts the new release. Raises StepFailed."""
        if step is None:
            return
        m = next(m for m in moves if m.host.name == step.host)
        h = m.host
        if not m.staged:
            self.stage(m, env_values)
        m.step = "release command"
        # run.data_dirs linked into the release first: a migration of a SQLite file finds
        # the data the service will use.
        ops = plan_files(self.config, h.paths, m.new_color, m.release, [])
        apply_files(h.t, ops, owner=None if h.local else self.config.service_user)
        ui.info(f"{h.name}: release command: {step.command}")
        values = {**env_values, "GOSHIP_RELEASE": m.release, "GOSHIP_ENV": self.env.name,
                  "GOSHIP_HOST": h.name}
        try:
            seconds, output = release_command.run(h, step, values)
        except ApplyError as e:
            h.journal({"action": "release command", "release": m.release,
                       "command": step.command, "outcome": "failed",
                       "error": e.message.split("; output:")[0]})
            for other in moves:  # every host's journal: the deploy stopped at this step
                other.step = "release command"
            raise StepFailed(h.name, "release command", e.message) from None
        for line in release_command.tail(output, list(values.values())).splitlines():
            ui.debug(f"{h.name}: release command: {line}")
        m.timings["release_command"] = seconds
        m.notes.append(f"release command ran ({seconds:.1f}s)")
        h.journal({"action": "release command", "release": m.release, "command": step.command,
                   "outcome": "ok", "seconds": round(seconds, 3)})
        ui.info(f"{h.name}: release command done ({seconds:.1f}s)")

    def prepare_all(self, moves: list[Move], env_values: dict[str, str],
                    step: ReleaseStep | None) -> StepFailed | None:
        """Every host prepared; with a release command, every host's upload first, then
        the command, then the starts: no host runs the new release before it succeeded."""
        if step is not None:
            failed, _ = self._phase([m for m in moves if m.plan.start != "warm"],
                                    lambda m: self.stage(m, env_values))
            if failed is not None:
                return failed
            try:
                self.release_step(moves, step, env_values)
            except StepFailed as e:
                return e
        failed, _ = self._phase(moves, lambda m: self.prepare(m, env_values))
        return failed

    def _gate(self, m: Move, started: float, known: dict[int, int] | None = None) -> None:
        h, p = m.host, m.plan
        m.step = "health gate"
        t0 = time.monotonic()
        quick = p.gate == 1
        gate = h.gate(m.new_color, interval=0.05 if quick else None, successes=p.gate,
                      known=known)
        m.timings["gate"] = time.monotonic() - t0
        if not gate.ok:
            why = h.services.why(m.new_color)  # the log's last lines, a port's holder
            raise StepFailed(h.name, "health gate", gate.detail + (f"; {why}" if why else ""))
        m.timings["prepare"] = time.monotonic() - started
        ui.info(f"{h.name}: {m.release} healthy on {m.new_color} "
                f"({m.timings['prepare']:.1f}s)")

    def workers_up(self, m: Move) -> None:
        """[processes.*] workers on the new color, started and proven live (before any
        switch); a singleton's (overlap = false) old instances stopped first."""
        # The plan's rows (plan.processes) decide: which workers, which stop first.
        rows = [r for r in m.plan.processes if r["kind"] == "worker"]
        names = [str(r["name"]) for r in rows]
        if not names:
            return
        h = m.host
        runner = processes.for_host(h)
        m.step = "start workers"
        single = [str(r["name"]) for r in rows if r["stop_when"] == "before the new start"]
        if single and m.old_color is not None:
            runner.stop(m.old_color, single)
            m.stopped_workers = single
        runner.stop(m.new_color, names)  # a leftover of an earlier run
        runner.start_workers(m.new_color, names)
        m.step = "worker gate"
        why = runner.gate(m.new_color, names)
        if why is not None:
            raise StepFailed(h.name, "worker gate", why)
        ui.info(f"{h.name}: {len(processes.units(self.config, m.new_color, names))} worker "
                f"instance(s) live on {m.new_color}")

    def processes_switched(self, m: Move) -> None:
        """After the switch: the new color's timers run, the old color's workers and timers
        stop (a job already running finishes on its release)."""
        if not m.plan.processes:
            return
        h = m.host
        runner = processes.for_host(h)
        m.step = "switch processes"
        stop = [str(r["name"]) for r in m.plan.processes if r["stop"]]
        if stop and m.old_color is not None:
            runner.stop(m.old_color, stop, jobs=False)
        runner.start_timers(m.new_color)

    def switch(self, m: Move) -> None:
        h = m.host
        m.step = "switch nginx"
        self.hook_remote(h, self.config.deploy.hooks.pre_deploy_remote, m)
        t0 = time.monotonic()
        m.old_workers = h.nginx.switch(m.new_color, m.release, self.project.root)
        m.switched = True
        h.t.settle()
        m.timings["switch"] = time.monotonic() - t0
        ui.info(f"{h.name}: nginx -> {m.new_color} ({m.release})")

    def finish(self, m: Move) -> None:
        h, p = m.host, m.plan
        self.processes_switched(m)
        m.step = "drain"
        standby = None
        draining = None
        if m.old_color is not None:
            if m.old_workers:
                drained = h.nginx.drain(m.old_workers, self.config.run.drain_timeout)
                if not drained:
                    m.notes.append("old nginx workers still busy at the drain timeout")
            elif p.after != "standby":
                # Lua switched in place: requests routed just before the switch are still
                # connecting (loopback: well under this); one refused anyway is retried by
                # nginx on the new color. The service's graceful shutdown drains the rest.
                # (A standby keeps running: nothing to wait for.)
                time.sleep(0.15)
            old_ports = h.port_map[m.old_color]
            if p.after == "standby":
                # The old color stays warm, unserved: a rollback inside the window is one
                # health answer and a switch. The host stops it by itself when it ends.
                h.services.schedule_drain(m.old_color, old_ports, p.standby_seconds,
                                          p.drain_seconds)
                self.consul(h, consul.plan_standby(self.config, color=m.old_color,
                                                   ports=old_ports, release=m.old_release),
                            "maintenance")
                standby = {"color": m.old_color, "release": m.old_release,
                           "until": round(time.time() + p.standby_seconds, 3)}
            else:
                # With run.drain_timeout_long the host stops it once its clients' long
                # connections close (or at that timeout); the deploy does not wait.
                h.services.schedule_drain(m.old_color, old_ports, 0, p.drain_seconds)
                self.consul(h, consul.plan_deregister(self.config, color=m.old_color,
                                                      ports=old_ports), "deregistration")
            if p.drain_seconds and m.old_release:
                start = time.time() + (p.standby_seconds if p.after == "standby" else 0)
                draining = {"color": m.old_color, "release": m.old_release,
                            "ports": list(old_ports), "from": round(start, 3),
                            "until": round(start + p.drain_seconds, 3)}
        if p.drift:
            m.step = "stop drift"
            for color in ("blue", "green"):
                h.services.stop(color, p.drift)
                self.consul(h, consul.plan_deregister(self.config, color=color,
                                                      ports=p.drift), "deregistration")
            m.notes.append(f"stopped this app's instances left on {_ports(p.drift)}")
        m.step = "record"
        h.services.enable(m.new_color, p.drift, root=self.project.root)
        h.link(h.paths.current, f"releases/{m.release}", later=True)
        history = [r for r in h.state.get("history", []) if r != m.release] + [m.release]
        previous = ({"release": m.old_release, "color": m.old_color}
                    if m.old_release else h.state.get("previous"))
        h.write_state(later=True, live={"release": m.release, "color": m.new_color},
                      previous=previous,
                      history=history[-50:], ports=p.ports, standby=standby, draining=draining,
                      site=site_digest(self.config, p.ports, h.nginx.lua))
        h.live_color, h.live_release = m.new_color, m.release
        removed = h.remove_releases(p.prune)
        if removed:
            m.notes.append(f"pruned {', '.join(removed)}")
        self.hook_remote(h, self.config.deploy.hooks.post_deploy_remote, m)
        h.t.settle()  # the records above, sent without waiting for each answer
        m.step = "done"

    def undo(self, m: Move) -> None:
        """Put a host back as it was: nginx to the old color (still running until finish),
        the new color stopped, or back to standby if it was one."""
        h = m.host
        if not m.launched and not m.switched:
            # Only staged (the release and its environment on disk): whatever ran on the
            # new color (the warm standby) still runs as it did.
            return
        new_ports = list(m.plan.ports[m.new_color])
        if m.before.get("ports"):
            h.use_ports(m.before["ports"])  # the site as it was: a Lua flip back
        if m.switched and m.old_color is not None:
            h.nginx.switch(m.old_color, m.old_release or "previous", self.project.root)
            m.switched = False
        elif m.switched:
            # First deploy: there was nothing before; stop serving the failed release.
            h.t.run(_rm(h.nginx.site_path))
            h.nginx.reload()
        if self.config.processes:
            runner = processes.for_host(h)
            if m.new_color != m.old_color:
                runner.stop(m.new_color)
            if m.stopped_workers and m.old_color is not None:
                # The singletons stopped for the new ones: the old release's, back.
                runner.start_workers(m.old_color, m.stopped_workers)
                m.stopped_workers = []
        if m.new_color == m.old_color:
            return
        if m.old_color is not None and m.old_release is not None:
            # The old color serves again: back in the catalog's healthy answers.
            self.consul(h, consul.plan_register(
                self.config, release=m.old_release, color=m.old_color,
                ports=list(h.port_map.get(m.old_color, [])), address=address(h),
                env=self.env.name), "registration")
        before = m.before.get("standby")
        if m.plan.start == "warm" and isinstance(before, dict) and \
                float(before.get("until", 0)) > time.time() + 1:
            # It was the warm standby: it stays one, for what is left of its window.
            h.services.schedule_stop(m.new_color, new_ports,
                                     float(before["until"]) - time.time())
            self.consul(h, consul.plan_standby(self.config, color=m.new_color,
                                               ports=new_ports, release=m.release),
                        "maintenance")
            h.t.settle()
            return
        h.services.stop(m.new_color, new_ports)
        self.consul(h, consul.plan_deregister(self.config, color=m.new_color,
                                              ports=new_ports), "deregistration")

    def use_consul_token(self, values: dict[str, str] | None = None) -> None:
        """consul.token_env's token for the agent calls (the environment is read, secrets
        included, only when a token is configured and no values were given)."""
        if not self.config.consul.enabled or not self.config.consul.token_env:
            return
        if values is None:
            values = env_values(self.project, self.env)
        self.consul_token = consul.acl_token(self.config, values)

    def consul_register(self, m: Move) -> None:
        """Before the switch: the new color's instances registered with the host's Consul
        agent; a failure fails this host's prepare, so no traffic moves to it."""
        if not self.config.consul.enabled:
            return
        h = m.host
        m.step = "consul register"
        try:
            # A canary's instances are their own track: whatever discovers the stable
            # track (a balancer, a client) never sends them unweighted traffic.
            consul.apply(h.t, self.config.consul.agent, consul.plan_register(
                self.config, release=m.release, color=m.new_color,
                ports=list(m.plan.ports[m.new_color]), address=address(h),
                track="canary" if self.command == "canary start" else "stable",
                env=self.env.name), "registration", self.consul_token)
        except ApplyError as e:
            raise StepFailed(h.name, "consul register", e.message) from None

    def consul(self, h: Host, calls: list[consul.Call], what: str) -> None:
        """After the switch or in an undo: the catalog follows, but a failure there never
        stops a drain or a restore; it is said, and Consul's own check settles it."""
        try:
            consul.apply(h.t, self.config.consul.agent, calls, what, self.consul_token)
        except ApplyError as e:
            ui.warn(e.message)

    def hook_remote(self, h: Host, commands: list[str], m: Move) -> None:
        from goship.command import Cmd

        for c in commands:
            script = (f"GOSHIP_RELEASE={_sq(m.release)} GOSHIP_ENV={_sq(self.env.name)} "
                      f"GOSHIP_HOST={_sq(h.name)}; export GOSHIP_RELEASE GOSHIP_ENV "
                      f"GOSHIP_HOST; {c}")
            res = h.t.run(Cmd.of("sh", "-c", script), timeout=300)
            if not res.ok:
                raise StepFailed(h.name, f"hook `{c}`", (res.stderr or res.stdout).strip())

    def hooks_local(self, commands: list[str], release: str) -> None:
        for c in commands:
            env = {**os.environ, "GOSHIP_RELEASE": release, "GOSHIP_ENV": self.env.name}
            res = subprocess.run(c, shell=True, env=env, cwd=self.project.root,  # noqa: S602
                                 check=False)
            if res.returncode != 0:
                raise ApplyError(f"hook `{c}` exited {res.returncode}")

    # ---- the whole fleet ---------------------------------------------------------------
    def release(self, hosts: list[Host], moves: list[Move], *, env_values: dict[str, str],
                action: str, step: ReleaseStep | None = None) -> Outcome:
        started = time.monotonic()
        self.use_consul_token(env_values)
        # Checked on every host before the lock or anything else touches one.
        for h in hosts:
            h.nginx.check_tls()
        lock = Lock(hosts, f"goship {action} {self.env.name}", self.force)
        self._acquire(lock)
        for note in lock.notes:
            ui.warn(note)
        stop = threading.Event()
        beat = threading.Thread(target=self._beat, args=(lock, stop), daemon=True)
        beat.start()
        try:
            strategy = self.config.deploy.strategy
            if strategy == "rolling":
                outcome = self._rolling(moves, env_values, action, started, step)
            else:
                outcome = self._bluegreen(moves, env_values, action, started, step)
            if outcome.ok:
                self.write_file_sd(moves)
            return outcome
        finally:
            stop.set()
            lock.release()

    def write_file_sd(self, moves: list[Move]) -> None:
        """metrics.file_sd: Prometheus's targets follow the live color and release."""
        target = self.config.metrics.file_sd
        if not target:
            return
        from goship.render.inputs import RenderInput
        from goship.render.monitoring import file_sd, write_file_sd

        r = RenderInput(config=self.config, root=self.project.root, env=self.env.name,
                        hosts=[address(m.host) for m in moves])
        live = {address(m.host): (m.serving[0] or m.new_color, m.serving[1] or m.release)
                for m in moves}
        path = self.project.root / target
        write_file_sd(path, file_sd(r, live))
        ui.info(f"prometheus targets: {path}")

    def _acquire(self, lock: Lock) -> None:
        from goship.deploy.lock import acquire_waiting

        acquire_waiting(lock.acquire, self.wait)

    @contextmanager
    def beating(self, lock: Lock) -> Iterator[None]:
        """The lock's heartbeat while the block runs (a release command may outlast
        deploy.lock_ttl)."""
        stop = threading.Event()
        threading.Thread(target=self._beat, args=(lock, stop), daemon=True).start()
        try:
            yield
        finally:
            stop.set()

    def _beat(self, lock: Lock, stop: threading.Event) -> None:
        interval = max(2.0, self.config.deploy.lock_ttl / 4)
        while not stop.wait(interval):
            lock.heartbeat()

    def _bluegreen(self, moves: list[Move], env_values: dict[str, str], action: str,
                   started: float, step: ReleaseStep | None = None) -> Outcome:
        """Every host starts and gates the new release; only when all are healthy does
        any host switch; a failed switch anywhere switches every host back."""
        try:
            failed = self.prepare_all(moves, env_values, step)
            if failed is None:
                failed, _ = self._phase(moves, self.switch)
            if failed is not None:
                raise failed
        except (GoshipError, KeyboardInterrupt) as e:
            return self._fail(action, moves, started, e, self._undo_all(moves))
        failed, _ = self._phase(moves, self.finish)
        if failed is not None:
            # Traffic is on the new release everywhere; what is left is housekeeping.
            ui.warn(f"after the switch: {failed.message}")
        return self._outcome(action, moves, started, ok=True)

    def _rolling(self, moves: list[Move], env_values: dict[str, str], action: str,
                 started: float, step: ReleaseStep | None = None) -> Outcome:
        by_name = {m.host.name: m for m in moves}
        finished: list[Move] = []
        failures = 0
        try:
            # Once, before the first batch starts anything (its host staged first).
            self.release_step(moves, step, env_values)
        except (GoshipError, KeyboardInterrupt) as e:
            return self._fail(action, moves, started, e, self._undo_all(moves))
        for i, names in enumerate(batches(self.config, [m.host.name for m in moves])):
            batch = [by_name[n] for n in names]
            ui.info(f"batch {i + 1}: {', '.join(names)}")
            try:
                failed, bad = self._phase(batch, lambda m: self.prepare(m, env_values))
                if failed is None:
                    failed, bad = self._phase(batch, self.switch)
                if failed is None:
                    self._phase(batch, self.finish)
                    finished.extend(batch)
                    continue
                failures += len(bad)
                if failures > self.config.deploy.max_failures:
                    raise failed
                restored = self._undo_all(batch)
                for m in batch:
                    m.restored = True
                ui.warn(f"{failed.message}; within deploy.max_failures ({failures} of "
                        f"{self.config.deploy.max_failures}), going on with the next batch "
                        f"(restored {', '.join(restored)})")
            except (GoshipError, KeyboardInterrupt) as e:
                restored = self._undo_all(batch)
                restored += self._restore_finished(finished, env_values)
                return self._fail(action, moves, started, e, restored)
        return self._outcome(action, moves, started, ok=True)

    def _phase(self, moves: list[Move], fn: Callable[[Move], None]
               ) -> tuple[StepFailed | None, list[Move]]:
        """Run one step on every host; the first failure (by host order) and who failed."""
        first: StepFailed | None = None
        bad = []
        for m, err in parallel(moves, fn, self.limit):
            if err is None:
                continue
            if isinstance(err, KeyboardInterrupt):
                raise err
            wrapped = err if isinstance(err, StepFailed) else StepFailed(
                m.host.name, m.step, err.message if isinstance(err, GoshipError) else
                f"{type(err).__name__}: {err}")
            m.notes.append(wrapped.detail)
            bad.append(m)
            first = first or wrapped
        return first, bad

    def _undo_all(self, moves: list[Move]) -> list[str]:
        restored = []
        for m, err in parallel(moves, self.undo, self.limit):
            if err is None:
                restored.append(m.host.name)
                m.host.journal({"action": self.command, "release": m.release,
                                "outcome": "restored", "serving": m.old_release})
            else:
                ui.warn(f"{m.host.name}: could not restore: {err}")
        return restored

    def _restore_finished(self, finished: list[Move], env_values: dict[str, str]) -> list[str]:
        """Hosts of earlier rolling batches already run the new release alone: bring their
        old release back the way a rollback does."""
        back = [Move(m.host, plan_host(self.config, m.host.view(), "rollback",
                                       m.old_release, None), None)
                for m in finished if m.old_release]
        if not back:
            return []

        def again(m: Move) -> None:
            self.prepare(m, env_values)
            self.switch(m)
            self.finish(m)

        for m, err in parallel(back, again, self.limit):
            if err is not None:
                ui.warn(f"{m.host.name}: could not restore {m.release}: {err}")
        return [m.host.name for m in back]

    def _outcome(self, action: str, moves: list[Move], started: float, *, ok: bool,
                 failure: str | None = None, restored: list[str] | None = None) -> Outcome:
        seconds = time.monotonic() - started
        hosts = {m.host.name: {
            "release": m.serving[1], "color": m.serving[0], "url": url(m.host),
            "previous": m.old_release, "step": m.step, "restored": m.restored,
            "timings": {k: round(v, 3) for k, v in m.timings.items()},
            "notes": m.notes} for m in moves}
        release = moves[0].release if moves else ""
        if ok:
            restored = [m.host.name for m in moves if m.restored]
            for m in moves:
                if not m.restored:  # the restored ones are journaled as such by the undo
                    m.host.journal({"action": action, "release": m.release,
                                    "from": m.old_release, "outcome": "ok",
                                    "seconds": round(seconds, 3),
                                    "timings": hosts[m.host.name]["timings"]})
        return Outcome(action, self.env.name, release, hosts, ok, seconds, failure,
                       restored or [])

    def _fail(self, action: str, moves: list[Move], started: float, e: BaseException,
              restored: list[str]) -> Outcome:
        if isinstance(e, KeyboardInterrupt):
            failure = "interrupted (Ctrl-C)"
        elif isinstance(e, GoshipError):
            failure = e.message
        else:
            failure = str(e)
        for m in moves:
            m.host.journal({"action": action, "release": m.release, "outcome": "failed",
                            "step": m.step, "error": failure, "serving": m.old_release})
        out = self._outcome(action, moves, started, ok=False, failure=failure,
                            restored=restored)
        if isinstance(e, KeyboardInterrupt):
            raise e
        return out


def address(h: Host) -> str:
    from goship.config.validators import split_host

    return "127.0.0.1" if h.local else split_host(getattr(h.t, "spec", h.name))[1]


def url(h: Host) -> str:
    addr = address(h)
    port = h.config.proxy.listen
    return f"http://{addr}/" if port == 80 else f"http://{addr}:{port}/"


def _ports(ports: list[int]) -> str:
    return ", ".join(str(p) for p in ports)


def _sq(v: str) -> str:
    import shlex

    return shlex.quote(v)


def _rm(path: str) -> Any:
    from goship.command import Cmd

    return Cmd.of("rm", "-f", path)


def build_artifacts(project: Project, env: Environment, arches: set[str], *,
                    allow_dirty: bool, skip_checks: bool) -> dict[str, Artifact]:
    from goship.build.pipeline import run_package

    result = run_package(project, env.config, targets=[f"linux/{a}" for a in sorted(arches)],
                         allow_dirty=allow_dirty, checks=not skip_checks)
    out = {}
    for p in result.packages:
        arch = p.target.split("/")[1]
        out[arch] = Artifact(p.release_id, result.build.plan.stamp.version, p.path.read_bytes(),
                             p.sha256)
    return out


def env_values(project: Project, env: Environment) -> dict[str, str]:
    """run.env, run.env_file (a sops one decrypted) and [secrets]: resolved here, in
    memory, before any host is touched, once per command (the balancer, the Consul token
    and the release all ask)."""
    from goship import secrets

    if "env" not in env.memo:
        values = secrets.resolve(project.root, env.config)
        if env.config.run.manager == "docker":
            from goship.deploy.docker import env_text

            env_text(values)  # a value Docker's env file cannot carry: refused here
        env.memo["env"] = values
    return dict(env.memo["env"])


def refuse_unbuilt(env: Environment) -> None:
    """Settings whose capability is not built yet stop the deploy before anything happens,
    rather than being silently ignored."""
    from goship.errors import NotYetError

    if env.config.deploy.strategy == "canary":
        raise NotYetError('deploy.strategy = "canary" (use `goship deploy ENV --canary`)', 7)


def refuse_during_canary(hosts: list[Host]) -> None:
    running = [h.name for h in hosts if h.state.get("canary")]
    if running:
        raise UsageError(f"a canary runs on {', '.join(running)}",
                         hint="`goship canary promote` or `goship canary abort` it first")


def release_host(env: Environment) -> dict[str, Any]:
    """plan_fleet's arguments for the release command: its host (validated against the
    environment's hosts when goship.toml loaded) and whether it runs as goship's user."""
    from goship.targets import kind

    name = release_command.resolve(env.target, env.config.deploy.release_host)
    return {"release_host": name, "local": kind(env).local}


def say_notes(plan: FleetPlan) -> None:
    """What the plan chose that a user should know before it happens (moved ports, a
    replaced standby, an environment not kept)."""
    for hp in plan.hosts:
        for note in hp.notes:
            ui.info(note if note.startswith(f"{hp.host}: ") else f"{hp.host}: {note}")


def views(hosts: list[Host], limit: int) -> list[HostView]:
    """Every host's facts for the plan, gathered in parallel."""
    got = each(hosts, lambda h: h.view(), limit)
    got.raise_first()
    return [got.succeeded[h.name] for h in hosts]


def deploy(project: Project, env: Environment, *, allow_dirty: bool = False,
           skip_checks: bool = False, force: bool = False, wait: bool = False,
           dry_run: bool = False) -> Outcome | FleetPlan:
    refuse_unbuilt(env)
    values = env_values(project, env)
    if env.config.run.manager == "docker":
        from goship.deploy.registry import credentials

        credentials(env.config.docker)  # a login without its password: before any host
    with fleet(env) as hosts:
        refuse_during_canary(hosts)
        refuse_processes(env, hosts)  # before the build: nothing to wait for
        arches = {h.facts.arch or "amd64" for h in hosts}
        d = Deployer(project, env, force=force, wait=wait, command="deploy")
        if not dry_run:
            d.hooks_local(env.config.deploy.hooks.pre_deploy, "")
        artifacts = build_artifacts(project, env, arches, allow_dirty=allow_dirty,
                                    skip_checks=skip_checks)
        return release_built(d, hosts, artifacts, values, dry_run=dry_run)


def refuse_processes(env: Environment, hosts: list[Host]) -> None:
    """[processes.*] run under systemd only: a host that would run the app under another
    manager (run.manager = "auto" without systemd) stops the command before any change."""
    procs = env.config.processes
    if not procs:
        return
    timed = sorted(n for n, p in procs.items() if p.schedule is not None)
    for h in hosts:
        manager = h.services.name
        if manager == "systemd" or (manager == "supervisord" and not timed):
            continue
        what = (f"processes.{timed[0]}.schedule needs a systemd timer" if timed and
                manager == "supervisord" else "[processes.*] need systemd or supervisord")
        raise UsageError(f"{h.name}: {what}; this host runs the app under {manager}",
                         hint="deploy to systemd hosts, or run the job from the host's cron "
                              "(the binary is BASE/APP/current/NAME)" if timed else
                              'set run.manager = "systemd" or "supervisord"')


REPLANS = 3  # with --wait: how many times the hosts are read again after another release


def replan_or_raise(d: Deployer, hosts: list[Host], e: HostChanged, attempt: int) -> None:
    """With --wait, the lock came free after another release ran: the hosts are read again
    and the plan made again (a few times at most). Without it, the error stands."""
    if not d.wait or attempt >= REPLANS:
        raise e
    ui.info(f"{e.message.split(':', 1)[0]}: another release ran while goship waited; "
            "reading the hosts again and planning again")
    for h in hosts:
        h.reread()


def release_built(d: Deployer, hosts: list[Host], artifacts: dict[str, Artifact],
                  values: dict[str, str], *, dry_run: bool = False) -> Outcome | FleetPlan:
    """Plan and release artifacts already built (by architecture) to connected hosts."""
    env = d.env
    refuse_processes(env, hosts)
    by_host = {h.name: artifacts[h.facts.arch or "amd64"] for h in hosts}
    for attempt in range(REPLANS + 1):
        plan = plan_fleet(env.config, env.name, views(hosts, d.limit), "deploy",
                          {n: a.release_id for n, a in by_host.items()},
                          {n: PlanArtifact(a.release_id, a.sha256) for n, a in by_host.items()},
                          **release_host(env))
        if dry_run:
            return plan
        say_notes(plan)
        moves = [Move(h, hp, by_host[h.name]) for h, hp in zip(hosts, plan.hosts, strict=True)]
        try:
            outcome = d.release(hosts, moves, env_values=values, action="deploy",
                                step=plan.release_command)
        except HostChanged as e:
            replan_or_raise(d, hosts, e, attempt)
            continue
        outcome.plan = plan.as_dict()
        if outcome.ok:
            d.hooks_local(env.config.deploy.hooks.post_deploy, outcome.release)
        return outcome
    raise AssertionError("unreachable: the last attempt returns or raises")


def rollback(project: Project, env: Environment, *, to: str | None = None,
             force: bool = False, wait: bool = False, dry_run: bool = False
             ) -> Outcome | FleetPlan:
    refuse_unbuilt(env)
    values = env_values(project, env)
    with fleet(env) as hosts:
        d = Deployer(project, env, force=force, wait=wait, command="rollback")
        for attempt in range(REPLANS + 1):
            refuse_during_canary(hosts)
            refuse_processes(env, hosts)
            targets = {}
            for h in hosts:
                target = to or (h.state.get("previous") or {}).get("release")
                if not target:
                    raise UsageError(f"{h.name}: no previous release to roll back to",
                                     hint="name one with --to RELEASE (`goship status` lists "
                                          "them)")
                if target == h.live_release:
                    raise UsageError(f"{h.name}: {target} is already live")
                targets[h.name] = target
            hv = views(hosts, d.limit)
            for v in hv:
                if targets[v.name] not in v.releases:
                    raise UsageError(f"{v.name}: release {targets[v.name]} is not on the host",
                                     hint="`goship status` lists the releases on each host")
            plan = plan_fleet(env.config, env.name, hv, "rollback", targets, {})
            if dry_run:
                return plan
            say_notes(plan)
            moves = [Move(h, hp, None) for h, hp in zip(hosts, plan.hosts, strict=True)]
            try:
                outcome = d.release(hosts, moves, env_values=values, action="rollback")
            except HostChanged as e:
                replan_or_raise(d, hosts, e, attempt)
                continue
            outcome.plan = plan.as_dict()
            return outcome
        raise AssertionError("unreachable: the last attempt returns or raises")
