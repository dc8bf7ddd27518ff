"""goship canary on lab hosts: routing by header and weight in nginx (Lua), stickiness,
explain, weight changes without reload, automatic abort and promotion under load."""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Callable, Iterator
from http.cookies import SimpleCookie

import pytest

from tests.conftest import CliResult
from tests.e2e.conftest import Lab
from tests.e2e.helpers import Project
from tests.e2e.load import Load

pytestmark = [pytest.mark.lab, pytest.mark.slow]
Run = Callable[..., CliResult]
H1, H2 = "10.78.0.11:8081", "10.78.0.12:8081"

TOML = """
[app]
name = "canary-app"
[app.stamp]
"main.version" = "{version}"
[build]
assets = ["templates", "static"]
[run]
base_port = 9100
drain_timeout = 3.0
[run.health]
interval = 0.2
[proxy]
listen = 8081
[canary]
steps = [10, 50, 100]
step_min_requests = 300
step_min_seconds = 2.0
step_timeout = 60.0
guard_interval = 1.0
[env.lab]
lab = 2
"""


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory, lab: Lab) -> Iterator[Project]:
    p = Project(tmp_path_factory.mktemp("canary") / "app", TOML)
    p.release("v1.0.0")
    yield p
    # the suites share the lab: a canary left running would refuse the next suite's start
    lab.remove_app("canary-app", ["h1", "h2"], "goship-canary-app-standby-*")


def fetch(addr: str, headers: dict[str, str] | None = None,
          cookies: dict[str, str] | None = None) -> tuple[str, str, dict[str, str]]:
    """(version, X-Goship-Track, cookies set)."""
    h = dict(headers or {})
    if cookies:
        h["Cookie"] = "; ".join(f"{k}={v}" for k, v in cookies.items())
    req = urllib.request.Request(f"http://{addr}/version", headers=h)
    with urllib.request.urlopen(req, timeout=5) as r:
        body = json.loads(r.read())
        jar: SimpleCookie = SimpleCookie()
        for value in r.headers.get_all("Set-Cookie") or []:
            jar.load(value)
        return body["version"], r.headers["X-Goship-Track"], {k: m.value for k, m in jar.items()}


def test_stable_first(run_cli: Run, project: Project) -> None:
    r = run_cli("deploy", "lab", "--skip-checks", cwd=project.root)
    assert r.code == 0, r.out + r.err
    assert fetch(H1)[0] == "v1.0.0"


def test_header_rule_holds_through_weight_changes(run_cli: Run, project: Project) -> None:
    project.release("v2.0.0")
    r = run_cli("canary", "start", "lab", "--header", "X-App-Version=beta", "--skip-checks",
                cwd=project.root)
    assert r.code == 0, r.out + r.err
    try:
        for weight in ("0", "30", "70"):
            assert run_cli("canary", "set-weight", "lab", weight, cwd=project.root).code == 0
            for addr in (H1, H2):
                for _ in range(20):
                    assert fetch(addr, {"X-App-Version": "beta"})[:2] == ("v2.0.0", "canary")
                    assert fetch(addr, {"X-App-Version": "alpha"},
                                 {"goship_track": "x"})[0] in ("v1.0.0", "v2.0.0")
            if weight == "0":
                # with weight 0 nothing but the header reaches the canary
                assert {fetch(H1, {"X-App-Version": "other"})[0] for _ in range(50)} == \
                    {"v1.0.0"}
    finally:
        assert run_cli("canary", "abort", "lab", cwd=project.root).code == 0
    assert fetch(H1, {"X-App-Version": "beta"})[0] == "v1.0.0"


