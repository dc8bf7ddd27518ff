"""The Kubernetes target's decisions, pure functions of config and cluster facts: which
rendered manifests are applied, the image pinned by digest, what a rollout's state means
(wait, done, undo and why) and which pod template an undo goes back to."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Literal

from goship.config import Config
from goship.deploy.layout import COLORS
from goship.errors import UsageError
from goship.render.kubernetes import COLOR_LABEL

# What `goship deploy` applies of `goship render kubernetes`, in this order (the
# Deployment reads the ConfigMap and Secret; the PDB and HPA refer to the Deployment).
# Not yet: the Ingress (the lab has no ingress controller) and the canary track.
APPLIED = ("configmap.yaml", "files.yaml", "secret.yaml", "registry.yaml", "deployment.yaml",
           "service.yaml", "pdb.yaml", "hpa.yaml")
# Blue-green: what selects the live color, applied at the switch; the rest (the new color's
# Deployment and what its pods read and pull with) before it.
SWITCHED = ("service.yaml", "pdb.yaml", "hpa.yaml")
BEFORE_SWITCH = tuple(name for name in APPLIED if name not in SWITCHED)
DIGEST = re.compile(r"^sha256:[0-9a-f]{64}$")
HASH_LABEL = "pod-template-hash"
REVISION = "deployment.kubernetes.io/revision"
FAILED = "goship.dev/failed"  # on a ReplicaSet goship undid: a rollback never returns there
# Waiting reasons that no amount of waiting fixes: undo at once.
FATAL_WAITING = frozenset({
    "CrashLoopBackOff", "ErrImagePull", "ImagePullBackOff", "ErrImageNeverPull",
    "InvalidImageName", "CreateContainerConfigError", "CreateContainerError",
    "RunContainerError",
})
# ... except in a pod's first seconds, for these: a kubelet that has just started (or is
# busy) fails with "failed to sync configmap cache: timed out waiting for the condition"
# and retries by itself (seen on a fresh lab node: the release was fine). And a pull: a
# pull Secret applied just before the pods can still be unreadable to a node's kubelet
# (the Node authorizer learns the pod's edge to it a moment later, seen as
# FailedToRetrieveImagePullSecret then 401), and the kubelet pulls again 10 s later.
RETRIED_WAITING = frozenset({"CreateContainerConfigError", "CreateContainerError",
                             "ErrImagePull", "ImagePullBackOff"})
RETRY_GRACE = 30.0


def applied(rendered: dict[str, str]) -> list[tuple[str, str]]:
    """(file, text) of the rendered manifests goship applies, in apply order."""
    return [(name, rendered[name]) for name in APPLIED if name in rendered]


def digest_ref(repository: str, digest: str) -> str:
    """REPO@sha256:...: what the pods run, immutable (a tag can move, a digest cannot)."""
    if not DIGEST.match(digest):
        raise UsageError(f"image digest {digest!r} is not sha256:<64 hex>")
    return f"{repository}@{digest}"


def image_source(config: Config, lab: bool) -> Literal["registry", "lab"]:
    """Where the cluster's nodes get the image: `[docker] registry` (pushed by digest,
    pulled by digest: any cluster), else the lab cluster's containerd (imported on every
    node). Another cluster without a registry is refused before anything is built."""
    if config.docker.registry:
        return "registry"
    if lab:
        return "lab"
    raise UsageError("kubernetes: a cluster's nodes pull the image from a registry, and "
                     "[docker] registry is not set",
                     hint="set [docker] registry = \"host[:port]/repository\" (for this "
                          "environment: [env.NAME.docker]); the lab cluster needs none")


def pinned(config: Config, image: str) -> Config:
    """The config the renderer gets for a deploy: [docker] image set to the pinned
    reference, so the Deployment's image comes out of the same template as
    `goship render kubernetes`."""
    return config.model_copy(update={"docker": config.docker.model_copy(
        update={"image": image})})


@dataclass(frozen=True)
class Pod:
    name: str
    template_hash: str
    node: str = ""  # scheduled onto; "" while pending
    ready: bool = False
    restarts: int = 0
    waiting: str = ""  # the container's waiting reason, if any
    terminating: bool = False
    last_run: float = 0.0  # seconds the container ran before its last restart (0: none)
    age: float = RETRY_GRACE  # seconds since the pod was created


@dataclass(frozen=True)
class Rollout:
    """A Deployment's rollout at one moment, as `kubectl rollout status` reads it."""

    generation: int
    observed: int
    desired: int
    updated: int
    available: int
    total: int  # status.replicas: old and new pods
    new_hash: str  # the pod-template-hash of the ReplicaSet of this revision
    pods: list[Pod] = field(default_factory=list)
    deadline_exceeded: bool = False  # Progressing=False, ProgressDeadlineExceeded
    elapsed: float = 0.0
    timeout: float = 300.0
    max_restarts: int = 3
    # run.health.deadline: the startup probe's budget. A container restarted after running
    # that long unready was killed by its startup probe: it failed goship's health gate.
    startup_deadline: float = 0.0


