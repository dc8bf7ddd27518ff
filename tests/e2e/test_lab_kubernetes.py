"""`goship lab up --kubernetes` on the lab's 3 hosts: a real cluster (etcd, kube-apiserver,
controller-manager and scheduler on h1; containerd, kubelet and kube-proxy everywhere),
the example service's image from `goship package --image` imported without a registry,
a Deployment spread over two nodes, a ClusterIP Service reached from another node, a
NodePort answering on every host, a killed pod replaced, and `lab down` leaving nothing."""

from __future__ import annotations

import json
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import CliResult
from tests.e2e.conftest import Lab, snapshot
from tests.e2e.helpers import example_repo

pytestmark = [pytest.mark.lab, pytest.mark.slow, pytest.mark.components("kubernetes")]
Run = Callable[..., CliResult]
NODES = ("lab-h1", "lab-h2", "lab-h3")
NODE_PORT = 30480
# (containerd and its shims are left out: a test's own dockerd on the machine runs them too)
KUBE_PROCESSES = ("goship-kube", "etcd", "pause", "metrics-server")


def kubectl(*args: str, stdin: str | None = None, timeout: float = 60) -> str:
    from goship.lab import kubernetes

    res = subprocess.run([str(kubernetes.kubectl_path()), *args], input=stdin,
                         capture_output=True, text=True, timeout=timeout, check=False)
    if res.returncode != 0:
        raise AssertionError(f"kubectl {' '.join(args)}: {res.stderr.strip()}")
    return res.stdout


def kget(*args: str) -> Any:
    return json.loads(kubectl("get", *args, "-o", "json"))


