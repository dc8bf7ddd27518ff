"""A canary on Kubernetes: the new release as a second Deployment (`APP-canary`, the
canary track of `goship render kubernetes`) beside the stable one, each behind its own
NodePort Service, and goship's edge (`proxy.lb.hosts`, render/edge.py) routing between
them with the canary Lua hosts use: rules, weight, stickiness. The walk and its analysis
are the hosts' (canary.walk), fed by the edge's access log. Promote rolls the stable
Deployment to the canary's release, then the edge's weight goes to 0 and the canary is
deleted; abort sets weight 0 on every edge at once, then deletes it.

Why an edge and not the replica ratio: pods of both releases behind one Service split by
pod count (1 canary of 3 pods: 25%, never 1%), by connection rather than request, with
no header or cookie rule, and no per-track numbers to analyse. An ingress controller's
canary annotations need a controller image the lab cannot pull; the edge is nginx on
hosts, which goship already runs and measures."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from goship.canary import metrics
from goship.canary.engine import control_at
from goship.canary.routing import Rules
from goship.canary.walk import Report, walk
from goship.errors import ApplyError, UsageError
from goship.kube import plan
from goship.render import edge
from goship.render import lb as render_lb
from goship.ui import ui

if TYPE_CHECKING:
    from goship.kube.cluster import Cluster
    from goship.kube.target import KubeTarget
    from goship.transport.base import Transport

# What the canary's pods read and pull with, then the canary itself (render_kubernetes's).
ENV_FILES = ("configmap.yaml", "files.yaml", "secret.yaml", "registry.yaml")
CANARY_FILES = ("canary/deployment.yaml", "canary/service.yaml")
STATE = "goship.dev/canary"  # the canary's rules and where its numbers start, on its Deployment
# A pod of the canary in one of these is not serving: the fast guard aborts.
BROKEN = ("CrashLoopBackOff", "Error", "CreateContainerConfigError", "ErrImagePull",
          "ImagePullBackOff", "RunContainerError")


@dataclass(frozen=True)
class Start:
    """What `deploy --canary` does on the cluster, from what is there."""

    action: str  # "canary" | "first" (nothing to compare with: a rolling deploy)
    reason: str


def decide(app: str, stable: dict[str, Any] | None, colors: dict[str, Any],
           canary: dict[str, Any] | None, version: str | None) -> Start:
    """Pure: the stable Deployment, the blue-green colors, a canary left over, and the
    release being shipped (None before it is built)."""
    if stable is None:
        if any(colors.values()):
            raise UsageError(f"a canary on Kubernetes runs beside the rolling deployment/{app}; "
                             "this app runs blue-green",
                             hint='deploy once with deploy.strategy = "canary" (or '
                                  '"rolling") without --canary: the colors are retired')
        return Start("first", "no stable release yet: this one is deployed rolling and "
                              "becomes the stable track")
    if canary is not None:
        raise UsageError(f"a canary already runs: deployment/{app}-canary",
                         hint=f"`goship canary abort ENV` first (or delete "
                              f"deployment/{app}-canary)")
    live = plan.release_of(stable)
    if version is not None and live == version:
        raise UsageError(f"{version} is already the stable release",
                         hint="commit a change to canary a new version")
    return Start("canary", f"against stable {live or 'unknown'}")


def state_of(canary: dict[str, Any] | None) -> dict[str, Any] | None:
    """The state saved on the canary's Deployment (EdgeTracks.save), None before its
    routing is set."""
    raw = ((canary or {}).get("metadata", {}).get("annotations") or {}).get(STATE)
    return dict(json.loads(raw)) if raw else None


def broken(pods: list[plan.Pod]) -> str | None:
    """Pure: why the canary's pods are not serving (the fast guard), or None."""
    live = [p for p in pods if not p.terminating]
    if not live:
        return "no canary pod is running"
    for p in live:
        if p.waiting in BROKEN:
            return f"canary pod {p.name}: {p.waiting}"
        if p.restarts:
            return f"canary pod {p.name} restarted ({p.restarts}x)"
    return None