@dataclass(frozen=True)
class Verdict:
    action: Literal["wait", "done", "undo"]
    reason: str = ""
    pod: str = ""  # the pod whose events and log explain an undo


def verdict(r: Rollout) -> Verdict:
    if r.observed < r.generation and r.elapsed <= r.timeout:
        # The controller has not seen the new spec: which ReplicaSet is new is not known
        # yet (right after an undo, the one being undone still looks new).
        return Verdict("wait")
    new = [p for p in r.pods if p.template_hash == r.new_hash and not p.terminating]
    for p in new:
        if p.waiting in FATAL_WAITING and not (p.waiting in RETRIED_WAITING
                                               and p.age < RETRY_GRACE):
            return Verdict("undo", f"pod {p.name}: {p.waiting}", p.name)
        if p.restarts >= r.max_restarts:
            return Verdict("undo", f"pod {p.name} restarted {p.restarts} times", p.name)
        if (r.startup_deadline and p.restarts and not p.ready
                and p.last_run >= r.startup_deadline - 1):
            return Verdict("undo", f"pod {p.name} never became Ready: its health check "
                                   f"failed for run.health.deadline = "
                                   f"{r.startup_deadline:g}s and it was restarted", p.name)
    if (r.observed >= r.generation and r.updated >= r.desired and r.available >= r.desired
            and r.total <= r.updated):
        return Verdict("done")
    if r.deadline_exceeded or r.elapsed > r.timeout:
        stuck = next((p for p in new if not p.ready), None)
        what = f"; pod {stuck.name} never became Ready" if stuck else ""
        return Verdict("undo", f"the rollout did not complete within {r.timeout:g}s "
                               f"({r.available}/{r.desired} available){what}",
                       stuck.name if stuck else "")
    return Verdict("wait")


def probe_hint(events: list[str], port: int) -> str | None:
    """A probe refused on the pod's address while the container runs: the service listens
    elsewhere. Behind a host's nginx, 127.0.0.1 is right; in a pod it is unreachable."""
    if any("probe failed" in e and "connection refused" in e for e in events):
        return (f"nothing listens on the pod's address at port {port}: a service that "
                "listens on 127.0.0.1 (right behind a host's nginx) or on another port "
                f"cannot be reached in a pod; make it listen on 0.0.0.0:{port} (run.args, "
                "run.config_files or its environment)")
    return None


def changes(before: dict[str, Pod], now: list[Pod]) -> list[str]:
    """What happened to each pod since the last look: one line per transition."""
    lines = []
    for p in sorted(now, key=lambda x: x.name):
        old = before.get(p.name)
        if p.node and (old is None or not old.node):
            lines.append(f"{p.name}: scheduled on {p.node}")
        if p.ready and (old is None or not old.ready):
            lines.append(f"{p.name}: ready")
        if p.waiting and (old is None or old.waiting != p.waiting):
            lines.append(f"{p.name}: {p.waiting}")
        if p.terminating and old is not None and not old.terminating:
            lines.append(f"{p.name}: terminating")
    return lines


def previous_template(replicasets: list[dict[str, Any]], current: int) -> dict[str, Any] | None:
    """The pod template of the newest ReplicaSet older than revision `current`
    (`kubectl rollout undo`) that goship did not undo as unhealthy, without its
    pod-template-hash label; None when there is none (a first deploy has nothing to go
    back to)."""
    rs = _previous(replicasets, current)
    return _without_hash(rs["spec"]["template"]) if rs is not None else None


def _previous(replicasets: list[dict[str, Any]], current: int) -> dict[str, Any] | None:
    older = [rs for rs in replicasets if 0 < _revision(rs) < current and not _failed(rs)]
    return max(older, key=_revision) if older else None


