"""`goship deploy | rollback | status` to a Kubernetes cluster: build the image, make it
available to the nodes, apply what `goship render kubernetes` renders (pinned to the
image's digest), watch the rollout, gate on health through the Service, and undo to the
previous ReplicaSet's pod template when the release is unhealthy."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from functools import partial
from typing import TYPE_CHECKING, Any

from goship.deploy.layout import COLORS
from goship.errors import ApplyError, UsageError
from goship.kube import plan
from goship.kube.cluster import Cluster
from goship.render.kubernetes import COLOR_LABEL, startup_seconds
from goship.targets import DeployTarget
from goship.ui import ui

if TYPE_CHECKING:
    from goship.deploy.engine import Outcome
    from goship.deploy.registry import Registry
    from goship.targets import Plan

POLL = 1.0
JOURNAL_KEEP = 200  # entries kept in the cluster's journal (a ConfigMap: < 1 MiB)


class KubeTarget(DeployTarget):
    @property
    def _cfg(self) -> Any:
        return self.env.config

    def _cluster(self) -> Cluster:
        assert self.env.target.kubernetes is not None  # noqa: S101 (the kind says so)
        return Cluster(self.env.target.kubernetes, self._cfg.kubernetes.namespace)

    def _selector(self, track: str = "stable", color: str | None = None) -> dict[str, str]:
        found = {"app.kubernetes.io/name": self._cfg.app.name, "goship.dev/track": track}
        return found | ({COLOR_LABEL: color} if color else {})

    # deploy ----------------------------------------------------------------------------
    def deploy(self, **opts: Any) -> Outcome | Plan:
        from goship.deploy.engine import Outcome

        cluster_cfg = self.env.target.kubernetes
        assert cluster_cfg is not None  # noqa: S101 (the kind says so)
        source = plan.image_source(self._cfg, cluster_cfg.lab)
        if source == "registry":
            self._registry()  # a login without its password: one line, before the build
        start = time.monotonic()
        cluster = self._cluster()
        self._refuse_during_canary(cluster)
        built, version = self._build(opts)
        if opts.get("dry_run"):
            return self._preview(cluster, built, version)
        with self._locked(cluster, "deploy", opts):
            image = self._push(built) if source == "registry" else self._import(built)
            ui.info(f"image {image}")
            before = self._live_release(cluster)
            if self._strategy == "bluegreen":
                return self._record(cluster, self._bluegreen(cluster, image, version, start),
                                    before)
            applied = self._apply(cluster, image, version)
            ok, reason = self._watch(cluster)
            if ok:
                ok, reason = self._health(cluster)
            app = self._cfg.app.name
            if not ok:
                ui.warn(f"release {version} is unhealthy: {reason}")
                restored = self._undo(cluster, failed=reason)
                return self._record(cluster, Outcome(
                    "deploy", self.env.name, version, {}, False, time.monotonic() - start,
                    failure=reason, restored=[f"deployment/{app}"] if restored else []),
                    before)
            for color in COLORS:  # the app was blue-green: the rolling Deployment serves now
                self._retire(cluster, f"{app}-{color}")
            self._prune(cluster, applied)
            return self._record(cluster, Outcome(
                "deploy", self.env.name, version, self._hosts(self._status(cluster), version),
                True, time.monotonic() - start), before)

    def _refuse_during_canary(self, cluster: Cluster) -> None:
        """As on hosts: stable does not change under a running canary (goship.kube.canary
        promotes it, or aborts it)."""
        name = f"{self._cfg.app.name}-canary"
        if cluster.deployment(name) is not None:
            raise UsageError(f"a canary runs: deployment/{name}",
                             hint="`goship canary promote` or `goship canary abort` it first")

    @property
    def _strategy(self) -> str:
        from goship.render.kubernetes import strategy

        return strategy(self._cfg)

    def _retire(self, cluster: Cluster, name: str) -> None:
        if cluster.deployment(name) is not None:
            cluster.delete_deployment(name)
            ui.info(f"deleted deployment/{name}: the app changed release strategy")

    # blue-green ------------------------------------------------------------------------
    def _colors(self, cluster: Cluster) -> dict[str, dict[str, Any] | None]:
        app = self._cfg.app.name
        return {c: cluster.deployment(f"{app}-{c}") for c in COLORS}

    def _bluegreen(self, cluster: Cluster, image: str, version: str,
                   start: float) -> Outcome:
        """Article 002: the new color's Deployment beside the live one, scaled to the
        live count, its rollout watched and each pod gated; then the Service's selector
        switches to it and the old color stays warm until the next deploy. A failure
        before the switch scales the new color to 0: nothing serving has changed."""
        from goship.deploy.engine import Outcome

        app = self._cfg.app.name
        colors = self._colors(cluster)
        sw = plan.bluegreen(app, cluster.service(app), colors, cluster.deployment(app),
                            self._cfg.kubernetes.min_replicas)
        name = f"{app}-{sw.new}"
        files = dict(self._rendered(image, version, self._secret_name(cluster),
                                    color=sw.new))
        applied = self._apply_files(cluster, files, plan.BEFORE_SWITCH)
        cluster.annotate(name, {plan.FAILED: None})
        cluster.scale(name, sw.replicas)
        ui.info(f"{sw.new}: {sw.replicas} pod(s) of {version} beside "
                f"{sw.live or 'nothing live'}")
        ok, reason = self._watch(cluster, name, sw.new)
        if ok:
            ok, reason = self._gate_pods(cluster, sw.new)
        if not ok:
            ui.warn(f"release {version} is unhealthy: {reason}")
            cluster.scale(name, 0)
            cluster.annotate(name, {plan.FAILED: reason[:200]})
            ui.info(f"{sw.new} scaled to 0; service/{app} still selects "
                    f"{sw.live or 'nothing'}: nothing switched")
            return Outcome("deploy", self.env.name, version, {}, False,
                           time.monotonic() - start, failure=reason)
        applied |= self._switch(cluster, files, sw.new, sw.live)
        for old in sw.retire:
            self._retire(cluster, old)
        self._prune(cluster, applied)
        return Outcome("deploy", self.env.name, version,
                       self._hosts(self._status(cluster), version), True,
                       time.monotonic() - start)

    def _switch(self, cluster: Cluster, files: dict[str, str], color: str,
                live: str | None) -> set[tuple[str, str]]:
        """The Service's selector (and the autoscaler) to `color`; the color it leaves
        becomes the standby (see plan: warm until the next deploy)."""
        app = self._cfg.app.name
        applied = self._apply_files(cluster, files, plan.SWITCHED)
        ui.info(f"switched service/{app} to {color}")
        if live is not None and live != color:
            if self._cfg.deploy.rollback_window <= 0:
                cluster.scale(f"{app}-{live}", 0)
                ui.info(f"{live} scaled to 0 (deploy.rollback_window = 0)")
            else:
                ui.info(f"{live} stays warm until the next deploy (instant `goship rollback`)")
        return applied

    def _apply_files(self, cluster: Cluster, files: dict[str, str],
                     names: tuple[str, ...]) -> set[tuple[str, str]]:
        done: set[tuple[str, str]] = set()
        for name in names:
            if name not in files:
                continue
            for obj in cluster.apply(files[name]):
                ui.info(f"applied {obj}")
                kind, _, oname = obj.partition("/")
                done.add((kind, oname))
        return done

    def _gate_pods(self, cluster: Cluster, color: str) -> tuple[bool, str]:
        """goship's gate on each pod of the color, through the API server's pod proxy:
        health.successes consecutive 2xx from every one, before any Service selects it."""
        h = self._cfg.run.health
        port = self._cfg.run.base_port
        pods = [p for p in cluster.pods(self._selector(color=color))
                if "deletionTimestamp" not in p["metadata"]]
        deadline = time.monotonic() + h.deadline
        for pod in sorted(p["metadata"]["name"] for p in pods):
            ok, last = _consecutive_2xx(
                partial(cluster.pod_get, pod, port, h.path, h.timeout), h.successes,
                deadline, 0.3)
            if not ok:
                return False, f"health check failed: pod {pod}:{port}{h.path}: {last}"
        ui.info(f"health: {h.successes} x 2xx from each of {len(pods)} pod(s) of {color} "
                "(the API server's pod proxy)")
        return True, ""

    @contextmanager
    def _locked(self, cluster: Cluster, action: str, opts: dict[str, Any]) -> Iterator[None]:
        """The deploy lock (a Lease in the namespace) around whatever changes the app."""
        from goship.kube.lease import LeaseLock

        lock = LeaseLock(cluster, self._cfg.app.name, f"goship {action} {self.env.name}",
                         self._cfg.deploy.lock_ttl, bool(opts.get("force")))
        lock.acquire(wait=bool(opts.get("wait")))
        for note in lock.notes:
            ui.warn(f"lease/{lock.name}: {note}")
        try:
            yield
        finally:
            lock.release()

    def _build(self, opts: dict[str, Any]) -> tuple[Any, str]:
        """The image (goship package --image) and its release version."""
        from goship.build.pipeline import run_package

        result = run_package(self.project, self._cfg, image=True,
                             allow_dirty=bool(opts.get("allow_dirty")),
                             checks=not opts.get("skip_checks"))
        img = result.image
        if img is None:
            raise ApplyError("the build made no image")
        return img, result.build.plan.stamp.safe_version

    def _pinned(self, img: Any) -> str:
        """The digest the pods pin. Through a registry: the one platform's manifest, or,
        for several build.targets, the index naming them all (each node's runtime picks
        its own). The lab cluster's nodes run this machine's platform."""
        from goship.deploy.registry import read_index
        from goship.lab.kube_build import goarch

        if self._cfg.docker.registry:
            if len(img.digests) == 1:
                return str(next(iter(img.digests.values())))
            return read_index(img.path.read_bytes()).digest
        native = f"linux/{goarch()}"
        if native not in img.digests:
            raise UsageError(f"the lab cluster's nodes are {native}, and build.targets "
                             f"builds {', '.join(sorted(img.digests))}",
                             hint=f'add "{native}" to build.targets')
        return str(img.digests[native])

    def _push(self, img: Any) -> str:
        """To [docker] registry, by digest (no daemon); the reference the pods pull."""
        from goship.deploy.registry import push, push_index

        reg = self._registry()
        data = img.path.read_bytes()
        if len(img.digests) == 1:
            digest = push(reg, data, digest=next(iter(img.digests.values())))
        else:
            digest = push_index(reg, data)
        ui.info(f"image pushed to {reg.host}/{reg.repo} "
                f"({', '.join(sorted(img.digests))})")
        return reg.ref(digest)

    def _registry(self) -> Registry:
        from goship.deploy.registry import Registry, credentials

        d = self._cfg.docker
        return Registry.parse(str(d.registry), d.registry_insecure, credentials(d))

    def _import(self, img: Any) -> str:
        """Into every lab node's containerd; the digest reference the pods run."""
        from goship.lab import kubernetes as lab_kube
        from goship.lab.layout import HostLayout

        nodes = [HostLayout(i) for i in range(1, _lab_nodes() + 1)]
        repo = lab_kube.import_image(nodes, img.path, digests=True)
        ui.info(f"image imported into containerd on {len(nodes)} node(s)")
        return plan.digest_ref(repo, self._pinned(img))

    def _preview(self, cluster: Cluster, img: Any, version: str) -> plan.KubePlan:
        """deploy --dry-run: the image built, nothing imported; the API server's dry run
        of each apply against what is live."""
        from goship.lab import kubernetes as lab_kube

        digest = self._pinned(img)
        if self._cfg.docker.registry:
            image = self._registry().ref(digest)
        else:
            image = plan.digest_ref(lab_kube.image_repository(img.path), digest)
        color, then = None, ""
        if self._strategy == "bluegreen":
            app = self._cfg.app.name
            sw = plan.bluegreen(app, cluster.service(app), self._colors(cluster),
                                cluster.deployment(app), self._cfg.kubernetes.min_replicas)
            color, then = sw.new, plan.switch_line(app, sw)
        changes = [plan.change(kind, name, before, after)
                   for _, text in self._rendered(image, version, self._secret_name(cluster),
                                                 color)
                   for kind, name, before, after in cluster.preview(text)]
        return plan.KubePlan(self.env.name, cluster.namespace, version, image, changes,
                             then=then)

    def _input(self, image: str = "", version: str = "RELEASE",
               secret_name: str | None = None, secrets: bool = True) -> Any:
        """`secrets=False`: for the objects that hold none (a blue-green switch applies
        the Service, PDB and HPA only), so a rollback never runs [secrets]' commands."""
        from goship.render.inputs import RenderInput

        cfg = plan.pinned(self._cfg, image) if image else self._cfg
        # show_secrets: the Secret gets its real values; it goes to the API server only.
        return RenderInput(config=cfg, root=self.project.root, env=self.env.name,
                           version=version, secrets=self._secrets() if secrets else {},
                           show_secrets=True, secret_name=secret_name,
                           registry_auth=self._registry_auth() if secrets else None)

    def _registry_auth(self) -> str | None:
        """The pull Secret's dockerconfigjson, for a registry that needs a login."""
        from goship.deploy.registry import dockerconfigjson

        reg = self._registry() if self._cfg.docker.registry else None
        return dockerconfigjson(reg.host, reg.login) if reg and reg.login else None

    def _rendered(self, image: str, version: str, secret_name: str,
                  color: str | None = None) -> list[tuple[str, str]]:
        return render_files(self._input(image, version, secret_name), color)

    def _secret_name(self, cluster: Cluster) -> str:
        """The Secret this deploy's pods read: the live one holding the same values, else
        a new one (the old stays for the ReplicaSets that read it)."""
        import secrets

        return plan.secret_name(self._cfg.app.name,
                                cluster.secrets_values(self._cfg.app.name),
                                self._input().secret_env(), secrets.token_hex(5))

    def _secrets(self) -> dict[str, str]:
        """The Secret's values: run.env_file's (a sops file decrypted in memory) and
        [secrets]' commands, resolved as for hosts, once per command."""
        from goship.deploy.engine import env_values
        from goship.secrets import secret_names

        names = set(secret_names(self.project.root, self._cfg))
        return {k: v for k, v in env_values(self.project, self.env).items() if k in names}

    def _apply(self, cluster: Cluster, image: str, version: str) -> set[tuple[str, str]]:
        """Applies the rendered objects; (kind, name) of each."""
        cfg = self._cfg
        app = cfg.app.name
        first = cluster.deployment(app) is None
        files = dict(self._rendered(image, version, self._secret_name(cluster)))
        done: set[tuple[str, str]] = set()
        for name in files:  # in apply order
            done |= self._apply_files(cluster, files, (name,))
            if name == "deployment.yaml" and first:
                cluster.scale(app, cfg.kubernetes.min_replicas)
        return done

    def _prune(self, cluster: Cluster, keep: set[tuple[str, str]] | None = None) -> None:
        """Deletes the ConfigMaps and Secrets no Deployment or kept ReplicaSet of the app
        reads: each release's environment lives as long as the release can come back."""
        from lightkube import ApiError

        app = self._cfg.app.name
        every = {"app.kubernetes.io/name": app}
        try:  # housekeeping after the release is live: a failure is a warning
            readers = [*cluster.replicasets(every), *filter(None, [cluster.deployment(app)])]
            for kind, name in plan.unused_env(cluster.env_objects(app), readers, keep):
                cluster.delete(kind, name)
                ui.info(f"deleted {kind.lower()}/{name}: no kept ReplicaSet reads it")
        except (ApiError, ApplyError) as e:
            ui.warn(f"could not delete the environments no ReplicaSet reads any more: {e}; "
                    "the next deploy tries again")

    def _facts(self, cluster: Cluster, elapsed: float, name: str,
               color: str | None, track: str = "stable") -> plan.Rollout | None:
        d = cluster.deployment(name)
        if d is None:
            return None
        rev = d["metadata"].get("annotations", {}).get(plan.REVISION, "")
        new_hash = ""
        for rs in self._sets(cluster, name, color, track):
            if rs["metadata"].get("annotations", {}).get(plan.REVISION) == rev:
                new_hash = rs["metadata"].get("labels", {}).get(plan.HASH_LABEL, "")
        st = d.get("status", {})
        conds = st.get("conditions") or []
        return plan.Rollout(
            generation=d["metadata"].get("generation", 0),
            observed=st.get("observedGeneration", 0),
            desired=d["spec"].get("replicas", 1), updated=st.get("updatedReplicas", 0),
            available=st.get("availableReplicas", 0), total=st.get("replicas", 0),
            new_hash=new_hash,
            pods=[_pod(p) for p in cluster.pods(self._selector(track, color))],
            deadline_exceeded=any(c.get("reason") == "ProgressDeadlineExceeded"
                                  for c in conds),
            elapsed=elapsed, timeout=self._timeout(),
            max_restarts=self._cfg.metrics.restarts,
            startup_deadline=float(startup_seconds(self._cfg)))

    def _sets(self, cluster: Cluster, name: str, color: str | None = None,
              track: str = "stable") -> list[dict[str, Any]]:
        """The ReplicaSets of deployment/NAME: not another one's of the same app (a
        blue-green color's, while the app changes strategy), whose revisions and
        templates are not this one's history."""
        return [rs for rs in cluster.replicasets(self._selector(track, color))
                if any(o.get("kind") == "Deployment" and o.get("name") == name
                       for o in rs["metadata"].get("ownerReferences") or [])]

    def _timeout(self) -> float:
        h = self._cfg.run.health
        return float(max(60.0, 2 * h.deadline + 30 + self._cfg.kubernetes.pre_stop_seconds))

    def _watch(self, cluster: Cluster, name: str = "", color: str | None = None,
               track: str = "stable") -> tuple[bool, str]:
        """Poll the rollout of deployment/NAME (the app's, or a blue-green color's),
        printing each pod's transitions, until done or undo."""
        start = time.monotonic()
        seen: dict[str, plan.Pod] = {}
        while True:
            facts = self._facts(cluster, time.monotonic() - start,
                                name or self._cfg.app.name, color, track)
            if facts is None:
                return False, "the Deployment is gone"
            for line in plan.changes(seen, facts.pods):
                ui.info(line)
            seen = {p.name: p for p in facts.pods}
            v = plan.verdict(facts)
            if v.action == "done":
                ui.info(f"rollout complete: {facts.available}/{facts.desired} available")
                return True, ""
            if v.action == "undo":
                self._explain(cluster, v.pod)
                return False, v.reason
            time.sleep(POLL)

    def _explain(self, cluster: Cluster, pod: str) -> None:
        if not pod:
            return
        events = cluster.events(pod)
        for line in events:
            ui.out(f"  event {pod}: {line}")
        hint = plan.probe_hint(events, self._cfg.run.base_port)
        if hint:
            ui.out(f"  hint: {hint}")
        for line in cluster.log_tail(pod):
            ui.out(f"  log {pod}: {line}")

    def _health(self, cluster: Cluster, service: str = "") -> tuple[bool, str]:
        """goship's gate through the Service (the app's, or a canary's): health.successes
        consecutive 2xx from its pods, through the API server's service proxy (any
        cluster, from this machine)."""
        app = service or self._cfg.app.name
        if cluster.service(app) is None:
            return False, f"service/{app} is gone"
        h = self._cfg.run.health
        where = f"service/{app}:http{h.path}"
        ok, last = _consecutive_2xx(
            lambda: cluster.service_get(app, "http", h.path, h.timeout), h.successes,
            time.monotonic() + h.deadline, 0.5)
        if ok:
            ui.info(f"health: {h.successes} x 2xx from {where} (the API server's service "
                    "proxy)")
            return True, ""
        return False, f"health check through the Service failed: {where}: {last}"

    def _undo(self, cluster: Cluster, failed: str = "", to: str | None = None) -> bool:
        app = self._cfg.app.name
        d = cluster.deployment(app)
        current = int((d or {}).get("metadata", {}).get("annotations", {})
                      .get(plan.REVISION, "0") or 0)
        sets = self._sets(cluster, app)
        if to is not None:  # refused before anything changes
            template: dict[str, Any] | None = plan.release_template(sets, to, current)
            ui.info(f"undo: re-applying the pod template of release {to}")
        else:
            template = plan.previous_template(sets, current)
        bad = plan.current_replicaset(sets, current)
        if failed and bad:  # a later rollback must not return to it
            cluster.mark_failed(bad, failed)
        if template is None:
            ui.warn("nothing to undo to: no earlier ReplicaSet (a first deploy)")
            return False
        if to is None:
            ui.info("undo: re-applying the previous ReplicaSet's pod template")
        # The template names the ConfigMap and Secret that release ran with: they come back
        # with it (kept while a ReplicaSet reads them).
        cluster.apply_template(app, template)
        ok, reason = self._watch(cluster)
        if not ok:
            ui.warn(f"the undo did not complete either: {reason}")
        return ok

    def _hosts(self, s: dict[str, Any], version: str) -> dict[str, dict[str, Any]]:
        """The outcome's one "host" (the cluster), from `s`, what status says."""
        return {"cluster": {"release": version, "color": f"deployment/{s['deployment']}",
                            "url": s["url"], "restored": False,
                            "notes": [f"{s['ready']}/{s['desired']} ready", *(
                                f"{n}: {c} pod(s)" for n, c in s["nodes"].items())]}}

    # rollback, status, logs ------------------------------------------------------------
    def rollback(self, *, to: str | None, **opts: Any) -> Outcome | Plan:
        from goship.deploy.engine import Outcome

        start = time.monotonic()
        cluster = self._cluster()
        self._refuse_during_canary(cluster)
        if opts.get("dry_run"):
            return (self._back(cluster, to) if self._strategy == "bluegreen"
                    else self._rollback_plan(cluster, to))
        with self._locked(cluster, "rollback", opts):
            before = self._live_release(cluster)
            if self._strategy == "bluegreen":
                ok, failure = self._go_back(cluster, self._back(cluster, to))
            else:
                ok = self._undo(cluster, to=to)
                if ok:
                    self._prune(cluster)
                failure = "no previous ReplicaSet to roll back to"
            s = self._status(cluster)
            return self._record(cluster, Outcome(
                "rollback", self.env.name, s["release"] or "-",
                self._hosts(s, s["release"]) if ok else {}, ok,
                time.monotonic() - start, failure=None if ok else failure), before)

    def _live_release(self, cluster: Cluster) -> str | None:
        try:
            return plan.release_of(self._live(cluster)[3])
        except Exception:  # a journal's "from" is not worth failing a deploy for
            return None

    def _record(self, cluster: Cluster, outcome: Outcome, before: str | None) -> Outcome:
        """The journal on the cluster (a ConfigMap of the last JOURNAL_KEEP entries), as
        each host keeps one: best effort, an outcome is never hidden by it."""
        from goship.deploy.host import now, who

        entry = {"time": now(), "who": who(), "action": outcome.action,
                 "release": outcome.release, "from": before,
                 "outcome": "ok" if outcome.ok else "failed",
                 "seconds": round(outcome.seconds, 3), "strategy": self._strategy,
                 **({"error": outcome.failure} if outcome.failure else {})}
        try:
            cluster.journal_append(self._cfg.app.name, entry, JOURNAL_KEEP)
        except ApplyError as e:
            ui.warn(f"journal not written: {e.message}")
        return outcome

    def _back(self, cluster: Cluster, to: str | None) -> plan.Back:
        app = self._cfg.app.name
        return plan.bluegreen_back(self.env.name, cluster.namespace, app,
                                   cluster.service(app), self._colors(cluster), to,
                                   self._cfg.kubernetes.min_replicas)

    def _go_back(self, cluster: Cluster, back: plan.Back) -> tuple[bool, str]:
        """A warm standby: switching the Service is the rollback. One scaled to 0
        (deploy.rollback_window = 0): its pods start and are gated first."""
        app = self._cfg.app.name
        name = f"{app}-{back.color}"
        if not back.warm:
            cluster.scale(name, back.replicas)
            ui.info(f"{back.color}: starting {back.replicas} pod(s) of {back.release}")
            ok, reason = self._watch(cluster, name, back.color)
            if ok:
                ok, reason = self._gate_pods(cluster, back.color)
            if not ok:
                cluster.scale(name, 0)
                return False, f"{back.release} on {back.color} did not come back: {reason}"
        files = dict(render_files(self._input(secrets=False), back.color))
        self._switch(cluster, files, back.color, back.live)
        self._prune(cluster)
        return True, ""

    def _rollback_plan(self, cluster: Cluster, to: str | None) -> plan.RollbackPlan:
        app = self._cfg.app.name
        d = cluster.deployment(app)
        if d is None:
            raise ApplyError(f"deployment/{app} is not in namespace {cluster.namespace}: "
                             "nothing to roll back")
        current = int(d["metadata"].get("annotations", {}).get(plan.REVISION, "0") or 0)
        return plan.rollback_plan(self.env.name, cluster.namespace, app,
                                  self._sets(cluster, app), current, to)

    def _live(self, cluster: Cluster) -> tuple[str, str | None, dict[str, Any],
                                              dict[str, Any]]:
        """(deployment name, color, Service, Deployment) of what serves now: the app's
        Deployment, or the color the Service selects."""
        app = self._cfg.app.name
        svc = cluster.service(app) or {}
        color = plan.live_color(svc) if self._strategy == "bluegreen" else None
        name = f"{app}-{color}" if color else app
        return name, color, svc, cluster.deployment(name) or {}

    def status(self) -> dict[str, Any]:
        return self._status(self._cluster())

    def _status(self, cluster: Cluster) -> dict[str, Any]:
        app = self._cfg.app.name
        name, color, svc, d = self._live(cluster)
        standby = None
        if color:
            back = plan.other(color)
            standby = plan.standby_line(cluster.deployment(f"{app}-{back}"), back)
        pods = [p for p in cluster.pods(self._selector(color=color))
                if "deletionTimestamp" not in p["metadata"]]
        nodes: dict[str, int] = {}
        for p in pods:
            node = p.get("spec", {}).get("nodeName") or "(pending)"
            nodes[node] = nodes.get(node, 0) + 1
        ip = svc.get("spec", {}).get("clusterIP")
        node_port = next((p.get("nodePort") for p in svc.get("spec", {}).get("ports") or []
                          if p.get("nodePort")), None)
        node = cluster.node_address() if node_port else None
        url = (f"http://{node}:{node_port}/" if node else
               f"http://{ip}/" if ip else None)
        edges = self._edge_urls()
        return {
            "target": "kubernetes", "namespace": cluster.namespace, "deployment": name,
            "strategy": self._strategy, "color": color, "standby": standby,
            "release": plan.release_of(d),
            "revision": d.get("metadata", {}).get("annotations", {}).get(plan.REVISION),
            "desired": plan.replicas_of(d),
            "ready": plan.ready_of(d),
            "nodes": dict(sorted(nodes.items())),
            # goship's edge, when there is one, is where users come in
            "url": edges[0] if edges else url, "cluster_ip": ip, "edges": edges,
            "canary": self._canary_state(cluster),
            "hpa": plan.hpa_state(cluster.hpa(app)),
            "last": self._last(cluster),
        }

    def _edge_urls(self) -> list[str]:
        """proxy.lb.hosts as users reach them (goship's edge in front of the Services)."""
        from goship.config.validators import split_host
        from goship.lab.layout import HostLayout

        lb = self._cfg.proxy.lb
        cluster_cfg = self.env.target.kubernetes
        lab = cluster_cfg is not None and cluster_cfg.lab
        return [f"http://{HostLayout(int(h[1:])).addr if lab else split_host(h)[1]}"
                f":{lb.listen}/" for h in lb.hosts]

    def _canary_state(self, cluster: Cluster) -> dict[str, Any] | None:
        """A canary beside stable (goship.kube.canary): its release, pods, weight."""
        from goship.kube.canary import state_of

        d = cluster.deployment(f"{self._cfg.app.name}-canary")
        if d is None:
            return None
        rules = (state_of(d) or {}).get("rules", {})
        return {"release": plan.release_of(d), "ready": plan.ready_of(d),
                "desired": plan.replicas_of(d), "weight": rules.get("weight"),
                "rules": len(rules.get("rules") or [])}

    def _last(self, cluster: Cluster) -> dict[str, Any] | None:
        """The journal's last entry; None when there is none or it cannot be read (status
        still answers)."""
        try:
            return next(reversed(cluster.journal(self._cfg.app.name)), None)
        except ApplyError as e:
            ui.debug(f"journal not read: {e.message}")
            return None

    def logs(self, *, host: str | None, follow: bool, since: str | None, lines: int) -> None:
        """The app's pods' logs (every track), each line prefixed with its pod; `-f`
        also follows the pods that appear while it runs (a rollout's), until Ctrl-C."""
        seconds = plan.since_seconds(since) if since else None
        cluster = self._cluster()
        every = {"app.kubernetes.io/name": self._cfg.app.name}
        pods = plan.log_pods([_pod(p) for p in cluster.pods(every)], host)
        lock = threading.Lock()

        def say(line: str) -> None:
            with lock:
                ui.out(line)

        followed = {p.name for p in pods}

        def more() -> list[str]:
            try:
                now = [_pod(p) for p in cluster.pods(every)]
            except Exception:  # a missed poll: the next one looks again
                return []
            fresh = plan.new_log_pods(now, followed, host)
            followed.update(fresh)
            return fresh

        cluster.stream_logs([p.name for p in pods], follow=follow, since=seconds,
                            lines=lines, say=say, more=more)


