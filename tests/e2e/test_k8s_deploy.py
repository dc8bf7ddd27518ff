"""`goship deploy` to the lab's Kubernetes cluster (3 nodes): v1 lands Ready and answers
through its Service, v2 (a new environment) rolls out under steady load with no failed
request, a release that never passes its health check is undone to v2 with the reason
printed, and `goship rollback` returns to v1 (not to the undone release), under load.
Then blue-green: a second Deployment per release, the Service switched once its pods pass
the gate, the old color warm for an instant rollback, a bad release never selected.
Each release's pods read the ConfigMap and Secret it was deployed with, which stay while
a kept ReplicaSet reads them: a rollback takes the environment back with the release."""

from __future__ import annotations

import base64
import contextlib
import json
import queue
import re
import shutil
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import CliResult
from tests.e2e import registry as lab_registry
from tests.e2e.conftest import Lab
from tests.e2e.helpers import Project
from tests.e2e.load import Load

pytestmark = [pytest.mark.lab, pytest.mark.slow, pytest.mark.components("kubernetes")]
Run = Callable[..., CliResult]
NODE_PORT = 30481
SECRET = "s3cret-k8s-value"
APP = "hello-gin"
TOML = f"""
[app]
name = "{APP}"
[app.stamp]
"main.version" = "{{version}}"
[build]
targets = ["linux/amd64"]
assets = ["templates", "static"]
[run]
port_env = "PORT"
base_port = 8080
env_file = ".env.k8s"
[run.health]
path = "/health"
deadline = 10.0
[kubernetes]
min_replicas = 2
max_replicas = 2  # the lab's metrics-server is real: under wrk the HPA would add pods
[deploy]
strategy = "rolling"
keep_releases = 2  # the Deployment keeps 2 old ReplicaSets: the tests see one leave
[env.k8s]
kubernetes = "lab"
"""
# The test's own door into the cluster from this machine (the rendered Service is a
# ClusterIP): the same pods, reached on every node's port.
NODE_PORT_SERVICE = f"""
apiVersion: v1
kind: Service
metadata: {{name: {APP}-nodeport}}
spec:
  type: NodePort
  selector: {{app.kubernetes.io/name: {APP}, goship.dev/track: stable}}
  ports: [{{port: 80, targetPort: 8080, nodePort: {NODE_PORT}}}]
"""


def kubectl(*args: str, stdin: str | None = None) -> str:
    from goship.lab import kubernetes

    res = subprocess.run([str(kubernetes.kubectl_path()), *args], input=stdin,
                         capture_output=True, text=True, timeout=60, check=False)
    assert res.returncode == 0, f"kubectl {' '.join(args)}: {res.stderr.strip()}"
    return res.stdout


def kget(*args: str) -> Any:
    return json.loads(kubectl("get", *args, "-o", "json"))


def env_of(obj: dict[str, Any]) -> tuple[str, str]:
    """(ConfigMap, Secret) a Deployment's or ReplicaSet's pods read."""
    refs = obj["spec"]["template"]["spec"]["containers"][0]["envFrom"]
    return refs[0]["configMapRef"]["name"], refs[1]["secretRef"]["name"]


def replicaset_of(version: str) -> dict[str, Any]:
    found = [rs for rs in kget("replicasets", "-l", f"app.kubernetes.io/name={APP}")["items"]
             if rs["spec"]["template"]["metadata"]["labels"]["app.kubernetes.io/version"]
             == version]
    return max(found, key=lambda rs: int(
        rs["metadata"]["annotations"]["deployment.kubernetes.io/revision"]))


def no_environment_left_unread() -> None:
    """Every ConfigMap and Secret goship made for the app is read by a kept ReplicaSet."""
    sets = kget("replicasets", "-l", f"app.kubernetes.io/name={APP}")["items"]
    read = {name for rs in sets for name in env_of(rs)}
    made = {o["metadata"]["name"] for kind in ("configmaps", "secrets") for o in kget(
        kind, "-l", f"app.kubernetes.io/name={APP},app.kubernetes.io/managed-by=goship"
    )["items"]}
    assert made <= read, (made, read)


def version_at(host: int) -> str:
    with urllib.request.urlopen(f"http://10.78.0.1{host}:{NODE_PORT}/version",
                                timeout=5) as r:
        return str(json.loads(r.read())["version"])


def served_everywhere(version: str, timeout: float = 15.0) -> None:
    """Every node's NodePort answers `version` (a bounded wait: the old pods serve through
    their preStop pause until each node's kube-proxy drops them)."""
    deadline = time.monotonic() + timeout
    while True:
        seen = {version_at(i) for i in (1, 2, 3) for _ in range(3)}
        if seen == {version}:
            return
        assert time.monotonic() < deadline, (version, seen)
        time.sleep(0.3)


@pytest.fixture(scope="module")
def cluster(lab: Lab) -> Iterator[Lab]:
    from goship.lab import hosts

    hosts.up(3, kubernetes=True)
    yield lab
    hosts.down()  # the cluster goes with the hosts' disks; later suites get fresh ones
    hosts.up(3)


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory, cluster: Lab) -> Project:
    return Project(tmp_path_factory.mktemp("k8s") / APP, TOML)


@pytest.fixture(scope="module")
def v1(project: Project, cluster: Lab) -> None:
    (project.root / ".gitignore").write_text(".env.k8s\n")
    (project.root / ".env.k8s").write_text(f"API_TOKEN={SECRET}\n")
    project.release("v1.0.0")
    r = subprocess.run([sys.executable, "-m", "goship", "deploy", "k8s", "--skip-checks"],
                       cwd=project.root, capture_output=True, text=True, timeout=600,
                       check=False)
    assert r.returncode == 0, r.stdout + r.stderr
    kubectl("apply", "-f", "-", stdin=NODE_PORT_SERVICE)
    # the test's own door opens once kube-proxy on each node has programmed it
    deadline = time.monotonic() + 30
    for host in (1, 2, 3):
        while True:
            try:
                version_at(host)
                break
            except OSError:
                assert time.monotonic() < deadline, f"NodePort {NODE_PORT} closed on h{host}"
                time.sleep(0.3)