class EdgeTracks:
    """canary.walk's calls on a cluster behind goship's edge."""

    def __init__(self, target: KubeTarget, cluster: Cluster, edges: list[Transport],
                 rules: Rules, image: str = "", state: dict[str, Any] | None = None) -> None:
        self.target, self.cluster, self.edges, self.rules = target, cluster, edges, rules
        self.image = image  # the digest reference promote rolls stable to
        app = target._cfg.app.name
        self.app, self.log, self.socket = app, render_lb.access_log(app), edge.control_socket(app)
        self.state = state  # as saved on the canary's Deployment
        # Where each edge's numbers for this canary start (tally reads from there on).
        self.offsets = {e.name: int((state or {}).get("offsets", {}).get(e.name, 0))
                        for e in edges}
        self.done = False  # promoted, or taken down by promote's failure

    def _each(self, method: str, body: str | None = None) -> None:
        from goship.deploy.engine import parallel

        errors = [err for _, err in parallel(
            self.edges, lambda e: control_at(e, self.socket, method, body), len(self.edges))
            if err is not None]
        if errors:
            raise errors[0]

    def route(self, rules: Rules) -> None:
        self._each("PUT", rules.control_body())
        self.rules = rules

    def set_weight(self, weight: float) -> Rules:
        self.route(Rules(**{**self.rules.__dict__, "weight": weight}))
        self.save()
        return self.rules

    def save(self, **extra: Any) -> None:
        """The canary's state on its Deployment (what `goship canary status | set-weight |
        promote | explain` read), as a host keeps it in its state file."""
        text = json.dumps({**(self.state or {}), "rules": self.rules.as_dict(), **extra})
        self.cluster.annotate(f"{self.app}-canary", {STATE: text})
        # a copy of what was written, sharing nothing (tally moves self.offsets on)
        self.state = json.loads(text)

    def tally(self) -> metrics.Tally:
        total = metrics.Tally()
        for e in self.edges:
            t, self.offsets[e.name] = metrics.read_log(e, self.log, self.offsets[e.name])
            total.merge(t)
        return total

    def crashed(self) -> str | None:
        from goship.kube.target import _pod

        return broken([_pod(p) for p in self.cluster.pods(self.target._selector("canary"))])

    def clear(self) -> float:
        """Weight 0 on every edge at once (nothing routes to the canary); seconds taken."""
        t0 = time.monotonic()
        self._each("DELETE")
        return time.monotonic() - t0

    def remove(self) -> None:
        time.sleep(0.5)  # requests routed just before the weight went to 0 finish
        name = f"{self.app}-canary"
        self.cluster.delete_deployment(name)
        self.cluster.delete_service(name)
        ui.info(f"deleted deployment/{name} and service/{name}")

    def abort(self, reason: str) -> float:
        ui.warn(f"canary {self.rules.release}: aborting: {reason}")
        seconds = self.clear()
        ui.info(f"weight 0 on every edge ({', '.join(e.name for e in self.edges)})")
        self.remove()
        return seconds

    def _old_gone(self) -> None:
        """Until the stable pods of the old release have left (preStop and drain): the
        canary's clients, sent back to stable next, never meet the old release again.
        Bounded by the pods' grace period; past it, the promotion goes on."""
        from goship.render.kubernetes import grace_seconds

        deadline = time.monotonic() + grace_seconds(self.target._cfg) + 10
        while True:
            old = [p["metadata"]["name"] for p in self.cluster.pods(
                self.target._selector("stable"))
                if (p["metadata"].get("labels") or {}).get(plan.VERSION_LABEL)
                != self.rules.release]
            if not old:
                return
            if time.monotonic() > deadline:
                ui.warn(f"{len(old)} pod(s) of the old release still terminating; "
                        "the canary's clients go back to stable now")
                return
            time.sleep(1)

    def promote(self) -> None:
        """The stable Deployment rolled to the canary's release (watched, gated), then the
        canary's share back to stable and the canary deleted. A stable rollout that fails
        is undone, and the canary goes as in an abort."""
        t = self.target
        ui.info(f"promoting {self.rules.release}: rolling deployment/{self.app}")
        t._apply(self.cluster, self.image, self.rules.release)
        ok, reason = t._watch(self.cluster)
        if ok:
            ok, reason = t._health(self.cluster)
        if not ok:
            t._undo(self.cluster, failed=reason)
            self.clear()
            self.remove()
            self.done = True
            raise ApplyError(f"the promotion's rollout failed, stable is back: {reason}")
        self._old_gone()
        self.clear()
        self.remove()
        self.done = True