VERSION_LABEL = "app.kubernetes.io/version"


def release_template(replicasets: list[dict[str, Any]], release: str,
                     current: int) -> dict[str, Any]:
    """`goship rollback --to RELEASE`: the pod template of the newest ReplicaSet that ran
    RELEASE (its pods' version label), as previous_template gives it. A release that is
    not in the history, is the one running, or that goship undid as unhealthy is refused
    with the releases one can go to."""
    return _without_hash(_of_release(replicasets, release, current)["spec"]["template"])


def _of_release(replicasets: list[dict[str, Any]], release: str,
                current: int) -> dict[str, Any]:
    ordered = sorted(replicasets, key=_revision, reverse=True)
    running = next((_version(rs) for rs in ordered if _revision(rs) == current), "")
    choices = sorted({_version(rs) for rs in ordered
                      if _version(rs) and _version(rs) != running and not _failed(rs)})
    hint = f"releases to go to: {', '.join(choices)}" if choices else "no other release is kept"
    if release == running:
        raise UsageError(f"{release} is the release running now", hint=hint)
    match = [rs for rs in ordered if _version(rs) == release and _revision(rs) != current]
    if not match:
        raise UsageError(f"no ReplicaSet of release {release} in the Deployment's history",
                         hint=hint)
    if all(_failed(rs) for rs in match):
        raise UsageError(f"release {release} was undone as unhealthy "
                         f"({FAILED}: {match[0]['metadata']['annotations'][FAILED]})",
                         hint=hint)
    return next(rs for rs in match if not _failed(rs))


@dataclass(frozen=True)
class RollbackPlan:
    """`goship rollback ENV [--to RELEASE] --dry-run` on a cluster: the ReplicaSet whose
    pod template would come back, and what changes with it."""

    env: str
    namespace: str
    deployment: str
    current: dict[str, Any] | None  # the running ReplicaSet
    target: dict[str, Any] | None  # None: nothing to roll back to

    def lines(self) -> list[str]:
        now = _describe(self.current) if self.current else "nothing running"
        head = f"rollback {self.env}: deployment/{self.deployment} in {self.namespace}"
        if self.target is None:
            return [f"{head}: no earlier ReplicaSet to go to (running {now})"]
        out = [f"{head}: {now} -> {_describe(self.target)}"]
        old_image, new_image = _rs_image(self.current), _rs_image(self.target)
        if old_image != new_image:
            out.append(f"  image {old_image} -> {new_image}")
        before = env_references([self.current]) if self.current else set()
        after = env_references([self.target])
        for kind, name in sorted(after - before):
            out.append(f"  {kind.lower()}/{name} (kept for it) comes back")
        out.append("  then: watch the rollout; nothing is deleted until it completes")
        return out

    def as_dict(self) -> dict[str, Any]:
        def one(rs: dict[str, Any] | None) -> dict[str, Any] | None:
            if rs is None:
                return None
            return {"replicaset": rs["metadata"]["name"], "revision": _revision(rs),
                    "release": _version(rs), "image": _rs_image(rs),
                    "environment": [{"kind": k, "name": n}
                                    for k, n in sorted(env_references([rs]))]}

        return {"target": "kubernetes", "env": self.env, "namespace": self.namespace,
                "deployment": self.deployment, "from": one(self.current),
                "to": one(self.target)}


def rollback_plan(env: str, namespace: str, deployment: str,
                  replicasets: list[dict[str, Any]], current: int,
                  to: str | None) -> RollbackPlan:
    """The same choice as `goship rollback` (previous_template, release_template),
    refused the same way, as data."""
    running = next((rs for rs in replicasets if _revision(rs) == current), None)
    target = (_of_release(replicasets, to, current) if to is not None
              else _previous(replicasets, current))
    return RollbackPlan(env, namespace, deployment, running, target)


def _describe(rs: dict[str, Any]) -> str:
    return f"{_version(rs) or '?'} (revision {_revision(rs)}, {rs['metadata']['name']})"


def _version(rs: dict[str, Any]) -> str:
    return release_of(rs) or ""


def _failed(rs: dict[str, Any]) -> bool:
    return FAILED in (rs.get("metadata", {}).get("annotations") or {})


def _rs_image(rs: dict[str, Any] | None) -> str:
    return _template_image(rs) or "?"