def test_v1_is_ready_on_two_nodes_and_answers_through_its_service(
        project: Project, v1: None, run_cli: Run, cluster: Lab) -> None:
    dep = kget("deployment", APP)
    assert dep["status"]["readyReplicas"] == 2
    [container] = dep["spec"]["template"]["spec"]["containers"]
    assert "@sha256:" in container["image"]  # pinned by digest
    pods = kget("pods", "-l", f"app.kubernetes.io/name={APP}")["items"]
    assert len({p["spec"]["nodeName"] for p in pods}) == 2
    # through the rendered ClusterIP Service, from a node
    ip = kget("service", APP)["spec"]["clusterIP"]
    out = cluster.ssh("h3", f"curl -fsS --max-time 5 http://{ip}/version")
    assert "v1.0.0" in out.stdout
    assert version_at(1) == "v1.0.0"
    status = run_cli("status", "k8s", "--json", cwd=project.root)
    assert status.code == 0, status.err
    data = json.loads(status.out)
    assert (data["release"], data["ready"], data["desired"]) == ("v1.0.0", 2, 2)
    assert data["url"] == f"http://{ip}/"
    assert sum(data["nodes"].values()) == 2
    hpa = data["hpa"]  # [kubernetes]'s bounds and target (CPU: once metrics-server has it)
    assert (hpa["min"], hpa["max"], hpa["cpu_target_percent"]) == (2, 2, 70), hpa


def hit(path: str) -> None:
    with contextlib.suppress(urllib.error.HTTPError):  # a 404 is logged too
        urllib.request.urlopen(f"http://10.78.0.11:{NODE_PORT}{path}", timeout=5).close()


def test_logs_prefix_each_line_with_its_pod_and_follow_new_ones(
        project: Project, v1: None, run_cli: Run) -> None:
    pods = {p["metadata"]["name"]: p["spec"]["nodeName"]
            for p in kget("pods", "-l", f"app.kubernetes.io/name={APP}")["items"]}
    marker = f"/logs-marker-{uuid.uuid4().hex[:8]}"
    hit(marker)
    r = run_cli("logs", "k8s", "-n", "50", "--since", "10 min ago", cwd=project.root)
    assert r.code == 0, r.err
    lines = r.out.splitlines()
    assert {line.split(" | ", 1)[0] for line in lines} == set(pods), r.out
    assert marker in r.out
    # --host: a node's pods only
    name, node = sorted(pods.items())[0]
    r = run_cli("logs", "k8s", "--host", node, "-n", "5", cwd=project.root)
    assert r.code == 0, r.err
    assert {line.split(" | ", 1)[0] for line in r.out.splitlines()} == {name}
    r = run_cli("logs", "k8s", "--since", "yesterday", cwd=project.root)
    assert (r.code, r.out) == (2, "")
    assert len(r.err.strip().splitlines()) == 1
    assert "--since 'yesterday'" in r.err
    # --follow: a request made after it started shows up, prefixed
    proc = subprocess.Popen([sys.executable, "-m", "goship", "logs", "k8s", "-f", "-n", "0"],
                            cwd=project.root, stdout=subprocess.PIPE, text=True)
    got: queue.Queue[str] = queue.Queue()
    threading.Thread(target=lambda: [got.put(x) for x in proc.stdout or []],
                     daemon=True).start()
    try:
        later = f"/logs-follow-{uuid.uuid4().hex[:8]}"
        seen = ""
        deadline = time.monotonic() + 30
        while later not in seen and time.monotonic() < deadline:
            hit(later)
            try:
                seen = got.get(timeout=1)
            except queue.Empty:
                continue
            while later not in seen and not got.empty():
                seen = got.get()
        assert later in seen, "goship logs -f printed no line for a new request"
        assert seen.split(" | ", 1)[0] in pods
        # a pod that appears while it follows (here: one replaced) is followed too
        kubectl("delete", "pod", sorted(pods)[0], "--wait=false")
        newer = f"/logs-newpod-{uuid.uuid4().hex[:8]}"
        fresh = ""
        deadline = time.monotonic() + 60
        while not fresh and time.monotonic() < deadline:
            with contextlib.suppress(OSError):
                hit(newer)
            with contextlib.suppress(queue.Empty):
                while True:
                    line = got.get(timeout=0.5)
                    if newer in line and line.split(" | ", 1)[0] not in pods:
                        fresh = line
        assert fresh, "goship logs -f did not follow the pod that replaced a deleted one"
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def test_v2_rolls_out_under_load_with_no_failed_request(
        project: Project, v1: None, run_cli: Run) -> None:
    project.release("v2.0.0", GREETING="two")  # a new environment: a new ConfigMap
    # --dry-run: the API server's own dry run of each apply; nothing changes
    before = kget("deployment", APP)
    v1_config, v1_secret = env_of(before)
    r = run_cli("deploy", "k8s", "--dry-run", "--skip-checks", cwd=project.root)
    assert r.code == 0, r.out + r.err
    old_image = before["spec"]["template"]["spec"]["containers"][0]["image"]
    [line] = [x for x in r.out.splitlines() if "deployment/" in x]
    assert line.startswith(f"  update deployment/{APP}: image {old_image} -> "), r.out
    assert f"  unchanged service/{APP}" in r.out.splitlines(), r.out
    assert f"  unchanged secret/{v1_secret}" in r.out.splitlines(), r.out
    [created] = [x for x in r.out.splitlines() if x.startswith("  create configmap/")]
    assert created.startswith(f"  create configmap/{APP}-config-"), r.out
    after = kget("deployment", APP)
    assert after["metadata"]["generation"] == before["metadata"]["generation"]
    assert after["spec"]["template"] == before["spec"]["template"]
    r = run_cli("deploy", "k8s", "--dry-run", "--skip-checks", "--json", cwd=project.root)
    assert {c["action"] for c in json.loads(r.out)["plan"]["changes"]} == {
        "create", "update", "unchanged"}, r.out
    with Load(f"http://10.78.0.12:{NODE_PORT}/", connections=8) as load:
        r = run_cli("deploy", "k8s", "--skip-checks", cwd=project.root)
    assert r.code == 0, r.out + r.err
    assert "rollout complete: 2/2 available" in r.err
    assert ": ready" in r.err
    assert ": scheduled on lab-h" in r.err
    assert load.result.requests > 100, load.result.text
    assert load.result.failed == 0, load.result.text
    served_everywhere("v2.0.0")
    # run.env_file went to the Secret only, and was never printed; the same values, the
    # same Secret; the new environment is a new ConfigMap, v1's stays for its ReplicaSet
    assert SECRET not in r.out + r.err
    config, secret_name = env_of(kget("deployment", APP))
    assert secret_name == v1_secret
    assert config != v1_config
    secret = kget("secret", secret_name)
    assert secret["immutable"] is True
    assert base64.b64decode(secret["data"]["API_TOKEN"]).decode() == SECRET
    assert kget("configmap", config)["data"]["GREETING"] == "two"
    assert SECRET not in json.dumps(kget("configmap", config))
    assert "GREETING" not in kget("configmap", v1_config).get("data", {})
    no_environment_left_unread()