def _check(target: KubeTarget) -> str:
    """An edge to route with, before anything is built; where the image goes."""
    from goship.deploy import lb

    cfg, env = target._cfg, target.env
    if not cfg.proxy.lb.hosts:
        raise UsageError("a canary on Kubernetes is routed by goship's edge, and "
                         f"env.{env.name} has none",
                         hint='set proxy.lb.hosts (the lab cluster: ["h1"]) and '
                              'kubernetes.node_port; docs/kubernetes.md#canary')
    lb.check_hosts(env)
    cluster_cfg = env.target.kubernetes
    assert cluster_cfg is not None  # noqa: S101 (the kind says so)
    source = plan.image_source(cfg, cluster_cfg.lab)
    if source == "registry":
        target._registry()
    return source


@contextmanager
def _edges(target: KubeTarget) -> Iterator[list[Transport]]:
    from goship.deploy import lb

    edges = lb.transports(target.env) if target._cfg.proxy.lb.hosts else []
    try:
        yield edges
    finally:
        for e in edges:
            e.close()


def run(target: KubeTarget, steps: list[float], opts: dict[str, Any]) -> Report:
    """`goship deploy ENV --canary` on a cluster: start at the first step, walk, promote
    or abort. The first release, with nothing to compare with, is deployed rolling."""
    from goship.deploy import lb
    from goship.deploy.engine import Outcome, env_values

    source = _check(target)
    app, env = target._cfg.app.name, target.env
    began = time.monotonic()
    cluster = target._cluster()
    first = decide(app, cluster.deployment(app), target._colors(cluster),
                   cluster.deployment(f"{app}-canary"), None)
    if first.action == "first":
        ui.info(first.reason)
        outcome = target.deploy(**opts)
        assert isinstance(outcome, Outcome)  # noqa: S101 (not a dry run)
        if outcome.ok:
            for line in lb.install(target.project, env, env_values(target.project, env),
                                   nodes=cluster.node_addresses()):
                ui.info(line)
        return Report("deploy", outcome.ok, outcome.release,
                      first.reason if outcome.ok else str(outcome.failure), {},
                      time.monotonic() - began)
    rules = _rules(target, "", steps[0], {})
    built, version = target._build(opts)
    with target._locked(cluster, "canary", opts), _edges(target) as edges:
        before = target._live_release(cluster)
        tracks = _start(target, cluster, source, edges, rules, built, version)
        if isinstance(tracks, Report):
            report = tracks
        else:
            try:
                report = walk(tracks, tracks.rules, steps, target._cfg.canary)
            except BaseException as stopped:  # an edge failing, Ctrl-C: no canary left routed
                if not tracks.done:
                    _best_effort(tracks, f"the walk stopped: {stopped!r}")
                raise
        report.seconds = time.monotonic() - began
        _recorded(target, cluster, report, before)
        return report


def _rules(target: KubeTarget, release: str, weight: float,
           rules_args: dict[str, Any]) -> Rules:
    c = target._cfg.canary
    return Rules(release=release, color="canary", weight=weight,
                 rules=rules_args.get("rules", ()), allow_ids=rules_args.get("allow_ids", ()),
                 allow_cidrs=rules_args.get("allow_cidrs", ()),
                 id_cookie=c.id_cookie or "", id_header=c.id_header or "")


