"""The load balancer that discovers (`proxy.lb.discovery = "consul"`), on real nginx and a
real Consul.

On this machine: a Consul dev agent with ACLs on (the balancer reads its token from a
file), two small HTTP backends, and the rendered balancer site in an nginx of its own:
instances that Consul lists passing are served, one in maintenance, with a failing check or
deregistered leaves, one that joins enters, and with the agent gone the last list stays.

On the lab (`lab up --consul`): the app on h1 and h2, the balancer installed on h3 by
`goship deploy`, steady load through it: a deploy loses no request, a host powered off
(`goship lab stop`) leaves the balancer with at most a handful of failed requests, and
comes back when it boots again."""

from __future__ import annotations

import json
import os
import subprocess
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, TypeVar

import pytest

from goship.config import parse
from goship.render import lb as render_lb
from tests.conftest import CliResult, need
from tests.e2e.conftest import Lab
from tests.e2e.helpers import Project, free_port
from tests.e2e.load import Load

pytestmark = pytest.mark.components("consul")
Run = Callable[..., CliResult]
T = TypeVar("T")
LUA = ("/usr/lib/nginx/modules/ndk_http_module.so",
       "/usr/lib/nginx/modules/ngx_http_lua_module.so")
TOKEN = "5f0c3c5e-4b5a-4c44-9a51-6a2b0f1d2e3c"


def wait_for(fn: Callable[[], T], ok: Callable[[T], bool], timeout: float = 30) -> T:
    """fn()'s value once ok(value) holds, or its last value after `timeout` (a functional
    bound, not a speed assertion)."""
    deadline = time.monotonic() + timeout
    while True:
        value = fn()
        if ok(value) or time.monotonic() > deadline:
            return value
        time.sleep(0.2)


