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

import time
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
                 rules: Rules, image: str = "") -> None:
        self.target, self.cluster, self.edges, self.rules = target, cluster, edges, rules
        self.image = image  # the digest reference promote rolls stable to
        app = target._cfg.app.name
        self.app, self.log, self.socket = app, render_lb.access_log(app), edge.control_socket(app)
        self.offsets = {e.name: metrics.log_size_at(e, self.log) for e in edges}
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
        return self.rules

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
        for kind, name in (("deployment", f"{self.app}-canary"),
                           ("service", f"{self.app}-canary")):
            if kind == "deployment":
                self.cluster.delete_deployment(name)
            else:
                self.cluster.delete_service(name)
            ui.info(f"deleted {kind}/{name}")

    def abort(self, reason: str) -> float:
        ui.warn(f"canary {self.rules.release}: aborting: {reason}")
        seconds = self.clear()
        ui.info(f"weight 0 on every edge ({', '.join(e.name for e in self.edges)})")
        self.remove()
        return seconds

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
        self.clear()
        self.remove()
        self.done = True


def run(target: KubeTarget, steps: list[float], opts: dict[str, Any]) -> Report:
    """`goship deploy ENV --canary` on a cluster."""
    from goship.deploy import lb
    from goship.deploy.engine import Outcome, env_values

    cfg, env = target._cfg, target.env
    app = cfg.app.name
    if not cfg.proxy.lb.hosts:
        raise UsageError("a canary on Kubernetes is routed by goship's edge, and "
                         f"env.{env.name} has none",
                         hint='set proxy.lb.hosts (the lab cluster: ["h1"]) and '
                              'kubernetes.node_port; docs/kubernetes.md#canary')
    lb.check_hosts(env)
    cluster_cfg = target.env.target.kubernetes
    assert cluster_cfg is not None  # noqa: S101 (the kind says so)
    source = plan.image_source(cfg, cluster_cfg.lab)
    if source == "registry":
        target._registry()
    start = time.monotonic()
    cluster = target._cluster()
    first = decide(app, cluster.deployment(app), target._colors(cluster),
                   cluster.deployment(f"{app}-canary"), None)
    values = env_values(target.project, env)
    if first.action == "first":
        ui.info(first.reason)
        outcome = target.deploy(**opts)
        assert isinstance(outcome, Outcome)  # noqa: S101 (not a dry run)
        if outcome.ok:
            for line in lb.install(target.project, env, values,
                                   nodes=cluster.node_addresses()):
                ui.info(line)
        return Report("deploy", outcome.ok, outcome.release,
                      first.reason if outcome.ok else str(outcome.failure), {},
                      time.monotonic() - start)
    built, version = target._build(opts)
    with target._locked(cluster, "canary", opts):
        decide(app, cluster.deployment(app), {}, cluster.deployment(f"{app}-canary"),
               version)
        before = target._live_release(cluster)
        image = target._push(built) if source == "registry" else target._import(built)
        ui.info(f"image {image}")
        # The edge routes everything to stable before a canary exists (a reload only if
        # its site changed, e.g. a node joined).
        for line in lb.install(target.project, env, values, nodes=cluster.node_addresses()):
            ui.info(line)
        report = _canary(target, cluster, image, version, steps)
        report.seconds = time.monotonic() - start
        target._record(cluster, Outcome("canary", env.name, version, {}, report.ok,
                                        report.seconds,
                                        failure=None if report.ok else report.reason), before)
        if report.ok:
            target._prune(cluster)
        return report


def _canary(target: KubeTarget, cluster: Cluster, image: str, version: str,
            steps: list[float]) -> Report:
    from goship.deploy import lb
    from goship.render.kubernetes import render_kubernetes

    cfg = target._cfg
    app = cfg.app.name
    files = render_kubernetes(target._input(image, version, target._secret_name(cluster)))
    target._apply_files(cluster, files, ENV_FILES + CANARY_FILES)
    ui.info(f"canary: 1 pod of {version} beside deployment/{app}")
    ok, reason = target._watch(cluster, f"{app}-canary", track="canary")
    if ok:
        ok, reason = target._health(cluster, f"{app}-canary")
    edges = lb.transports(target.env)
    try:
        rules = Rules(release=version, color="canary", weight=steps[0],
                      id_cookie=cfg.canary.id_cookie or "",
                      id_header=cfg.canary.id_header or "")
        tracks = EdgeTracks(target, cluster, edges, rules, image)
        if not ok:
            ui.warn(f"canary {version} is unhealthy: {reason}")
            tracks.remove()
            return Report("canary", False, version, reason)
        try:
            tracks.route(rules)
            ui.info(f"edge: {steps[0]:g}% of clients to the canary on "
                    f"{', '.join(e.name for e in edges)}")
            return walk(tracks, rules, steps, cfg.canary)
        except BaseException as stopped:  # an edge that fails, Ctrl-C: no canary left routed
            if not tracks.done:
                _best_effort(tracks, f"the walk stopped: {stopped!r}")
            raise
    finally:
        for edge_t in edges:
            edge_t.close()


def _best_effort(tracks: EdgeTracks, reason: str) -> None:
    from goship.errors import GoshipError

    try:
        tracks.abort(reason)
    except GoshipError as e:
        ui.warn(f"the canary could not be taken down: {e.message}; "
                "`goship canary abort ENV` does it")


def abort(target: KubeTarget) -> float:
    """`goship canary abort ENV` on a cluster: weight 0 on every edge, the canary
    deleted. Seconds to weight 0."""
    from goship.deploy import lb
    from goship.deploy.engine import Outcome

    cfg = target._cfg
    app = cfg.app.name
    cluster = target._cluster()
    if cluster.deployment(f"{app}-canary") is None and cluster.service(f"{app}-canary") is None:
        raise UsageError(f"no canary runs: deployment/{app}-canary is not there")
    edges = lb.transports(target.env) if cfg.proxy.lb.hosts else []
    # No lock, as on hosts: an abort is the way out of a walk that holds it (whose next
    # guard then finds no canary pod and stops).
    try:
        tracks = EdgeTracks(target, cluster, edges, Rules(
            release=plan.release_of(cluster.deployment(f"{app}-canary") or {}) or "-",
            color="canary"))
        before = target._live_release(cluster)
        seconds = tracks.abort("aborted by hand")
        target._record(cluster, Outcome("canary abort", target.env.name,
                                        tracks.rules.release, {}, True, seconds), before)
        return seconds
    finally:
        for edge_t in edges:
            edge_t.close()
