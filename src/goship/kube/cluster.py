"""The API server, through lightkube (typed, server-side apply built in, no kubectl):
what the Kubernetes target reads and changes in a cluster, as plain dicts."""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from goship.config.model import KubeCluster
from goship.errors import ApplyError, UsageError

FIELD_MANAGER = "goship"
# Sets a replica count (the first one, a blue-green color's up and down): the
# HorizontalPodAutoscaler owns it afterwards, and goship's own manager never holds the
# field (its next apply would reset the count).
REPLICAS_MANAGER = "goship-initial-replicas"


def kubeconfig_of(cluster: KubeCluster) -> Path:
    if cluster.lab:
        from goship.lab import kubernetes

        return kubernetes.kubeconfig_path()
    if cluster.kubeconfig:
        return Path(os.path.expanduser(cluster.kubeconfig))
    return Path(os.environ.get("KUBECONFIG", "~/.kube/config").split(os.pathsep)[0]
                ).expanduser()


class Cluster:
    def __init__(self, cluster: KubeCluster, namespace: str) -> None:
        from lightkube import Client, KubeConfig

        path = kubeconfig_of(cluster)
        if not path.is_file():
            hint = ("start it: sudo goship lab up --hosts 3 --kubernetes" if cluster.lab
                    else "set kubernetes.kubeconfig to an existing file")
            raise UsageError(f"no kubeconfig at {path}", hint=hint)
        config = KubeConfig.from_file(path)
        try:
            single = config.get(cluster.context) if cluster.context else config
        except Exception as e:  # lightkube raises ConfigError for an unknown context
            raise UsageError(f"{path}: {e}",
                             hint="name a context of that kubeconfig") from None
        self.namespace = namespace
        self.client = Client(single, namespace=namespace, field_manager=FIELD_MANAGER)

    def apply(self, text: str) -> list[str]:
        """Server-side apply of one rendered file's objects; their kind/name."""
        from lightkube import ApiError, codecs

        done = []
        for obj in codecs.load_all_yaml(text):
            try:
                self.client.apply(obj, force=True)
            except ApiError as e:
                raise ApplyError(f"apply {obj.kind}/{obj.metadata.name}: "  # type: ignore
                                 f"{e.status.message}") from None
            done.append(f"{obj.kind}/{obj.metadata.name}")  # type: ignore[union-attr]
        return done

    def preview(self, text: str) -> list[tuple[str, str, dict[str, Any] | None,
                                               dict[str, Any]]]:
        """(kind, name, live object or None, the server's dry run of its apply) for one
        rendered file's objects: nothing is changed."""
        from lightkube import ApiError, codecs

        out = []
        for obj in codecs.load_all_yaml(text):
            kind, name = str(obj.kind), str(obj.metadata.name)  # type: ignore[union-attr]
            try:
                before: dict[str, Any] | None = self.client.get(
                    type(obj), name).to_dict()  # type: ignore[no-untyped-call]
            except ApiError as e:
                if e.status.code != 404:
                    raise ApplyError(f"get {kind}/{name}: {e.status.message}") from None
                before = None
            try:
                after = self.client.apply(
                    obj, force=True, dry_run=True).to_dict()  # type: ignore[no-untyped-call]
            except ApiError as e:
                raise ApplyError(f"dry run of {kind}/{name}: {e.status.message}") from None
            out.append((kind, name, before, after))
        return out

    def scale(self, name: str, replicas: int) -> None:
        """The Deployment's replica count, under its own field manager (see
        REPLICAS_MANAGER): the first count, and a blue-green color's up and down."""
        from lightkube.resources.apps_v1 import Deployment

        self.client.patch(Deployment, name, {"apiVersion": "apps/v1", "kind": "Deployment",
                                             "metadata": {"name": name},
                                             "spec": {"replicas": replicas}},
                          patch_type=_apply_patch(), field_manager=REPLICAS_MANAGER,
                          force=True)

    def annotate(self, deployment: str, annotations: dict[str, str | None]) -> None:
        """Sets (a string) or removes (None) annotations of a Deployment."""
        from lightkube import ApiError
        from lightkube.resources.apps_v1 import Deployment

        try:
            self.client.patch(Deployment, deployment,
                              {"metadata": {"annotations": annotations}})
        except ApiError as e:
            raise ApplyError(f"annotate deployment/{deployment}: {e.status.message}") from None

    def delete_deployment(self, name: str) -> None:
        from lightkube.resources.apps_v1 import Deployment

        self._delete(Deployment, name)

    def delete_service(self, name: str) -> None:
        from lightkube.resources.core_v1 import Service

        self._delete(Service, name)

    def _delete(self, resource: Any, name: str) -> None:
        """Deletes one object; one already gone is not an error."""
        from lightkube import ApiError

        try:
            self.client.delete(resource, name)
        except ApiError as e:
            if e.status.code != 404:
                raise ApplyError(f"delete {resource.__name__.lower()}/{name}: "
                                 f"{e.status.message}") from None

    def pod_get(self, pod: str, port: int, path: str, timeout: float) -> tuple[int, str]:
        """service_get for one pod (`/api/v1/namespaces/NS/pods/NAME:PORT/proxy/PATH`):
        a blue-green color is gated pod by pod before any Service selects it."""
        from urllib.parse import quote

        return self._proxy_get(f"/api/v1/namespaces/{quote(self.namespace, safe='')}/pods/"
                               f"{quote(pod, safe='')}:{port}/proxy{path}", timeout)

    def apply_template(self, name: str, template: dict[str, Any]) -> None:
        """The Deployment's pod template replaced by `template` (an undo). The apply
        carries every field goship's apply set (the selector, strategy and history from
        the live object): server-side apply removes what its manager stops sending."""
        from lightkube.resources.apps_v1 import Deployment

        live = self.deployment(name)
        if live is None:
            raise ApplyError(f"deployment/{name} is gone: nothing to undo")
        spec = {k: live["spec"][k] for k in ("selector", "strategy", "revisionHistoryLimit")
                if k in live["spec"]}
        from lightkube import ApiError

        try:
            self.client.patch(Deployment, name, {
                "apiVersion": "apps/v1", "kind": "Deployment",
                "metadata": {"name": name, "labels": live["metadata"].get("labels") or {}},
                "spec": {**spec, "template": template}},
                patch_type=_apply_patch(), field_manager=FIELD_MANAGER, force=True)
        except ApiError as e:
            raise ApplyError(f"undo of deployment/{name}: {e.status.message}") from None

    def secrets_values(self, app: str) -> dict[str, dict[str, str]]:
        """goship's Secrets of the app: name -> values (decoded). Read to reuse the one that
        holds a deploy's values; never printed."""
        import base64

        from lightkube.resources.core_v1 import Secret

        out = {}
        for sec in self.client.list(Secret, labels=_managed(app)):
            obj: dict[str, Any] = sec.to_dict()
            data = obj.get("data") or {}
            out[obj["metadata"]["name"]] = {k: base64.b64decode(v).decode("utf-8", "replace")
                                            for k, v in data.items()}
        return out

    def env_objects(self, app: str) -> list[tuple[str, str]]:
        """(kind, name) of goship's ConfigMaps and Secrets of the app."""
        from lightkube.resources.core_v1 import ConfigMap, Secret

        maps = [("ConfigMap", c.to_dict()["metadata"]["name"])
                for c in self.client.list(ConfigMap, labels=_managed(app))]
        return maps + [("Secret", s.to_dict()["metadata"]["name"])
                       for s in self.client.list(Secret, labels=_managed(app))]

    def app_objects(self, app: str) -> list[tuple[str, str]]:
        """(kind, name) of everything goship made for the app in the namespace, in the
        order a removal deletes them: what serves first, its environment and journal last."""
        from lightkube import ApiError
        from lightkube.resources.apps_v1 import Deployment
        from lightkube.resources.autoscaling_v2 import HorizontalPodAutoscaler
        from lightkube.resources.core_v1 import ConfigMap, Service
        from lightkube.resources.policy_v1 import PodDisruptionBudget

        found = []
        kinds: tuple[Any, ...] = (HorizontalPodAutoscaler, PodDisruptionBudget, Service,
                                  Deployment)
        for kind in kinds:
            found += [(kind.__name__, str(o.metadata.name))
                      for o in self.client.list(kind, labels=_managed(app))]
        found += self.env_objects(app)
        try:
            self.client.get(ConfigMap, journal_name(app))
            found.append(("ConfigMap", journal_name(app)))
        except ApiError as e:
            if e.status.code != 404:
                raise ApplyError(f"get configmap/{journal_name(app)}: {e.status.message}"
                                 ) from None
        return found

    def delete(self, kind: str, name: str) -> None:
        """One object of app_objects' kinds; one already gone is not an error."""
        from lightkube.resources.apps_v1 import Deployment
        from lightkube.resources.autoscaling_v2 import HorizontalPodAutoscaler
        from lightkube.resources.core_v1 import ConfigMap, Secret, Service
        from lightkube.resources.policy_v1 import PodDisruptionBudget

        kinds = {k.__name__: k for k in (Deployment, HorizontalPodAutoscaler, ConfigMap,
                                         Secret, Service, PodDisruptionBudget)}
        self._delete(kinds[kind], name)

    def delete_lease(self, name: str) -> None:
        r = self._raw("DELETE", self._leases(name))
        if r.status_code not in (200, 202, 404):
            raise ApplyError(f"delete lease/{name}: HTTP {r.status_code}: {_reason(r)}")

    def service_get(self, service: str, port: str, path: str,
                    timeout: float) -> tuple[int, str]:
        """(status, what happened) of a GET through the API server's service proxy
        (`/api/v1/namespaces/NS/services/NAME:PORT/proxy/PATH`): the Service's pods, reached
        from wherever the API server is, with the kubeconfig's own credentials."""
        from urllib.parse import quote

        return self._proxy_get(f"/api/v1/namespaces/{quote(self.namespace, safe='')}/"
                               f"services/{quote(service, safe='')}:{quote(port, safe='')}"
                               f"/proxy{path}", timeout)

    def _proxy_get(self, url: str, timeout: float) -> tuple[int, str]:
        try:
            r = self._http().get(url, timeout=timeout)  # the proxy has no typed call
        except Exception as e:  # the API server or the pod did not answer in time
            return 0, f"no answer ({type(e).__name__})"
        return int(r.status_code), f"HTTP {r.status_code}"

    # Leases go as raw JSON: lightkube's models write a MicroTime with no fraction when its
    # microseconds are 0, which the API server refuses.
    def _leases(self, name: str = "") -> str:
        from urllib.parse import quote

        base = (f"/apis/coordination.k8s.io/v1/namespaces/{quote(self.namespace, safe='')}"
                "/leases")
        return f"{base}/{quote(name, safe='')}" if name else base

    def lease(self, name: str) -> dict[str, Any] | None:
        r = self._raw("GET", self._leases(name))
        if r.status_code == 404:
            return None
        if r.status_code != 200:
            raise ApplyError(f"get lease/{name}: HTTP {r.status_code}: {_reason(r)}")
        found: dict[str, Any] = r.json()
        return found

    def put_lease(self, obj: dict[str, Any]) -> bool:
        """Creates the Lease, or replaces the one whose resourceVersion `obj` carries.
        False when another writer got there first (409: it exists, or it changed since it
        was read)."""
        name = obj["metadata"]["name"]
        if obj["metadata"].get("resourceVersion"):
            r = self._raw("PUT", self._leases(name), obj)
        else:
            r = self._raw("POST", self._leases(), obj)
        if r.status_code == 409:
            return False
        if r.status_code not in (200, 201):
            raise ApplyError(f"write lease/{name}: HTTP {r.status_code}: {_reason(r)}")
        return True

    def _http(self) -> Any:
        """lightkube's HTTP client: the kubeconfig's server, TLS and credentials."""
        return self.client._client._client

    def _raw(self, method: str, url: str, body: dict[str, Any] | None = None) -> Any:
        try:
            return self._http().request(method, url, json=body)
        except Exception as e:  # the API server did not answer
            raise ApplyError(f"{method} {url}: {type(e).__name__}: {e}") from None

    def mark_failed(self, replicaset: str, reason: str) -> None:
        from lightkube.resources.apps_v1 import ReplicaSet

        self.client.patch(ReplicaSet, replicaset, {"metadata": {"annotations": {
            "goship.dev/failed": reason[:200]}}})

    def deployment(self, name: str) -> dict[str, Any] | None:
        from lightkube import ApiError
        from lightkube.resources.apps_v1 import Deployment

        try:
            return self.client.get(Deployment, name).to_dict()
        except ApiError as e:
            if e.status.code == 404:
                return None
            raise

    def replicasets(self, selector: dict[str, str]) -> list[dict[str, Any]]:
        from lightkube.resources.apps_v1 import ReplicaSet

        labels: dict[str, Any] = dict(selector)
        return [rs.to_dict() for rs in self.client.list(ReplicaSet, labels=labels)]

    def pods(self, selector: dict[str, str]) -> list[dict[str, Any]]:
        from lightkube.resources.core_v1 import Pod

        labels: dict[str, Any] = dict(selector)
        return [p.to_dict() for p in self.client.list(Pod, labels=labels)]

    def hpa(self, name: str) -> dict[str, Any] | None:
        from lightkube import ApiError
        from lightkube.resources.autoscaling_v2 import HorizontalPodAutoscaler

        try:
            return self.client.get(HorizontalPodAutoscaler, name).to_dict()
        except ApiError:
            return None

    def journal(self, app: str) -> list[dict[str, Any]]:
        """The app's journal on the cluster (every deploy and rollback, oldest first)."""
        import json

        from lightkube import ApiError
        from lightkube.resources.core_v1 import ConfigMap

        try:
            cm = self.client.get(ConfigMap, journal_name(app)).to_dict()
        except ApiError as e:
            if e.status.code == 404:
                return []
            raise ApplyError(f"read configmap/{journal_name(app)}: {e.status.message}"
                             ) from None
        out = []
        for line in ((cm.get("data") or {}).get(JOURNAL_KEY) or "").splitlines():
            try:
                out.append(json.loads(line))
            except json.JSONDecodeError:
                continue
        return out

    def journal_append(self, app: str, entry: dict[str, Any], keep: int) -> None:
        """One more line in the journal, the oldest dropped past `keep`. Written under the
        deploy lock (the Lease): no other goship writes it meanwhile."""
        import json

        from lightkube import ApiError, codecs

        lines = [json.dumps(e, sort_keys=True) for e in self.journal(app)[-(keep - 1):]]
        lines.append(json.dumps(entry, sort_keys=True))
        obj = codecs.from_dict({
            "apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": journal_name(app), "namespace": self.namespace,
                         # not managed-by goship: the environment's prune never reads it
                         "labels": {"app.kubernetes.io/name": app,
                                    "goship.dev/journal": "true"}},
            "data": {JOURNAL_KEY: "\n".join(lines) + "\n"}})
        try:
            self.client.apply(obj, force=True)
        except ApiError as e:
            raise ApplyError(f"write configmap/{journal_name(app)}: {e.status.message}"
                             ) from None

    def node_address(self) -> str | None:
        """The InternalIP of the first Ready node (by name): where a NodePort answers.
        None when there is none, or when the credentials may not list nodes (a namespaced
        account often may not)."""
        found = self.node_addresses()
        return found[0] if found else None

    def node_addresses(self) -> list[str]:
        """Every Ready node's InternalIP, by node name."""
        from lightkube import ApiError
        from lightkube.resources.core_v1 import Node

        try:
            nodes = [n.to_dict() for n in self.client.list(Node)]
        except ApiError:
            return []
        out = []
        for node in sorted(nodes, key=lambda n: n["metadata"]["name"]):
            st = node.get("status") or {}
            ready = any(c.get("type") == "Ready" and c.get("status") == "True"
                        for c in st.get("conditions") or [])
            ip = next((a["address"] for a in st.get("addresses") or []
                       if a.get("type") == "InternalIP"), None)
            if ready and ip:
                out.append(str(ip))
        return out

    def service(self, name: str) -> dict[str, Any] | None:
        from lightkube import ApiError
        from lightkube.resources.core_v1 import Service

        try:
            return self.client.get(Service, name).to_dict()
        except ApiError:
            return None

    def events(self, pod: str, limit: int = 8) -> list[str]:
        from lightkube.resources.core_v1 import Event

        found = [e.to_dict() for e in self.client.list(
            Event, fields={"involvedObject.name": pod})]
        found.sort(key=lambda e: str(e.get("lastTimestamp") or e.get("eventTime") or ""))
        return [f"{e.get('reason', '')}: {e.get('message', '').strip()}" for e in found[-limit:]]

    def log_tail(self, pod: str, lines: int = 10) -> list[str]:
        from lightkube import ApiError

        try:
            return [x.rstrip("\n") for x in self.client.log(pod, tail_lines=lines)]
        except ApiError as e:
            return [f"(no log: {e.status.message})"]


    def stream_logs(self, pods: list[str], *, follow: bool, since: int | None, lines: int,
                    say: Callable[[str], None],
                    more: Callable[[], list[str]] | None = None) -> None:
        """Each pod's log, every line prefixed with its pod; with `follow`, one reader per
        pod, lines printed as they come, until interrupted. `more`, polled every 2 s while
        following, names pods that appeared since: each is read from its first line."""
        import time

        from lightkube import ApiError

        def one(pod: str, tail: int | None, wait: float) -> None:
            deadline = time.monotonic() + wait
            while True:
                try:
                    for line in self.client.log(pod, follow=follow, since=since,
                                                tail_lines=tail):
                        say(f"{pod} | {line.rstrip(chr(10))}")
                    return
                except ApiError as e:
                    # a new pod's container may not have started yet: wait for it
                    if time.monotonic() >= deadline:
                        say(f"{pod} | (no log: {e.status.message})")
                        return
                    time.sleep(1)

        if not follow:
            for pod in pods:
                one(pod, lines, 0)
            return
        readers = [threading.Thread(target=one, args=(p, lines, 0), daemon=True)
                   for p in pods]
        for t in readers:
            t.start()
        while more is not None or any(t.is_alive() for t in readers):
            time.sleep(2)  # wakes for Ctrl-C
            for pod in (more() if more is not None else []):
                t = threading.Thread(target=one, args=(pod, None, 120), daemon=True)
                t.start()
                readers.append(t)


def _reason(r: Any) -> str:
    try:
        return str(r.json().get("message", ""))[:300]
    except ValueError:
        return str(r.text)[:300]


JOURNAL_KEY = "journal.jsonl"


def journal_name(app: str) -> str:
    return f"goship-{app}-journal"


def _managed(app: str) -> dict[str, Any]:
    return {"app.kubernetes.io/name": app, "app.kubernetes.io/managed-by": "goship"}


def _apply_patch() -> Any:
    from lightkube.types import PatchType

    return PatchType.APPLY
