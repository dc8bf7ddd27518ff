"""Canary releases across hosts: start beside stable, route by rules and weight, walk the
steps with analysis, promote or abort. Stable is never scaled down during a canary, so an
abort needs no warm-up: weight 0 on every host at once, then the canary stops."""

from __future__ import annotations

import time
from typing import Any

from goship.canary import metrics, redis_sync
from goship.canary import redis_state as redis_state_mod
from goship.canary import walk as walk_mod
from goship.canary.routing import Rule, Rules
from goship.canary.walk import Report
from goship.command import Cmd
from goship.config import Environment, Project
from goship.deploy import consul
from goship.deploy.engine import (
    REPLANS,
    Deployer,
    Move,
    address,
    build_artifacts,
    env_values,
    parallel,
    release_host,
    replan_or_raise,
    say_notes,
    views,
)
from goship.deploy.host import Host, Lock, now
from goship.deploy.layout import COLORS, other
from goship.deploy.lock import HostChanged
from goship.deploy.plan import Artifact as PlanArtifact
from goship.deploy.plan import plan_fleet, plan_host, site_digest
from goship.errors import ApplyError, GoshipError, NotYetError, UsageError
from goship.transport.base import Transport
from goship.ui import ui


def control(h: Host, method: str, body: str | None = None) -> str:
    return control_at(h.t, h.nginx.control, method, body)


def control_at(t: Transport, socket: str, method: str, body: str | None = None) -> str:
    """The canary routing of the nginx listening on `socket` (PUT rules, DELETE, GET)."""
    args = ["curl", "-s", "-f", "--max-time", "5", "--unix-socket", socket,
            "-X", method, "http://goship/canary"]
    cmd = Cmd.of(*args, *(["--data-binary", "@-"] if body is not None else []))
    if body is not None:
        cmd = cmd.with_stdin(body.encode())
    res = t.run(cmd)
    if not res.ok:
        raise ApplyError(f"{t.name}: nginx's control socket refused the canary change "
                         f"(curl exit {res.code})")
    return res.stdout


def current(h: Host) -> dict[str, Any] | None:
    c = h.state.get("canary")
    return c if isinstance(c, dict) else None


def canary_color(h: Host, rules: Rules) -> str:
    """The color the canary runs on on this host: the one its stable release did not run
    on when it started. Hosts need not share colors (a rolling deploy that stopped, a host
    skipped or rolled back alone): the rules' color is only the first host's."""
    stable = (current(h) or {}).get("stable_color")
    return other(stable) if stable in COLORS else rules.color


def require_lua(hosts: list[Host]) -> None:
    for h in hosts:
        if not h.nginx.lua:
            raise NotYetError(f"canary routing on {h.name} without the nginx Lua module "
                              "(install libnginx-mod-http-lua)", 7)


def parse_rules(headers: tuple[str, ...], header_regex: tuple[str, ...],
                cookies: tuple[str, ...]) -> tuple[Rule, ...]:
    out = []
    for kind, mode, items in (("header", "exact", headers), ("header", "regex", header_regex),
                              ("cookie", "exact", cookies)):
        for item in items:
            name, sep, value = item.partition("=")
            if not sep or not name or "\t" in item or "\n" in item:
                raise UsageError(f"--{kind}{'-regex' if mode == 'regex' else ''} {item!r}: "
                                 "expected NAME=VALUE")
            if mode == "regex":
                import re

                try:
                    re.compile(value)
                except re.error as e:
                    raise UsageError(f"--header-regex {item!r}: {e}") from None
            out.append(Rule(kind, name, mode, value))
    return tuple(out)


def parse_allow(items: tuple[str, ...]) -> tuple[tuple[str, ...], tuple[str, ...]]:
    import ipaddress

    ids, cidrs = [], []
    for group in items:
        for item in (x.strip() for x in group.split(",")):
            if not item:
                continue
            try:
                ipaddress.ip_network(item, strict=False)
                cidrs.append(item)
            except ValueError:
                if not item.replace("-", "").replace("_", "").isalnum():
                    raise UsageError(f"--allow {item!r}: expected user ids or CIDRs") from None
                ids.append(item)
    return tuple(ids), tuple(cidrs)