def _template_image(obj: dict[str, Any] | None) -> str | None:
    """The first container's image of a Deployment's or ReplicaSet's pod template."""
    containers = ((((obj or {}).get("spec") or {}).get("template") or {})
                  .get("spec") or {}).get("containers") or [{}]
    found = containers[0].get("image")
    return str(found) if found is not None else None


def _without_hash(template: dict[str, Any]) -> dict[str, Any]:
    out = dict(template)
    meta = dict(out.get("metadata") or {})
    meta["labels"] = {k: val for k, val in (meta.get("labels") or {}).items()
                      if k != HASH_LABEL}
    out["metadata"] = meta
    return out


def current_replicaset(replicasets: list[dict[str, Any]], current: int) -> str | None:
    """The name of the ReplicaSet of revision `current`."""
    return next((rs["metadata"]["name"] for rs in replicasets if _revision(rs) == current),
                None)


def _revision(rs: dict[str, Any]) -> int:
    try:
        return int(rs.get("metadata", {}).get("annotations", {}).get(REVISION, "0"))
    except ValueError:
        return 0


# ---- the environment: a ConfigMap and a Secret per version, kept while a ReplicaSet reads
# them (render/kubernetes.config_name; the Secret's name comes from here).

def secret_name(app: str, live: dict[str, dict[str, str]], values: dict[str, str],
                token: str) -> str:
    """The Secret a deploy applies: the live one (name -> its values) that holds exactly
    these values, so an unchanged environment does not roll the pods; else a new name
    (`token`: random, not derived from the values, which a name would let one guess)."""
    for name in sorted(live):
        if live[name] == values:
            return name
    return f"{app}-secrets-{token}"


def env_references(objects: list[dict[str, Any]]) -> set[tuple[str, str]]:
    """(kind, name) of every ConfigMap and Secret the pod templates of these Deployments
    and ReplicaSets read (envFrom, env valueFrom, volumes, projected volumes, in any
    container; imagePullSecrets)."""
    refs: set[tuple[str, str]] = set()
    for obj in objects:
        spec = (((obj.get("spec") or {}).get("template") or {}).get("spec") or {})
        for pull in spec.get("imagePullSecrets") or []:
            if pull.get("name"):
                refs.add(("Secret", pull["name"]))
        for c in [*(spec.get("containers") or []), *(spec.get("initContainers") or []),
                  *(spec.get("ephemeralContainers") or [])]:
            for src in c.get("envFrom") or []:
                if (src.get("configMapRef") or {}).get("name"):
                    refs.add(("ConfigMap", src["configMapRef"]["name"]))
                if (src.get("secretRef") or {}).get("name"):
                    refs.add(("Secret", src["secretRef"]["name"]))
            for e in c.get("env") or []:
                frm = e.get("valueFrom") or {}
                if (frm.get("configMapKeyRef") or {}).get("name"):
                    refs.add(("ConfigMap", frm["configMapKeyRef"]["name"]))
                if (frm.get("secretKeyRef") or {}).get("name"):
                    refs.add(("Secret", frm["secretKeyRef"]["name"]))
        for v in spec.get("volumes") or []:
            if (v.get("configMap") or {}).get("name"):
                refs.add(("ConfigMap", v["configMap"]["name"]))
            if (v.get("secret") or {}).get("secretName"):
                refs.add(("Secret", v["secret"]["secretName"]))
            for src in (v.get("projected") or {}).get("sources") or []:
                if (src.get("configMap") or {}).get("name"):
                    refs.add(("ConfigMap", src["configMap"]["name"]))
                if (src.get("secret") or {}).get("name"):
                    refs.add(("Secret", src["secret"]["name"]))
    return refs


def unused_env(existing: list[tuple[str, str]], readers: list[dict[str, Any]],
               keep: set[tuple[str, str]] | None = None) -> list[tuple[str, str]]:
    """goship's ConfigMaps and Secrets of the app that no Deployment or kept ReplicaSet
    reads any more (their release left the history), nor `keep` (just applied): what a
    deploy or rollback that succeeded deletes."""
    used = env_references(readers) | (keep or set())
    return sorted(o for o in existing if o not in used)


_SINCE = re.compile(r"^\s*(\d+)\s*(s|sec|secs|seconds?|m|min|mins|minutes?|h|hours?|d|days?)"
                    r"(\s+ago)?\s*$")
