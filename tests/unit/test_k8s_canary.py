"""A canary on Kubernetes behind goship's edge, as data and against a real nginx: what the
cluster's facts decide, when the canary's pods count as broken, the edge's config and
where it goes, the shared walk's verdicts, and the edge's routing served by nginx with its
Lua in front of two local servers standing in for the two NodePorts. The lab cluster runs
it under load in tests/e2e/test_k8s_deploy.py."""

from __future__ import annotations

import http.server
import json
import shutil
import socket
import subprocess
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from goship.canary import metrics
from goship.canary.analysis import Arm
from goship.canary.engine import control_at
from goship.canary.routing import Rule, Rules
from goship.canary.walk import walk
from goship.config import parse
from goship.config.load import Environment
from goship.config.model import Canary
from goship.deploy import lb
from goship.errors import ConfigError, UsageError
from goship.kube import canary as kc
from goship.kube.plan import Pod
from goship.render import edge
from goship.render.inputs import RenderInput
from goship.render.kubernetes import render_kubernetes
from goship.transport.local import LocalTransport
from tests.conftest import CliResult

Run = Callable[..., CliResult]


def env(kube: dict[str, Any] | None = None, lb_hosts: list[str] | None = None,
        target: Any = "lab") -> Environment:
    raw: dict[str, Any] = {
        "app": {"name": "shop"},
        "kubernetes": {"node_port": 30480, **(kube or {})},
        "proxy": {"lb": {"hosts": lb_hosts if lb_hosts is not None else ["h1"]}},
        "env": {"k": {"kubernetes": target}}}
    return parse(raw, path=Path("/nonexistent/goship.toml")).env("k")


def deployment(version: str) -> dict[str, Any]:
    return {"spec": {"template": {"metadata": {"labels": {
        "app.kubernetes.io/version": version}}}}}


def pod(name: str = "shop-canary-1", **kw: Any) -> Pod:
    base: dict[str, Any] = dict(name=name, template_hash="h", node="lab-h1", ready=True,
                                restarts=0, waiting="", terminating=False, last_run=0.0,
                                age=10.0)
    return Pod(**{**base, **kw})


# ---- what the cluster's facts decide -------------------------------------------------------
def test_the_first_release_is_deployed_rolling_as_the_stable_track() -> None:
    got = kc.decide("shop", None, {"blue": None, "green": None}, None, None)
    assert got.action == "first"
    assert "becomes the stable track" in got.reason


def test_a_canary_beside_a_stable_release() -> None:
    got = kc.decide("shop", deployment("v1"), {}, None, "v2")
    assert got.action == "canary"
    assert got.reason == "against stable v1"


@pytest.mark.parametrize(("stable", "colors", "canary", "version", "says"), [
    (None, {"blue": {"x": 1}}, None, None, "this app runs blue-green"),
    (deployment("v1"), {}, {"x": 1}, "v2", "a canary already runs: deployment/shop-canary"),
    (deployment("v2"), {}, None, "v2", "v2 is already the stable release"),
])
def test_what_a_canary_cannot_start_from(stable: Any, colors: dict[str, Any], canary: Any,
                                         version: str | None, says: str) -> None:
    with pytest.raises(UsageError) as e:
        kc.decide("shop", stable, colors, canary, version)
    assert says in e.value.message


@pytest.mark.parametrize(("pods", "says"), [
    ([], "no canary pod is running"),
    ([pod(terminating=True)], "no canary pod is running"),
    ([pod(waiting="CrashLoopBackOff", ready=False)], "shop-canary-1: CrashLoopBackOff"),
    ([pod(restarts=2)], "shop-canary-1 restarted (2x)"),
    ([pod(), pod("shop-canary-2", waiting="ImagePullBackOff")], "ImagePullBackOff"),
    ([pod()], None),
    ([pod(ready=False)], None),  # not ready yet: the analysis sees its 5xx, not the guard
])
def test_when_the_canary_pods_count_as_broken(pods: list[Pod], says: str | None) -> None:
    got = kc.broken(pods)
    assert (got is None) if says is None else (says in str(got))


# ---- the edge's configuration ----------------------------------------------------------------
def test_an_edge_needs_the_node_port_the_services_answer_at() -> None:
    with pytest.raises(ConfigError) as e:
        lb.check_hosts(env({"node_port": None}))
    assert "kubernetes.node_port" in str(e.value)
    with pytest.raises(ConfigError):
        lb.check_hosts(env({"node_port": 32767}))  # no next port for a canary


