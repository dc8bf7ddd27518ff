"""Rendered configs checked by the real tools that consume them."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import threading
import time
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from goship.config import parse
from goship.render.context import Paths
from goship.render.inputs import RenderInput
from goship.render.kinds import (
    env_script,
    nginx_main_conf,
    nginx_site_conf,
    render_kind,
    supervisord_main,
    supervisord_programs,
)
from tests.conftest import EXAMPLE, need
from tests.e2e.helpers import free_port

BASE = {"app": {"name": "shop"}, "run": {"drain_timeout": 7.0}}


def config(**over: Any) -> Any:
    return parse({**BASE, **over}).base


def test_systemd_units_verify_and_score_ok(tmp_path: Path) -> None:
    need("systemd-analyze")
    base = tmp_path / "srv"
    cfg = config(deploy={"base_path": str(base)})
    units = tmp_path / "units"
    units.mkdir()
    for color in ("blue", "green"):  # the binaries the units start must exist to verify
        binary = base / "shop" / color / "shop"
        binary.parent.mkdir(parents=True)
        binary.write_text("#!/bin/sh\n")
        binary.chmod(0o755)
    files = render_kind("systemd", RenderInput(config=cfg, root=tmp_path))
    for color in ("blue", "green"):
        instance = units / f"shop-{color}@8080.service"
        instance.write_text(files[f"shop-{color}@.service"])
        verify = subprocess.run(["systemd-analyze", "verify", "--man=no", str(instance)],
                                capture_output=True, text=True, check=False)
        assert verify.returncode == 0, verify.stderr
        assert verify.stderr.strip() == "", verify.stderr
        sec = subprocess.run(["systemd-analyze", "security", "--offline=yes", str(instance)],
                             capture_output=True, text=True, check=False)
        m = re.search(r"Overall exposure level for \S+: ([\d.]+) (\w+)", sec.stdout)
        assert m, sec.stdout + sec.stderr
        assert float(m.group(1)) <= 2.0, sec.stdout
        assert m.group(2) == "OK"


def nginx_t(tmp_path: Path, site: str, modules: list[str]) -> subprocess.CompletedProcess[str]:
    need("nginx")
    run = tmp_path / "run"
    (run / "nginx-tmp").mkdir(parents=True, exist_ok=True)
    (run / "site.conf").write_text(site)
    cfg = config()
    paths = Paths(str(tmp_path / "srv"), "shop")
    main = nginx_main_conf(cfg, paths, str(tmp_path), "/etc/nginx/mime.types", modules)
    main = main.replace(paths.run_dir, str(run))
    (run / "nginx.conf").write_text(main)
    return subprocess.run(["nginx", "-t", "-c", str(run / "nginx.conf"), "-p", str(run), "-e",
                           str(tmp_path / "err.log")], capture_output=True, text=True,
                          check=False)


LUA = ["/usr/lib/nginx/modules/ndk_http_module.so",
       "/usr/lib/nginx/modules/ngx_http_lua_module.so"]


@pytest.mark.parametrize(("over", "lua"), [
    ({}, False),
    ({}, True),
    ({"proxy": {"server_names": ["example.com", "www.example.com"], "listen": 8081}}, False),
    ({"proxy": {"rate_limit": 20, "trusted_proxies": ["10.0.0.0/8", "192.168.1.1"],
                "balance": "round_robin", "client_max_body_size": "50m"}}, True),
    ({"run": {"instances": 4}, "proxy": {"balance": "ip_hash"}}, False),
])
def test_nginx_site_passes_nginx_t(tmp_path: Path, over: dict[str, Any], lua: bool) -> None:
    if lua and not all(Path(m).exists() for m in LUA):
        pytest.skip("libnginx-mod-http-lua is not installed")
    cfg = config(**over)
    paths = Paths(str(tmp_path / "srv"), "shop")
    (tmp_path / "srv" / "shop" / "run").mkdir(parents=True)
    site = nginx_site_conf(cfg, paths, "green", "v1.2.3-0123456789",
                           access_log=str(tmp_path / "access.log"), lua=lua, system=False)
    res = nginx_t(tmp_path, site, LUA if lua else [])
    assert res.returncode == 0, res.stderr
    assert "test is successful" in res.stderr


def self_signed(tmp_path: Path, name: str = "shop.example.com") -> tuple[Path, Path]:
    need("openssl")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
                    "-subj", f"/CN={name}", "-keyout", str(key), "-out", str(cert)],
                   check=True, capture_output=True)
    return cert, key


TLS_AND_MORE: list[dict[str, Any]] = [
    {"proxy": {"static": [{"url": "/static/", "dir": "static"},
                          {"url": "/assets/img/", "dir": "public/img", "expires": "30d"}],
               "stream_paths": ["/events", "/api/stream"]}},
    {"proxy": {"server_names": ["shop.example.com"], "listen": 8081,
               "tls": {"mode": "files", "cert": "CERT", "key": "KEY", "listen": 8443}}},
    {"proxy": {"server_names": ["shop.example.com"], "static": [{"url": "/s/", "dir": "s"}],
               "tls": {"mode": "letsencrypt", "email": "ops@example.com", "hsts": False}}},
    {"proxy": {"tls": {"mode": "files", "cert": "CERT", "key": "KEY", "stapling": False}}},
]


@pytest.mark.parametrize("over", TLS_AND_MORE)
@pytest.mark.parametrize("lua", [False, True])
def test_tls_static_and_stream_sites_pass_nginx_t(tmp_path: Path, over: dict[str, Any],
                                                  lua: bool) -> None:
    """TLS with a throwaway self-signed certificate: files mode directly, Let's Encrypt
    with its live/ directory pointed at the throwaway one."""
    if lua and not all(Path(m).exists() for m in LUA):
        pytest.skip("libnginx-mod-http-lua is not installed")
    cert, key = self_signed(tmp_path)
    over = json.loads(json.dumps(over).replace("CERT", str(cert)).replace("KEY", str(key)))
    cfg = config(**over)
    paths = Paths(str(tmp_path / "srv"), "shop")
    (tmp_path / "srv" / "shop" / "run").mkdir(parents=True)
    site = nginx_site_conf(cfg, paths, "green", "v1", access_log=str(tmp_path / "a.log"),
                           lua=lua, system=False)
    live = "/etc/letsencrypt/live/shop.example.com"
    if live in site:
        for name in ("fullchain.pem", "chain.pem"):
            shutil.copy(cert, tmp_path / name)
        shutil.copy(key, tmp_path / "privkey.pem")
        site = site.replace(live, str(tmp_path))
    res = nginx_t(tmp_path, site, LUA if lua else [])
    assert res.returncode == 0, res.stderr
    assert "test is successful" in res.stderr


def test_lb_passes_nginx_t(tmp_path: Path) -> None:
    cfg = config(proxy={"lb": {"listen": 8089, "weights": {"10.0.0.2": 2}}})
    conf = render_kind("lb", RenderInput(config=cfg, root=tmp_path, env="prod",
                                         hosts=["10.0.0.1", "10.0.0.2"]))
    res = nginx_t(tmp_path, conf["goship-shop-lb.conf"], [])
    assert res.returncode == 0, res.stderr


def test_broken_site_fails_nginx_t(tmp_path: Path) -> None:
    res = nginx_t(tmp_path, "server { listen 80; nonsense on; }\n", [])
    assert res.returncode != 0
    assert "unknown directive" in res.stderr


def test_supervisord_runs_the_program_and_keeps_it_running(tmp_path: Path,
                                                           hello_bin: Path) -> None:
    need("curl")
    port = free_port()
    cfg = config(run={"base_port": port, "drain_timeout": 3.0})
    paths = Paths(str(tmp_path), "shop")
    release = Path(paths.release("r1"))
    shutil.copytree(EXAMPLE / "templates", release / "templates")
    shutil.copytree(EXAMPLE / "static", release / "static")
    shutil.copy(hello_bin, release / "shop")
    Path(paths.color_link("blue")).symlink_to(release)
    run = Path(paths.run_dir)
    (run / "programs").mkdir(parents=True)
    Path(paths.logs).mkdir()
    (run / "supervisord.conf").write_text(supervisord_main(cfg, paths, paths.logs))
    for name, text in supervisord_programs(cfg, paths, live="blue", user=None,
                                           log_dir=paths.logs).items():
        (run / name).write_text(text)
    env_sh = Path(paths.env_script("blue"))
    env_sh.write_text(env_script({"GREETING": "hi %s \"there\""}))
    env_sh.chmod(0o700)
    import sys

    bindir = Path(sys.executable).parent
    conf = str(run / "supervisord.conf")
    subprocess.run([str(bindir / "supervisord"), "-c", conf], check=True)
    try:
        deadline = time.monotonic() + 15
        body = b""
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=1) as r:
                    body = r.read()
                    break
            except OSError:
                time.sleep(0.2)
        assert body == b'{"status":"ok"}'

        def status() -> str:
            return subprocess.run([str(bindir / "supervisorctl"), "-c", conf, "status"],
                                  capture_output=True, text=True, check=False).stdout

        deadline = time.monotonic() + 10
        while "RUNNING" not in status() and time.monotonic() < deadline:
            time.sleep(0.2)
        status_text = status()
        assert re.search(rf"shop-blue-{port}\s+RUNNING", status_text), status_text
        assert re.search(r"shop-green-\d+\s+STOPPED", status_text), status_text  # no autostart
        # a crash is restarted (autorestart=unexpected)
        pid = int(re.search(r"pid (\d+)", status_text).group(1))  # type: ignore[union-attr]
        import os
        import signal

        os.kill(pid, signal.SIGKILL)
        deadline = time.monotonic() + 10
        again = status()
        while not re.search(rf"shop-blue-{port}\s+RUNNING", again) and \
                time.monotonic() < deadline:
            time.sleep(0.2)
            again = status()
        assert re.search(rf"shop-blue-{port}\s+RUNNING", again), again
        assert f"pid {pid}," not in again
    finally:
        subprocess.run([str(bindir / "supervisorctl"), "-c", conf, "shutdown"],
                       capture_output=True, check=False)


ALLOW_CASES = [  # (client address, cookies, track): the allowlist, v4 and v6, and ids
    ("10.99.3.4", {}, "canary"),
    ("10.98.0.1", {}, "stable"),
    ("2001:db8:abcd:12::5", {}, "canary"),
    ("2001:db8:abce::5", {}, "stable"),
    ("fd00::1", {}, "canary"),
    ("fd00::2", {}, "stable"),
    ("2001:db8:0:1:ffff::1", {}, "canary"),  # /63: ...:0:0::/64 and ...:0:1::/64
    ("2001:db8:0:2::1", {}, "stable"),
    ("::ffff:192.0.2.9", {}, "canary"),
    ("::ffff:192.0.3.9", {}, "stable"),
    ("192.0.2.9", {}, "stable"),  # an IPv4 client is not in an IPv6 network
    ("::1", {}, "stable"),
    ("127.0.0.5", {"uid": "u77"}, "canary"),
    ("127.0.0.5", {"uid": "u78"}, "stable"),
]


def test_canary_allowlist_in_real_nginx_matches_explain(tmp_path: Path) -> None:
    """The Lua in the nginx site routes the allowlist (addresses, v4 and v6, and ids) as
    `goship canary explain` says (goship.canary.routing.decide)."""
    from goship.canary.routing import Request, Rules, decide

    need("curl")
    if not all(Path(m).exists() for m in LUA):
        pytest.fail("libnginx-mod-http-lua is not installed")
    port = free_port()
    cfg = config(proxy={"listen": port, "trusted_proxies": ["127.0.0.1"]})
    paths = Paths(str(tmp_path / "srv"), "shop")
    Path(paths.run_dir).mkdir(parents=True)
    site = nginx_site_conf(cfg, paths, "blue", "r1", access_log=str(tmp_path / "access.log"),
                           lua=True, system=False)
    assert nginx_t(tmp_path, site, LUA).returncode == 0
    run = tmp_path / "run"
    nginx = subprocess.Popen(["nginx", "-c", str(run / "nginx.conf"), "-p", str(run), "-e",
                              str(tmp_path / "err.log"), "-g", "daemon off;"])
    try:
        sock = paths.join("run", "nginx-control.sock")
        for _ in range(100):
            if Path(sock).exists():
                break
            time.sleep(0.05)
        rules = Rules(release="r2", color="green", weight=0, allow_ids=("u77",),
                      allow_cidrs=("10.99.0.0/16", "2001:db8:abcd::/48", "fd00::1",
                                   "2001:db8:0:0::/63", "::ffff:192.0.2.0/120"),
                      id_cookie="uid")
        subprocess.run(["curl", "-sf", "--unix-socket", sock, "-X", "PUT", "--data-binary",
                        rules.control_body(), "http://goship/canary"], check=True,
                       capture_output=True)
        got = {}
        for ip, cookies, _ in ALLOW_CASES:
            req = urllib.request.Request(f"http://127.0.0.1:{port}/", headers={
                "X-Forwarded-For": ip,
                "Cookie": "; ".join(f"{k}={v}" for k, v in cookies.items())})
            try:
                with urllib.request.urlopen(req, timeout=5) as resp:
                    track = resp.headers["X-Goship-Track"]
            except urllib.error.HTTPError as e:  # no service behind: 502, routed all the same
                track = e.headers["X-Goship-Track"]
            got[(ip, tuple(cookies.items()))] = track
        want = {(ip, tuple(c.items())): t for ip, c, t in ALLOW_CASES}
        assert got == want
        explained = {(ip, tuple(c.items())): decide(rules, Request(cookies=c, ip=ip))[0]
                     for ip, c, _ in ALLOW_CASES}
        assert explained == want
    finally:
        nginx.terminate()
        nginx.wait(timeout=10)


def test_env_file_read_back_by_systemd(lab: Any) -> None:
    """The EnvironmentFile goship writes (envquote.systemd, as deploy's write_env does),
    with hostile values, read by a real systemd (a lab host, PID 1 there) into a unit's
    environment: each value arrives as written."""
    import base64

    from goship import envquote
    from tests.unit.test_render_env import HOSTILE

    env = {f"V{i}": v for i, v in enumerate(HOSTILE)}
    text = "".join(f"{k}={envquote.systemd(v)}\n" for k, v in env.items())
    data = base64.b64encode(text.encode()).decode()
    res = lab.ssh("h1", f"f=/tmp/goship-envquote.env; echo {data} | base64 -d > $f && "
                        f"systemd-run --quiet --wait --pipe -p EnvironmentFile=$f "
                        f"/usr/bin/env -0; rc=$?; rm -f $f; exit $rc")
    got = dict(item.split("=", 1) for item in res.stdout.split("\0") if "=" in item)
    assert {k: got.get(k) for k in env} == env


class _Named(BaseHTTPRequestHandler):
    """A backend that answers with its own name (which color and port served)."""

    def do_GET(self) -> None:
        body = self.server.name.encode()  # type: ignore[attr-defined]
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        pass


def _backend(port: int, name: str) -> ThreadingHTTPServer:
    srv = ThreadingHTTPServer(("127.0.0.1", port), _Named)
    srv.name = name  # type: ignore[attr-defined]
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    return srv


def test_lua_site_routes_the_live_color_canary_and_moved_ports(tmp_path: Path) -> None:
    """Each color has a plain upstream with this file's ports; a color that goship moved to
    other ports (sent through the control socket, no reload) goes through the balancer;
    the canary track follows the same rule. What a user sees: every request reaches the
    color goship said, on the ports goship said."""
    need("curl")
    if not all(Path(m).exists() for m in LUA):
        pytest.fail("libnginx-mod-http-lua is not installed")
    listen, blue, green, moved = (free_port() for _ in range(4))
    cfg = config(proxy={"listen": listen}, run={"ports": {"blue": [blue], "green": [green]}})
    paths = Paths(str(tmp_path / "srv"), "shop")
    Path(paths.run_dir).mkdir(parents=True)
    site = nginx_site_conf(cfg, paths, "blue", "r1", access_log=str(tmp_path / "access.log"),
                           lua=True, system=False)
    assert nginx_t(tmp_path, site, LUA).returncode == 0
    servers = [_backend(blue, "blue"), _backend(green, "green"), _backend(moved, "moved")]
    run = tmp_path / "run"
    nginx = subprocess.Popen(["nginx", "-c", str(run / "nginx.conf"), "-p", str(run), "-e",
                              str(tmp_path / "err.log"), "-g", "daemon off;"])
    sock = paths.join("run", "nginx-control.sock")

    def control(path: str, body: str) -> None:
        subprocess.run(["curl", "-sf", "--unix-socket", sock, "-X", "PUT", "--data-binary",
                        body, f"http://goship{path}"], check=True, capture_output=True)

    def served(n: int = 6, headers: dict[str, str] | None = None) -> set[str]:
        seen = set()
        for _ in range(n):
            req = urllib.request.Request(f"http://127.0.0.1:{listen}/", headers=headers or {})
            with urllib.request.urlopen(req, timeout=5) as resp:
                seen.add(resp.read().decode())
        return seen

    try:
        for _ in range(100):
            if Path(sock).exists():
                break
            time.sleep(0.05)
        assert served() == {"blue"}  # the file's color, before goship says anything
        control("/live", f"green r2 blue={blue} green={green}")
        assert served() == {"green"}
        control("/live", f"green r3 blue={blue} green={moved}")  # green moved off its port
        assert served() == {"moved"}
        control("/live", f"blue r1 blue={blue} green={moved}")
        assert served() == {"blue"}
        rules = "c.release=r3\nc.color=green\nc.weight=0\n"
        control("/canary", rules)
        assert served(headers={"X-Goship-Track": "canary"}) == {"moved"}
        assert served(headers={"X-Goship-Track": "stable"}) == {"blue"}
        control("/live", f"blue r1 blue={blue} green={green}")  # green back on its own port
        assert served(headers={"X-Goship-Track": "canary"}) == {"green"}
    finally:
        nginx.terminate()
        nginx.wait(timeout=10)
        for srv in servers:
            srv.shutdown()
