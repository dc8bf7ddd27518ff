"""Kubernetes: `goship deploy` against `kubectl apply -f` + `kubectl rollout status` (the
articles' way) on the same 3-node lab cluster, the same service and images, the same load
(wrk on a NodePort), in turn; and `goship rollback` against `kubectl rollout undo` +
`rollout status`. Writes its section into docs/benchmarks.md (between markers).

    sudo .venv/bin/python -m bench.kube [--runs 3]
"""

from __future__ import annotations

import json
import shutil
import tarfile
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench.suite import (
    GOSHIP,
    Load,
    Series,
    example_project,
    git,
    release_rows,
    sh,
    standalone_args,
    timed,
    write_section,
)

TOML = """
[app]
name = "bench-kube"
[app.stamp]
"main.version" = "{version}"
[build]
targets = ["linux/amd64"]
assets = ["templates", "static"]
[run]
port_env = "PORT"
base_port = 8080
[run.health]
path = "/health"
deadline = 10.0
[kubernetes]
min_replicas = 2
max_replicas = 2  # as kubectl's column: the lab's metrics-server would scale it under wrk
[deploy]
strategy = "rolling"
[env.k8s]
kubernetes = "lab"
"""
# The articles' manifests (001): a Deployment of 2 with a readiness probe and the default
# RollingUpdate, a NodePort Service; the image by tag, already on the nodes.
HAND = """apiVersion: apps/v1
kind: Deployment
metadata: {{name: bench-hand}}
spec:
  replicas: 2
  selector: {{matchLabels: {{app: bench-hand}}}}
  template:
    metadata: {{labels: {{app: bench-hand}}}}
    spec:
      containers:
        - name: web
          image: {image}
          imagePullPolicy: IfNotPresent
          env: [{{name: PORT, value: "8080"}}]
          ports: [{{containerPort: 8080}}]
          readinessProbe:
            httpGet: {{path: /health, port: 8080}}
            periodSeconds: 2
          livenessProbe:
            httpGet: {{path: /health, port: 8080}}
            periodSeconds: 10
---
apiVersion: v1
kind: Service
metadata: {{name: bench-hand}}
spec:
  type: NodePort
  selector: {{app: bench-hand}}
  ports: [{{port: 80, targetPort: 8080, nodePort: 30482}}]
"""
# goship's Service is a ClusterIP; the load reaches the same pods on a NodePort.
GOSHIP_DOOR = """apiVersion: v1
kind: Service
metadata: {name: bench-kube-nodeport}
spec:
  type: NodePort
  selector: {app.kubernetes.io/name: bench-kube, goship.dev/track: stable}
  ports: [{port: 80, targetPort: 8080, nodePort: 30483}]
"""
# Blue-green (article 002): its own app, its rendered Service a NodePort.
TOML_BG = (TOML.replace('name = "bench-kube"', 'name = "bench-bg"')
           .replace('strategy = "rolling"', 'strategy = "bluegreen"')
           .replace('kubernetes = "lab"', 'kubernetes = { lab = true, node_port = 30484 }'))
BEGIN, END = "<!-- bench.kube begin -->", "<!-- bench.kube end -->"
TAGS = ("v1.0.0", "v2.0.0")


class KubeBench:
    def __init__(self, runs: int) -> None:
        self.runs = runs
        self.tmp = Path(tempfile.mkdtemp(prefix="goship-bench-kube-"))
        self.project = _two_releases(self.tmp / "bench-kube", TOML)
        self.images: dict[str, str] = {}  # tag -> the image reference the hand path uses
        self.bluegreen = _two_releases(self.tmp / "bench-bg", TOML_BG)

    def kubectl(self, *args: str, stdin: str | None = None) -> str:
        from goship.lab import kubernetes

        argv = [str(kubernetes.kubectl_path()), "--kubeconfig",
                str(kubernetes.kubeconfig_path()), *args]
        if stdin is None:
            return sh(*argv, timeout=600).stdout
        path = self.tmp / "stdin.yaml"
        path.write_text(stdin)
        return sh(*argv, "-f", str(path), timeout=600).stdout

    def setup(self) -> None:
        from goship.lab import hosts
        from goship.lab import kubernetes as lab_kube
        from goship.lab.layout import HostLayout

        hosts.down()
        hosts.up(3, kubernetes=True)
        nodes = [HostLayout(i) for i in (1, 2, 3)]
        for tag in TAGS:  # the hand path's images: built and on every node beforehand
            git(self.project, "checkout", "-q", tag)
            sh(*GOSHIP, "package", "--image", cwd=self.project)
            [tar] = sorted((self.project / "dist").rglob(f"*{tag}*_image.tar"))
            repo = lab_kube.import_image(nodes, tar)
            self.images[tag] = f"{repo}:{_tag_of(tar)}"
        self.goship(TAGS[0])
        self.kubectl("apply", stdin=GOSHIP_DOOR)
        self.hand(TAGS[0])
        # blue-green: v1 on blue, v2 on green: both colors up, each rollback a switch
        for tag in TAGS:
            git(self.bluegreen, "checkout", "-q", tag)
            sh(*GOSHIP, "deploy", "k8s", "--skip-checks", cwd=self.bluegreen)

    def goship(self, tag: str) -> None:
        git(self.project, "checkout", "-q", tag)
        sh(*GOSHIP, "deploy", "k8s", "--skip-checks", cwd=self.project)

    def hand(self, tag: str) -> None:
        self.kubectl("apply", stdin=HAND.format(image=self.images[tag]))
        self.kubectl("rollout", "status", "deployment/bench-hand", "--timeout=300s")

    def close(self) -> None:
        from goship.lab import hosts

        hosts.down()
        shutil.rmtree(self.tmp, ignore_errors=True)