def test_the_lab_clusters_edge_goes_on_lab_hosts_only() -> None:
    with pytest.raises(ConfigError) as e:
        lb.check_hosts(env(lb_hosts=["10.0.0.9"]))
    assert "'10.0.0.9' is not a lab host" in str(e.value)
    lb.check_hosts(env(lb_hosts=["h2"]))
    lb.check_hosts(env(lb_hosts=["deploy@10.0.0.9"],
                       target={"kubeconfig": "/k", "context": "prod"}))


def test_the_edge_plan_reaches_every_node_at_both_node_ports() -> None:
    e = env({"node_port": 30480})
    [host] = lb.plan(parse({"app": {"name": "shop"}}, path=Path("/nonexistent/goship.toml")),
                     e, ["10.78.0.11", "10.78.0.12"], {})
    paths = [(f.path, f.mode) for f in host.files]
    assert paths == [("/etc/tmpfiles.d/goship-shop-edge.conf", "644"),
                     ("/etc/nginx/conf.d/goship-shop-lb.conf", "644")]
    assert host.dirs == ("/run/goship/shop-edge",)
    assert host.files[0].text == "d /run/goship/shop-edge 0700 root root -\n"
    site = host.files[1].text
    split = site.index("upstream goship_shop_canary")
    stable = site[site.index("upstream goship_shop_stable"):split]
    assert "server 10.78.0.11:30480 " in stable
    assert "server 10.78.0.12:30480 " in stable
    canary = site[split:]
    assert "server 10.78.0.11:30481 " in canary
    assert "listen unix:/run/goship/shop-edge/control.sock;" in site
    assert "access_log /var/log/nginx/goship-shop-lb.access.log goship_shop_edge" in site


def test_the_canary_service_is_a_node_port_at_the_next_port() -> None:
    e = env({"node_port": 30480})
    out = render_kubernetes(RenderInput(config=e.config, root=Path("/nonexistent"),
                                        version="v2", env="k"))
    assert "nodePort: 30480" in out["service.yaml"]
    assert "nodePort: 30481" in out["canary/service.yaml"]
    assert "type: NodePort" in out["canary/service.yaml"]
    assert "goship.dev/track: canary" in out["canary/service.yaml"]


@pytest.mark.parametrize("argv", [("deploy", "k", "--canary"), ("canary", "start", "k"),
                                  ("deploy", "k")])
def test_a_cluster_canary_without_an_edge_is_refused_before_the_build(
        run_cli: Run, tmp_path: Path, argv: tuple[str, ...]) -> None:
    (tmp_path / "goship.toml").write_text(
        '[app]\nname = "shop"\n[deploy]\nstrategy = "canary"\n'
        '[env.k]\nkubernetes = "lab"\n')
    r = run_cli(*argv, cwd=tmp_path)
    assert r.code == 2, r.out + r.err
    assert "set proxy.lb.hosts" in r.err
    assert "building" not in r.out + r.err


# ---- the walk, shared with hosts ---------------------------------------------------------------
class Tracks:
    def __init__(self, canary_error_rate: float, crash_at: int | None = None) -> None:
        self.rate, self.crash_at, self.calls = canary_error_rate, crash_at, 0
        self.weights: list[float] = []
        self.ended = ""
        self.rules = Rules(release="v2", color="canary", weight=10)

    def set_weight(self, weight: float) -> Rules:
        self.weights.append(weight)
        self.rules = Rules(**{**self.rules.__dict__, "weight": weight})
        return self.rules

    def tally(self) -> metrics.Tally:
        self.calls += 1
        t = metrics.Tally()
        canary = int(400 * self.rules.weight / 100)
        t.canary = Arm(canary, round(canary * self.rate), [0.002] * canary)
        t.stable = Arm(400 - canary, 0, [0.002] * (400 - canary))
        return t

    def crashed(self) -> str | None:
        return "pod gone" if self.crash_at is not None and self.calls >= self.crash_at else None

    def abort(self, reason: str) -> float:
        self.ended = f"abort: {reason}"
        return 0.01

    def promote(self) -> None:
        self.ended = "promote"


TH = Canary(steps=[10, 50, 100], step_min_requests=30, step_min_seconds=0,
            guard_interval=0.01, step_timeout=5)


def test_a_healthy_canary_walks_every_step_and_is_promoted() -> None:
    t = Tracks(0.0)
    report = walk(t, t.rules, [10, 50, 100], TH)
    assert report.ok
    assert t.ended == "promote"
    assert t.weights == [50]  # 10 was where it started


def test_an_erroring_canary_is_aborted_with_its_numbers() -> None:
    t = Tracks(0.2)
    report = walk(t, t.rules, [10, 50, 100], TH)
    assert not report.ok
    assert t.ended.startswith("abort")
    assert report.abort_seconds is not None
    assert report.numbers