def wait_for(what: str, check: Callable[[], bool], timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not after {timeout:g}s")
        time.sleep(1)


@pytest.fixture(scope="module")
def cluster(lab: Lab) -> Iterator[Lab]:
    from goship.lab import hosts

    hosts.up(3, kubernetes=True)
    yield lab
    # Later suites get fresh servers: the cluster goes with the hosts' disks.
    hosts.down()
    hosts.up(3)


@pytest.fixture(scope="module")
def image(tmp_path_factory: pytest.TempPathFactory, cluster: Lab) -> str:
    """The example service's image (`goship package --image`), imported into containerd's
    k8s.io namespace on every node; its name as Kubernetes resolves it."""
    from goship.lab import kubernetes
    from goship.lab.layout import HostLayout

    repo = example_repo(tmp_path_factory.mktemp("kube") / "hello-gin")
    out = subprocess.run([sys.executable, "-m", "goship", "package", "--image", "--json",
                          "--skip-checks"],
                         cwd=repo, capture_output=True, text=True, timeout=600, check=False)
    assert out.returncode == 0, out.stderr
    img = json.loads(out.stdout)["image"]
    repo = kubernetes.import_image([HostLayout(i) for i in (1, 2, 3)], Path(img["path"]))
    assert repo == "docker.io/library/hello-gin"
    return f"{repo}:{img['tags'][0].rsplit(':', 1)[1]}"


def test_every_node_is_ready_and_the_lab_says_where_its_kubeconfig_is(
        cluster: Lab, run_cli: Run) -> None:
    nodes = kget("nodes")["items"]
    assert sorted(n["metadata"]["name"] for n in nodes) == list(NODES)
    for n in nodes:
        ready = [c for c in n["status"]["conditions"] if c["type"] == "Ready"]
        assert ready[0]["status"] == "True", n["metadata"]["name"]
        assert n["status"]["nodeInfo"]["kubeletVersion"] == "v1.33.0"
    r = run_cli("lab", "kubeconfig")
    assert r.code == 0, r.err
    assert r.out.strip() == "/run/goship-lab/kubernetes/admin.kubeconfig"
    status = run_cli("lab", "status")
    assert "kubernetes v1.33.0  3 node(s)  API https://10.78.0.11:6443" in status.out
    # each component is a unit of its host
    assert cluster.ssh("h1", "systemctl is-active etcd kube-apiserver kube-controller-manager "
                             "kube-scheduler metrics-server kubelet kube-proxy containerd"
                       ).returncode == 0
    assert cluster.ssh("h2", "systemctl is-active kubelet kube-proxy containerd").returncode == 0
    assert cluster.ssh("h2", "systemctl is-active etcd kube-apiserver", check=False
                       ).stdout.split() == ["inactive", "inactive"]


def test_metrics_server_answers_kubectl_top_for_every_node(cluster: Lab) -> None:
    """The resource metrics API (what the HorizontalPodAutoscaler reads) is registered,
    reached through the API server's aggregation layer, and has every node's usage after
    metrics-server's first scrapes of the kubelets."""
    service = kget("apiservice", "v1beta1.metrics.k8s.io")
    available = [c for c in service["status"]["conditions"] if c["type"] == "Available"]
    assert available[0]["status"] == "True", available

    def top() -> dict[str, str]:
        try:
            out = kubectl("top", "nodes", "--no-headers")
        except AssertionError:  # "metrics not available yet" until the first scrapes
            return {}
        return {line.split()[0]: line.split()[1] for line in out.splitlines()}

    wait_for("kubectl top nodes", lambda: set(top()) == set(NODES), 90)
    assert all(cpu.endswith("m") and int(cpu[:-1]) > 0 for cpu in top().values())


DEPLOYMENT = """
apiVersion: apps/v1
kind: Deployment
metadata: {{name: hello}}
spec:
  replicas: 2
  selector: {{matchLabels: {{app: hello}}}}
  template:
    metadata: {{labels: {{app: hello}}}}
    spec:
      affinity:
        podAntiAffinity:
          requiredDuringSchedulingIgnoredDuringExecution:
          - topologyKey: kubernetes.io/hostname
            labelSelector: {{matchLabels: {{app: hello}}}}
      containers:
      - name: hello
        image: {image}
        imagePullPolicy: Never
        ports: [{{containerPort: 8080}}]
        readinessProbe: {{httpGet: {{path: /version, port: 8080}}, periodSeconds: 1}}
---
apiVersion: v1
kind: Service
metadata: {{name: hello}}
spec:
  type: NodePort
  selector: {{app: hello}}
  ports: [{{port: 80, targetPort: 8080, nodePort: {node_port}}}]
"""


@pytest.fixture(scope="module")
def deployed(cluster: Lab, image: str) -> dict[str, str]:
    """The Deployment Available; pod name -> node."""
    kubectl("apply", "-f", "-", stdin=DEPLOYMENT.format(image=image, node_port=NODE_PORT))
    kubectl("rollout", "status", "deployment/hello", "--timeout=180s", timeout=200)
    return pods()


def pods() -> dict[str, str]:
    items = kget("pods", "-l", "app=hello")["items"]
    return {p["metadata"]["name"]: p["spec"].get("nodeName", "") for p in items
            if p["status"].get("phase") == "Running" and "deletionTimestamp" not in p["metadata"]}


def test_a_deployment_of_the_example_image_runs_on_two_nodes(
        cluster: Lab, deployed: dict[str, str]) -> None:
    assert len(deployed) == 2
    assert len(set(deployed.values())) == 2, deployed
    dep = kget("deployment", "hello")
    assert dep["status"]["availableReplicas"] == 2
    # every pod answers from a node that is not its own (pod routes between hosts)
    for p in kget("pods", "-l", "app=hello")["items"]:
        other = next(n for n in NODES if n != p["spec"]["nodeName"])
        out = cluster.ssh(other[4:], f"curl -fsS http://{p['status']['podIP']}:8080/version")
        assert "v1.0.0" in out.stdout


def test_a_cluster_ip_answers_from_a_node_without_its_pods(
        cluster: Lab, deployed: dict[str, str]) -> None:
    cluster_ip = kget("service", "hello")["spec"]["clusterIP"]
    assert cluster_ip.startswith("10.96.")
    [empty] = [n for n in NODES if n not in deployed.values()]
    for _ in range(4):  # both endpoints, whichever kube-proxy picks
        out = cluster.ssh(empty[4:], f"curl -fsS --max-time 5 http://{cluster_ip}/version")
        assert "v1.0.0" in out.stdout


def test_the_node_port_answers_on_every_host(cluster: Lab, deployed: dict[str, str]) -> None:
    for i in (1, 2, 3):
        with urllib.request.urlopen(f"http://10.78.0.1{i}:{NODE_PORT}/version",
                                    timeout=5) as r:
            assert r.status == 200
            assert "v1.0.0" in r.read().decode()


def test_a_killed_pod_is_replaced(cluster: Lab, deployed: dict[str, str]) -> None:
    victim = sorted(deployed)[0]
    kubectl("delete", "pod", victim, "--wait=false")

    def replaced() -> bool:
        now = pods()
        return len(now) == 2 and victim not in now and len(set(now.values())) == 2

    wait_for("a replacement pod Running", replaced)
    kubectl("rollout", "status", "deployment/hello", "--timeout=120s", timeout=150)


def test_lab_down_leaves_no_cluster_behind(cluster: Lab, deployed: dict[str, str]) -> None:
    from goship.lab import hosts

    assert cluster.ssh("h2", "ip link show cni0").returncode == 0
    hosts.down()
    after = snapshot()
    for kind, before in cluster.before.items():
        assert after[kind] == before, f"{kind} left behind: {after[kind] - before}"
    comms = subprocess.run(["ps", "-eo", "comm"], capture_output=True, text=True,
                           check=True).stdout.split()
    assert not [c for c in comms if c in KUBE_PROCESSES]
    assert not Path("/run/goship-lab").exists()