def _two_releases(path: Path, toml: str) -> Path:
    """The example project with TAGS[0] and TAGS[1] (a file of its own changed)."""
    project = example_project(path, toml, ignore_dist=True)
    git(project, "tag", TAGS[0])
    (project / "static" / "bench.txt").write_text("v2\n")
    git(project, "add", ".")
    git(project, "commit", "-qm", "v2")
    git(project, "tag", TAGS[1])
    return project


def _tag_of(tar: Path) -> str:
    with tarfile.open(tar) as t:
        member = t.extractfile("manifest.json")
        assert member is not None  # noqa: S101 (goship package --image writes it)
        return str(json.loads(member.read())[0]["RepoTags"][0]).rsplit(":", 1)[1]


def measure(b: KubeBench) -> str:
    state = {"goship": TAGS[0], "hand": TAGS[0]}

    def flip(key: str) -> str:
        state[key] = TAGS[1] if state[key] == TAGS[0] else TAGS[0]
        return state[key]

    methods = {
        "goship deploy (build, import, apply, watch, health gate)": (
            "http://10.78.0.12:30483/api/items", lambda: b.goship(flip("goship"))),
        "kubectl apply -f + kubectl rollout status (images already on the nodes)": (
            "http://10.78.0.12:30482/api/items", lambda: b.hand(flip("hand"))),
    }
    results: dict[str, list[dict[str, Any]]] = {k: [] for k in methods}
    for _ in range(b.runs):
        for name, (url, action) in methods.items():
            load = Load(url)
            seconds = timed(action)
            r = load.stop()
            results[name].append({**r, "seconds": seconds})
    rows = release_rows(results)
    rollbacks: dict[str, tuple[str, Callable[[], object], Callable[[], object]]] = {
        "goship rollback": (
            "http://10.78.0.12:30483/api/items",
            lambda: sh(*GOSHIP, "rollback", "k8s", cwd=b.project), lambda: flip("goship")),
        "kubectl rollout undo + rollout status": (
            "http://10.78.0.12:30482/api/items",
            lambda: (b.kubectl("rollout", "undo", "deployment/bench-hand"),
                     b.kubectl("rollout", "status", "deployment/bench-hand",
                               "--timeout=300s")), lambda: flip("hand")),
        "goship rollback, blue-green (the Service switched to the warm standby)": (
            "http://10.78.0.12:30484/api/items",
            lambda: sh(*GOSHIP, "rollback", "k8s", cwd=b.bluegreen), lambda: None),
    }
    back: dict[str, list[dict[str, Any]]] = {k: [] for k in rollbacks}
    idle: dict[str, list[float]] = {k: [] for k in rollbacks}
    for _ in range(b.runs):
        for name, (url, action, after) in rollbacks.items():
            load = Load(url)
            seconds = timed(action)
            back[name].append({**load.stop(), "seconds": seconds})
            after()
            idle[name].append(timed(action))  # and back, with nothing else running
            after()
    back_rows = [f"| {k} | {Series([r['failed'] for r in v]).show('', '{:.0f}')} | "
                 f"{Series([r['seconds'] for r in v]).show()} | {Series(idle[k]).show()} |"
                 for k, v in back.items()]
    ratio = Series([g["seconds"] / h["seconds"] for g, h in zip(
        *results.values(), strict=True)])
    return "\n".join([
        BEGIN,
        "## Kubernetes: goship deploy against kubectl",
        "",
        f"`python -m bench.kube` on {time.strftime('%Y-%m-%d')}, {b.runs} run(s) each, in "
        "turn, on the 3-node lab cluster (`lab up --kubernetes`), two releases of the "
        "example service alternating, 2 replicas. goship: `goship deploy k8s` as a user "
        "runs it (the Go build from a warm cache and the image, the import into every "
        "node's containerd, server-side apply pinned by digest, the rollout watched pod by "
        "pod, the health gate through the Service, a preStop pause and maxUnavailable 0 in "
        "its manifests). kubectl: the articles' Deployment (a readiness probe, the default "
        "RollingUpdate, no preStop) applied with `kubectl apply -f` and waited on with "
        "`kubectl rollout status`, its images built and imported before the clock starts. "
        "Load: wrk, 2 threads, 16 connections to a NodePort on h2, from 1 s before to 1 s "
        "after. Failed = connection errors + non-2xx answers.",
        "",
        "| method | failed requests | requests during the run | wall time |",
        "|---|---|---|---|",
        *rows,
        "",
        f"goship's wall time over kubectl's, pair by pair: {ratio.show('', '{:.2f}')}x "
        "(goship's includes the build and the import the kubectl column does not).",
        "",
        "Rollback, under the same load. Blue-green: `deploy.strategy = \"bluegreen\"`, "
        "both colors up (the old one warm), so a rollback is one apply of the Service's "
        "selector and no pod starts. Each rollback is also timed with no load (the next one, "
        "back again): wrk as fast as it goes takes most of the 2 cores that goship, the API "
        "server and the pods share.",
        "",
        "| rollback | failed requests | wall time under load | wall time, no load |",
        "|---|---|---|---|",
        *back_rows,
        "",
        END,
    ])


def main() -> None:
    args = standalone_args(__doc__, "kube", 3)
    b = KubeBench(args.runs)
    try:
        b.setup()
        text = measure(b)
    finally:
        b.close()
    write_section(args.out, BEGIN, END, text)
    print(text)


if __name__ == "__main__":
    main()