def redis_state(project: Project, env: Environment) -> redis_sync.RedisState | None:
    """canary.state = "redis": where the routing is written (None: pushed to each host)."""
    c = env.config.canary
    if c.state != "redis" or not c.redis:
        return None
    password = None
    if c.redis_password_var:
        password = env_values(project, env).get(c.redis_password_var)
        if not password:
            raise UsageError(f"canary.redis_password_var = {c.redis_password_var!r}: not set "
                             "in run.env or run.env_file",
                             hint="add it to the env file, or put the password in the URL")
    return redis_sync.from_config(env.config.app.name, env.name, c.redis, password)


class CanaryEngine:
    def __init__(self, project: Project, env: Environment, *, force: bool = False,
                 wait: bool = False) -> None:
        self.project, self.env, self.force, self.wait = project, env, force, wait
        self.th = env.config.canary
        self.limit = env.config.deploy.concurrency
        self.redis = redis_state(project, env)

    # ---- start -------------------------------------------------------------------------
    def start(self, hosts: list[Host], rules_args: dict[str, Any], weight: float, *,
              allow_dirty: bool, skip_checks: bool) -> Rules:
        require_lua(hosts)
        if self.env.config.processes:
            from goship.errors import NotYetError

            # Which release's workers run during a canary is not decided yet: refused
            # before anything is built or changed rather than half done.
            raise NotYetError("a canary of an app with [processes.*] (use `goship deploy`)",
                              18)
        self._startable(hosts)
        arts = build_artifacts(self.project, self.env, {h.facts.arch or "amd64" for h in hosts},
                               allow_dirty=allow_dirty, skip_checks=skip_checks)
        by_host = {h.name: arts[h.facts.arch or "amd64"] for h in hosts}
        deployer = Deployer(self.project, self.env, force=self.force, wait=self.wait,
                            command="canary start")
        for attempt in range(REPLANS + 1):
            if attempt:
                self._startable(hosts)
            fleet = plan_fleet(self.env.config, self.env.name, views(hosts, self.limit),
                               "canary", {n: a.release_id for n, a in by_host.items()},
                               {n: PlanArtifact(a.release_id, a.sha256)
                                for n, a in by_host.items()}, **release_host(self.env))
            say_notes(fleet)
            moves = [Move(h, hp, by_host[h.name])
                     for h, hp in zip(hosts, fleet.hosts, strict=True)]
            if any(m.release == m.old_release for m in moves):
                raise UsageError(f"{moves[0].release} is already the stable release",
                                 hint="commit a change to canary a new version")
            try:
                lock = self._lock(hosts, "goship canary start")
                break
            except HostChanged as e:
                # --wait: another release ran while this one waited: read the hosts again
                replan_or_raise(deployer, hosts, e, attempt)
        else:
            raise AssertionError("unreachable: the last attempt breaks or raises")
        values = env_values(self.project, self.env)
        deployer.use_consul_token(values)
        try:
            # deploy.release_command runs here too: the canary's code meets its schema.
            with deployer.beating(lock):
                failed = deployer.prepare_all(moves, values, fleet.release_command)
            if failed is None:
                # The canary's ports may have moved (port preflight): the site must name them
                # before the rules send traffic there. Still routed to the stable color.
                failed, _ = deployer._phase(moves, self._site_follows_ports)
            if failed is not None:
                parallel(moves, lambda m: m.host.services.stop(m.new_color), self.limit)
                raise failed
            rules = Rules(release=moves[0].release, color=moves[0].new_color, weight=weight,
                          rules=rules_args["rules"], allow_ids=rules_args["allow_ids"],
                          allow_cidrs=rules_args["allow_cidrs"],
                          id_cookie=self.th.id_cookie or "", id_header=self.th.id_header or "")
            offsets = {}
            for m in moves:
                offsets[m.host.name] = metrics.log_size(m.host)
            try:
                self._push(hosts, rules)
            except ApplyError:
                if self.redis is not None:  # nothing routes to the canary: it goes
                    parallel(moves, lambda m: m.host.services.stop(m.new_color), self.limit)
                raise
            for h in hosts:
                h.write_state(canary={"rules": rules.as_dict(), "started": now(),
                                      "stable": h.live_release, "stable_color": h.live_color,
                                      "log_offset": offsets[h.name]},
                              ports={c: list(p) for c, p in h.port_map.items()},
                              standby=None)
                h.journal({"action": "canary start", "release": rules.release,
                           "stable": h.live_release, "weight": weight,
                           "rules": [r.__dict__ for r in rules.rules]})
            return rules
        finally:
            lock.release()

    def _site_follows_ports(self, m: Move) -> None:
        h = m.host
        # canary.state = "redis" set since the last deploy: the site gets its poller
        poller = self.redis is not None and redis_state_mod.MARKER not in (
            h.nginx.read_site() or "")
        if (h.nginx.site_ports != h.port_map or poller) and h.live_color and h.live_release:
            m.step = "nginx site"
            h.nginx.switch(h.live_color, h.live_release, self.project.root)
            h.write_state(site=site_digest(self.env.config, h.port_map, h.nginx.lua))

    @staticmethod
    def _startable(hosts: list[Host]) -> None:
        """Refused (nothing changed) when a canary already runs or nothing is live."""
        running = [h.name for h in hosts if current(h)]
        if running:
            raise UsageError(f"a canary already runs on {', '.join(running)}",
                             hint="`goship canary promote` or `goship canary abort` first")
        if any(h.live_color is None for h in hosts):
            raise UsageError("a canary needs a stable release to compare with",
                             hint="run `goship deploy` first")

    def _lock(self, hosts: list[Host], command: str) -> Lock:
        from goship.deploy.lock import acquire_waiting

        lock = Lock(hosts, command, self.force)
        acquire_waiting(lock.acquire, self.wait)  # --wait: again while another holds it
        return lock

    def _push(self, hosts: list[Host], rules: Rules | None) -> None:
        if self.redis is not None:
            self._publish(hosts, rules)
            return
        body = rules.control_body() if rules is not None else ""
        for _, err in parallel(hosts, lambda h: control(h, "PUT", body), self.limit):
            if err is not None:
                raise err

    def _publish(self, hosts: list[Host], rules: Rules | None) -> list[str]:
        """canary.state = "redis": one write to Redis (fails the command, nothing changed),
        then each host's restart file, then until every nginx applied it (bounded). Returns
        the hosts that did not apply it in time."""
        store = self.redis
        if store is None:
            raise ApplyError('canary.state is not "redis"')
        version, body = store.publish(rules)
        for h, err in parallel(hosts, lambda h: store.install(h, version, body), self.limit):
            if err is not None:
                ui.warn(f"{h.name}: the restart copy of the routing: {err}")
        late = redis_sync.wait_applied(hosts, version, self.limit)
        if late:
            ui.warn(f"{', '.join(late)}: nginx has not applied routing version {version} "
                    f"after {redis_sync.WAIT_SECONDS:g}s (see `goship status`)")
        return late

    # ---- weight, status ----------------------------------------------------------------
    def set_weight(self, hosts: list[Host], weight: float) -> Rules:
        rules = self._rules(hosts)
        new = Rules(**{**rules.__dict__, "weight": weight})
        self._push(hosts, new)
        for h in hosts:
            c = current(h) or {}
            h.write_state(canary={**c, "rules": new.as_dict()})
            h.journal({"action": "canary weight", "release": new.release, "weight": weight})
        return new

    def _rules(self, hosts: list[Host]) -> Rules:
        states = [current(h) for h in hosts]
        if not all(states):
            missing = [h.name for h, s in zip(hosts, states, strict=True) if not s]
            raise UsageError(f"no canary runs on {', '.join(missing)}",
                             hint="start one with `goship canary start`")
        return Rules.from_dict(states[0]["rules"])  # type: ignore[index]

    def tally(self, hosts: list[Host], offsets: dict[str, int]) -> metrics.Tally:
        total = metrics.Tally()
        results: dict[str, tuple[metrics.Tally, int]] = {}

        def one(h: Host) -> None:
            results[h.name] = metrics.read_since(h, offsets[h.name])

        for _, err in parallel(hosts, one, self.limit):
            if err is not None:
                raise err
        for name, (t, off) in results.items():
            total.merge(t)
            offsets[name] = off
        return total

    def status(self, hosts: list[Host]) -> dict[str, Any]:
        rules = self._rules(hosts)
        offsets = {h.name: int((current(h) or {}).get("log_offset", 0)) for h in hosts}
        t = self.tally(hosts, offsets)
        return {"rules": rules.as_dict(), "stable": (current(hosts[0]) or {}).get("stable"),
                "canary": t.canary.summary(), "stable_numbers": t.stable.summary(),
                "hosts": [h.name for h in hosts]}

    # ---- end ---------------------------------------------------------------------------
    def abort(self, hosts: list[Host], reason: str) -> float:
        """Weight 0 everywhere at once; then stop the canary. Returns seconds to weight 0."""
        started = time.monotonic()
        rules = self._rules(hosts)
        late = [h.name for h in hosts]
        if self.redis is not None:
            # A failed write fails the abort: the canary keeps running, routed as before.
            late = self._publish(hosts, None)
        for h, err in parallel([h for h in hosts if h.name in late],
                               lambda h: control(h, "DELETE"), self.limit):
            if err is not None:
                ui.warn(f"{h.name}: {err}")
        to_zero = time.monotonic() - started
        time.sleep(0.3)  # requests routed just before are still connecting

        deployer = Deployer(self.project, self.env, force=self.force, command="canary abort")
        try:
            deployer.use_consul_token()
        except GoshipError as e:  # an abort goes on: Consul's own check settles the entry
            ui.warn(f"consul token: {e.message}")

        def finish(h: Host) -> None:
            color = canary_color(h, rules)
            ports = list(h.port_map.get(color, []))
            h.services.stop(color)
            deployer.consul(h, consul.plan_deregister(self.env.config, color=color,
                                                      ports=ports), "deregistration")
            c = current(h) or {}
            h.write_state(canary=None)
            h.journal({"action": "canary abort", "release": rules.release,
                       "stable": c.get("stable"), "reason": reason})

        for h, err in parallel(hosts, finish, self.limit):
            if err is not None:
                ui.warn(f"{h.name}: {err}")
        return to_zero

    def promote(self, hosts: list[Host]) -> None:
        rules = self._rules(hosts)
        deployer = Deployer(self.project, self.env, force=self.force, command="canary promote")
        deployer.use_consul_token()

        def switch(h: Host) -> None:
            color = canary_color(h, rules)
            h.nginx.switch(color, rules.release, self.project.root)
            control(h, "DELETE")
            # The canary's instances are the stable track now (the old color goes into
            # maintenance or leaves in `finish`, as after a deploy's switch).
            deployer.consul(h, consul.plan_register(
                self.env.config, release=rules.release, color=color,
                ports=list(h.port_map.get(color, [])), address=address(h),
                env=self.env.name), "registration")

        if self.redis is not None:
            self.redis.check()  # Redis answers before any host switches
        lock = self._lock(hosts, "goship canary promote")
        try:
            # Planned while the stable color is still live: it becomes the standby.
            plans = [plan_host(self.env.config, v, "promote", rules.release, None)
                     for v in views(hosts, self.limit)]
            for _, err in parallel(hosts, switch, self.limit):
                if err is not None:
                    raise err
            if self.redis is not None:
                # Every host already cleared its canary dict (above); Redis says so too,
                # or a restarted nginx would bring the canary's routing back.
                try:
                    self._publish(hosts, None)
                except ApplyError as e:
                    ui.warn(f"after the promotion: {e.message}")
            time.sleep(0.3)
            moves = []
            for h, hp in zip(hosts, plans, strict=True):
                h.state["canary"] = None
                moves.append(Move(h, hp, None))
            failed, _ = deployer._phase(moves, deployer.finish)
            if failed is not None:
                ui.warn(f"after the promotion: {failed.message}")
            for m in moves:
                m.host.journal({"action": "canary promote", "release": rules.release,
                                "from": m.old_release, "outcome": "ok"})
        finally:
            lock.release()

    # ---- the automatic walk ------------------------------------------------------------
    def walk(self, hosts: list[Host], steps: list[float]) -> Report:
        return walk_mod.walk(_HostTracks(self, hosts), self._rules(hosts), steps, self.th)

    def _crashed(self, hosts: list[Host], rules: Rules) -> str | None:
        for h in hosts:
            dead = [p for p, pid in h.services.pids(canary_color(h, rules)).items()
                    if pid is None]
            if dead:
                return f"{h.name}: canary instance on port {dead[0]} is not running"
        return None



class _HostTracks:
    """The walk's calls on hosts: each host's nginx log, the canary color's processes."""

    def __init__(self, engine: CanaryEngine, hosts: list[Host]) -> None:
        self.engine, self.hosts = engine, hosts
        self.offsets = {h.name: int((current(h) or {}).get("log_offset", 0)) for h in hosts}
        self.rules = engine._rules(hosts)

    def set_weight(self, weight: float) -> Rules:
        self.rules = self.engine.set_weight(self.hosts, weight)
        return self.rules

    def tally(self) -> metrics.Tally:
        return self.engine.tally(self.hosts, self.offsets)

    def crashed(self) -> str | None:
        return self.engine._crashed(self.hosts, self.rules)

    def abort(self, reason: str) -> float:
        return self.engine.abort(self.hosts, reason)

    def promote(self) -> None:
        self.engine.promote(self.hosts)