def _recorded(target: KubeTarget, cluster: Cluster, report: Report,
              before: str | None) -> None:
    from goship.deploy.engine import Outcome

    target._record(cluster, Outcome(report.action, target.env.name, report.release, {},
                                    report.ok, report.seconds,
                                    failure=None if report.ok else report.reason), before)
    if report.ok and report.action in ("canary", "canary promote"):  # a release promoted
        target._prune(cluster)


def _start(target: KubeTarget, cluster: Cluster, source: str, edges: list[Transport],
           rules: Rules, built: Any, version: str) -> EdgeTracks | Report:
    """Build, ship, apply the canary beside stable, watch and gate it, then route to it by
    `rules` (its release filled in). Under the lock. A canary that never becomes healthy
    is deleted (a Report says why); nothing was routed to it."""
    from goship.deploy import lb
    from goship.deploy.engine import env_values
    from goship.deploy.host import now
    from goship.render.kubernetes import render_kubernetes

    cfg, env = target._cfg, target.env
    app = cfg.app.name
    decide(app, cluster.deployment(app), {}, cluster.deployment(f"{app}-canary"), version)
    image = target._push(built) if source == "registry" else target._import(built)
    ui.info(f"image {image}")
    # The edge routes everything to stable before a canary exists (a reload only if its
    # site changed, e.g. a node joined).
    for line in lb.install(target.project, env, env_values(target.project, env),
                           nodes=cluster.node_addresses()):
        ui.info(line)
    files = render_kubernetes(target._input(image, version, target._secret_name(cluster)))
    target._apply_files(cluster, files, ENV_FILES + CANARY_FILES)
    ui.info(f"canary: 1 pod of {version} beside deployment/{app}")
    ok, reason = target._watch(cluster, f"{app}-canary", track="canary")
    if ok:
        ok, reason = target._health(cluster, f"{app}-canary")
    rules = Rules(**{**rules.__dict__, "release": version})
    tracks = EdgeTracks(target, cluster, edges, rules, image)
    if not ok:
        ui.warn(f"canary {version} is unhealthy: {reason}")
        tracks.remove()
        return Report("canary", False, version, reason)
    try:
        # its numbers start here: what each edge's log holds now came before it
        tracks.offsets = {e.name: metrics.log_size_at(e, tracks.log) for e in edges}
        tracks.save(offsets=tracks.offsets, stable=plan.release_of(
            cluster.deployment(app) or {}), started=now())
        tracks.route(rules)
    except BaseException:
        _best_effort(tracks, "routing to it failed")
        raise
    ui.info(f"edge: {rules.weight:g}% of clients to the canary on "
            f"{', '.join(e.name for e in edges)}"
            + (f", {len(rules.rules)} rule(s)" if rules.rules else ""))
    return tracks


def _best_effort(tracks: EdgeTracks, reason: str) -> None:
    from goship.errors import GoshipError

    try:
        tracks.abort(reason)
    except GoshipError as e:
        ui.warn(f"the canary could not be taken down: {e.message}; "
                "`goship canary abort ENV` does it")


# ---- by hand: goship canary start | set-weight | status | promote | abort | explain ----------
def start(target: KubeTarget, rules_args: dict[str, Any], weight: float,
          opts: dict[str, Any]) -> Rules:
    """`goship canary start ENV`: the canary beside stable, routed by the rules and
    weight; it stays until changed, promoted or aborted."""
    source = _check(target)
    app = target._cfg.app.name
    cluster = target._cluster()
    if decide(app, cluster.deployment(app), target._colors(cluster),
              cluster.deployment(f"{app}-canary"), None).action == "first":
        raise UsageError("a canary needs a stable release to compare with",
                         hint="run `goship deploy` first")
    built, version = target._build(opts)
    with target._locked(cluster, "canary start", opts), _edges(target) as edges:
        before = target._live_release(cluster)
        tracks = _start(target, cluster, source, edges, _rules(target, "", weight, rules_args),
                        built, version)
        if isinstance(tracks, Report):
            _recorded(target, cluster, tracks, before)
            raise ApplyError(f"canary {tracks.release} is unhealthy: {tracks.reason}; "
                             "it was deleted, stable serves")
        return tracks.rules