def _consecutive_2xx(get: Callable[[], tuple[int, str]], successes: int, deadline: float,
                     pause: float) -> tuple[bool, str]:
    """goship's gate on Kubernetes: `get` until `successes` 2xx in a row, or the deadline
    (monotonic); whether it passed, and what the last answer was."""
    good, last = 0, ""
    while time.monotonic() < deadline:
        code, last = get()
        good = good + 1 if 200 <= code < 300 else 0
        if good >= successes:
            return True, last
        time.sleep(pause)
    return False, last


def render_files(r: Any, color: str | None) -> list[tuple[str, str]]:
    from goship.render.kubernetes import render_kubernetes

    return plan.applied(render_kubernetes(r, color=color))


def _pod(p: dict[str, Any]) -> plan.Pod:
    st = p.get("status", {})
    cs = (st.get("containerStatuses") or [{}])[0]
    return plan.Pod(
        name=p["metadata"]["name"],
        template_hash=p["metadata"].get("labels", {}).get(plan.HASH_LABEL, ""),
        node=p.get("spec", {}).get("nodeName") or "", ready=bool(cs.get("ready")),
        restarts=int(cs.get("restartCount", 0)),
        waiting=(cs.get("state", {}).get("waiting") or {}).get("reason", ""),
        terminating="deletionTimestamp" in p["metadata"],
        last_run=_ran((cs.get("lastState") or {}).get("terminated") or {}),
        age=_age(p["metadata"].get("creationTimestamp")))


def _age(created: Any) -> float:
    try:
        when = (created if isinstance(created, datetime)
                else datetime.fromisoformat(str(created)))
        return max(0.0, (datetime.now(UTC) - when).total_seconds())
    except (TypeError, ValueError):
        return plan.RETRY_GRACE  # unknown: as an old pod


def _ran(terminated: dict[str, Any]) -> float:
    """Seconds between a terminated container's start and finish (0 when unknown)."""
    try:
        start = datetime.fromisoformat(terminated["startedAt"])
        end = datetime.fromisoformat(terminated["finishedAt"])
    except (KeyError, TypeError, ValueError):
        return 0.0
    return max(0.0, (end - start).total_seconds())


def _lab_nodes() -> int:
    from goship.lab import kubernetes as lab_kube

    found = lab_kube.status()
    if not found:
        raise ApplyError("the lab has no Kubernetes cluster",
                         hint="sudo goship lab up --hosts 3 --kubernetes")
    return len(found.get("nodes") or [])