def test_weight_share_stickiness_and_explain(run_cli: Run, project: Project) -> None:
    project.release("v2.1.0")
    r = run_cli("canary", "start", "lab", "--weight", "10", "--header-regex",
                "User-Agent=(?i)iphone", "--allow", "10.99.0.0/16,u77", "--skip-checks",
                cwd=project.root)
    assert r.code == 0, r.out + r.err
    try:
        # 10% of new clients, each arriving once without cookies, on either host
        clients = [fetch(H1 if i % 2 else H2) for i in range(1500)]
        share = sum(1 for c in clients if c[1] == "canary") / len(clients)
        assert 0.07 <= share <= 0.13, share
        # each client keeps its track across 20 requests, whichever host it reaches
        for version, track, jar in clients[:40]:
            for i in range(20):
                again = fetch(H1 if i % 2 else H2, cookies=jar)
                assert again[:2] == (version, track)
        # explain says what nginx does
        table = [
            ({"User-Agent": "Mozilla (iPhone)"}, {}),
            ({"User-Agent": "curl"}, {"goship_id": clients[0][2]["goship_id"]}),
            ({"X-Goship-Track": "canary"}, {}),
            ({"X-Goship-Track": "stable", "User-Agent": "iPhone"}, {}),
            ({}, {"goship_track": "v0-old:canary:1000",
                  "goship_id": clients[1][2]["goship_id"]}),
            ({}, clients[2][2]),
        ]
        for headers, cookies in table:
            _, nginx_track, _ = fetch(H1, headers, cookies)
            args = [a for k, v in headers.items() for a in ("--header", f"{k}={v}")]
            args += [a for k, v in cookies.items() for a in ("--cookie", f"{k}={v}")]
            e = run_cli("canary", "explain", "lab", "--ip", "10.78.0.1", "--json", *args,
                        cwd=project.root)
            assert e.code == 0, e.err
            assert json.loads(e.out)["track"] == nginx_track, (headers, cookies, e.out)
        status = run_cli("canary", "status", "lab", "--json", cwd=project.root)
        data = json.loads(status.out)
        assert data["canary"]["requests"] > 0
        assert data["stable_numbers"]["requests"] > data["canary"]["requests"]
    finally:
        assert run_cli("canary", "abort", "lab", cwd=project.root).code == 0


def test_weight_changes_under_load_without_reload(run_cli: Run, project: Project,
                                                  lab: Lab) -> None:
    project.release("v2.2.0")
    assert run_cli("canary", "start", "lab", "--weight", "5", "--skip-checks",
                   cwd=project.root).code == 0
    master = lab.ssh("h1", "cat /run/nginx.pid").stdout.strip()
    workers = lab.ssh("h1", f"pgrep -P {master} | sort").stdout
    try:
        with Load(f"http://{H1}/api/items") as load:
            for weight in (10, 20, 35, 50, 65, 80, 90, 70, 40, 15):
                r = run_cli("canary", "set-weight", "lab", str(weight), cwd=project.root)
                assert r.code == 0, r.err
        assert load.result.failed == 0, load.result.text
        assert load.result.requests >= 10_000, load.result.text
        assert lab.ssh("h1", f"pgrep -P {master} | sort").stdout == workers  # no reload
    finally:
        run_cli("canary", "abort", "lab", cwd=project.root)


def test_an_erroring_release_is_aborted_automatically(run_cli: Run, project: Project) -> None:
    project.release("v3.0.0-bad", HELLO_TEST_ERROR_PERCENT="20")
    with Load(f"http://{H1}/api/items") as load:
        r = run_cli("deploy", "lab", "--canary", "--skip-checks", cwd=project.root)
    assert r.code == 1, r.out + r.err
    assert "ABORTED" in r.out
    assert "weight 0 on every host" in r.out
    res = load.result
    assert res.errors == 0, res.text
    assert res.non2xx <= 0.01 * res.requests, res.text
    assert fetch(H1)[0] == "v1.0.0"
    print(r.out)


def test_a_healthy_release_is_promoted_ten_times_without_a_false_abort(
        run_cli: Run, project: Project) -> None:
    with Load(f"http://{H1}/api/items") as load:
        for i in range(10):
            project.release(f"v4.{i}.0")
            r = run_cli("deploy", "lab", "--canary", "--skip-checks", cwd=project.root)
            assert r.code == 0, f"run {i}: {r.out}{r.err}"
            assert "promoted" in r.out
            assert fetch(H1)[0] == fetch(H2)[0] == f"v4.{i}.0"
    assert load.result.failed == 0, load.result.text