def test_an_unhealthy_release_is_undone_with_the_reason_and_v2_keeps_serving(
        project: Project, v1: None, run_cli: Run) -> None:
    before = kget("deployment", APP)["spec"]["template"]["spec"]["containers"][0]["image"]
    project.release("v3.0.0", HELLO_TEST_FAIL_HEALTH="1")
    with Load(f"http://10.78.0.11:{NODE_PORT}/", connections=4) as load:
        r = run_cli("deploy", "k8s", "--skip-checks", cwd=project.root)
    assert r.code == 1, r.out + r.err
    assert "deploy k8s FAILED:" in r.out
    assert "never became Ready" in r.out or "restarted" in r.out, r.out
    assert "event " in r.out
    assert "Unhealthy" in r.out
    assert "log " in r.out  # the failing pod's log tail
    assert "restored: deployment/hello-gin" in r.out
    after = kget("deployment", APP)
    assert after["spec"]["template"]["spec"]["containers"][0]["image"] == before
    assert after["status"]["readyReplicas"] == 2
    served_everywhere("v2.0.0")
    assert load.result.failed == 0, load.result.text
    # the environment went back with the release: a v2 pod restarted later stays healthy
    config, _ = env_of(kget("deployment", APP))
    assert config == env_of(replicaset_of("v2.0.0"))[0]
    assert "HELLO_TEST_FAIL_HEALTH" not in kget("configmap", config).get("data", {})


def test_rollback_returns_to_v1_skipping_the_undone_release(
        project: Project, v1: None, run_cli: Run) -> None:
    # --dry-run: the same choice, said; nothing changes
    before = kget("deployment", APP)
    r = run_cli("rollback", "k8s", "--dry-run", cwd=project.root)
    assert r.code == 0, r.out + r.err
    first = r.out.splitlines()[0]
    assert first.startswith(f"rollback k8s: deployment/{APP} in default: v2.0.0 (revision 4, "
                            ), r.out
    assert " -> v1.0.0 (revision 1, " in first, r.out
    assert f"  configmap/{env_of(replicaset_of('v1.0.0'))[0]} (kept for it) comes back" in \
        r.out.splitlines(), r.out
    r = run_cli("rollback", "k8s", "--dry-run", "--json", cwd=project.root)
    assert json.loads(r.out)["plan"]["to"]["release"] == "v1.0.0", r.out
    assert kget("deployment", APP)["metadata"]["generation"] == \
        before["metadata"]["generation"]
    with Load(f"http://10.78.0.13:{NODE_PORT}/", connections=4) as load:
        r = run_cli("rollback", "k8s", cwd=project.root)
    assert r.code == 0, r.out + r.err
    assert "rollback k8s: v1.0.0" in r.out
    served_everywhere("v1.0.0")
    assert load.result.failed == 0, load.result.text
    status = run_cli("status", "k8s", cwd=project.root)
    assert status.out.startswith("deployment/hello-gin in default: v1.0.0 (revision 5), "
                                 "2/2 ready; pods per node: lab-h"), status.out
    # the cluster's journal: every deploy and rollback, the failed one with its reason
    assert "last rollback ok " in status.out, status.out
    assert status.out.rstrip().endswith(": v2.0.0 -> v1.0.0"), status.out
    journal = [json.loads(line) for line in kget("configmap", f"goship-{APP}-journal")[
        "data"]["journal.jsonl"].splitlines()]
    assert [(e["action"], e["outcome"], e["release"]) for e in journal] == [
        ("deploy", "ok", "v1.0.0"), ("deploy", "ok", "v2.0.0"),
        ("deploy", "failed", "v3.0.0"), ("rollback", "ok", "v1.0.0")], journal
    assert "never became Ready" in journal[2]["error"] or "restarted" in journal[2]["error"]
    assert {e["strategy"] for e in journal} == {"rolling"}
    # v1's pods read v1's environment again (no GREETING), kept all along for its ReplicaSet
    config, _ = env_of(kget("deployment", APP))
    assert "GREETING" not in kget("configmap", config).get("data", {})
    no_environment_left_unread()


def test_rollback_to_a_named_release_and_never_to_an_undone_one(
        project: Project, v1: None, run_cli: Run) -> None:
    r = run_cli("rollback", "k8s", "--to", "v3.0.0", cwd=project.root)
    assert (r.code, r.out) == (2, ""), r.out + r.err
    [line] = r.err.strip().splitlines()
    assert line.startswith("goship: release v3.0.0 was undone as unhealthy "
                           "(goship.dev/failed: pod "), line
    assert line.endswith("; releases to go to: v2.0.0"), line
    assert kget("deployment", APP)["metadata"]["annotations"][
        "deployment.kubernetes.io/revision"] == "5"  # nothing changed
    with Load(f"http://10.78.0.12:{NODE_PORT}/", connections=4) as load:
        r = run_cli("rollback", "k8s", "--to", "v2.0.0", cwd=project.root)
    assert r.code == 0, r.out + r.err
    assert "rollback k8s: v2.0.0" in r.out
    served_everywhere("v2.0.0")
    assert load.result.failed == 0, load.result.text
    config, _ = env_of(kget("deployment", APP))
    assert kget("configmap", config)["data"]["GREETING"] == "two"


def test_the_deploy_lock_is_a_lease_another_goship_holds_or_force_breaks(
        project: Project, v1: None, run_cli: Run) -> None:
    now = time.strftime("%Y-%m-%dT%H:%M:%S.000000Z", time.gmtime())
    owner = json.dumps({"token": "other", "who": "ci@runner-7", "host": "runner-7",
                        "pid": 4242, "started": now, "command": "goship deploy k8s"})
    kubectl("apply", "-f", "-", stdin=json.dumps({
        "apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
        "metadata": {"name": f"goship-{APP}", "annotations": {"goship.dev/owner": owner}},
        "spec": {"holderIdentity": "ci@runner-7 pid 4242 other", "leaseDurationSeconds": 120,
                 "acquireTime": now, "renewTime": now}}))
    revision = kget("deployment", APP)["metadata"]["annotations"][
        "deployment.kubernetes.io/revision"]
    r = run_cli("rollback", "k8s", cwd=project.root)
    assert (r.code, r.out) == (4, ""), r.out + r.err
    [line] = r.err.strip().splitlines()
    assert line.startswith(f"goship: deployment/{APP} in default: another goship holds the "
                           f"deploy lock (ci@runner-7 pid 4242, `goship deploy k8s` since "
                           f"{now}, heartbeat "), line
    assert line.endswith("s ago); wait for it (--wait), or pass --force if it is gone"), line
    assert kget("deployment", APP)["metadata"]["annotations"][
        "deployment.kubernetes.io/revision"] == revision  # nothing changed
    r = run_cli("rollback", "k8s", "--force", cwd=project.root)
    assert r.code == 0, r.out + r.err
    assert f"lease/goship-{APP}: broke the lock (--force)" in r.err
    served_everywhere("v1.0.0")
    # released when done: the next command takes it without a word
    assert kget("lease", f"goship-{APP}")["spec"].get("holderIdentity", "") == ""
    r = run_cli("rollback", "k8s", "--to", "v2.0.0", cwd=project.root)
    assert r.code == 0, r.out + r.err
    assert "lease/" not in r.err


