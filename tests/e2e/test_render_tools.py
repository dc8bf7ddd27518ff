"""Rendered configs checked by the tools that consume them: promtool (config, rules and
rule unit tests that must fire and must not), kubernetes-validate, actionlint, rsyslogd
and logrotate."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from goship.config import load, parse
from goship.render.inputs import RenderInput
from goship.render.kinds import render_kind
from tests.conftest import EXAMPLE, need

K8S_VERSION = "1.33.0"  # the Kubernetes version the manifests are validated against


def write(files: dict[str, str], out: Path) -> Path:
    for name, text in files.items():
        path = out / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return out


def example(kind: str, tmp_path: Path, **kw: Any) -> Path:
    cfg = load(EXAMPLE / "goship.toml").base
    r = RenderInput(config=cfg, root=EXAMPLE, version="v1.2.3", **kw)
    return write(render_kind(kind, r), tmp_path / kind)


def run(*argv: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(list(argv), capture_output=True, text=True, check=False, cwd=cwd)


# ---- Prometheus ------------------------------------------------------------------------
def shop_rules(tmp_path: Path) -> Path:
    cfg = parse({"app": {"name": "shop"}}).base
    r = RenderInput(config=cfg, root=tmp_path, env="prod", hosts=["10.0.0.1"], version="v2")
    return write(render_kind("prometheus", r), tmp_path / "prom")


def test_promtool_accepts_the_config_and_rules(tmp_path: Path) -> None:
    need("promtool")
    out = example("prometheus", tmp_path, env="lab", hosts=["10.78.0.11", "10.78.0.12"])
    res = run("promtool", "check", "config", "prometheus.yml", cwd=out)
    assert res.returncode == 0, res.stdout + res.stderr
    assert "1 rule files found" in res.stdout
    res = run("promtool", "check", "rules", "rules/hello-gin.rules.yml", cwd=out)
    assert res.returncode == 0, res.stdout + res.stderr
    groups = json.loads((out / "targets" / "hello-gin-lab.json").read_text())
    assert groups[0]["targets"] == ["10.78.0.11:8080"]


def series(name: str, values: str, **labels: str) -> dict[str, str]:
    body = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
    return {"series": f"{name}{{{body}}}", "values": values}


def test_alerts_fire_on_trouble_and_stay_quiet_otherwise(tmp_path: Path) -> None:
    """promtool test rules: v2 fails 5% of requests and is slow, v1 is healthy; one
    instance goes down, one restarts in a loop, one grows its memory."""
    need("promtool")
    out = shop_rules(tmp_path)
    a = {"job": "shop", "instance": "10.0.0.1:8080", "track": "stable"}
    b = {"job": "shop", "instance": "10.0.0.2:8080", "track": "stable"}
    req = "http_requests_total"
    bucket = "http_request_duration_seconds_bucket"
    inputs = [
        series(req, "0+100x30", code="200", release="v2", **a),
        series(req, "0+5x30", code="500", release="v2", **a),
        series(req, "0+100x30", code="200", release="v1", **b),
        series(req, "0+0x30", code="500", release="v1", **b),
        # v2: every request between 0.5 s and 1 s; v1: all under 0.1 s
        *[series(bucket, "0+0x30", le=le, release="v2", **a) for le in ("0.1", "0.5")],
        *[series(bucket, "0+105x30", le=le, release="v2", **a) for le in ("1", "+Inf")],
        *[series(bucket, "0+100x30", le=le, release="v1", **b)
          for le in ("0.1", "0.5", "1", "+Inf")],
        series("up", "1 1 0x28", release="v2", **a),
        series("up", "1x30", release="v1", **b),
        series("process_start_time_seconds", "100 160 220 280 340 400 460 460x24",
               release="v2", **a),
        series("process_start_time_seconds", "100x30", release="v1", **b),
        series("process_resident_memory_bytes", "1e9x30", release="v2", **a),
        series("process_resident_memory_bytes", "1e8x30", release="v1", **b),
    ]
    v2 = {"job": "shop", "release": "v2", "track": "stable"}

    def fired(name: str, labels: dict[str, str], summary: str) -> dict[str, Any]:
        return {"alertname": name, "eval_time": "15m", "exp_alerts": [
            {"exp_labels": labels, "exp_annotations": {"summary": summary}}]}

    inst_a = {**a, "release": "v2"}
    tests = [{
        "interval": "1m",
        "input_series": inputs,
        "alert_rule_test": [
            fired("ShopHighErrorRate", {**v2, "severity": "critical"},
                  "shop v2 (stable): more than 1% of requests fail with 5xx"),
            fired("ShopHighLatency", {**v2, "severity": "warning"},
                  "shop v2: p99 above 800 ms"),
            fired("ShopInstanceDown", {**inst_a, "severity": "critical"},
                  "shop on 10.0.0.1:8080 is down"),
            fired("ShopRestartLoop", {**inst_a, "severity": "warning"},
                  "shop on 10.0.0.1:8080 restarted more than 3 times in 15 minutes"),
            fired("ShopHighMemory", {**inst_a, "severity": "warning"},
                  "shop on 10.0.0.1:8080 uses more than 536870912 bytes"),
            # too early for the `for:` windows: nothing fires yet
            {"alertname": "ShopHighErrorRate", "eval_time": "3m", "exp_alerts": []},
            {"alertname": "ShopHighMemory", "eval_time": "5m", "exp_alerts": []},
        ],
    }]
    spec = {"rule_files": ["rules/shop.rules.yml"], "evaluation_interval": "1m",
            "tests": tests}
    (out / "tests.yml").write_text(json.dumps(spec, indent=1))
    res = run("promtool", "test", "rules", "tests.yml", cwd=out)
    assert res.returncode == 0, res.stdout + res.stderr
    assert "SUCCESS" in res.stdout


def test_promtool_test_catches_an_alert_that_does_not_fire(tmp_path: Path) -> None:
    """The check above can fail: a healthy series does not satisfy an expected alert."""
    need("promtool")
    out = shop_rules(tmp_path)
    spec = {"rule_files": ["rules/shop.rules.yml"], "evaluation_interval": "1m",
            "tests": [{"interval": "1m", "input_series": [
                series("up", "1x20", job="shop", instance="x:1")],
                "alert_rule_test": [{"alertname": "ShopInstanceDown", "eval_time": "10m",
                                     "exp_alerts": [{"exp_labels": {
                                         "job": "shop", "instance": "x:1",
                                         "severity": "critical"}}]}]}]}
    (out / "tests.yml").write_text(json.dumps(spec))
    res = run("promtool", "test", "rules", "tests.yml", cwd=out)
    assert res.returncode != 0


def test_grafana_queries_are_valid_promql(tmp_path: Path) -> None:
    """Each panel's query, checked by promtool as a recording rule's expression."""
    need("promtool")
    out = example("grafana", tmp_path)
    board = json.loads((out / "hello-gin-dashboard.json").read_text())
    exprs = [t["expr"] for p in board["panels"] for t in p["targets"]]
    rules = {"groups": [{"name": "dashboard", "rules": [
        {"record": f"dashboard:query{i}", "expr": e} for i, e in enumerate(exprs)]}]}
    (tmp_path / "q.yml").write_text(json.dumps(rules))
    res = run("promtool", "check", "rules", str(tmp_path / "q.yml"))
    assert res.returncode == 0, res.stdout + res.stderr
    assert f"{len(exprs)} rules found" in res.stdout


# ---- Kubernetes ------------------------------------------------------------------------
def kubernetes_validate() -> str:
    tool = Path(sys.executable).parent / "kubernetes-validate"
    if not tool.exists():
        pytest.skip("kubernetes-validate is not installed")
    return str(tool)


@pytest.mark.parametrize("over", [
    {},
    {"proxy": {"server_names": ["shop.example.com"], "tls": {
        "mode": "letsencrypt", "email": "ops@example.com"}},
     "kubernetes": {"cpu_limit": "2", "max_surge": 1, "namespace": "web"},
     "run": {"env": {"GIN_MODE": "release", "QUOTE": "it's \"x\": #{y}"}}},
])
def test_kubernetes_manifests_validate_strictly(tmp_path: Path, over: dict[str, Any]) -> None:
    tool = kubernetes_validate()
    cfg = parse({"app": {"name": "shop"}, **over}).base
    r = RenderInput(config=cfg, root=tmp_path, version="v1.2.3",
                    secrets={"DB_PASSWORD": "x: y # z"}, show_secrets=True)
    out = write(render_kind("kubernetes", r), tmp_path / "k8s")
    files = sorted(str(p) for p in out.rglob("*.yaml"))
    assert len(files) == 10
    res = run(tool, "--strict", "-k", K8S_VERSION, *files)
    assert res.returncode == 0, res.stdout + res.stderr
    assert res.stdout.count("passed") == 10, res.stdout


def test_kubernetes_validate_rejects_a_broken_manifest(tmp_path: Path) -> None:
    tool = kubernetes_validate()
    out = example("kubernetes", tmp_path)
    dep = out / "deployment.yaml"
    dep.write_text(dep.read_text().replace("containerPort: 8080", "containerPort: eighty"))
    res = run(tool, "--strict", "-k", K8S_VERSION, str(dep))
    assert res.returncode != 0


# ---- GitHub Actions --------------------------------------------------------------------
def actionlint() -> str:
    local = Path(sys.executable).parent / "actionlint"
    if local.exists():
        return str(local)
    return need("actionlint")


def test_actionlint_accepts_the_workflow(tmp_path: Path) -> None:
    tool = actionlint()
    out = example("ci", tmp_path, env="production")
    res = run(tool, "-no-color", str(out / ".github" / "workflows" / "hello-gin.yml"))
    assert res.returncode == 0, res.stdout + res.stderr


def test_actionlint_catches_a_broken_workflow(tmp_path: Path) -> None:
    tool = actionlint()
    out = example("ci", tmp_path, env="production")
    wf = out / ".github" / "workflows" / "hello-gin.yml"
    wf.write_text(wf.read_text().replace("needs: build", "needs: no-such-job", 1))
    res = run(tool, "-no-color", str(wf))
    assert res.returncode != 0
    assert "no-such-job" in res.stdout


# ---- Logs ------------------------------------------------------------------------------
@pytest.mark.parametrize("forward", [None, "logs.internal:514"])
def test_rsyslog_accepts_the_snippet(tmp_path: Path, forward: str | None) -> None:
    """rsyslogd -N1 on Debian's own rsyslog.conf with the snippet included where
    /etc/rsyslog.d/*.conf would be."""
    need("rsyslogd")
    system = Path("/etc/rsyslog.conf")
    if not system.exists():
        pytest.skip("rsyslog's configuration is not installed")
    over = {"logs": {"forward": forward}} if forward else {}
    cfg = parse({"app": {"name": "shop"}, **over}).base
    out = write(render_kind("logs", RenderInput(config=cfg, root=tmp_path)), tmp_path / "l")
    snippet = out / "rsyslog" / "60-goship-shop.conf"
    master = tmp_path / "rsyslog.conf"
    text = system.read_text()
    include = f'include(file="{snippet}")'
    lines = [include if line.startswith("$IncludeConfig") else line
             for line in text.splitlines()]
    assert include in lines
    master.write_text("\n".join(lines) + "\n")
    res = run("rsyslogd", "-N1", "-f", str(master))
    assert res.returncode == 0, res.stdout + res.stderr
    broken = tmp_path / "broken.conf"
    broken.write_text(master.read_text().replace(include, 'input(type="imfile")'))
    assert run("rsyslogd", "-N1", "-f", str(broken)).returncode != 0


def test_logrotate_accepts_and_rotates(tmp_path: Path) -> None:
    need("logrotate")
    base = tmp_path / "srv"
    cfg = parse({"app": {"name": "shop"}, "deploy": {"base_path": str(base)}}).base
    out = write(render_kind("logs", RenderInput(config=cfg, root=tmp_path)), tmp_path / "l")
    logs = base / "shop" / "logs"
    logs.mkdir(parents=True)
    (logs / "access.log").write_text('{"status":200}\n')
    conf = out / "logrotate" / "goship-shop"
    state = tmp_path / "state"
    res = run("logrotate", "-d", "-s", str(state), str(conf))
    assert res.returncode == 0, res.stdout + res.stderr
    assert f"considering log {logs}/access.log" in res.stderr + res.stdout
    # a forced rotation for real: the file moves aside, the postrotate runs without nginx
    res = run("logrotate", "-f", "-s", str(state), str(conf))
    assert res.returncode == 0, res.stdout + res.stderr
    assert (logs / "access.log.1").read_text() == '{"status":200}\n'


def test_filebeat_config_is_well_formed(tmp_path: Path) -> None:
    """No Filebeat package here: the YAML and the inputs' shape are checked instead."""
    yaml = pytest.importorskip("yaml")
    out = example("logs", tmp_path)
    doc = yaml.safe_load((out / "filebeat.yml").read_text())
    inputs = {i["id"]: i for i in doc["filebeat.inputs"]}
    access = inputs["goship-hello-gin-access"]
    assert access["type"] == "filestream"
    assert "/var/log/nginx/goship-hello-gin.access.log" in access["paths"]
    assert access["parsers"][0]["ndjson"]["add_error_key"] is True
    assert inputs["goship-hello-gin-journal"]["type"] == "journald"
    assert doc["output.elasticsearch"]["hosts"] == ["http://localhost:9200"]