def test_a_crashed_canary_is_aborted_by_the_fast_guard() -> None:
    t = Tracks(0.0, crash_at=2)
    report = walk(t, t.rules, [10, 50, 100], Canary(**{**TH.model_dump(),
                                                     "step_min_requests": 100000}))
    assert not report.ok
    assert report.reason == "fast guard: pod gone"


# ---- the edge, served by a real nginx ----------------------------------------------------------
def _free_pair() -> int:
    """P and P+1 both free, in the NodePort range (the edge takes node_port and the next)."""
    for port in range(31000, 32700, 7):
        socks = []
        try:
            for p in (port, port + 1):
                s = socket.socket()
                s.bind(("127.0.0.1", p))
                socks.append(s)
            return port
        except OSError:
            continue
        finally:
            for s in socks:
                s.close()
    raise RuntimeError("no two free ports")


def _serve(port: int, name: str) -> http.server.ThreadingHTTPServer:
    class H(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self) -> None:
            body = json.dumps({"track": name}).encode()
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *a: Any) -> None:
            pass

    srv = http.server.ThreadingHTTPServer(("127.0.0.1", port), H)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    return srv


@pytest.fixture
def edge_nginx(tmp_path: Path) -> Iterator[tuple[str, str, str]]:
    """(the edge's URL, its control socket, its access log)."""
    nginx = shutil.which("nginx") or "/usr/sbin/nginx"
    lua = Path("/usr/lib/nginx/modules/ngx_http_lua_module.so")
    if not Path(nginx).exists() or not lua.exists():
        pytest.fail("nginx with its Lua module is a prerequisite (scripts/packages.sh)")
    port = _free_pair()
    servers = [_serve(port, "stable"), _serve(port + 1, "canary")]
    e = env({"node_port": port})
    site = edge.site(e.config, ["127.0.0.1"], "k", None)
    sock, log = str(tmp_path / "control.sock"), str(tmp_path / "edge.log")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        listen = s.getsockname()[1]
    site = (site.replace(edge.control_socket("shop"), sock)
            .replace("/var/log/nginx/goship-shop-lb.access.log", log)
            .replace("listen 80 default_server;", f"listen 127.0.0.1:{listen};")
            .replace("flush=250ms", "flush=50ms"))
    (tmp_path / "edge.conf").write_text(site)
    for d in ("logs", "tmp"):
        (tmp_path / d).mkdir()
    (tmp_path / "nginx.conf").write_text(
        "load_module /usr/lib/nginx/modules/ndk_http_module.so;\n"
        "load_module /usr/lib/nginx/modules/ngx_http_lua_module.so;\n"
        f"pid {tmp_path}/nginx.pid;\nerror_log {tmp_path}/logs/error.log;\n"
        "user root;\nevents {}\nhttp {\n"
        f"  client_body_temp_path {tmp_path}/tmp;\n  proxy_temp_path {tmp_path}/tmp;\n"
        f"  access_log off;\n  include {tmp_path}/edge.conf;\n}}\n")
    proc = subprocess.Popen([nginx, "-p", str(tmp_path), "-c", str(tmp_path / "nginx.conf"),
                             "-g", "daemon off;"], stderr=subprocess.PIPE)
    url = f"http://127.0.0.1:{listen}/"
    for _ in range(100):
        try:
            urllib.request.urlopen(url, timeout=1).read()
            break
        except OSError:
            if proc.poll() is not None:
                pytest.fail(f"nginx refused the edge: {proc.stderr.read().decode()}")  # type: ignore[union-attr]
            time.sleep(0.05)
    try:
        yield url, sock, log
    finally:
        proc.terminate()
        proc.wait(10)
        for srv in servers:
            srv.shutdown()


def _get(url: str, headers: dict[str, str] | None = None) -> tuple[str, str]:
    req = urllib.request.Request(url, headers=headers or {})
    with urllib.request.urlopen(req, timeout=5) as r:
        return json.loads(r.read())["track"], r.headers["X-Goship-Track"]


def test_the_edge_routes_by_rule_and_weight_and_logs_each_track(
        edge_nginx: tuple[str, str, str]) -> None:
    url, sock, log = edge_nginx
    t = LocalTransport("edge")
    assert _get(url) == ("stable", "stable")  # no canary: everything to stable
    rules = Rules(release="v2", color="canary", weight=0,
                  rules=(Rule("header", "X-Beta", "exact", "1"),))
    control_at(t, sock, "PUT", rules.control_body())
    assert _get(url, {"X-Beta": "1"}) == ("canary", "canary")
    assert _get(url) == ("stable", "stable")
    control_at(t, sock, "PUT", Rules(**{**rules.__dict__, "weight": 100}).control_body())
    assert _get(url) == ("canary", "canary")
    control_at(t, sock, "DELETE")  # an abort: weight 0 at once, no reload
    assert _get(url, {"X-Beta": "1"}) == ("stable", "stable")
    time.sleep(0.3)  # the log's buffer flushes
    tally, _ = metrics.read_log(t, log, 0)
    assert tally.canary.requests == 2
    assert tally.stable.requests == 4


