"""canary.state = "redis" with a real nginx (Lua) and a real redis-server on this machine:
the site passes `nginx -t`, the poller applies what goship writes, keeps the routing when
Redis goes away, restores it from the host file when nginx restarts, and says so on the
control socket. No lab: both run as child processes on loopback."""

from __future__ import annotations

import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from goship.canary import redis_state as rs
from goship.canary.redis_sync import RedisState
from goship.canary.routing import Rule, Rules
from goship.render.context import Paths
from goship.render.kinds import nginx_site_conf
from tests.conftest import need
from tests.e2e.helpers import free_port
from tests.e2e.test_render_checks import LUA, config, nginx_t

pytestmark = pytest.mark.slow
PASSWORD = "s3cr et/pw"  # a space and a slash: quoted everywhere it travels


class RedisServer:
    def __init__(self, port: int, password: str) -> None:
        self.port, self.password = port, password
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        need("redis-server")
        self.proc = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--requirepass", self.password],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            res = subprocess.run(["redis-cli", "-p", str(self.port), "--no-auth-warning", "-a",
                                  self.password, "ping"], capture_output=True, text=True,
                                 check=False)
            if res.stdout.strip() == "PONG":
                return
            time.sleep(0.05)
        raise AssertionError("redis-server did not start")

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            self.proc.wait(timeout=10)
            self.proc = None


@pytest.fixture
def redis_server() -> Iterator[RedisServer]:
    server = RedisServer(free_port(), PASSWORD)
    server.start()
    yield server
    server.stop()


def site(tmp_path: Path, redis_port: int, listen: int) -> tuple[str, Paths]:
    cfg = config(proxy={"listen": listen}, canary={
        "state": "redis", "redis": f"redis://127.0.0.1:{redis_port}/3"})
    paths = Paths(str(tmp_path / "srv"), "shop")
    Path(paths.run_dir).mkdir(parents=True, exist_ok=True)
    return nginx_site_conf(cfg, paths, "blue", "r1", access_log=str(tmp_path / "access.log"),
                           lua=True, system=False), paths


def test_redis_state_site_passes_nginx_t(tmp_path: Path) -> None:
    if not all(Path(m).exists() for m in LUA):
        pytest.fail("libnginx-mod-http-lua is not installed")
    text, _ = site(tmp_path, 6379, free_port())
    assert rs.MARKER in text
    assert "init_worker_by_lua_block" in text
    assert "location = /canary-redis" in text
    res = nginx_t(tmp_path, text, LUA)
    assert res.returncode == 0, res.stderr


class Nginx:
    def __init__(self, tmp_path: Path, paths: Paths) -> None:
        self.tmp, self.paths = tmp_path, paths
        self.sock = paths.join("run", "nginx-control.sock")
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        run = self.tmp / "run"
        Path(self.sock).unlink(missing_ok=True)
        self.proc = subprocess.Popen(["nginx", "-c", str(run / "nginx.conf"), "-p", str(run),
                                      "-e", str(self.tmp / "err.log"), "-g", "daemon off;"])
        for _ in range(200):
            if Path(self.sock).exists():
                return
            time.sleep(0.05)
        raise AssertionError("nginx did not start")

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            self.proc.wait(timeout=10)
            self.proc = None

    def poll_state(self) -> rs.PollState:
        out = subprocess.run(["curl", "-sf", "--unix-socket", self.sock,
                              "http://goship/canary-redis"], capture_output=True, text=True,
                             check=True).stdout
        return rs.parse_poll(out)

    def wait(self, pred: str, check: object, timeout: float = 5.0) -> rs.PollState:
        deadline = time.monotonic() + timeout
        while True:
            state = self.poll_state()
            if callable(check) and check(state):
                return state
            if time.monotonic() > deadline:
                raise AssertionError(f"nginx never got to {pred}: {state}")
            time.sleep(0.1)


def track(port: int, headers: dict[str, str]) -> str:
    req = urllib.request.Request(f"http://127.0.0.1:{port}/", headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=5) as resp:
            return str(resp.headers["X-Goship-Track"])
    except urllib.error.HTTPError as e:  # nothing behind: 502, routed all the same
        return str(e.headers["X-Goship-Track"])


def test_poller_applies_keeps_and_restores(tmp_path: Path, redis_server: RedisServer) -> None:
    need("curl")
    if not all(Path(m).exists() for m in LUA):
        pytest.fail("libnginx-mod-http-lua is not installed")
    listen = free_port()
    text, paths = site(tmp_path, redis_server.port, listen)
    assert nginx_t(tmp_path, text, LUA).returncode == 0
    # nginx started by root runs its workers as nobody, who cannot enter pytest's 0700
    # temporary directory; the lab test reads the host file as Debian's www-data does.
    conf = tmp_path / "run" / "nginx.conf"
    conf.write_text("user root;\n" + conf.read_text())
    url = rs.parse_url(f"redis://:{PASSWORD.replace(' ', '%20').replace('/', '%2F')}"
                       f"@127.0.0.1:{redis_server.port}/3")
    state = RedisState(url, rs.key("shop", "prod"))
    nginx = Nginx(tmp_path, paths)
    nginx.start()
    try:
        # before goship wrote anything: no host file, said so; requests still go to stable
        first = nginx.wait("no host file", lambda s: s.error is not None)
        assert "canary-redis.conf" in (first.error or "")
        assert track(listen, {"X-Beta": "1"}) == "stable"

        rules = Rules(release="r2", color="green", weight=0,
                      rules=(rs_rule("X-Beta", "1"),))
        version, body = state.publish(rules)
        (Path(paths.join(rs.HOST_FILE))).write_text(
            rs.host_file(url, state.key, version, body))
        nginx.wait("version 1", lambda s: s.version == str(version) and s.reachable)
        assert track(listen, {"X-Beta": "1"}) == "canary"

        v2, _ = state.publish(Rules(**{**rules.__dict__, "weight": 100.0}))
        got = nginx.wait("weight 100", lambda s: s.version == str(v2))
        assert got.weight_units == 10000
        assert track(listen, {}) == "canary"

        # Redis goes away: the routing stays, and the control socket says Redis is gone
        redis_server.stop()
        down = nginx.wait("unreachable", lambda s: not s.reachable)
        assert down.version == str(v2)
        assert "connect" in (down.error or "")
        assert track(listen, {}) == "canary"
        with pytest.raises(Exception, match="cannot write the canary routing") as e:
            state.publish(None)
        assert PASSWORD not in str(e.value)

        # nginx restarts while Redis is down: the host file's routing (version 1, weight 0)
        nginx.stop()
        nginx.start()
        back = nginx.wait("restored", lambda s: s.version == str(version))
        assert not back.reachable
        assert track(listen, {"X-Beta": "1"}) == "canary"
        assert track(listen, {}) == "stable"

        # Redis back (empty: it kept no data): the key is missing, routing kept
        redis_server.start()
        nginx.wait("reachable", lambda s: s.reachable)
        assert track(listen, {"X-Beta": "1"}) == "canary"
        v3, _ = state.publish(None)
        cleared = nginx.wait("cleared", lambda s: s.version == str(v3) and s.reachable)
        assert cleared.weight_units is None
        assert track(listen, {"X-Beta": "1"}) == "stable"
        log = (tmp_path / "err.log").read_text()
        assert PASSWORD not in log
    finally:
        nginx.stop()


def rs_rule(name: str, value: str) -> Rule:
    return Rule("header", name, "exact", value)
