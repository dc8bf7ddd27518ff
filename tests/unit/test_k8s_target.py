"""The Kubernetes target's pure parts as data: the environment's `kubernetes` key, which
rendered manifests are applied, the image pinned by digest, the rollout verdict (wait,
done, undo and why), the pod template an undo goes back to, and each release's
ConfigMap and Secret (named, reused, deleted once no ReplicaSet reads them)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml

from goship.config.load import load as load_project
from goship.errors import ConfigErrors, UsageError
from goship.kube import plan
from goship.render.inputs import RenderInput
from goship.render.kubernetes import config_name, render_kubernetes
from goship.targets import kind

BASE = '[app]\nname = "shop"\n[run]\nenv_file = ".env"\n[run.env]\nMODE = "x"\n'
DIGEST = "sha256:" + "ab" * 32


def project(tmp_path: Path, env: str) -> Any:
    (tmp_path / "goship.toml").write_text(BASE + env)
    return load_project(tmp_path / "goship.toml")


def errors(tmp_path: Path, env: str) -> list[str]:
    with pytest.raises(ConfigErrors) as e:
        project(tmp_path, env)
    return [x.line() for x in e.value.errors]


@pytest.mark.parametrize(("env", "lab", "kubeconfig", "context", "namespace"), [
    ('[env.k]\nkubernetes = "lab"\n', True, None, None, "default"),
    ('[env.k.kubernetes]\nlab = true\nnamespace = "shop"\nmin_replicas = 3\n', True, None,
     None, "shop"),
    ('[env.k]\nkubernetes = { kubeconfig = "~/.kube/config", context = "prod", '
     'namespace = "shop" }\n', False, "~/.kube/config", "prod", "shop"),
])
def test_an_environment_chooses_a_cluster(tmp_path: Path, env: str, lab: bool,
                                          kubeconfig: str | None, context: str | None,
                                          namespace: str) -> None:
    e = project(tmp_path, env).env("k")
    assert kind(e).name == "kubernetes"
    cluster = e.target.kubernetes
    assert (cluster.lab, cluster.kubeconfig, cluster.context) == (lab, kubeconfig, context)
    # the table's other keys override [kubernetes], as any section
    assert e.config.kubernetes.namespace == namespace


def test_a_kubernetes_override_table_alone_is_not_a_cluster(tmp_path: Path) -> None:
    e = project(tmp_path, '[env.h]\nlab = 2\n[env.h.kubernetes]\nnamespace = "shop"\n').env("h")
    assert kind(e).name == "lab"
    assert e.target.kubernetes is None
    assert e.config.kubernetes.namespace == "shop"


@pytest.mark.parametrize(("env", "expected"), [
    ('[env.k]\nkubernetes = "lab"\nlab = 2\n', "found lab, kubernetes"),
    ('[env.k]\nkubernetes = "lab"\nhosts = ["a"]\n', "found hosts, kubernetes"),
    ('[env.k]\nkubernetes = "prod"\n', 'expected "lab" (the lab cluster) or a table'),
    ('[env.k.kubernetes]\nlab = true\nkubeconfig = "/k"\n', "lab = true is the lab's"),
    ('[env.k.kubernetes]\ncontext = "a\\nb"\n', "without control characters"),
])
def test_misuse_gets_one_line(tmp_path: Path, env: str, expected: str) -> None:
    lines = errors(tmp_path, env)
    assert any(expected in line for line in lines), lines
    assert all("\n" not in line and line.startswith(str(tmp_path)) for line in lines), lines


@pytest.mark.parametrize(("env", "source"), [
    ('[env.k]\nkubernetes = "lab"\n', "lab"),  # imported into the nodes' containerd
    ('[env.k]\nkubernetes = "lab"\n[env.k.docker]\nregistry = "10.78.0.13:5000/team/shop"\n',
     "registry"),
    ('[env.k]\nkubernetes = { kubeconfig = "/k" }\n[env.k.docker]\n'
     'registry = "registry.example.com/team/shop"\n', "registry"),
])
def test_the_nodes_get_the_image_from_the_registry_else_the_lab_imports_it(
        tmp_path: Path, env: str, source: str) -> None:
    e = project(tmp_path, env).env("k")
    assert plan.image_source(e.config, e.target.kubernetes.lab) == source


def test_a_cluster_without_a_registry_is_refused_before_anything_is_built(
        tmp_path: Path, capfd: pytest.CaptureFixture[str]) -> None:
    from goship.cli.main import main

    (tmp_path / "goship.toml").write_text(
        BASE + '[env.k]\nkubernetes = { kubeconfig = "/nonexistent" }\n')
    assert main(["--config", str(tmp_path / "goship.toml"), "deploy", "k"]) == 2
    out, err = capfd.readouterr()
    assert out == ""
    assert err.strip() == (
        "goship: kubernetes: a cluster's nodes pull the image from a registry, and [docker] "
        'registry is not set; set [docker] registry = "host[:port]/repository" (for this '
        "environment: [env.NAME.docker]); the lab cluster needs none")
    assert not (tmp_path / "dist").exists()


def test_misuse_exits_2(tmp_path: Path, capfd: pytest.CaptureFixture[str]) -> None:
    from goship.cli.main import main

    (tmp_path / "goship.toml").write_text(BASE + '[env.k]\nkubernetes = "lab"\nlocal = true\n')
    assert main(["--config", str(tmp_path / "goship.toml"), "status", "k"]) == 2
    err = capfd.readouterr().err
    assert "found local, kubernetes" in err
    assert len(err.strip().splitlines()) == 1, err


def rendered(tmp_path: Path, secrets: dict[str, str]) -> dict[str, str]:
    e = project(tmp_path, '[env.k]\nkubernetes = "lab"\n').env("k")
    cfg = plan.pinned(e.config, plan.digest_ref("docker.io/library/shop", DIGEST))
    return render_kubernetes(RenderInput(config=cfg, root=tmp_path, env="k", version="v1",
                                         secrets=secrets, show_secrets=True))


def test_what_is_applied_is_the_renderer_s_output_pinned_by_digest(tmp_path: Path) -> None:
    out = rendered(tmp_path, {"DB_PASSWORD": "hunter2"})
    files = plan.applied(out)
    assert [f for f, _ in files] == ["configmap.yaml", "secret.yaml", "deployment.yaml",
                                     "service.yaml", "pdb.yaml", "hpa.yaml"]
    assert all(text == out[name] for name, text in files)  # not edited on the way
    docs = {name: yaml.safe_load(text) for name, text in files}
    [c] = docs["deployment.yaml"]["spec"]["template"]["spec"]["containers"]
    assert c["image"] == f"docker.io/library/shop@{DIGEST}"
    # the secret goes to the Secret only, with its value; never to the ConfigMap
    assert docs["secret.yaml"]["stringData"] == {"DB_PASSWORD": "hunter2"}
    assert "hunter2" not in out["configmap.yaml"]
    assert docs["configmap.yaml"]["data"] == {"MODE": "x"}
    # zero-downtime rolling: no pod down before its replacement is Ready
    strategy = docs["deployment.yaml"]["spec"]["strategy"]["rollingUpdate"]
    assert strategy["maxUnavailable"] == 0
    assert c["readinessProbe"]["httpGet"]["path"] == "/health"
    assert c["lifecycle"]["preStop"]["sleep"]["seconds"] > 0


def test_each_environment_is_its_own_configmap_and_secret_read_by_its_pods(
        tmp_path: Path) -> None:
    out = rendered(tmp_path, {"DB_PASSWORD": "hunter2"})
    docs = {name: yaml.safe_load(text) for name, text in plan.applied(out)}
    cm, sec = docs["configmap.yaml"], docs["secret.yaml"]
    assert cm["immutable"] is True
    assert cm["metadata"]["name"] == config_name("shop", {"MODE": "x"})
    assert cm["metadata"]["name"].startswith("shop-config-")
    # a plain render cannot name a version of the Secret: deploy does (below)
    assert sec["metadata"]["name"] == "shop-secrets"
    assert "immutable" not in sec
    assert plan.env_references([docs["deployment.yaml"]]) == {
        ("ConfigMap", cm["metadata"]["name"]), ("Secret", "shop-secrets")}
    # another value, another ConfigMap; the same values, the same name
    assert config_name("shop", {"MODE": "y"}) != cm["metadata"]["name"]
    assert config_name("shop", {"MODE": "x"}) == cm["metadata"]["name"]
    e = project(tmp_path, '[env.k]\nkubernetes = "lab"\n').env("k")
    named = render_kubernetes(RenderInput(config=e.config, root=tmp_path, env="k",
                                          secrets={"DB_PASSWORD": "hunter2"},
                                          show_secrets=True, secret_name="shop-secrets-0a1b"))
    sec = yaml.safe_load(named["secret.yaml"])
    assert (sec["metadata"]["name"], sec["immutable"]) == ("shop-secrets-0a1b", True)
    assert ("Secret", "shop-secrets-0a1b") in plan.env_references(
        [yaml.safe_load(named["deployment.yaml"])])


def test_a_deploy_reuses_the_secret_holding_its_values_else_names_a_new_one() -> None:
    live = {"shop-secrets-aaaa": {"DB_PASSWORD": "old"},
            "shop-secrets-bbbb": {"DB_PASSWORD": "new"}}
    assert plan.secret_name("shop", live, {"DB_PASSWORD": "new"}, "cccc") == \
        "shop-secrets-bbbb"
    assert plan.secret_name("shop", live, {"DB_PASSWORD": "newer"}, "cccc") == \
        "shop-secrets-cccc"
    assert plan.secret_name("shop", live, {"DB_PASSWORD": "new", "X": "1"}, "dddd") == \
        "shop-secrets-dddd"
    assert plan.secret_name("shop", {}, {}, "eeee") == "shop-secrets-eeee"


def test_an_environment_is_deleted_once_no_kept_replicaset_reads_it() -> None:
    def reader(cm: str, secret: str | None = None, *, volume: str | None = None,
               key_ref: str | None = None) -> dict[str, Any]:
        c: dict[str, Any] = {"envFrom": [{"configMapRef": {"name": cm}}]}
        if secret:
            c["envFrom"].append({"secretRef": {"name": secret}})
        if key_ref:
            c["env"] = [{"name": "K", "valueFrom": {"secretKeyRef": {"name": key_ref,
                                                                    "key": "k"}}}]
        spec: dict[str, Any] = {"containers": [c]}
        if volume:
            spec["volumes"] = [{"name": "v", "configMap": {"name": volume}}]
        return {"spec": {"template": {"spec": spec}}}

    existing = [("ConfigMap", "shop-config-1"), ("ConfigMap", "shop-config-2"),
                ("ConfigMap", "shop-config-3"), ("ConfigMap", "shop-files"),
                ("Secret", "shop-secrets-a"), ("Secret", "shop-secrets-b"),
                ("Secret", "shop-secrets-c"), ("Secret", "shop-secrets-d")]
    readers = [reader("shop-config-2", "shop-secrets-b"),  # a kept ReplicaSet
               reader("shop-config-3", "shop-secrets-c", volume="shop-files",
                      key_ref="shop-secrets-d")]  # the Deployment
    assert plan.unused_env(existing, readers) == [("ConfigMap", "shop-config-1"),
                                                  ("Secret", "shop-secrets-a")]
    # a projected volume or an ephemeral container reads too
    projected = {"spec": {"template": {"spec": {
        "volumes": [{"name": "p", "projected": {"sources": [
            {"configMap": {"name": "shop-config-1"}}]}}],
        "ephemeralContainers": [{"envFrom": [{"secretRef": {"name": "shop-secrets-a"}}]}]}}}}
    assert plan.unused_env(existing, [*readers, projected]) == []
    # what was just applied stays even before its ReplicaSet exists
    assert plan.unused_env(existing, readers, {("Secret", "shop-secrets-a")}) == [
        ("ConfigMap", "shop-config-1")]


def test_without_secrets_there_is_no_secret(tmp_path: Path) -> None:
    assert "secret.yaml" not in [f for f, _ in plan.applied(rendered(tmp_path, {}))]


@pytest.mark.parametrize("digest", ["sha256:abc", "latest", "sha256:" + "AB" * 32, ""])
def test_only_a_sha256_digest_pins(digest: str) -> None:
    with pytest.raises(UsageError):
        plan.digest_ref("docker.io/library/shop", digest)


def rollout(**kw: Any) -> plan.Rollout:
    base: dict[str, Any] = dict(generation=2, observed=2, desired=2, updated=2, available=2,
                                total=2, new_hash="new", timeout=60.0, max_restarts=3)
    return plan.Rollout(**{**base, **kw})


@pytest.mark.parametrize(("r", "action", "why"), [
    (rollout(), "done", ""),
    (rollout(observed=1), "wait", ""),  # the controller has not seen the new spec yet
    # ... so the pods of the hash it reports are not known to be this release's
    (rollout(observed=1, pods=[plan.Pod("p1", "new", waiting="CrashLoopBackOff")]), "wait",
     ""),
    (rollout(total=3), "wait", ""),  # an old pod still terminating
    (rollout(available=1, elapsed=10), "wait", ""),
    (rollout(available=1, pods=[plan.Pod("p1", "new", waiting="CrashLoopBackOff")]),
     "undo", "pod p1: CrashLoopBackOff"),
    (rollout(available=1, pods=[plan.Pod("p1", "new", restarts=3)]), "undo",
     "pod p1 restarted 3 times"),
    # an old pod's crash is not this release's fault
    (rollout(available=1, pods=[plan.Pod("p0", "old", waiting="CrashLoopBackOff")]), "wait",
     ""),
    (rollout(available=1, elapsed=61, pods=[plan.Pod("p1", "new", node="n1")]), "undo",
     "did not complete within 60s (1/2 available); pod p1 never became Ready"),
    (rollout(available=1, deadline_exceeded=True), "undo", "did not complete"),
    (rollout(available=1, pods=[plan.Pod("p1", "new", waiting="ErrImageNeverPull")]), "undo",
     "ErrImageNeverPull"),
    # a kubelet still syncing its ConfigMap cache retries by itself: waited for a while
    (rollout(available=1, pods=[plan.Pod("p1", "new", waiting="CreateContainerConfigError",
                                         age=5)]), "wait", ""),
    (rollout(available=1, pods=[plan.Pod("p1", "new", waiting="CreateContainerConfigError",
                                         age=31)]), "undo",
     "pod p1: CreateContainerConfigError"),
    # a pull refused in a pod's first seconds is pulled again (a pull Secret the node's
    # kubelet cannot read yet); one still refused after RETRY_GRACE is undone
    (rollout(available=1, pods=[plan.Pod("p1", "new", waiting="ErrImagePull", age=3)]),
     "wait", ""),
    (rollout(available=1, pods=[plan.Pod("p1", "new", waiting="ImagePullBackOff",
                                         age=31)]), "undo", "pod p1: ImagePullBackOff"),
    # killed by its startup probe after run.health.deadline unready: the gate failed, at
    # once rather than at the rollout's timeout
    (rollout(available=1, startup_deadline=10,
             pods=[plan.Pod("p1", "new", restarts=1, last_run=10.2)]), "undo",
     "pod p1 never became Ready: its health check failed for run.health.deadline = 10s"),
    # a crash soon after starting (a database not up yet) is waited for: restarts decide
    (rollout(available=1, startup_deadline=10,
             pods=[plan.Pod("p1", "new", restarts=1, last_run=2.0)]), "wait", ""),
    # restarted after a long healthy run, and ready again
    (rollout(available=1, startup_deadline=10,
             pods=[plan.Pod("p1", "new", restarts=1, last_run=40, ready=True)]), "wait", ""),
])
def test_the_rollout_verdict(r: plan.Rollout, action: str, why: str) -> None:
    v = plan.verdict(r)
    assert v.action == action
    assert why in v.reason


def test_a_pod_s_last_run_is_read_from_its_terminated_state() -> None:
    from goship.kube.target import _pod

    pod = {"metadata": {"name": "p1", "labels": {plan.HASH_LABEL: "new"}},
           "status": {"containerStatuses": [{
               "ready": False, "restartCount": 1, "state": {"running": {}},
               "lastState": {"terminated": {"startedAt": "2026-11-23T10:00:01Z",
                                            "finishedAt": "2026-11-23T10:00:11Z"}}}]}}
    assert _pod(pod).last_run == 10.0
    assert _pod({"metadata": {"name": "p2"}, "status": {}}).last_run == 0.0
    # its age, from creationTimestamp (unknown: as an old pod)
    now = datetime.now(UTC)
    young = _pod({"metadata": {"name": "p3", "creationTimestamp": (
        now - timedelta(seconds=4)).isoformat()}, "status": {}})
    assert 3 <= young.age < 30
    assert _pod({"metadata": {"name": "p4"}, "status": {}}).age == plan.RETRY_GRACE


def rs(revision: str, image: str) -> dict[str, Any]:
    return {"metadata": {"annotations": {plan.REVISION: revision}},
            "spec": {"template": {"metadata": {"labels": {"app": "shop",
                                                          plan.HASH_LABEL: "h" + revision}},
                                  "spec": {"containers": [{"image": image}]}}}}


def vrs(revision: str, version: str, failed: str = "") -> dict[str, Any]:
    out = rs(revision, "img-" + version)
    out["spec"]["template"]["metadata"]["labels"][plan.VERSION_LABEL] = version
    if failed:
        out["metadata"]["annotations"][plan.FAILED] = failed
    return out


def test_rollback_to_a_named_release_takes_its_newest_replicaset() -> None:
    # v1 ran twice (revisions 1 and 3); v3 was undone; v2 runs now (revision 5)
    sets = [vrs("1", "v1"), vrs("2", "v2"), vrs("3", "v1"), vrs("4", "v3", failed="crash"),
            vrs("5", "v2")]
    t = plan.release_template(sets, "v1", current=5)
    assert t["spec"]["containers"][0]["image"] == "img-v1"
    assert plan.HASH_LABEL not in t["metadata"]["labels"]


@pytest.mark.parametrize(("release", "message"), [
    ("v2", "v2 is the release running now"),
    ("v9", "no ReplicaSet of release v9 in the Deployment's history"),
    ("v3", "release v3 was undone as unhealthy (goship.dev/failed: crash)"),
])
def test_rollback_to_a_release_it_cannot_go_to_is_refused(release: str, message: str) -> None:
    sets = [vrs("1", "v1"), vrs("4", "v3", failed="crash"), vrs("5", "v2")]
    with pytest.raises(UsageError) as e:
        plan.release_template(sets, release, current=5)
    assert e.value.message == message
    assert e.value.hint == "releases to go to: v1"


def named(r: dict[str, Any], config: str) -> dict[str, Any]:
    r["metadata"]["name"] = "shop-" + r["metadata"]["annotations"][plan.REVISION]
    r["spec"]["template"]["spec"]["containers"][0]["envFrom"] = [
        {"configMapRef": {"name": config}}]
    return r


def test_a_rollback_dry_run_names_the_replicaset_it_would_bring_back() -> None:
    sets = [named(vrs("1", "v1"), "shop-config-a"), named(vrs("2", "v2"), "shop-config-a"),
            named(vrs("3", "v3", failed="crash"), "shop-config-c"),
            named(vrs("4", "v4"), "shop-config-d")]
    p = plan.rollback_plan("k8s", "shop", "shop", sets, current=4, to=None)
    assert p.lines() == [
        "rollback k8s: deployment/shop in shop: v4 (revision 4, shop-4) -> "
        "v2 (revision 2, shop-2)",
        "  image img-v4 -> img-v2",
        "  configmap/shop-config-a (kept for it) comes back",
        "  then: watch the rollout; nothing is deleted until it completes"]
    d = p.as_dict()
    assert (d["from"]["release"], d["to"]["release"], d["to"]["revision"]) == ("v4", "v2", 2)
    assert d["to"]["environment"] == [{"kind": "ConfigMap", "name": "shop-config-a"}]
    # --to: that release's newest ReplicaSet; one rollback refuses is refused the same way
    p = plan.rollback_plan("k8s", "shop", "shop", sets, current=4, to="v1")
    assert p.as_dict()["to"]["replicaset"] == "shop-1"
    with pytest.raises(UsageError) as e:
        plan.rollback_plan("k8s", "shop", "shop", sets, current=4, to="v3")
    assert e.value.message.startswith("release v3 was undone as unhealthy")
    # a first deploy has nothing to go back to
    p = plan.rollback_plan("k8s", "shop", "shop", sets[:1], current=1, to=None)
    assert p.lines() == ["rollback k8s: deployment/shop in shop: no earlier ReplicaSet to "
                         "go to (running v1 (revision 1, shop-1))"]
    assert p.as_dict()["to"] is None


def test_undo_goes_back_to_the_newest_older_replicaset() -> None:
    sets = [rs("1", "v1"), rs("3", "v3"), rs("2", "v2"), rs("4", "v4")]
    t = plan.previous_template(sets, current=4)
    assert t is not None
    assert t["spec"]["containers"][0]["image"] == "v3"
    assert t["metadata"]["labels"] == {"app": "shop"}  # the hash is the controller's
    assert plan.previous_template([rs("1", "v1")], current=1) is None
    assert plan.current_replicaset([{**rs("2", "v2"), "metadata": {
        "name": "shop-2", "annotations": {plan.REVISION: "2"}}}], 2) == "shop-2"


def test_a_rollback_skips_a_release_goship_undid() -> None:
    # v3 failed and was undone (v2's ReplicaSet is revision 4 now): back to v1, not v3
    bad = rs("3", "v3")
    bad["metadata"]["annotations"][plan.FAILED] = "pod p1 restarted 3 times"
    t = plan.previous_template([rs("1", "v1"), bad, rs("4", "v2")], current=4)
    assert t is not None
    assert t["spec"]["containers"][0]["image"] == "v1"


def test_each_pod_transition_is_printed_once() -> None:
    a = plan.Pod("p1", "new")
    b = plan.Pod("p1", "new", node="n1")
    c = plan.Pod("p1", "new", node="n1", ready=True)
    assert plan.changes({}, [a]) == []
    assert plan.changes({"p1": a}, [b]) == ["p1: scheduled on n1"]
    assert plan.changes({"p1": b}, [c]) == ["p1: ready"]
    assert plan.changes({"p1": c}, [c]) == []


def test_setup_of_a_cluster_says_there_are_no_hosts(tmp_path: Path,
                                                     capfd: pytest.CaptureFixture[str]) -> None:
    from goship.cli.main import main

    (tmp_path / "goship.toml").write_text(BASE + '[env.k]\nkubernetes = "lab"\n')
    assert main(["--config", str(tmp_path / "goship.toml"), "setup", "k"]) == 2
    assert "env.k is a Kubernetes cluster: it has no hosts to set up" in capfd.readouterr().err


@pytest.mark.parametrize(("text", "seconds"), [
    ("90s", 90), ("10m", 600), ("10 min ago", 600), ("2h", 7200), ("1 day ago", 86400),
    ("5 minutes ago", 300), (" 3 hours ", 10800),
])
def test_logs_since_reads_relative_durations(text: str, seconds: int) -> None:
    assert plan.since_seconds(text) == seconds


@pytest.mark.parametrize("text", ["yesterday", "2026-11-23 10:00", "0m", "-5m", "10 lightyears",
                                  "5m; rm -rf /"])
def test_logs_since_refuses_what_the_api_cannot_take(text: str) -> None:
    with pytest.raises(UsageError, match="on Kubernetes, a duration such as"):
        plan.since_seconds(text)


def test_logs_reads_every_live_pod_or_those_a_host_names() -> None:
    pods = [plan.Pod("web-b", "h", node="lab-h2"), plan.Pod("web-a", "h", node="lab-h1"),
            plan.Pod("web-c", "h", node="lab-h1", terminating=True)]
    assert [p.name for p in plan.log_pods(pods, None)] == ["web-a", "web-b"]
    assert [p.name for p in plan.log_pods(pods, "lab-h1")] == ["web-a"]
    assert [p.name for p in plan.log_pods(pods, "web-b")] == ["web-b"]
    with pytest.raises(UsageError) as e:
        plan.log_pods(pods, "lab-h9")
    assert e.value.hint == "pick one of: lab-h1, lab-h2, web-a, web-b"


HPA = {"spec": {"minReplicas": 2, "maxReplicas": 10, "metrics": [
    {"type": "Resource", "resource": {"name": "cpu", "target": {
        "type": "Utilization", "averageUtilization": 50}}}]},
       "status": {"currentReplicas": 2, "desiredReplicas": 4, "currentMetrics": [
           {"type": "Resource", "resource": {"name": "cpu", "current": {
               "averageUtilization": 93, "averageValue": "93m"}}}],
           "conditions": [{"type": "ScalingActive", "status": "True",
                           "reason": "ValidMetricFound"}]}}
NO_METRICS = {"spec": HPA["spec"], "status": {
    "currentReplicas": 2, "desiredReplicas": 2, "conditions": [
        {"type": "ScalingActive", "status": "False", "reason": "FailedGetResourceMetric",
         "message": "unable to get metrics for resource cpu"}]}}


@pytest.mark.parametrize(("hpa", "line"), [
    (HPA, "autoscaler 2 -> 4 replicas within 2..10, CPU 93% (target 50%)"),
    (NO_METRICS, "autoscaler 2 -> 2 replicas within 2..10, CPU unknown (target 50%), not "
                 "scaling: FailedGetResourceMetric: unable to get metrics for resource cpu"),
    (None, "no autoscaler"),
])
def test_status_says_what_the_autoscaler_does(hpa: Any, line: str) -> None:
    assert plan.hpa_line(plan.hpa_state(hpa)) == line


def test_the_secret_holds_the_env_file_and_the_secrets_commands(tmp_path: Path) -> None:
    """As on hosts: run.env_file's values and [secrets]' commands' output, resolved once;
    run.env stays for the ConfigMap."""
    from goship.targets import deploy_target

    (tmp_path / ".env.k8s").write_text("DB_PASS=from-file\n")
    p = project(tmp_path, '[env.k8s]\nkubernetes = "lab"\n[env.k8s.run]\n'
                          'env_file = ".env.k8s"\n'
                          '[env.k8s.secrets]\nAPI_TOKEN = { command = "printf tok-1" }\n')
    target = deploy_target(p, p.env("k8s"))
    assert target._secrets() == {"API_TOKEN": "tok-1", "DB_PASS": "from-file"}  # type: ignore[attr-defined]


def dep(image: str, replicas: int = 2) -> dict[str, Any]:
    return {"metadata": {"name": "shop", "resourceVersion": "7"}, "spec": {
        "replicas": replicas, "template": {"spec": {"containers": [{"image": image}]}}}}


@pytest.mark.parametrize(("kind", "before", "after", "action", "details"), [
    ("Deployment", None, dep("r@sha256:b"), "create", ["image r@sha256:b"]),
    ("Deployment", dep("r@sha256:a"), dep("r@sha256:b"), "update",
     ["image r@sha256:a -> r@sha256:b"]),
    # the server's metadata differs, the desired state does not
    ("Deployment", dep("r@sha256:a"), {**dep("r@sha256:a"), "metadata": {"name": "shop"}},
     "unchanged", []),
    ("ConfigMap", {"data": {"A": "1", "B": "2"}}, {"data": {"A": "1", "B": "3", "C": "4"}},
     "update", ["B: changed", "C: added"]),
    ("ConfigMap", {"data": {"A": "1"}}, {"data": {}}, "update", ["A: removed"]),
    ("Secret", {"data": {"K": "b2xk"}}, {"data": {"K": "bmV3"}}, "update",
     ["values changed (not shown)"]),
    ("Secret", {"data": {"K": "b2xk"}}, {"data": {"K": "b2xk"}}, "unchanged", []),
])
def test_a_dry_run_says_what_each_object_would_become(
        kind: str, before: Any, after: Any, action: str, details: list[str]) -> None:
    c = plan.change(kind, "shop", before, after)
    assert (c.action, c.details) == (action, details)
    assert "bmV3" not in str(c)
    assert "b2xk" not in str(c)


def test_the_dry_run_plan_prints_and_serialises() -> None:
    p = plan.KubePlan("prod", "shop", "v2", "r@sha256:b", [
        plan.change("Deployment", "shop", dep("r@sha256:a"), dep("r@sha256:b")),
        plan.change("Service", "shop", {"spec": {"a": 1}}, {"spec": {"a": 1}})])
    assert p.lines() == [
        "deploy prod: release v2 to namespace shop, image r@sha256:b",
        "  update deployment/shop: image r@sha256:a -> r@sha256:b",
        "  unchanged service/shop",
        "  then: watch the rollout, gate on health through the Service, undo on failure"]
    assert p.as_dict()["changes"][1] == {"kind": "Service", "name": "shop",
                                         "action": "unchanged", "details": []}


def test_logs_follow_picks_up_the_pods_that_appear() -> None:
    pods = [plan.Pod("web-a", "h", node="lab-h1"), plan.Pod("web-b", "h", node="lab-h2"),
            plan.Pod("web-c", "h", node="lab-h1"),  # new
            plan.Pod("web-d", "h"),  # new but not scheduled: no log yet, next poll
            plan.Pod("web-e", "h", node="lab-h2", terminating=True)]
    followed = {"web-a", "web-b"}
    assert plan.new_log_pods(pods, followed, None) == ["web-c"]
    assert plan.new_log_pods(pods, followed, "lab-h2") == []
    assert plan.new_log_pods(pods, followed, "lab-h1") == ["web-c"]
    assert plan.new_log_pods(pods, {"web-a", "web-b", "web-c"}, None) == []


def test_a_probe_refused_on_the_pod_address_says_where_to_listen() -> None:
    refused = ['Unhealthy: Startup probe failed: Get "http://10.244.2.10:8090/healthz": '
               "dial tcp 10.244.2.10:8090: connect: connection refused"]
    hint = plan.probe_hint(["Scheduled: ok", *refused], 8090)
    assert hint is not None
    assert "make it listen on 0.0.0.0:8090" in hint
    assert plan.probe_hint(["Unhealthy: Readiness probe failed: HTTP probe failed with "
                            "statuscode: 503"], 8090) is None
