"""Blue-green on a cluster as data: which color a deploy brings up and with how many pods,
what the render of each color selects, what status says of the standby, and what a
rollback goes back to (or refuses, with nothing changed). And a real service's pod: its
args, data directories and config files, and a NodePort."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from goship.config.load import load as load_project
from goship.errors import UsageError
from goship.kube import plan
from goship.render.inputs import RenderInput
from goship.render.kubernetes import render_kubernetes, strategy

APP = "shop"


def config(tmp_path: Path, deploy: str) -> Any:
    (tmp_path / "goship.toml").write_text(
        f'[app]\nname = "{APP}"\n[kubernetes]\nmin_replicas = 2\n{deploy}'
        '[env.k]\nkubernetes = "lab"\n')
    return load_project(tmp_path / "goship.toml").env("k").config


def docs(tmp_path: Path, deploy: str, color: str | None = None) -> dict[str, Any]:
    cfg = config(tmp_path, deploy)
    out = render_kubernetes(RenderInput(config=cfg, root=tmp_path, env="k", version="v2"),
                            color=color)
    return {name: yaml.safe_load(text) for name, text in out.items()
            if not name.startswith("canary/")}


def service(color: str | None) -> dict[str, Any]:
    selector = {"app.kubernetes.io/name": APP, "goship.dev/track": "stable"}
    return {"spec": {"selector": selector | ({"goship.dev/color": color} if color else {})}}


def deployment(version: str, replicas: int = 2, ready: int | None = None,
               **annotations: str) -> dict[str, Any]:
    return {"metadata": {"annotations": annotations},
            "spec": {"replicas": replicas, "template": {"metadata": {"labels": {
                plan.VERSION_LABEL: version}}}},
            "status": {"readyReplicas": replicas if ready is None else ready}}


@pytest.mark.parametrize(("deploy", "expected"), [
    ("", "rolling"),  # the hosts' default (bluegreen) means rolling on a cluster
    ('[deploy]\nstrategy = "rolling"\n', "rolling"),
    ('[deploy]\nstrategy = "bluegreen"\n', "bluegreen"),
])
def test_the_strategy_on_a_cluster(tmp_path: Path, deploy: str, expected: str) -> None:
    assert strategy(config(tmp_path, deploy)) == expected


@pytest.mark.parametrize("color", ["blue", "green"])
def test_each_color_is_its_own_deployment_and_the_service_selects_one(
        tmp_path: Path, color: str) -> None:
    d = docs(tmp_path, '[deploy]\nstrategy = "bluegreen"\n', color)
    dep = d["deployment.yaml"]
    assert dep["metadata"]["name"] == f"{APP}-{color}"
    assert "replicas" not in dep["spec"]  # goship scales each color; the HPA the live one
    assert dep["spec"]["selector"]["matchLabels"]["goship.dev/color"] == color
    assert dep["spec"]["template"]["metadata"]["labels"]["goship.dev/color"] == color
    assert d["service.yaml"]["spec"]["selector"]["goship.dev/color"] == color
    assert d["hpa.yaml"]["spec"]["scaleTargetRef"]["name"] == f"{APP}-{color}"
    # the PDB covers whichever color serves
    assert "goship.dev/color" not in d["pdb.yaml"]["spec"]["selector"]["matchLabels"]


def test_a_rolling_render_has_no_color(tmp_path: Path) -> None:
    d = docs(tmp_path, '[deploy]\nstrategy = "rolling"\n')
    assert d["deployment.yaml"]["metadata"]["name"] == APP
    assert "goship.dev/color" not in d["service.yaml"]["spec"]["selector"]
    assert d["hpa.yaml"]["spec"]["scaleTargetRef"]["name"] == APP
    with pytest.raises(ValueError, match="blue-green"):
        docs(tmp_path, '[deploy]\nstrategy = "rolling"\n', "green")


def test_the_autoscaler_waits_scale_down_window_before_removing_pods(tmp_path: Path) -> None:
    hpa = docs(tmp_path, 'scale_down_window = 30\n[deploy]\nstrategy = "rolling"\n')["hpa.yaml"]
    assert hpa["spec"]["behavior"] == {"scaleDown": {"stabilizationWindowSeconds": 30}}
    # unset: no behavior at all, Kubernetes' own 300 s
    rolling = docs(tmp_path, '[deploy]\nstrategy = "rolling"\n')
    assert "behavior" not in rolling["hpa.yaml"]["spec"]
    with pytest.raises(UsageError, match=r"kubernetes\.scale_down_window: expected less than"):
        config(tmp_path, "scale_down_window = 7200\n")


@pytest.mark.parametrize(("svc", "colors", "rolling", "expected"), [
    # first deploy: blue, at kubernetes.min_replicas
    (None, {"blue": None, "green": None}, None, plan.Switch(None, "blue", 2)),
    # blue live with the autoscaler's 5 pods: green comes up with 5
    (service("blue"), {"blue": deployment("v1", 5), "green": None}, None,
     plan.Switch("blue", "green", 5)),
    # green live, blue the standby (warm or not): blue again
    (service("green"), {"blue": deployment("v1", 0), "green": deployment("v2", 3)}, None,
     plan.Switch("green", "blue", 3)),
    # the selector names a color whose Deployment is gone: as a first deploy
    (service("green"), {"blue": deployment("v1"), "green": None}, None,
     plan.Switch(None, "blue", 2)),
    # from the rolling strategy: its Deployment's count, deleted after the switch
    (service(None), {"blue": None, "green": None}, deployment("v1", 4), plan.Switch(
        None, "blue", 4, [APP])),
])
def test_the_color_a_deploy_brings_up(svc: dict[str, Any] | None,
                                      colors: dict[str, dict[str, Any] | None],
                                      rolling: dict[str, Any] | None,
                                      expected: plan.Switch) -> None:
    assert plan.bluegreen(APP, svc, colors, rolling, 2) == expected


def test_the_dry_run_says_what_follows_the_apply() -> None:
    line = plan.switch_line(APP, plan.Switch("blue", "green", 3))
    assert line.startswith(f"scale {APP}-green to 3, watch its rollout, gate each pod; "
                           f"then switch service/{APP} to green; blue stays warm "
                           "until the next deploy")
    assert line.endswith("on failure, scale it to 0: nothing switched")
    assert "delete deployment/shop" in plan.switch_line(APP, plan.Switch(None, "blue", 2,
                                                                         [APP]))


def test_status_says_what_the_standby_is() -> None:
    assert plan.standby_line(deployment("v1", 2, ready=1), "blue") == (
        "standby v1 on blue: 1/2 ready (instant rollback); the next deploy rolls it to the "
        "new release")
    assert "scaled to 0" in str(plan.standby_line(deployment("v1", 0), "blue"))
    failed = deployment("v3", 0, **{plan.FAILED: "pod x: CrashLoopBackOff"})
    assert plan.standby_line(failed, "green") == (
        "green: v3 undone as unhealthy (pod x: CrashLoopBackOff), 0 replicas")
    assert plan.standby_line(None, "green") is None


def back(svc: dict[str, Any] | None, colors: dict[str, dict[str, Any] | None],
         to: str | None = None) -> plan.Back:
    return plan.bluegreen_back("k", "default", APP, svc, colors, to, 2)


def test_a_rollback_within_the_window_is_the_switch_alone() -> None:
    b = back(service("green"), {"blue": deployment("v1", 3), "green": deployment("v2", 3)})
    assert (b.live, b.live_release, b.color, b.release, b.warm, b.replicas) == (
        "green", "v2", "blue", "v1", True, 3)
    assert b.lines()[0] == "rollback k: service/shop in default: green (v2) -> blue (v1)"
    assert "switches at once" in b.lines()[1]
    assert back(service("green"), {"blue": deployment("v1", 3), "green": deployment(
        "v2", 3)}, to="v1").color == "blue"


def test_a_rollback_after_the_window_starts_the_standby_first() -> None:
    b = back(service("green"), {"blue": deployment("v1", 0), "green": deployment("v2", 4)})
    assert (b.warm, b.replicas) == (False, 4)  # the live count
    assert "start and pass the health gate" in b.lines()[1]
    half = back(service("green"), {"blue": deployment("v1", 3, ready=1),
                                   "green": deployment("v2", 3)})
    assert (half.warm, half.replicas) == (False, 3)
    assert half.as_dict()["to"] == {"color": "blue", "release": "v1"}


@pytest.mark.parametrize(("svc", "colors", "to", "message"), [
    (None, {"blue": None, "green": None}, None, "serves no color"),
    (service("blue"), {"blue": deployment("v1"), "green": None}, None,
     "no green Deployment"),
    (service("blue"), {"blue": deployment("v2"), "green": deployment(
        "v3", 0, **{plan.FAILED: "pod x: CrashLoopBackOff"})}, None,
     "v3 on green was undone as unhealthy"),
    (service("blue"), {"blue": deployment("v2"), "green": deployment("v1")}, "v0",
     "release v0 is not on the standby color"),
    (service("blue"), {"blue": deployment("v2"), "green": deployment("v1")}, "v2",
     "v2 is the release running now"),
])
def test_a_rollback_with_nowhere_to_go_is_refused(
        svc: dict[str, Any] | None, colors: dict[str, dict[str, Any] | None],
        to: str | None, message: str) -> None:
    with pytest.raises(UsageError, match=message):
        back(svc, colors, to)


def test_node_port_makes_the_service_answer_on_every_node(tmp_path: Path) -> None:
    d = docs(tmp_path, '[deploy]\nstrategy = "bluegreen"\n')
    assert d["service.yaml"]["spec"]["type"] == "ClusterIP"
    (tmp_path / "goship.toml").write_text(
        f'[app]\nname = "{APP}"\n[kubernetes]\nnode_port = 30482\n[env.k]\nkubernetes = "lab"\n')
    cfg = load_project(tmp_path / "goship.toml").env("k").config
    out = render_kubernetes(RenderInput(config=cfg, root=tmp_path, env="k", version="v2"))
    svc = yaml.safe_load(out["service.yaml"])
    assert svc["spec"]["type"] == "NodePort"
    assert svc["spec"]["ports"] == [{"name": "http", "port": 80, "targetPort": "http",
                                     "nodePort": 30482}]
    # a canary's Service answers at the next port, where goship's edge reaches it
    canary = yaml.safe_load(out["canary/service.yaml"])
    assert canary["spec"]["type"] == "NodePort"
    assert canary["spec"]["ports"][0]["nodePort"] == 30483


def test_a_node_port_outside_the_range_is_refused(tmp_path: Path) -> None:
    from goship.errors import ConfigErrors

    (tmp_path / "goship.toml").write_text(
        f'[app]\nname = "{APP}"\n[kubernetes]\nnode_port = 8080\n')
    with pytest.raises(ConfigErrors) as e:
        load_project(tmp_path / "goship.toml")
    [line] = [x.line() for x in e.value.errors]
    assert "kubernetes.node_port" in line, line
    assert "30000" in line, line


def test_a_real_service_gets_its_args_data_and_config_files_in_the_pod(
        tmp_path: Path) -> None:
    """run.args, run.data_dirs and run.config_files (a port read from a YAML file) as on
    hosts and Docker: the argv, writable directories under the read-only root, and the
    file with {port} filled, from a ConfigMap named by its contents."""
    (tmp_path / "config.yaml").write_text("server:\n  port: {port}\n  data: {data}/x\n")
    (tmp_path / "goship.toml").write_text(
        f'[app]\nname = "{APP}"\n[build]\nfiles = ["config.yaml"]\n[run]\nbase_port = 8090\n'
        'args = ["server", "--addr", ":{port}", "--release", "{release}"]\n'
        'data_dirs = ["data", "static/uploads/"]\nconfig_files = ["config.yaml"]\n'
        '[env.k]\nkubernetes = "lab"\n')
    cfg = load_project(tmp_path / "goship.toml").env("k").config
    out = render_kubernetes(RenderInput(config=cfg, root=tmp_path, env="k", version="v2"))
    dep = yaml.safe_load(out["deployment.yaml"])
    pod = dep["spec"]["template"]["spec"]
    [c] = pod["containers"]
    assert c["args"] == ["server", "--addr", ":8090", "--release", "v2"]
    assert c["securityContext"]["readOnlyRootFilesystem"] is True
    mounts = {m["mountPath"]: m for m in c["volumeMounts"]}
    assert mounts["/data"]["name"] == "data"
    assert (mounts["/app/data"]["subPath"], mounts["/app/static/uploads"]["subPath"]) == (
        "data", "static/uploads")
    assert mounts["/app/config.yaml"] == {"name": "files", "mountPath": "/app/config.yaml",
                                          "subPath": "0-config.yaml", "readOnly": True}
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert volumes["data"] == {"name": "data", "emptyDir": {}}
    files = yaml.safe_load(out["files.yaml"])
    assert volumes["files"]["configMap"]["name"] == files["metadata"]["name"]
    assert files["metadata"]["name"].startswith(f"{APP}-files-")
    assert files["immutable"] is True
    assert files["data"] == {"0-config.yaml": "server:\n  port: 8090\n  data: /data/x\n"}
    # applied before the Deployment that reads it
    assert [n for n, _ in plan.applied(out)][:3] == ["configmap.yaml", "files.yaml",
                                                      "deployment.yaml"]
    assert plan.env_references([dep]) >= {("ConfigMap", files["metadata"]["name"])}
    # a file name a ConfigMap key cannot hold
    (tmp_path / "conf dir").mkdir()
    (tmp_path / "conf dir" / "my settings+prod.yml").write_text("port: {port}\n")
    odd = cfg.model_copy(update={"run": cfg.run.model_copy(update={
        "config_files": ["conf dir/my settings+prod.yml"]})})
    odd_files = yaml.safe_load(render_kubernetes(RenderInput(
        config=odd, root=tmp_path, env="k", version="v2"))["files.yaml"])
    assert odd_files["data"] == {"0-my_settings_prod.yml": "port: 8090\n"}
    # another content, another name: the old pods keep theirs
    (tmp_path / "config.yaml").write_text("server:\n  port: {port}\n")
    again = yaml.safe_load(render_kubernetes(RenderInput(
        config=cfg, root=tmp_path, env="k", version="v3"))["files.yaml"])
    assert again["metadata"]["name"] != files["metadata"]["name"]


def test_a_data_claim_holds_the_data_for_every_pod(tmp_path: Path) -> None:
    (tmp_path / "goship.toml").write_text(
        f'[app]\nname = "{APP}"\n[run]\ndata_dirs = ["data"]\n[kubernetes]\n'
        'data_claim = "shop-data"\n[env.k]\nkubernetes = "lab"\n')
    cfg = load_project(tmp_path / "goship.toml").env("k").config
    dep = yaml.safe_load(render_kubernetes(RenderInput(
        config=cfg, root=tmp_path, env="k", version="v2"))["deployment.yaml"])
    volumes = {v["name"]: v for v in dep["spec"]["template"]["spec"]["volumes"]}
    assert volumes["data"]["persistentVolumeClaim"] == {"claimName": "shop-data"}
    assert dep["spec"]["template"]["spec"]["securityContext"]["fsGroup"] > 0


def test_a_plain_service_gets_no_extra_volume(tmp_path: Path) -> None:
    d = docs(tmp_path, "")
    pod = d["deployment.yaml"]["spec"]["template"]["spec"]
    assert [v["name"] for v in pod["volumes"]] == ["tmp"]
    assert "args" not in pod["containers"][0]
    assert "files.yaml" not in d
