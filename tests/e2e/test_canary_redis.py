"""canary.state = "redis" on lab hosts: a real redis-server on h3, the app on h1 and h2
behind their system nginx (Lua). Weights written to Redis reach every host (the share of
canary responses measured on each); Redis stopped keeps the routing everywhere, `goship
status` says so, a weight change fails in one line and changes nothing; Redis back, the
next change applies; abort and promote go through Redis; steady load sees 0 failures."""

from __future__ import annotations

import json
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest

from tests.conftest import CliResult
from tests.e2e.conftest import Lab
from tests.e2e.helpers import Project
from tests.e2e.load import Load

pytestmark = [pytest.mark.lab, pytest.mark.slow]
Run = Callable[..., CliResult]
APP = "canary-redis"
HOSTS = {"h1": "10.78.0.11:8082", "h2": "10.78.0.12:8082"}
REDIS = "10.78.0.13"
PASSWORD = "lab-redis-Pa55 word"
UNIT = "goship-test-redis"
SAMPLE = 200  # fresh clients per host and measure: the share's sd is at most 3.5 points
# Two loads, the share samples, Redis and goship share 2 cores: a paced load (about 1000
# requests/s per host) leaves them time, so a slow answer would be goship's, not the CPU's.
PACE_MS = 5

TOML = f"""
[app]
name = "{APP}"
[app.stamp]
"main.version" = "{{version}}"
[build]
assets = ["templates", "static"]
[run]
base_port = 9300
drain_timeout = 2.0
env_file = "redis.env"
[run.health]
interval = 0.2
[proxy]
listen = 8082
[canary]
state = "redis"
redis = "redis://{REDIS}:6379/0"
redis_password_var = "GOSHIP_REDIS_PASSWORD"
steps = [50, 100]
step_min_requests = 100
step_min_seconds = 1.0
step_timeout = 60.0
guard_interval = 1.0
[env.lab]
lab = 2
"""


def redis_up(lab: Lab) -> None:
    """redis-server on h3 (the packaged unit is masked in the lab), without persistence: a
    restart comes back empty, as a cache without a disk would."""
    lab.ssh("h3", f"systemctl reset-failed {UNIT} 2>/dev/null; systemd-run --unit={UNIT} "
                  f"--collect redis-server --port 6379 --bind 0.0.0.0 --protected-mode no "
                  f"--save '' --appendonly no --requirepass '{PASSWORD}'")
    for _ in range(100):
        res = lab.ssh("h3", f"redis-cli --no-auth-warning -a '{PASSWORD}' ping", check=False)
        if res.stdout.strip() == "PONG":
            return
        time.sleep(0.1)
    raise AssertionError("redis-server did not start on h3")


def redis_down(lab: Lab) -> None:
    lab.ssh("h3", f"systemctl stop {UNIT}", check=False)


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory, lab: Lab) -> Iterator[Project]:
    p = Project(tmp_path_factory.mktemp("canary-redis") / "app", TOML)
    (p.root / ".gitignore").write_text("redis.env\n")
    (p.root / "redis.env").write_text(f"GOSHIP_REDIS_PASSWORD={PASSWORD}\n")
    p.release("v1.0.0")
    redis_up(lab)
    yield p
    redis_down(lab)
    lab.remove_app(APP, HOSTS)


def fetch(addr: str, headers: dict[str, str] | None = None) -> tuple[str, str]:
    """(version, track) for a client without cookies."""
    req = urllib.request.Request(f"http://{addr}/version", headers=headers or {})
    with urllib.request.urlopen(req, timeout=5) as r:
        return json.loads(r.read())["version"], r.headers["X-Goship-Track"]


def share(addr: str) -> float:
    # Fresh clients in parallel: the same sample, a fraction of the wall time.
    with ThreadPoolExecutor(max_workers=8) as pool:
        tracks = list(pool.map(lambda _: fetch(addr)[1], range(SAMPLE)))
    return sum(t == "canary" for t in tracks) / SAMPLE


def near(weight: float) -> Callable[[float], bool]:
    if weight in (0, 100):
        return lambda s: s == weight / 100
    return lambda s: abs(s - weight / 100) <= 0.15


def reaches_every_host(weight: float, timeout: float = 10.0) -> dict[str, float]:
    """Polls each host's share until it matches the weight (a bounded wait: the bench
    measures how fast). Returns the last share per host."""
    got: dict[str, float] = {}
    ok = near(weight)
    deadline = time.monotonic() + timeout
    for name, addr in HOSTS.items():
        while True:
            got[name] = share(addr)
            if ok(got[name]) or time.monotonic() > deadline:
                break
            time.sleep(0.2)
    assert all(ok(s) for s in got.values()), (weight, got)
    return got


def status(run_cli: Run, project: Project) -> dict[str, dict[str, object]]:
    r = run_cli("status", "lab", "--json", cwd=project.root)
    assert r.code == 0, r.out + r.err
    return {n: h["canary_redis"] for n, h in json.loads(r.out)["hosts"].items()}