_UNIT = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def since_seconds(text: str) -> int:
    """`goship logs --since` for pods: the API server takes seconds (sinceSeconds), so the
    relative forms of journalctl's syntax are read: 90s, 10m, 2h, 1d, '10 min ago'."""
    m = _SINCE.match(text)
    if not m or int(m.group(1)) == 0:
        raise UsageError(f"--since {text!r}: on Kubernetes, a duration such as 90s, 10m, 2h "
                         "or '10 min ago'")
    unit = m.group(2)
    return int(m.group(1)) * _UNIT["m" if unit.startswith("mi") else unit[0]]


def new_log_pods(pods: list[Pod], followed: set[str], host: str | None) -> list[str]:
    """`goship logs -f`, polled: the pods that appeared since (a rollout's, a restart's)
    and match `--host` (a node's name; a pod named by --host exists from the start)."""
    return sorted(p.name for p in pods
                  if not p.terminating and p.node and p.name not in followed
                  and (host is None or host in (p.name, p.node)))


def log_pods(pods: list[Pod], host: str | None) -> list[Pod]:
    """The pods `goship logs` reads: every one not terminating, or those named by
    `--host` (a pod's name or its node's)."""
    live = [p for p in pods if not p.terminating]
    if host is None:
        return sorted(live, key=lambda p: p.name)
    chosen = [p for p in live if host in (p.name, p.node)]
    if not chosen:
        names = ", ".join(sorted({p.node for p in live if p.node} | {p.name for p in live}))
        raise UsageError(f"--host {host!r}: no pod of the app is that pod or on that node",
                         hint=f"pick one of: {names or 'none (no pod is running)'}")
    return sorted(chosen, key=lambda p: p.name)


def hpa_state(hpa: dict[str, Any] | None) -> dict[str, Any] | None:
    """`goship status`'s view of the HorizontalPodAutoscaler: its bounds, the replicas it
    has and wants, the CPU it measures against its target, and why it cannot scale (no
    metrics-server answering, for one). None when the app has no HPA."""
    if not hpa:
        return None
    spec, st = hpa.get("spec") or {}, hpa.get("status") or {}
    target = cpu = None
    for m in spec.get("metrics") or []:
        if m.get("type") == "Resource" and (m.get("resource") or {}).get("name") == "cpu":
            target = ((m["resource"].get("target") or {}).get("averageUtilization"))
    for m in st.get("currentMetrics") or []:
        if m.get("type") == "Resource" and (m.get("resource") or {}).get("name") == "cpu":
            cpu = ((m["resource"].get("current") or {}).get("averageUtilization"))
    blocked = next((f"{c.get('reason', '')}: {c.get('message', '')}".strip()
                    for c in st.get("conditions") or []
                    if c.get("type") == "ScalingActive" and c.get("status") == "False"), None)
    return {"min": spec.get("minReplicas", 1), "max": spec.get("maxReplicas"),
            "current": st.get("currentReplicas", 0), "desired": st.get("desiredReplicas", 0),
            "cpu_percent": cpu, "cpu_target_percent": target, "not_scaling": blocked}


def hpa_line(h: dict[str, Any] | None) -> str:
    if h is None:
        return "no autoscaler"
    cpu = f"{h['cpu_percent']}%" if h["cpu_percent"] is not None else "unknown"
    line = (f"autoscaler {h['current']} -> {h['desired']} replicas within "
            f"{h['min']}..{h['max']}, CPU {cpu} (target {h['cpu_target_percent']}%)")
    return line + (f", not scaling: {h['not_scaling']}" if h["not_scaling"] else "")


# What `deploy --dry-run` compares between an object and the server's dry-run apply of its
# rendered form: the desired state, not the metadata the server keeps.
_COMPARED = ("spec", "data", "binaryData", "stringData")


@dataclass(frozen=True)
class Change:
    kind: str
    name: str
    action: Literal["create", "update", "unchanged"]
    details: list[str] = field(default_factory=list)