def test_through_a_registry_the_nodes_pull_the_release_by_digest(
        project: Project, v1: None, cluster: Lab, run_cli: Run,
        tmp_path_factory: pytest.TempPathFactory) -> None:
    """[docker] registry (what any cluster but the lab's needs): goship pushes the image by
    digest without a daemon; the nodes' containerd pulls it from there."""
    address = lab_registry.serve(cluster, tmp_path_factory.mktemp("registry"))
    try:
        project.toml += (f'[env.k8s-registry]\nkubernetes = "lab"\n'
                         f'[env.k8s-registry.docker]\nregistry = "{address}/team/{APP}"\n'
                         f"registry_insecure = true\n")
        project.release("v4.0.0")
        # v3 (undone) has the oldest of the 2 old ReplicaSets kept: v4 pushes it out
        v3_config = env_of(replicaset_of("v3.0.0"))[0]
        with Load(f"http://10.78.0.11:{NODE_PORT}/", connections=4) as load:
            r = run_cli("deploy", "k8s-registry", "--skip-checks", cwd=project.root)
        assert r.code == 0, r.out + r.err
        assert f"image pushed to {address}/team/{APP}" in r.err
        assert "imported into containerd" not in r.err
        image = kget("deployment", APP)["spec"]["template"]["spec"]["containers"][0]["image"]
        assert image.startswith(f"{address}/team/{APP}@sha256:"), image
        pods = [p for p in kget("pods", "-l", f"app.kubernetes.io/name={APP}")["items"]
                if "deletionTimestamp" not in p["metadata"]]
        assert len(pods) == 2, pods
        for pod in pods:  # the image each node runs came from the registry
            [st] = pod["status"]["containerStatuses"]
            assert st["ready"], st
            assert st["imageID"].startswith(f"{address}/team/{APP}@sha256:"), st
        served_everywhere("v4.0.0")
        assert load.result.failed == 0, load.result.text
        # v3's ReplicaSet left the history: its environment went with it, no other did
        assert f"deleted configmap/{v3_config}: no kept ReplicaSet reads it" in r.err, r.err
        assert v3_config not in kubectl("get", "configmaps", "-o", "name")
        no_environment_left_unread()
    finally:
        lab_registry.stop(cluster, forget=True)


REGISTRY_USER, REGISTRY_PASSWORD = "ci-bot", "reg-pw-$(id)-'x'"