def get(url: str, headers: dict[str, str] | None = None, method: str = "GET",
        body: bytes | None = None, timeout: float = 5) -> tuple[int, str]:
    req = urllib.request.Request(url, data=body, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()
    except OSError as e:  # refused, reset, timed out: no HTTP answer
        return 0, str(e)


# ---- on this machine: a Consul dev agent, two backends, the balancer in its own nginx ----
class Backend:
    """An HTTP server answering its own port on every path (/health included)."""

    def __init__(self) -> None:
        self.port = free_port()
        self.server: ThreadingHTTPServer | None = None
        self.start()

    def start(self) -> None:
        port = self.port

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                body = f"port {port}\n".encode()
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *_a: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        assert self.server is not None
        self.server.shutdown()
        self.server.server_close()


@dataclass
class Stack:
    agent: str
    lb: str
    consul: subprocess.Popen[bytes]
    backends: list[Backend] = field(default_factory=list)

    def api(self, method: str, path: str, body: dict[str, Any] | None = None,
            token: str | None = TOKEN) -> tuple[int, str]:
        data = json.dumps(body).encode() if body is not None else None
        return get(f"http://{self.agent}{path}", {"X-Consul-Token": token} if token else {},
                   method, data)

    def register(self, b: Backend, token: str | None = TOKEN) -> None:
        """As a deploy registers an instance: goship's curl, the token in its stdin."""
        from goship.deploy import consul
        from goship.transport import LocalTransport

        cfg = parse({"app": {"name": "shop"},
                     "consul": {"enabled": True, "agent": self.agent, "check_interval": "1s",
                                "check_timeout": "1s", "token_env": "CONSUL_HTTP_TOKEN"}}).base
        calls = consul.plan_register(cfg, release="r1", color="blue", ports=[b.port],
                                     address="127.0.0.1")
        consul.apply(LocalTransport(), self.agent, calls, "registration", token)

    def peers(self) -> set[int]:
        """The instances the balancer holds now (its status location), by port."""
        code, text = get(f"{self.lb}/.goship/lb")
        assert code == 200, text
        line = next(ln for ln in text.splitlines() if ln.startswith("peers:"))
        return {int(p.rsplit(":", 1)[1]) for p in line.split()[1:]}

    def served(self, n: int = 12) -> tuple[set[int], int]:
        """Which backends answered n requests through the balancer, and how many failed."""
        ports, failed = set(), 0
        for _ in range(n):
            code, text = get(f"{self.lb}/")
            if code == 200 and text.startswith("port "):
                ports.add(int(text.split()[1]))
            else:
                failed += 1
        return ports, failed


def nginx_conf(d: Path, site: Path) -> str:
    modules = "".join(f"load_module {m};\n" for m in LUA)
    temps = "".join(f"    {k}_temp_path {d}/tmp;\n"
                    for k in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"))
    return (f"{modules}worker_processes 2;\npid {d}/nginx.pid;\nerror_log {d}/error.log info;\n"
            f"events {{}}\nhttp {{\n{temps}    include {site};\n}}\n")


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    need("nginx")
    if not all(Path(m).exists() for m in LUA):
        need("libnginx-mod-http-lua")
    from goship.lab import consul_build

    binary = consul_build.ensure()
    d = tmp_path_factory.mktemp("lbconsul")
    (d / "tmp").mkdir()
    http, lan, wan, srv, listen = (free_port() for _ in range(5))
    hcl = (f"ports {{ http = {http}, dns = -1, grpc = -1, grpc_tls = -1, serf_lan = {lan}, "
           f"serf_wan = {wan}, server = {srv} }}\n"
           f'acl {{ enabled = true\n default_policy = "deny"\n'
           f' tokens {{ initial_management = "{TOKEN}"\n agent = "{TOKEN}" }} }}\n')
    consul = subprocess.Popen([str(binary.path), "agent", "-dev", "-bind", "127.0.0.1",
                               "-client", "127.0.0.1", "-hcl", hcl, "-log-level", "warn"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    agent = f"127.0.0.1:{http}"
    s = Stack(agent, f"http://127.0.0.1:{listen}", consul)
    nginx: subprocess.Popen[bytes] | None = None
    try:
        leader = wait_for(lambda: get(f"http://{agent}/v1/status/leader")
                          if consul.poll() is None else (0, "exited"),
                          lambda r: r[0] == 200 and ":" in r[1], timeout=60)
        assert ":" in leader[1], f"the Consul dev agent has no leader: {leader}"
        config = parse({"app": {"name": "shop"},
                        "proxy": {"lb": {"discovery": "consul", "consul": agent,
                                         "listen": listen, "balance": "round_robin",
                                         "max_fails": 1, "fail_timeout": "30s"}},
                        "consul": {"token_env": "CONSUL_HTTP_TOKEN"}}).base
        text = render_lb.site(config, [], None, None)
        # the same site, its two host paths moved into this test's directory
        token_file = d / "lb.token"
        token_file.write_text(TOKEN + "\n")
        os.chmod(token_file, 0o600)
        text = text.replace(render_lb.token_path("shop"), str(token_file))
        text = text.replace(render_lb.access_log("shop"), str(d / "lb.access.log"))
        (d / "site.conf").write_text(text)
        (d / "nginx.conf").write_text(nginx_conf(d, d / "site.conf"))
        base = ["nginx", "-c", str(d / "nginx.conf"), "-p", str(d), "-e", str(d / "error.log")]
        t = subprocess.run([*base, "-t"], capture_output=True, text=True, check=False)
        assert t.returncode == 0, t.stderr
        nginx = subprocess.Popen([*base, "-g", "daemon off;"])
        s.backends = [Backend(), Backend()]
        for b in s.backends:
            s.register(b)
        wait_for(lambda: get(f"{s.lb}/.goship/lb", timeout=1) if nginx.poll() is None
                 else (0, ""), lambda r: r[0] == 200, timeout=20)
        yield s
    finally:
        if nginx is not None:
            nginx.terminate()
            nginx.wait(timeout=15)
        if consul.poll() is None:
            consul.terminate()
            consul.wait(timeout=15)
        for b in s.backends:
            if b.server is not None:
                b.stop()


def ports(s: Stack, *idx: int) -> set[int]:
    return {s.backends[i].port for i in idx}


def test_requests_spread_over_the_passing_instances(stack: Stack) -> None:
    assert wait_for(stack.peers, lambda p: p == ports(stack, 0, 1)) == ports(stack, 0, 1)
    served, failed = stack.served()
    assert failed == 0
    assert served == ports(stack, 0, 1)
    # ACLs are on: without the token the balancer reads from the file, Consul lists nothing
    code, text = stack.api("GET", "/v1/health/service/shop?passing=true", token=None)
    assert (code, json.loads(text)) == (200, [])


def test_a_registration_without_the_token_is_refused(stack: Stack) -> None:
    from goship.errors import ApplyError

    with pytest.raises(ApplyError) as e:
        stack.register(Backend(), token=None)
    assert "Consul registration failed (PUT /v1/agent/service/register)" in e.value.message
    assert "Permission denied" in e.value.message


def test_maintenance_leaves_and_returns(stack: Stack) -> None:
    sid = f"shop-blue-{stack.backends[0].port}"
    code, text = stack.api("PUT", f"/v1/agent/service/maintenance/{sid}?enable=true")
    assert code == 200, text
    assert wait_for(stack.peers, lambda p: p == ports(stack, 1)) == ports(stack, 1)
    assert stack.served() == (ports(stack, 1), 0)
    code, text = stack.api("PUT", f"/v1/agent/service/maintenance/{sid}?enable=false")
    assert code == 200, text
    assert wait_for(stack.peers, lambda p: p == ports(stack, 0, 1)) == ports(stack, 0, 1)
    assert stack.served() == (ports(stack, 0, 1), 0)


def test_a_failing_instance_leaves_without_a_failed_request(stack: Stack) -> None:
    stack.backends[1].stop()
    # the balancer retries the other one at once, then Consul's check takes it out
    assert stack.served() == (ports(stack, 0), 0)
    assert wait_for(stack.peers, lambda p: p == ports(stack, 0)) == ports(stack, 0)
    stack.backends[1].start()
    assert wait_for(stack.peers, lambda p: p == ports(stack, 0, 1)) == ports(stack, 0, 1)
    # passing again in Consul: served at once, not after fail_timeout (30 s here)
    assert stack.served() == (ports(stack, 0, 1), 0)


def test_a_joining_instance_enters_and_a_deregistered_one_leaves(stack: Stack) -> None:
    third = Backend()
    stack.backends.append(third)
    stack.register(third)
    assert wait_for(stack.peers, lambda p: p == ports(stack, 0, 1, 2)) == ports(stack, 0, 1, 2)
    assert wait_for(lambda: stack.served(30), lambda r: r[0] == ports(stack, 0, 1, 2)) == \
        (ports(stack, 0, 1, 2), 0)
    code, text = stack.api("PUT", f"/v1/agent/service/deregister/shop-blue-{third.port}")
    assert code == 200, text
    assert wait_for(stack.peers, lambda p: p == ports(stack, 0, 1)) == ports(stack, 0, 1)


def test_with_the_agent_gone_the_last_list_stays(stack: Stack) -> None:
    stack.consul.terminate()
    stack.consul.wait(timeout=15)
    status = wait_for(lambda: get(f"{stack.lb}/.goship/lb")[1],
                      lambda t: "error: connect" in t)
    assert "connection refused" in status, status
    assert stack.peers() == ports(stack, 0, 1)
    assert stack.served() == (ports(stack, 0, 1), 0)


# ---- on the lab: a balancer on h3 in front of h1 and h2 -------------------------------
H1, H2, H3 = "10.78.0.11", "10.78.0.12", "10.78.0.13"
APP = "hello-gin"
LAB_TOML = """
[app]
name = "hello-gin"
version = "git"

[app.stamp]
"main.version" = "{version}"

[build]
assets = ["templates", "static"]

[run]
drain_timeout = 5.0
base_port = 9000

[run.health]
interval = 0.2
deadline = 15.0

[consul]
enabled = true
check_interval = "1s"
check_timeout = "1s"

[env.lab]
lab = 2

[env.lab.proxy.lb]
discovery = "consul"
hosts = ["h3"]
max_fails = 1
fail_timeout = "5s"
"""


@pytest.fixture(scope="module")
def lab_project(tmp_path_factory: pytest.TempPathFactory, lab: Lab) -> Iterator[Project]:
    from goship.lab import hosts

    hosts.up(3, consul=True)
    p = Project(tmp_path_factory.mktemp("lbconsul") / APP, LAB_TOML)
    (p.root / ".gitignore").write_text("dist/\n")
    p.release("v1.0.0")
    yield p
    # Later suites get fresh servers: the agents, the app and the balancer go with the disks.
    hosts.down()
    hosts.up(3)


def lb_peers(lab: Lab) -> set[str]:
    """The instances h3's balancer holds (its status location, from h3 itself)."""
    text = lab.ssh("h3", "curl -sS http://127.0.0.1/.goship/lb").stdout
    line = next(ln for ln in text.splitlines() if ln.startswith("peers:"))
    return set(line.split()[1:])


def live_ports(lab: Lab, host: str) -> list[int]:
    state = json.loads(lab.ssh(host, f"cat /srv/{APP}/state.json").stdout)
    return [int(p) for p in state["ports"][state["live"]["color"]]]


def instances(lab: Lab) -> set[str]:
    return {f"{addr}:{p}" for h, addr in (("h1", H1), ("h2", H2)) for p in live_ports(lab, h)}


def log_count(lab: Lab) -> int:
    out = lab.ssh("h3", f"wc -l < /var/log/nginx/goship-{APP}-lb.access.log").stdout
    return int(out.strip())


def log_lines(lab: Lab, start: int = 0) -> list[dict[str, Any]]:
    text = lab.ssh("h3", f"tail -n +{start + 1} /var/log/nginx/goship-{APP}-lb.access.log"
                         ).stdout
    return [json.loads(ln) for ln in text.splitlines() if ln.strip()]


@pytest.mark.lab
@pytest.mark.slow
def test_deploy_installs_the_balancer_and_loses_no_request(run_cli: Run, lab_project: Project,
                                                           lab: Lab) -> None:
    r = run_cli("deploy", "lab", "--skip-checks", cwd=lab_project.root)
    assert r.code == 0, r.out + r.err
    assert "h3: balancer /etc/nginx/conf.d/goship-hello-gin-lb.conf" in r.err
    first = instances(lab)
    assert wait_for(lambda: lb_peers(lab), lambda p: p == first) == first
    code, text = get(f"http://{H3}/version")
    assert code == 200, text

    lab_project.release("v1.1.0")
    with Load(f"http://{H3}/api/items") as load:
        r = run_cli("deploy", "lab", "--skip-checks", cwd=lab_project.root)
        assert r.code == 0, r.out + r.err
        second = instances(lab)
        assert second != first  # the other color's ports
        assert wait_for(lambda: lb_peers(lab), lambda p: p == second) == second
    assert load.result.requests > 0
    assert load.result.failed == 0, load.result.text
    again = run_cli("setup", "lab", cwd=lab_project.root)
    assert again.code == 0, again.err
    assert "h3: balancer unchanged" in again.out


@pytest.mark.lab
@pytest.mark.slow
def test_a_stopped_host_leaves_the_balancer_and_returns(run_cli: Run, lab_project: Project,
                                                        lab: Lab) -> None:
    h1_ports = {f"{H1}:{p}" for p in live_ports(lab, "h1")}
    both = instances(lab)
    with Load(f"http://{H3}/api/items") as load:
        r = run_cli("lab", "stop", "h2")
        assert r.code == 0, r.err
        time.sleep(3)
        mark = log_count(lab)
        time.sleep(3)
    assert load.result.failed <= 5, load.result.text
    after = log_lines(lab, mark)
    assert after
    # every request from ~3 s on was answered by h1's instances
    assert {e["upstream_addr"].split(", ")[-1] for e in after} <= h1_ports, after[:5]
    # (499: requests the load generator itself hung up on as it stopped)
    bad = [(e["status"], e["upstream_addr"]) for e in after if e["status"] not in (200, 499)]
    assert not bad, bad[:5]
    # Consul's own verdict follows: h2's instances leave the list
    assert wait_for(lambda: lb_peers(lab), lambda p: p == h1_ports, timeout=60) == h1_ports

    r = run_cli("lab", "start", "h2")
    assert r.code == 0, r.err
    assert wait_for(lambda: lb_peers(lab), lambda p: p == both, timeout=90) == both
    mark = log_count(lab)
    for _ in range(20):
        assert get(f"http://{H3}/api/items")[0] == 200
    assert {e["upstream_addr"].split(", ")[-1] for e in log_lines(lab, mark)} == both


@pytest.mark.lab
@pytest.mark.slow
def test_remove_takes_the_balancer_site_off_too(run_cli: Run, lab_project: Project,
                                                lab: Lab) -> None:
    site = f"/etc/nginx/conf.d/goship-{APP}-lb.conf"
    assert lab.ssh("h3", f"test -e {site}", check=False).returncode == 0
    r = run_cli("remove", "lab", "--dry-run", cwd=lab_project.root)
    assert r.code == 0, r.out + r.err
    assert f"h3: remove the balancer site {site}" in r.out
    r = run_cli("remove", "lab", "--yes", cwd=lab_project.root)
    assert r.code == 0, r.out + r.err
    assert "h3: balancer site removed" in r.out
    assert lab.ssh("h3", f"test -e {site}", check=False).returncode == 1
    # nginx still runs there, with Debian's default site back where goship found it
    assert lab.ssh("h3", "systemctl is-active nginx").stdout.strip() == "active"
    assert lab.ssh("h3", "test -e /etc/nginx/sites-enabled/default && "
                         "test ! -e /etc/nginx/goship-default-site.off",
                   check=False).returncode == 0