def change(kind: str, name: str, before: dict[str, Any] | None,
           after: dict[str, Any]) -> Change:
    """One object's fate in a deploy, from its live form and the server's dry run of the
    apply (defaults filled on both sides). A Secret's values are never shown."""
    if before is None:
        return Change(kind, name, "create", _image_details(None, after))
    if all(before.get(k) == after.get(k) for k in _COMPARED):
        return Change(kind, name, "unchanged")
    if kind == "Secret":
        return Change(kind, name, "update", ["values changed (not shown)"])
    details = _image_details(before, after)
    if kind == "ConfigMap":
        old, new = before.get("data") or {}, after.get("data") or {}
        details = [f"{k}: {'added' if k not in old else 'removed' if k not in new else 'changed'}"
                   for k in sorted(set(old) | set(new)) if old.get(k) != new.get(k)]
    return Change(kind, name, "update", details)


def _image_details(before: dict[str, Any] | None, after: dict[str, Any]) -> list[str]:
    old, new = _template_image(before), _template_image(after)
    if new is None or old == new:
        return []
    return [f"image {new}" if old is None else f"image {old} -> {new}"]


@dataclass(frozen=True)
class KubePlan:
    """`goship deploy ENV --dry-run` on a cluster: what the apply would do to each object,
    from the API server's own dry run."""

    env: str
    namespace: str
    release: str
    image: str
    changes: list[Change]
    then: str = ""  # what follows the apply, when it is not the rolling update's

    def lines(self) -> list[str]:
        out = [f"deploy {self.env}: release {self.release} to namespace {self.namespace}, "
               f"image {self.image}"]
        for c in self.changes:
            more = f": {'; '.join(c.details)}" if c.details else ""
            out.append(f"  {c.action} {c.kind.lower()}/{c.name}{more}")
        if self.then:
            out.append(f"  then: {self.then}")
        elif any(c.kind == "Deployment" and c.action != "unchanged" for c in self.changes):
            out.append("  then: watch the rollout, gate on health through the Service, "
                       "undo on failure")
        return out

    def as_dict(self) -> dict[str, Any]:
        return {"target": "kubernetes", "env": self.env, "namespace": self.namespace,
                "release": self.release, "image": self.image,
                "changes": [{"kind": c.kind, "name": c.name, "action": c.action,
                             "details": c.details} for c in self.changes],
                "then": self.then or None}


# ---- blue-green: two Deployments, APP-blue and APP-green; the Service's selector names the
# live one (article 002). The other stays warm (an instant rollback switches the selector
# back) until the next deploy rolls it to the new release; deploy.rollback_window = 0
# scales it to 0 at the switch. (Scaling it down when a window ends would need something
# of goship's running in the cluster, as Argo Rollouts' controller does: goship runs none.)


def live_color(service: dict[str, Any] | None) -> str | None:
    selector = ((service or {}).get("spec") or {}).get("selector") or {}
    color = selector.get(COLOR_LABEL)
    return str(color) if color else None


def other(color: str) -> str:
    return COLORS[1] if color == COLORS[0] else COLORS[0]


@dataclass(frozen=True)
class Switch:
    """A blue-green deploy on a cluster: the color brought up, with how many pods, and
    what the switch leaves behind."""

    live: str | None  # the color serving now (None: first blue-green deploy)
    new: str
    replicas: int  # the live count (the autoscaler's), at least kubernetes.min_replicas
    retire: list[str] = field(default_factory=list)  # a rolling Deployment the app leaves


def bluegreen(app: str, service: dict[str, Any] | None,
              deployments: dict[str, dict[str, Any] | None],
              rolling: dict[str, Any] | None, min_replicas: int) -> Switch:
    """`deployments`: color -> its Deployment (None if absent); `rolling`: the app's
    Deployment of the rolling strategy, if the app used it before."""
    live = live_color(service)
    if live is not None and deployments.get(live) is None:
        live = None  # the selector names a color that is gone: nothing serves from it
    serving = deployments[live] if live else rolling
    count = replicas_of(serving)
    return Switch(live, other(live) if live else COLORS[0], max(count, min_replicas),
                  [app] if rolling is not None else [])


def switch_line(app: str, sw: Switch) -> str:
    """`deploy --dry-run`: what a blue-green deploy does after the apply."""
    line = (f"scale {app}-{sw.new} to {sw.replicas}, watch its rollout, gate each pod; "
            f"then switch service/{app} to {sw.new}")
    if sw.live:
        line += f"; {sw.live} stays warm until the next deploy"
    if sw.retire:
        line += f"; delete deployment/{', '.join(sw.retire)} (the rolling strategy's)"
    return line + "; on failure, scale it to 0: nothing switched"