def test_the_edge_refuses_a_rule_for_a_track_it_does_not_have(
        edge_nginx: tuple[str, str, str]) -> None:
    _, sock, _ = edge_nginx
    from goship.errors import ApplyError

    with pytest.raises(ApplyError):
        control_at(LocalTransport("edge"), sock, "PUT",
                   Rules(release="v2", color="green").control_body())


# ---- the canary's state, kept on its Deployment ------------------------------------------------
class FakeCluster:
    def __init__(self, deployments: dict[str, dict[str, Any]]) -> None:
        self.deployments = deployments

    def deployment(self, name: str) -> dict[str, Any] | None:
        return self.deployments.get(name)

    def annotate(self, name: str, annotations: dict[str, str]) -> None:
        meta = self.deployments[name].setdefault("metadata", {})
        meta.setdefault("annotations", {}).update(annotations)


def canary_deployment(image: str = "r/shop@sha256:" + "a" * 64) -> dict[str, Any]:
    return {**deployment("v2"), "metadata": {}, "spec": {"template": {
        "metadata": {"labels": {"app.kubernetes.io/version": "v2"}},
        "spec": {"containers": [{"image": image}]}}}}


def target() -> Any:
    from goship.kube.target import KubeTarget

    e = env()
    return KubeTarget(parse({"app": {"name": "shop"}},
                            path=Path("/nonexistent/goship.toml")), e)


def test_no_canary_or_one_still_starting_is_said_so() -> None:
    with pytest.raises(UsageError) as e:
        kc._running(target(), FakeCluster({}), [])  # type: ignore[arg-type]
    assert e.value.message == "no canary runs: deployment/shop-canary is not there"
    with pytest.raises(UsageError) as e:
        kc._running(target(), FakeCluster({"shop-canary": canary_deployment()}),  # type: ignore[arg-type]
                    [])
    assert "has no routing yet" in e.value.message


def test_the_rules_offsets_and_image_come_back_from_the_deployment() -> None:
    cluster = FakeCluster({"shop-canary": canary_deployment()})
    rules = Rules(release="v2", color="canary", weight=5,
                  rules=(Rule("cookie", "beta", "exact", "yes"),), allow_cidrs=("10.0.0.0/8",))
    t = target()
    tracks = kc.EdgeTracks(t, cluster, [], rules)  # type: ignore[arg-type]
    tracks.save(offsets={"h1": 1234}, stable="v1")
    back = kc._running(t, cluster, [])  # type: ignore[arg-type]
    assert back.rules == rules
    assert back.image == "r/shop@sha256:" + "a" * 64
    assert back.state is not None
    assert back.state["offsets"] == {"h1": 1234}
    assert back.state["stable"] == "v1"
    # a weight change keeps the rest of the state: where the canary's numbers start
    # stays put even after the walk's tally has read further
    back.offsets["h1"] = 99999
    back.set_weight(50)
    again = kc._running(t, cluster, [])  # type: ignore[arg-type]
    assert again.rules.weight == 50
    assert again.rules.rules == rules.rules
    assert again.state is not None
    assert again.state["offsets"] == {"h1": 1234}


def test_stable_does_not_change_under_a_running_canary() -> None:
    with pytest.raises(UsageError) as e:
        target()._refuse_during_canary(FakeCluster({"shop-canary": canary_deployment()}))
    assert e.value.message == "a canary runs: deployment/shop-canary"
    target()._refuse_during_canary(FakeCluster({}))  # none: nothing refused


def test_the_saved_start_of_the_numbers_does_not_follow_the_walks_reads() -> None:
    cluster = FakeCluster({"shop-canary": canary_deployment()})
    tracks = kc.EdgeTracks(target(), cluster, [],  # type: ignore[arg-type]
                           Rules(release="v2", color="canary", weight=5))
    tracks.offsets = {"h1": 100}
    tracks.save(offsets=tracks.offsets)
    tracks.offsets["h1"] = 5000  # what tally does as it reads the edge's log
    tracks.set_weight(50)
    assert kc.state_of(cluster.deployment("shop-canary"))["offsets"] == {"h1": 100}  # type: ignore[index]