def _running(target: KubeTarget, cluster: Cluster, edges: list[Transport]) -> EdgeTracks:
    """The canary that runs, as its Deployment's state says."""
    app = target._cfg.app.name
    d = cluster.deployment(f"{app}-canary")
    state = state_of(d)
    if d is None or state is None:
        raise UsageError(f"no canary runs: deployment/{app}-canary is not there"
                         if d is None else f"deployment/{app}-canary has no routing yet "
                                           "(its start is under way or failed)",
                         hint="start one with `goship deploy ENV --canary` or "
                              "`goship canary start ENV`")
    containers = d["spec"]["template"]["spec"]["containers"]
    return EdgeTracks(target, cluster, edges, Rules.from_dict(state["rules"]),
                      containers[0]["image"], state)


def set_weight(target: KubeTarget, weight: float) -> Rules:
    cluster = target._cluster()
    with _edges(target) as edges:
        return _running(target, cluster, edges).set_weight(weight)


def rules(target: KubeTarget) -> Rules:
    cluster = target._cluster()
    with _edges(target) as edges:
        return _running(target, cluster, edges).rules


def status(target: KubeTarget) -> dict[str, Any]:
    """Rules, weight and each track's numbers on the edges since the canary started."""
    cluster = target._cluster()
    with _edges(target) as edges:
        tracks = _running(target, cluster, edges)
        t = tracks.tally()
        return {"rules": tracks.rules.as_dict(), "stable": (tracks.state or {}).get("stable"),
                "canary": t.canary.summary(), "stable_numbers": t.stable.summary(),
                "hosts": [e.name for e in edges], "started": (tracks.state or {}).get("started")}


def promote(target: KubeTarget, opts: dict[str, Any]) -> str:
    """`goship canary promote ENV`: stable rolled to the canary's release, then the
    canary goes. The release promoted."""
    cluster = target._cluster()
    began = time.monotonic()
    with target._locked(cluster, "canary promote", opts), _edges(target) as edges:
        tracks = _running(target, cluster, edges)
        before = target._live_release(cluster)
        try:
            tracks.promote()
            report = Report("canary promote", True, tracks.rules.release, "promoted")
        except ApplyError as e:
            report = Report("canary promote", False, tracks.rules.release, e.message)
        report.seconds = time.monotonic() - began
        _recorded(target, cluster, report, before)
        if not report.ok:
            raise ApplyError(report.reason)
        return tracks.rules.release


def abort(target: KubeTarget) -> float:
    """`goship canary abort ENV` on a cluster: weight 0 on every edge, the canary
    deleted. Seconds to weight 0."""
    cfg = target._cfg
    app = cfg.app.name
    cluster = target._cluster()
    d = cluster.deployment(f"{app}-canary")
    if d is None and cluster.service(f"{app}-canary") is None:
        raise UsageError(f"no canary runs: deployment/{app}-canary is not there")
    # No lock, as on hosts: an abort is the way out of a walk that holds it (whose next
    # guard then finds no canary pod and stops).
    with _edges(target) as edges:
        tracks = EdgeTracks(target, cluster, edges, Rules(
            release=plan.release_of(d or {}) or "-", color="canary"))
        before = target._live_release(cluster)
        seconds = tracks.abort("aborted by hand")
        _recorded(target, cluster, Report("canary abort", True, tracks.rules.release,
                                          "aborted by hand", seconds=seconds), before)
        return seconds