def replicas_of(d: dict[str, Any] | None) -> int:
    """A Deployment's desired count (0 when absent)."""
    return int(((d or {}).get("spec") or {}).get("replicas") or 0)


def ready_of(d: dict[str, Any] | None) -> int:
    """A Deployment's ready count (0 when absent)."""
    return int(((d or {}).get("status") or {}).get("readyReplicas") or 0)


def _stamp(d: dict[str, Any] | None, key: str) -> str:
    return str((((d or {}).get("metadata") or {}).get("annotations") or {}).get(key) or "")


def standby_line(d: dict[str, Any] | None, color: str) -> str | None:
    """`goship status`: the other color, if it exists."""
    if d is None:
        return None
    version = _deployment_version(d)
    ready, replicas = ready_of(d), replicas_of(d)
    failed = _stamp(d, FAILED)
    if failed:
        return f"{color}: {version} undone as unhealthy ({failed}), 0 replicas"
    if replicas == 0:
        return (f"standby {version} on {color}: scaled to 0 (a rollback starts its pods "
                "again, then switches)")
    return (f"standby {version} on {color}: {ready}/{replicas} ready (instant rollback); "
            "the next deploy rolls it to the new release")


def release_of(d: dict[str, Any]) -> str | None:
    """The release a Deployment's or ReplicaSet's pods run (their version label)."""
    labels = (((d.get("spec") or {}).get("template") or {}).get("metadata") or {}).get(
        "labels") or {}
    found = labels.get(VERSION_LABEL)
    return str(found) if found is not None else None


def _deployment_version(d: dict[str, Any]) -> str:
    return release_of(d) or "?"


@dataclass(frozen=True)
class Back:
    """A blue-green rollback: the color the Service goes back to."""

    env: str
    namespace: str
    service: str
    live: str
    live_release: str
    color: str
    release: str
    warm: bool  # its pods are ready: the switch is all there is to do
    replicas: int

    def lines(self) -> list[str]:
        how = ("warm: the Service's selector switches at once" if self.warm else
               f"scaled down: its {self.replicas} pod(s) start and pass the health gate, "
               "then the Service's selector switches")
        return [f"rollback {self.env}: service/{self.service} in {self.namespace}: "
                f"{self.live} ({self.live_release}) -> {self.color} ({self.release})",
                f"  {self.color} is {how}",
                f"  then: {self.live} stays warm until the next deploy"]

    def as_dict(self) -> dict[str, Any]:
        return {"target": "kubernetes", "strategy": "bluegreen", "env": self.env,
                "namespace": self.namespace, "service": self.service,
                "from": {"color": self.live, "release": self.live_release},
                "to": {"color": self.color, "release": self.release},
                "warm": self.warm, "replicas": self.replicas}


def bluegreen_back(env: str, namespace: str, app: str, service: dict[str, Any] | None,
                   deployments: dict[str, dict[str, Any] | None], to: str | None,
                   min_replicas: int) -> Back:
    """The other color, if it can serve: refused (one line, nothing changed) when there
    is none, when goship undid its release as unhealthy, or when `--to` names another."""
    live = live_color(service)
    if live is None or deployments.get(live) is None:
        raise UsageError(f"service/{app} serves no color in {namespace}: nothing to roll "
                         "back from", hint="goship deploy first")
    color = other(live)
    d = deployments.get(color)
    running = _deployment_version(deployments[live] or {})
    if d is None:
        raise UsageError(f"no {color} Deployment ({app}-{color}): nothing to roll back to",
                         hint="a first blue-green deploy keeps no other release")
    release = _deployment_version(d)
    hint = f"the release to go back to is {release} (on {color})"
    if _stamp(d, FAILED):
        raise UsageError(f"{release} on {color} was undone as unhealthy ({FAILED}: "
                         f"{_stamp(d, FAILED)})", hint="deploy a good release instead")
    if to is not None and to != release:
        if to == running:
            raise UsageError(f"{to} is the release running now", hint=hint)
        raise UsageError(f"release {to} is not on the standby color: blue-green keeps the "
                         "live release and the one before", hint=hint)
    replicas, ready = replicas_of(d), ready_of(d)
    want = max(replicas_of(deployments[live]), min_replicas)
    return Back(env, namespace, app, live, running, color, release,
                warm=replicas > 0 and ready >= replicas, replicas=replicas or want)