def test_a_registry_with_a_login_pushed_to_and_pulled_through_the_pull_secret(
        project: Project, v1: None, cluster: Lab, run_cli: Run,
        tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """A registry that refuses anonymous pulls (distribution with htpasswd): goship pushes
    with the user's login, the nodes pull through the kubernetes.io/dockerconfigjson Secret
    the pods name; the password is read from goship's environment and printed nowhere."""
    address = lab_registry.serve(cluster, tmp_path_factory.mktemp("registry-login"),
                                 login=(REGISTRY_USER, REGISTRY_PASSWORD))
    try:
        with pytest.raises(urllib.error.HTTPError) as anonymous:  # the nodes need the login
            urllib.request.urlopen(f"http://{address}/v2/", timeout=5)
        assert anonymous.value.code == 401
        project.toml += (f'[env.k8s-login]\nkubernetes = "lab"\n'
                         f'[env.k8s-login.docker]\nregistry = "{address}/team/{APP}"\n'
                         f'registry_insecure = true\nregistry_username = "{REGISTRY_USER}"\n'
                         f'registry_password_var = "REGISTRY_PASSWORD"\n'
                         # nodes of either platform: one index names both images
                         '[env.k8s-login.build]\ntargets = ["linux/amd64", "linux/arm64"]\n')
        project.release("v4.1.0")
        live = kget("deployment", APP)["spec"]["template"]["spec"]["containers"][0]["image"]
        # no password in goship's environment: one line, before anything is built or sent
        monkeypatch.delenv("REGISTRY_PASSWORD", raising=False)
        r = run_cli("deploy", "k8s-login", "--skip-checks", cwd=project.root)
        assert r.code == 2, r.out + r.err
        assert ("docker.registry_password_var = 'REGISTRY_PASSWORD': REGISTRY_PASSWORD is "
                "not set in goship's environment") in r.err
        assert "building" not in r.err
        # a wrong one: refused by the registry, named by its user, nothing applied
        monkeypatch.setenv("REGISTRY_PASSWORD", "not-the-password")
        r = run_cli("deploy", "k8s-login", "--skip-checks", cwd=project.root)
        assert r.code != 0
        assert f"refused the credentials of {REGISTRY_USER}" in r.err, r.err
        assert "not-the-password" not in r.out + r.err
        assert kget("deployment", APP)["spec"]["template"]["spec"]["containers"][0][
            "image"] == live
        monkeypatch.setenv("REGISTRY_PASSWORD", REGISTRY_PASSWORD)
        with Load(f"http://10.78.0.11:{NODE_PORT}/", connections=4) as load:
            r = run_cli("deploy", "k8s-login", "--skip-checks", cwd=project.root)
        assert r.code == 0, r.out + r.err
        assert REGISTRY_PASSWORD not in r.out + r.err
        spec = kget("deployment", APP)["spec"]["template"]["spec"]
        assert spec["imagePullSecrets"] == [{"name": f"{APP}-registry"}]
        # pinned to the index, which names an image per platform (amd64 runs here)
        digest = spec["containers"][0]["image"].split("@", 1)[1]
        login = base64.b64encode(f"{REGISTRY_USER}:{REGISTRY_PASSWORD}".encode()).decode()
        req = urllib.request.Request(
            f"http://{address}/v2/team/{APP}/manifests/{digest}",
            headers={"Authorization": f"Basic {login}",
                     "Accept": "application/vnd.oci.image.index.v1+json"})
        with urllib.request.urlopen(req, timeout=5) as resp:
            index = json.loads(resp.read())
        assert sorted(m["platform"]["architecture"] for m in index["manifests"]) == [
            "amd64", "arm64"]
        secret = kget("secret", f"{APP}-registry")
        assert secret["type"] == "kubernetes.io/dockerconfigjson"
        auths = json.loads(base64.b64decode(secret["data"][".dockerconfigjson"]))["auths"]
        assert auths[address]["username"] == REGISTRY_USER
        for pod in kget("pods", "-l", f"app.kubernetes.io/name={APP}")["items"]:
            if "deletionTimestamp" in pod["metadata"]:
                continue
            [st] = pod["status"]["containerStatuses"]  # pulled from it, with the login
            assert st["ready"], st
            assert st["imageID"].startswith(f"{address}/team/{APP}@sha256:"), st
        served_everywhere("v4.1.0")
        assert load.result.failed == 0, load.result.text
        # the password is in the pull Secret only: no ConfigMap, no other Secret holds it
        for kind in ("configmaps", "secrets"):
            for obj in kget(kind)["items"]:
                if obj["metadata"]["name"] == f"{APP}-registry":
                    continue
                text = json.dumps(obj.get("data") or {})
                assert REGISTRY_PASSWORD not in text
                assert base64.b64encode(REGISTRY_PASSWORD.encode()).decode() not in text
    finally:
        lab_registry.stop(cluster, forget=True)


# Blue-green (article 002): the same app, switched from the rolling strategy; its rendered
# Service is a NodePort (kubernetes.node_port), so the test reaches what users reach.
BG_PORT = 30482
BG_ENV = (f"[env.k8s-bg]\nkubernetes = {{ lab = true, node_port = {BG_PORT} }}\n"
          '[env.k8s-bg.deploy]\nstrategy = "bluegreen"\n')


def bg_served_everywhere(version: str, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    seen: set[str] = set()
    while True:
        with contextlib.suppress(OSError):  # the NodePort opens once kube-proxy has it
            seen = set()
            for host in (1, 2, 3):
                for _ in range(3):
                    with urllib.request.urlopen(f"http://10.78.0.1{host}:{BG_PORT}/version",
                                                timeout=5) as r:
                        seen.add(str(json.loads(r.read())["version"]))
            if seen == {version}:
                return
        assert time.monotonic() < deadline, (version, seen)
        time.sleep(0.3)


def pods_of(color: str) -> set[str]:
    return {p["metadata"]["name"] for p in kget(
        "pods", "-l", f"app.kubernetes.io/name={APP},goship.dev/color={color}")["items"]
        if "deletionTimestamp" not in p["metadata"]}


def test_bluegreen_switches_the_service_and_rolls_back_at_once(
        project: Project, v1: None, run_cli: Run) -> None:
    kubectl("delete", "service", f"{APP}-nodeport")  # the rendered Service is the door now
    project.toml += BG_ENV
    project.release("v5.0.0")
    r = run_cli("deploy", "k8s-bg", "--dry-run", "--skip-checks", cwd=project.root)
    assert r.code == 0, r.out + r.err
    assert f"  create deployment/{APP}-blue: image " in r.out, r.out
    [then] = [x for x in r.out.splitlines() if x.startswith("  then: ")]
    assert then.startswith(f"  then: scale {APP}-blue to 2, watch its rollout, gate each "
                           f"pod; then switch service/{APP} to blue"), then
    assert f"delete deployment/{APP} (the rolling strategy's)" in then
    assert f"deployment.apps/{APP}-blue" not in kubectl("get", "deployments", "-o", "name")

    r = run_cli("deploy", "k8s-bg", "--skip-checks", cwd=project.root)
    assert r.code == 0, r.out + r.err
    assert f"switched service/{APP} to blue" in r.err
    assert f"deleted deployment/{APP}: the app changed release strategy" in r.err
    assert f"deployment.apps/{APP}\n" not in kubectl("get", "deployments", "-o", "name")
    bg_served_everywhere("v5.0.0")
    status = json.loads(run_cli("status", "k8s-bg", "--json", cwd=project.root).out)
    assert (status["color"], status["deployment"], status["release"]) == (
        "blue", f"{APP}-blue", "v5.0.0"), status
    with urllib.request.urlopen(status["url"] + "version", timeout=5) as resp:
        assert json.loads(resp.read())["version"] == "v5.0.0"  # the url users reach

    # v6 under load: green comes up beside blue, gated pod by pod, then the Service switches
    project.release("v6.0.0")
    with Load(f"http://10.78.0.12:{BG_PORT}/", connections=8) as load:
        r = run_cli("deploy", "k8s-bg", "--skip-checks", cwd=project.root)
    assert r.code == 0, r.out + r.err
    assert "of green (the API server's pod proxy)" in r.err, r.err
    assert f"switched service/{APP} to green" in r.err
    assert "blue stays warm until the next deploy" in r.err
    assert load.result.requests > 100, load.result.text
    assert load.result.failed == 0, load.result.text
    bg_served_everywhere("v6.0.0")
    blue = pods_of("blue")
    assert len(blue) == 2  # the standby, warm
    st = run_cli("status", "k8s-bg", cwd=project.root)
    assert "blue-green: the Service selects green" in st.out, st.out
    assert "standby v5.0.0 on blue: 2/2 ready (instant rollback)" in st.out, st.out

    # rollback: the selector goes back to blue's running pods; nothing starts
    r = run_cli("rollback", "k8s-bg", "--dry-run", cwd=project.root)
    assert r.code == 0, r.out + r.err
    assert r.out.splitlines()[0] == (f"rollback k8s-bg: service/{APP} in default: green "
                                     "(v6.0.0) -> blue (v5.0.0)"), r.out
    assert "blue is warm: the Service's selector switches at once" in r.out
    with Load(f"http://10.78.0.13:{BG_PORT}/", connections=8) as load:
        r = run_cli("rollback", "k8s-bg", cwd=project.root)
    assert r.code == 0, r.out + r.err
    assert f"switched service/{APP} to blue" in r.err
    assert "starting" not in r.err
    bg_served_everywhere("v5.0.0")
    assert load.result.failed == 0, load.result.text
    assert pods_of("blue") == blue  # the same pods: a switch, not a start
    assert len(pods_of("green")) == 2  # v6 is the standby now


def test_an_unhealthy_bluegreen_release_never_takes_traffic(
        project: Project, v1: None, run_cli: Run) -> None:
    project.release("v7.0.0", HELLO_TEST_FAIL_HEALTH="1")
    with Load(f"http://10.78.0.11:{BG_PORT}/", connections=4) as load:
        r = run_cli("deploy", "k8s-bg", "--skip-checks", cwd=project.root)
    assert r.code == 1, r.out + r.err
    assert "deploy k8s-bg FAILED:" in r.out
    assert f"service/{APP} still selects blue: nothing switched" in r.err, r.err
    assert load.result.failed == 0, load.result.text
    bg_served_everywhere("v5.0.0")
    green = kget("deployment", f"{APP}-green")
    assert green["spec"]["replicas"] == 0
    assert "goship.dev/failed" in green["metadata"]["annotations"]
    # the failed color is not a place to roll back to
    r = run_cli("rollback", "k8s-bg", cwd=project.root)
    assert (r.code, r.out) == (2, ""), r.out + r.err
    [line] = r.err.strip().splitlines()
    assert line.startswith("goship: v7.0.0 on green was undone as unhealthy"), line
    # a good release deployed again takes green back
    project.release("v8.0.0")
    r = run_cli("deploy", "k8s-bg", "--skip-checks", cwd=project.root)
    assert r.code == 0, r.out + r.err
    bg_served_everywhere("v8.0.0")
    assert "goship.dev/failed" not in (kget("deployment", f"{APP}-green")["metadata"].get(
        "annotations") or {})


def test_back_to_rolling_the_colors_go_once_it_serves(
        project: Project, v1: None, run_cli: Run) -> None:
    r = run_cli("deploy", "k8s", "--skip-checks", cwd=project.root)
    assert r.code == 0, r.out + r.err
    for color in ("blue", "green"):
        assert f"deleted deployment/{APP}-{color}: the app changed release strategy" in r.err
    assert "goship.dev/color" not in kget("service", APP)["spec"]["selector"]
    assert kget("deployment", APP)["status"]["readyReplicas"] == 2
    st = json.loads(run_cli("status", "k8s", "--json", cwd=project.root).out)
    assert (st["release"], st["color"], st["ready"]) == ("v8.0.0", None, 2), st


# Services shaped like real ones (tests/projects/, as test_real_services.py deploys them to
# hosts), from what `goship init` wrote: on the cluster, blue-green (init's strategy), one
# pod (its data is the pod's own: an emptyDir), reached on a NodePort.
REAL = [("yaml-config", "notes-yaml", 30483, "/healthz"),
        ("admin-cli", "admin", 30484, "/api/v1/health")]


def answer(port: int, path: str, data: bytes | None = None, timeout: float = 20.0) -> str:
    deadline = time.monotonic() + timeout
    while True:
        req = urllib.request.Request(f"http://10.78.0.11:{port}{path}", data=data,
                                     method="POST" if data is not None else "GET")
        try:
            with urllib.request.urlopen(req, timeout=5) as r:
                return str(r.read().decode())
        except OSError:  # the NodePort opens once kube-proxy has it
            assert time.monotonic() < deadline, f"no answer on :{port}{path}"
            time.sleep(0.3)


@pytest.mark.parametrize(("shape", "app", "port", "health"), REAL,
                         ids=[r[0] for r in REAL])
def test_a_real_service_runs_on_the_cluster_as_init_wrote_it(
        shape: str, app: str, port: int, health: str, cluster: Lab, run_cli: Run,
        tmp_path: Path) -> None:
    from tests.conftest import REPO
    from tests.e2e.helpers import git
    from tests.e2e.test_real_services import yaml_port

    root = tmp_path / shape
    shutil.copytree(REPO / "tests" / "projects" / shape, root)
    git(root, "init", "-q")
    git(root, "add", ".")
    git(root, "commit", "-qm", "as it is")
    r = run_cli("init", cwd=root)
    assert r.code == 0, r.out + r.err
    if shape == "yaml-config":
        yaml_port(root)  # what init tells the user to do
        # and what its other note says for pods: a pod is reached on its own address, so a
        # listener on 127.0.0.1 (fine behind a host's nginx) must listen on all of them
        assert "it must listen on 0.0.0.0" in (root / "goship.toml").read_text()
        conf = root / "config.yaml"
        conf.write_text(conf.read_text().replace("host: 127.0.0.1", "host: 0.0.0.0"))
    with (root / "goship.toml").open("a") as f:
        f.write(f"[env.k8s]\nkubernetes = {{ lab = true, node_port = {port}, "
                "min_replicas = 1 }\n")
    git(root, "add", "-A")
    git(root, "commit", "-qm", "goship")
    git(root, "tag", "v1.0.0")
    try:
        r = run_cli("deploy", "k8s", "--skip-checks", cwd=root)
        assert r.code == 0, r.out + r.err
        answer(port, health)
        [pod] = [p for p in kget("pods", "-l", f"app.kubernetes.io/name={app}")["items"]
                 if "deletionTimestamp" not in p["metadata"]]
        [c] = pod["spec"]["containers"]
        container_port = c["ports"][0]["containerPort"]
        assert c["securityContext"]["readOnlyRootFilesystem"] is True
        if shape == "admin-cli":  # run.args, the pod's own port in them
            assert c["args"] == ["server", "-c", "config/settings.yml", "--addr",
                                 f":{container_port}"]
        if shape == "yaml-config":
            # the port came from config.yaml ({port} filled); data/ is writable beside the
            # binary under a read-only root
            answer(port, "/notes", b"written on the cluster")
            assert answer(port, "/notes") == "written on the cluster\n"
            [files] = [v["configMap"]["name"] for v in pod["spec"]["volumes"]
                       if v["name"] == "files"]
            [text] = kget("configmap", files)["data"].values()
            assert f"port: {container_port}" in text, text
    finally:
        kubectl("delete", "deployments,services,hpa,pdb,configmaps,secrets", "-l",
                f"app.kubernetes.io/name={app}", "--wait=false")


BUSY_APP, BUSY_PORT = "busy-gin", 30485
# Article 001's `kubectl autoscale --cpu-percent=50 --min=1 --max=3`, in the environment's
# own [kubernetes] keys; the port and health path are goship's defaults (8080, /health).
BUSY_TOML = f"""
[app]
name = "{BUSY_APP}"
[build]
targets = ["linux/amd64"]
assets = ["templates", "static"]
[run]
port_env = "PORT"
[env.k8s]
kubernetes = {{ lab = true, node_port = {BUSY_PORT}, min_replicas = 1, max_replicas = 3, \
cpu_request = "20m", cpu_target = 50, scale_down_window = 10 }}
[env.k8s.deploy]
strategy = "rolling"
"""


def ready_endpoints(service: str) -> list[str]:
    slices = kget("endpointslices", "-l", f"kubernetes.io/service-name={service}")["items"]
    return [a for s in slices for e in s.get("endpoints") or []
            if (e.get("conditions") or {}).get("ready") for a in e["addresses"]]


def test_the_autoscaler_adds_pods_under_load_and_removes_them_after(
        tmp_path: Path, cluster: Lab, run_cli: Run) -> None:
    """Article 001's `kubectl autoscale --cpu-percent=50 --min=1 --max=3`, from
    goship.toml: the lab's metrics-server measures the pods' CPU, the HPA scales the
    Deployment within its bounds under load, and back to its minimum once the load stops
    and scale_down_window has passed. `goship status` says what it measures."""
    project = Project(tmp_path / BUSY_APP, BUSY_TOML)
    project.release("v1.0.0")

    def hpa() -> dict[str, Any]:
        r = run_cli("status", "k8s", "--json", cwd=project.root)
        assert r.code == 0, r.err
        return dict(json.loads(r.out)["hpa"])

    def wait(what: str, check: Callable[[dict[str, Any]], bool],
             timeout: float) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            state = hpa()
            if check(state):
                return state
            assert time.monotonic() < deadline, f"{what} after {timeout:g}s: {state}"
            time.sleep(2)

    try:
        r = run_cli("deploy", "k8s", "--skip-checks", cwd=project.root)
        assert r.code == 0, r.out + r.err
        answer(BUSY_PORT, "/health")
        idle = wait("no CPU figure from metrics-server",
                    lambda h: h["cpu_percent"] is not None, 90)
        assert (idle["current"], idle["not_scaling"]) == (1, None), idle
        with Load(f"http://10.78.0.12:{BUSY_PORT}/health", connections=8) as load:
            busy = wait("no scale-up under load",
                        lambda h: h["current"] > 1 and h["desired"] > 1, 120)
            assert busy["cpu_percent"] > 50, busy
            assert busy["desired"] <= 3
            text = run_cli("status", "k8s", cwd=project.root).out
            assert re.search(r"autoscaler \d -> \d replicas within 1\.\.3, CPU \d+%", text), text
            # the added pods pass their readiness probe and join the Service under load
            deadline = time.monotonic() + 90
            while len(ready_endpoints(BUSY_APP)) < 2:
                assert time.monotonic() < deadline, "no added pod became a ready endpoint"
                time.sleep(1)
        assert load.result.failed == 0, load.result.text
        assert load.result.requests > 0
        wait("no scale-down after the load", lambda h: h["current"] == 1, 120)
        deadline = time.monotonic() + 60
        while kget("deployment", BUSY_APP)["status"].get("replicas", 0) != 1:
            assert time.monotonic() < deadline, "the extra pods are still there"
            time.sleep(1)
    finally:
        kubectl("delete", "deployments,services,hpa,pdb,configmaps,secrets", "-l",
                f"app.kubernetes.io/name={BUSY_APP}", "--wait=false")


def test_cluster_config_missing_is_one_line_and_changes_nothing(
        tmp_path: Path, run_cli: Run) -> None:
    (tmp_path / "goship.toml").write_text(
        TOML + '[env.other]\nkubernetes = { kubeconfig = "/nonexistent/kubeconfig" }\n')
    r = run_cli("status", "other", cwd=tmp_path)
    assert r.code == 2
    assert r.err.strip() == ("goship: no kubeconfig at /nonexistent/kubeconfig; set "
                             "kubernetes.kubeconfig to an existing file")


# A canary (deploy.strategy = "canary"): the new release as deployment/APP-canary beside
# the stable one, each behind its NodePort Service, and goship's edge (nginx + Lua on h1,
# proxy.lb.hosts) routing between them; users, and wrk, come in through the edge.
CANARY_APP, CANARY_PORT = "canary-gin", 30486
EDGE = "10.78.0.11:8090"
CANARY_TOML = f"""
[app]
name = "{CANARY_APP}"
[app.stamp]
"main.version" = "{{version}}"
[build]
targets = ["linux/amd64"]
assets = ["templates", "static"]
[run]
port_env = "PORT"
[run.health]
deadline = 10.0
[proxy.lb]
listen = 8090
hosts = ["h1"]
[canary]
steps = [10, 50, 100]
step_min_requests = 300
step_min_seconds = 2.0
step_timeout = 60.0
guard_interval = 1.0
[env.k8s]
kubernetes = {{ lab = true, node_port = {CANARY_PORT}, min_replicas = 2, max_replicas = 2 }}
[env.k8s.deploy]
strategy = "canary"
"""


def through_edge(headers: dict[str, str] | None = None) -> tuple[str, str]:
    """(version, X-Goship-Track) of one request through the edge."""
    req = urllib.request.Request(f"http://{EDGE}/version", headers=headers or {})
    with urllib.request.urlopen(req, timeout=5) as r:
        return str(json.loads(r.read())["version"]), r.headers["X-Goship-Track"]


def no_canary_left() -> None:
    for kind in ("deployment", "service"):
        out = kubectl("get", kind, "-l", f"app.kubernetes.io/name={CANARY_APP}", "-o",
                      "name")
        assert f"{CANARY_APP}-canary" not in out, out


@pytest.fixture(scope="module")
def canary_project(tmp_path_factory: pytest.TempPathFactory,
                   cluster: Lab) -> Iterator[Project]:
    p = Project(tmp_path_factory.mktemp("k8s-canary") / CANARY_APP, CANARY_TOML)
    yield p
    kubectl("delete", "deployments,services,hpa,pdb,configmaps,secrets", "-l",
            f"app.kubernetes.io/name={CANARY_APP}", "--wait=false")


def test_canary_first_release_is_the_stable_track_behind_the_edge(
        canary_project: Project, run_cli: Run, cluster: Lab) -> None:
    canary_project.release("v1.0.0")
    r = run_cli("deploy", "k8s", "--skip-checks", cwd=canary_project.root)
    assert r.code == 0, r.out + r.err
    assert "becomes the stable track" in r.out + r.err
    assert through_edge() == ("v1.0.0", "stable")
    # the edge's control socket is root's only
    assert cluster.ssh("h1", f"stat -c %a /run/goship/{CANARY_APP}-edge").stdout.strip() \
        == "700"


def test_an_erroring_canary_is_aborted_with_at_most_one_percent_failed(
        canary_project: Project, run_cli: Run) -> None:
    canary_project.release("v2.0.0-bad", HELLO_TEST_ERROR_PERCENT="20")
    with Load(f"http://{EDGE}/api/items") as load:
        r = run_cli("deploy", "k8s", "--skip-checks", cwd=canary_project.root)
    assert r.code == 1, r.out + r.err
    assert "canary v2.0.0-bad ABORTED" in r.out, r.out + r.err
    assert "weight 0 on every edge" in r.out
    res = load.result
    assert res.requests > 0
    assert res.errors == 0, res.text
    assert res.non2xx <= 0.01 * res.requests, res.text
    print(r.out, f"{res.non2xx} of {res.requests} failed")
    no_canary_left()
    assert through_edge() == ("v1.0.0", "stable")
    # no canary rules left on the edge: even a forced request is stable's
    assert through_edge({"X-Goship-Track": "canary"}) == ("v1.0.0", "stable")


def test_a_healthy_canary_walks_the_steps_and_is_promoted_with_no_failed_request(
        canary_project: Project, run_cli: Run) -> None:
    canary_project.release("v3.0.0")
    # Paced: unpaced wrk takes the 2 cores the pods, the edge and goship share, and the
    # one canary pod's tail latency then measures the machine (a false abort on p99).
    with Load(f"http://{EDGE}/api/items", pace_ms=5) as load:
        r = run_cli("deploy", "k8s", "--skip-checks", cwd=canary_project.root)
    assert r.code == 0, r.out + r.err
    assert "every step passed; promoted" in r.out, r.out + r.err
    assert "weight 50%" in r.out + r.err
    res = load.result
    assert res.requests > 0
    assert res.failed == 0, res.text
    no_canary_left()
    assert {through_edge()[0] for _ in range(10)} == {"v3.0.0"}
    assert kget("deployment", CANARY_APP)["spec"]["template"]["metadata"]["labels"][
        "app.kubernetes.io/version"] == "v3.0.0"
    status = run_cli("status", "k8s", "--json", cwd=canary_project.root)
    assert json.loads(status.out)["last"]["action"] == "canary", status.out


def test_a_canary_aborted_by_hand_stops_the_walk_that_runs_it(
        canary_project: Project, run_cli: Run) -> None:
    canary_project.release("v4.0.0")
    # no load: the walk waits for requests at its first step until the abort
    walker = subprocess.Popen([sys.executable, "-m", "goship", "deploy", "k8s",
                               "--skip-checks"], cwd=canary_project.root,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 180
        while through_edge({"X-Goship-Track": "canary"})[0] != "v4.0.0":
            assert walker.poll() is None, walker.communicate()[0]
            assert time.monotonic() < deadline, "the canary never took a forced request"
            time.sleep(1)
        r = run_cli("canary", "abort", "k8s", cwd=canary_project.root)
        assert r.code == 0, r.out + r.err
        assert "weight 0 on every edge" in r.out
        out, _ = walker.communicate(timeout=60)
    finally:
        if walker.poll() is None:
            walker.kill()
    assert walker.returncode == 1, out
    assert "ABORTED" in out, out
    no_canary_left()
    assert through_edge({"X-Goship-Track": "canary"}) == ("v3.0.0", "stable")


def test_a_canary_by_hand_routes_by_header_then_weight_and_is_promoted(
        canary_project: Project, run_cli: Run) -> None:
    """`goship canary start | status | set-weight | explain | promote` on the cluster, as
    on hosts: a header rule sends testers to the canary, then a weight everyone."""
    canary_project.release("v5.0.0")
    r = run_cli("canary", "start", "k8s", "--header", "X-Beta=1", "--skip-checks",
                cwd=canary_project.root)
    assert r.code == 0, r.out + r.err
    assert through_edge({"X-Beta": "1"}) == ("v5.0.0", "canary")
    assert through_edge() == ("v3.0.0", "stable")
    status = run_cli("status", "k8s", cwd=canary_project.root)
    assert "canary v5.0.0: 1/1 ready, weight 0%, 1 rule(s)" in status.out, status.out
    assert f"url http://{EDGE}/" in status.out
    # the tester's request above, from the edge's log (nginx writes it within 250 ms)
    deadline = time.monotonic() + 5
    while True:
        numbers = json.loads(run_cli("canary", "status", "k8s", "--json",
                                     cwd=canary_project.root).out)
        if numbers["canary"]["requests"] >= 1 or time.monotonic() > deadline:
            break
        time.sleep(0.3)
    assert numbers["canary"]["requests"] == 1, numbers
    assert numbers["rules"]["rules"][0]["name"] == "X-Beta"
    assert numbers["stable"] == "v3.0.0"
    # stable does not change under a running canary, as on hosts
    for argv in (("rollback", "k8s"), ("deploy", "k8s", "--skip-checks")):
        refused = run_cli(*argv, cwd=canary_project.root)
        assert refused.code == 2, refused.out + refused.err
        assert "a canary" in refused.err, refused.err
    explain = run_cli("canary", "explain", "k8s", "--header", "X-Beta=1",
                      cwd=canary_project.root)
    assert explain.out.strip() == "canary: header rule X-Beta = 1", explain.out
    r = run_cli("canary", "set-weight", "k8s", "100", cwd=canary_project.root)
    assert r.code == 0, r.out + r.err
    assert {through_edge()[0] for _ in range(5)} == {"v5.0.0"}
    with Load(f"http://{EDGE}/api/items") as load:
        r = run_cli("canary", "promote", "k8s", cwd=canary_project.root)
    assert r.code == 0, r.out + r.err
    assert load.result.requests > 0
    assert load.result.failed == 0, load.result.text
    no_canary_left()
    assert through_edge({"X-Beta": "1"}) == ("v5.0.0", "stable")


def test_remove_takes_the_app_off_the_cluster_and_its_edge_and_leaves_others(
        canary_project: Project, run_cli: Run, cluster: Lab) -> None:
    # another app's object, labelled as goship labels its own: it stays
    kubectl("create", "configmap", "other-app-config", "--from-literal=k=v")
    kubectl("label", "configmap", "other-app-config", "app.kubernetes.io/name=other-app",
            "app.kubernetes.io/managed-by=goship")
    dry = run_cli("remove", "k8s", "--dry-run", cwd=canary_project.root)
    assert dry.code == 0, dry.out + dry.err
    assert f"delete deployment/{CANARY_APP}" in dry.out
    assert f"delete configmap/goship-{CANARY_APP}-journal" in dry.out
    assert "h1: remove the balancer site" in dry.out
    assert kget("deployment", CANARY_APP)  # a dry run changes nothing
    r = run_cli("remove", "k8s", "--yes", cwd=canary_project.root)
    assert r.code == 0, r.out + r.err
    for kind in ("deployments", "services", "hpa", "pdb", "configmaps", "secrets", "leases"):
        left = kubectl("get", kind, "-o", "name")
        assert CANARY_APP not in left, (kind, left)
    assert kget("configmap", "other-app-config")["data"] == {"k": "v"}
    kubectl("delete", "configmap", "other-app-config")
    gone = cluster.ssh("h1", f"ls /etc/nginx/conf.d/goship-{CANARY_APP}-lb.conf "
                             f"/run/goship/{CANARY_APP}-edge 2>&1; nginx -t 2>&1 | tail -1")
    assert "No such file" in gone.stdout, gone.stdout
    assert "successful" in gone.stdout
    again = run_cli("remove", "k8s", "--yes", cwd=canary_project.root)
    assert again.code == 0, again.out + again.err
    assert "delete deployment" not in again.out  # nothing of it left on the cluster