def test_weights_through_redis_reach_every_host_and_survive_redis_down(
        run_cli: Run, project: Project, lab: Lab) -> None:
    r = run_cli("deploy", "lab", "--skip-checks", cwd=project.root)
    assert r.code == 0, r.out + r.err
    project.release("v2.0.0")
    with Load(f"http://{HOSTS['h1']}/api/items", connections=6, pace_ms=PACE_MS) as l1, \
            Load(f"http://{HOSTS['h2']}/api/items", connections=6, pace_ms=PACE_MS) as l2:
        r = run_cli("canary", "start", "lab", "--weight", "0", "--header", "X-Beta=1",
                    "--skip-checks", cwd=project.root)
        assert r.code == 0, r.out + r.err
        reaches_every_host(0)
        for addr in HOSTS.values():
            assert fetch(addr, {"X-Beta": "1"}) == ("v2.0.0", "canary")
        for weight in (50, 100, 50):
            r = run_cli("canary", "set-weight", "lab", str(weight), cwd=project.root)
            assert r.code == 0, r.out + r.err
            reaches_every_host(weight)
        st = status(run_cli, project)
        assert {s["version"] for s in st.values()} == {st["h1"]["version"]}
        assert all(s["reachable"] for s in st.values()), st

        # Redis stops: every host keeps weight 50 and says Redis is unreachable
        redis_down(lab)
        deadline = time.monotonic() + 10
        while not all(not s["reachable"] for s in status(run_cli, project).values()):
            assert time.monotonic() < deadline, status(run_cli, project)
            time.sleep(0.3)
        text = run_cli("status", "lab", cwd=project.root).out
        for name in HOSTS:
            assert f"{name}: canary routing: Redis UNREACHABLE" in text, text
        assert PASSWORD not in text
        reaches_every_host(50)
        # a weight change fails in one line and no host's routing moves
        r = run_cli("canary", "set-weight", "lab", "0", cwd=project.root)
        assert r.code != 0
        first = r.err.strip().splitlines()[0]
        assert "cannot write the canary routing" in first, r.err
        assert "the previous routing stays on every host" in first, r.err
        assert "Traceback" not in r.err
        assert PASSWORD not in r.out + r.err
        reaches_every_host(50, timeout=3.0)
        assert {s["version"] for s in status(run_cli, project).values()} == \
            {st["h1"]["version"]}

        # Redis back, empty: the routing stays until the next change, which applies
        redis_up(lab)
        reaches_every_host(50, timeout=3.0)
        r = run_cli("canary", "set-weight", "lab", "100", cwd=project.root)
        assert r.code == 0, r.out + r.err
        reaches_every_host(100)

        r = run_cli("canary", "abort", "lab", cwd=project.root)
        assert r.code == 0, r.out + r.err
        for addr in HOSTS.values():
            assert {fetch(addr, {"X-Beta": "1"}) for _ in range(20)} == {("v1.0.0", "stable")}
    for load in (l1, l2):
        assert load.result.failed == 0, "\n".join([load.result.text, lab.nginx_errors(HOSTS)])
        assert load.result.requests > 1000, load.result.text


def test_nginx_restart_with_redis_down_keeps_the_weight_and_promote(
        run_cli: Run, project: Project, lab: Lab) -> None:
    project.release("v3.0.0")
    r = run_cli("canary", "start", "lab", "--weight", "50", "--skip-checks",
                cwd=project.root)
    assert r.code == 0, r.out + r.err
    reaches_every_host(50)
    # nginx restarts while Redis is down: the host file's routing (read by nginx's workers)
    redis_down(lab)
    lab.ssh("h1", "systemctl restart nginx")
    reaches_every_host(50)
    assert status(run_cli, project)["h1"]["reachable"] is False
    redis_up(lab)
    with Load(f"http://{HOSTS['h1']}/api/items", connections=6, pace_ms=PACE_MS) as load:
        r = run_cli("canary", "promote", "lab", cwd=project.root)
        assert r.code == 0, r.out + r.err
    for addr in HOSTS.values():
        assert {fetch(addr) for _ in range(20)} == {("v3.0.0", "stable")}
    assert load.result.failed == 0, "\n".join([load.result.text, lab.nginx_errors(["h1"])])
    # Redis says "no canary" too: what a restarted nginx will apply
    st = status(run_cli, project)
    assert all(s["reachable"] and s["weight"] is None for s in st.values()), st


def test_the_automatic_walk_writes_its_steps_to_redis(run_cli: Run, project: Project,
                                                      lab: Lab) -> None:
    """`deploy --canary`: each step's weight goes through Redis to every host; promoted."""
    project.release("v4.0.0")
    since_ms = int(time.time() * 1000)
    seen = dict.fromkeys(HOSTS, False)
    done = threading.Event()

    def watch() -> None:  # new clients on each host: some reach the canary at step 50
        while not done.is_set():
            for name, addr in HOSTS.items():
                if fetch(addr)[1] == "canary":
                    seen[name] = True
            time.sleep(0.05)

    with Load(f"http://{HOSTS['h1']}/api/items", connections=6, pace_ms=PACE_MS) as l1, \
            Load(f"http://{HOSTS['h2']}/api/items", connections=6, pace_ms=PACE_MS) as l2:
        t = threading.Thread(target=watch, daemon=True)
        t.start()
        try:
            r = run_cli("deploy", "lab", "--canary", "--skip-checks", cwd=project.root)
        finally:
            done.set()
            t.join(timeout=10)
        assert r.code == 0, r.out + r.err
        assert "promoted" in r.out
    assert all(seen.values()), seen
    for addr in HOSTS.values():
        assert {fetch(addr) for _ in range(10)} == {("v4.0.0", "stable")}
    for load in (l1, l2):
        assert load.result.failed == 0, "\n".join(
            [load.result.text, r.out, lab.nginx_errors(HOSTS)])
    # every host applied a version written to Redis during the walk: "no canary"
    st = status(run_cli, project)
    assert all(s["reachable"] and s["weight"] is None for s in st.values()), st
    assert all(int(str(s["version"])) > since_ms for s in st.values()), st
