"""Several goship apps on one lab host (systemd, nginx with Lua): one by server name, two
by path prefix on the same listen port (they share one nginx server), each reached through
nginx under load while another deploys; a third app claiming a taken path is refused with
nothing changed; `goship apps` lists them."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator

import pytest

from tests.conftest import CliResult
from tests.e2e.conftest import Lab
from tests.e2e.helpers import Project
from tests.e2e.load import Load

pytestmark = [pytest.mark.lab, pytest.mark.slow]
Run = Callable[..., CliResult]
H1 = "10.78.0.11"
MIN_REQUESTS = 2_000
NAME = "shop.lab.test"

BASE = """
[app]
name = "{name}"
version = "git"

[app.stamp]
"main.version" = "{{version}}"

[build]
assets = ["templates", "static"]

[run]
drain_timeout = 5.0

[run.health]
interval = 0.2
deadline = 15.0

[proxy]
{proxy}

[env.lab]
lab = 1
"""

APPS = {
    "shop": f'server_names = ["{NAME}"]',
    "api": 'path = "/api"',  # the app routes under /api itself (hello-gin's /api/items)
    "v2": 'path = "/v2"\nstrip_path = true',  # /v2/version reaches the app as /version
    "dup": 'path = "/api"',  # api's path again: refused
}


@pytest.fixture(scope="module")
def projects(tmp_path_factory: pytest.TempPathFactory, lab: Lab) -> Iterator[dict[str, Project]]:
    out = {}
    for name, proxy in APPS.items():
        p = Project(tmp_path_factory.mktemp(name) / name, BASE.format(name=name, proxy=proxy))
        p.release("v1.0.0")
        out[name] = p
    yield out
    # The shared server of the path apps goes first: it is a default server.
    lab.ssh("h1", "rm -rf /etc/nginx/goship /etc/nginx/conf.d/goship.paths-*.conf",
            check=False)
    for name in APPS:
        lab.remove_app(name, ["h1"])


def get(path: str, host: str | None = None) -> tuple[int, str]:
    req = urllib.request.Request(f"http://{H1}{path}", headers={"Host": host} if host else {})
    try:
        with urllib.request.urlopen(req, timeout=5) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


def version(path: str, host: str | None = None) -> str:
    code, body = get(path, host)
    assert code == 200, body
    return str(json.loads(body)["version"])


def deploy(run_cli: Run, p: Project) -> CliResult:
    return run_cli("deploy", "lab", "--skip-checks", cwd=p.root)


def loaded(url: str, host: str | None = None, *, reload: bool = False) -> Load:
    """wrk on `url`. `reload`: the deploy reloads nginx (another app's first release):
    a reload closes each idle keepalive connection of the old workers, which a client
    retries but wrk counts as a read error (wrk #180); so requests go one per connection
    there, and every request sent must be answered."""
    load = Load(url, connections=2 if reload else 16)
    extra = (["-H", f"Host: {host}"] if host else []) + \
        (["-H", "Connection: close"] if reload else [])
    load.argv[-1:-1] = extra
    return load


def test_apps_by_name_and_by_path_share_the_host(run_cli: Run, projects: dict[str, Project],
                                                 lab: Lab) -> None:
    r = deploy(run_cli, projects["shop"])
    assert r.code == 0, r.out + r.err
    code, body = get("/version", NAME)
    assert code == 200, lab.ssh("h1", "ls /etc/nginx/conf.d /etc/nginx/sites-enabled; "
                                      "grep -n 'listen\\|server_name' /etc/nginx/conf.d/*",
                                check=False).stdout + r.out
    assert json.loads(body)["version"] == "v1.0.0"
    # api deploys while shop serves under load: its own ports (shop holds 8080/8180), its
    # own locations in a server on the same port 80.
    with loaded(f"http://{H1}/version", NAME, reload=True) as load:
        r = deploy(run_cli, projects["api"])
    assert r.code == 0, r.out + r.err
    assert load.result.failed == 0, load.result.text
    assert load.result.requests >= MIN_REQUESTS, load.result.text
    assert get("/api/items")[0] == 200
    assert get("/version")[0] == 404  # the path app's server serves only its prefix
    # A second path app on the same listen (the same shared server) while api is loaded.
    with loaded(f"http://{H1}/api/items", reload=True) as load:
        r = deploy(run_cli, projects["v2"])
    assert r.code == 0, r.out + r.err
    assert load.result.failed == 0, load.result.text
    assert load.result.requests >= MIN_REQUESTS, load.result.text
    assert version("/v2/version") == "v1.0.0"  # prefix stripped
    assert version("/version", NAME) == "v1.0.0"
    assert_own_ports(lab)


def assert_own_ports(lab: Lab) -> None:
    """No two apps on one port: each app's running instances on ports of its own."""
    live = []
    for a in ("shop", "api", "v2"):
        state = json.loads(lab.ssh("h1", f"cat /srv/{a}/state.json").stdout)
        live += state["ports"][state["live"]["color"]]
        units = lab.ssh("h1", f"systemctl list-units --no-legend --state=active '{a}-*'")
        assert units.stdout.count(f"{a}-") >= 1, units.stdout
    assert len(live) == len(set(live)), live
    owners = lab.ssh("h1", "ss -ltnpH").stdout
    for port in live:
        assert f":{port} " in owners, owners


def test_each_app_deploys_while_the_others_serve(run_cli: Run, projects: dict[str, Project],
                                                 lab: Lab) -> None:
    for name in ("shop", "api", "v2"):
        projects[name].release("v1.1.0")
    with loaded(f"http://{H1}/v2/version") as load:
        r = deploy(run_cli, projects["shop"])
    assert r.code == 0, r.out + r.err
    assert load.result.failed == 0, load.result.text
    with loaded(f"http://{H1}/version", NAME) as load:
        r = deploy(run_cli, projects["v2"])
    assert r.code == 0, r.out + r.err
    assert load.result.failed == 0, load.result.text
    with loaded(f"http://{H1}/v2/version") as load:
        r = deploy(run_cli, projects["api"])
    assert r.code == 0, r.out + r.err
    assert load.result.failed == 0, load.result.text
    assert load.result.requests >= MIN_REQUESTS, load.result.text
    assert version("/version", NAME) == version("/v2/version") == "v1.1.0"
    assert get("/api/items")[0] == 200
    assert_own_ports(lab)


def test_maintenance_of_a_path_app_leaves_its_health_and_the_others(
        run_cli: Run, projects: dict[str, Project]) -> None:
    r = run_cli("maintenance", "on", "lab", cwd=projects["v2"].root)
    assert r.code == 0, r.out + r.err
    try:
        assert get("/v2/version")[0] == 503
        assert get("/v2/health")[0] == 200  # stripped to /health: the health path passes
        assert get("/api/items")[0] == 200  # the other path app is not in maintenance
    finally:
        r = run_cli("maintenance", "off", "lab", cwd=projects["v2"].root)
    assert r.code == 0, r.out + r.err
    assert get("/v2/version")[0] == 200


def host_snapshot(lab: Lab) -> str:
    return lab.ssh("h1", "ls /srv; ls -lR /etc/nginx/conf.d /etc/nginx/goship; "
                         "cat /etc/nginx/conf.d/*.conf /etc/nginx/goship/paths/*/*.conf; "
                         "systemctl list-units --no-legend --all 'dup*'").stdout


def test_a_third_app_on_a_taken_path_is_refused_with_nothing_changed(
        run_cli: Run, projects: dict[str, Project], lab: Lab) -> None:
    before = host_snapshot(lab)
    r = deploy(run_cli, projects["dup"])
    assert r.code == 2, r.out + r.err
    lines = [ln for ln in (r.out + r.err).splitlines() if "app api" in ln]
    assert len(lines) == 1, r.out + r.err
    assert "app api already claims path /api of the default server on port 80" in lines[0]
    assert "proxy.path" in lines[0]  # how to fix it
    assert host_snapshot(lab) == before
    assert "dup" not in lab.ssh("h1", "ls /srv").stdout


def test_goship_apps_lists_every_app(run_cli: Run, projects: dict[str, Project],
                                     lab: Lab) -> None:
    r = run_cli("apps", "lab", "--json", cwd=projects["dup"].root)
    assert r.code == 0, r.out + r.err
    rows = {a["app"]: a for a in json.loads(r.out)["apps"]}
    assert set(rows) >= {"shop", "api", "v2"}
    for name in ("shop", "api", "v2"):
        state = json.loads(lab.ssh("h1", f"cat /srv/{name}/state.json").stdout)
        assert rows[name]["release"] == state["live"]["release"]
        assert rows[name]["live"] == state["live"]["color"]
        assert rows[name]["ports"] == state["ports"]
    assert rows["shop"]["server_names"] == [NAME]
    assert (rows["api"]["path"], rows["v2"]["path"], rows["shop"]["path"]) == \
        ("/api", "/v2", None)
    table = run_cli("apps", "lab", cwd=projects["dup"].root)
    assert table.code == 0, table.err
    lines = table.out.splitlines()
    assert lines[0].split()[:5] == ["HOST", "APP", "RELEASE", "LIVE", "PORTS"]
    assert any(ln.split()[:2] == ["h1", "v2"] and "default server/v2 :80" in ln
               for ln in lines[1:]), table.out
    assert any(ln.split()[:2] == ["h1", "shop"] and f"{NAME} :80" in ln
               for ln in lines[1:]), table.out


def track(path: str, headers: dict[str, str]) -> tuple[str, str | None]:
    req = urllib.request.Request(f"http://{H1}{path}", headers=headers)
    with urllib.request.urlopen(req, timeout=5) as r:
        return str(json.loads(r.read())["version"]), r.headers["X-Goship-Track"]


def test_a_canary_of_a_path_app_is_routed_under_its_prefix(
        run_cli: Run, projects: dict[str, Project]) -> None:
    v2 = projects["v2"]
    v2.release("v1.2.0")
    r = run_cli("canary", "start", "lab", "--header", "X-App-Version=beta", "--skip-checks",
                cwd=v2.root)
    assert r.code == 0, r.out + r.err
    try:
        for _ in range(10):
            assert track("/v2/version", {"X-App-Version": "beta"}) == ("v1.2.0", "canary")
            assert track("/v2/version", {"X-App-Version": "other"})[0] == "v1.1.0"
        assert get("/api/items")[0] == 200  # the other path app is not routed by it
    finally:
        assert run_cli("canary", "abort", "lab", cwd=v2.root).code == 0
    assert track("/v2/version", {"X-App-Version": "beta"})[0] == "v1.1.0"


def test_removing_a_path_app_leaves_the_other_on_the_shared_server(
        run_cli: Run, projects: dict[str, Project], lab: Lab) -> None:
    r = run_cli("remove", "lab", "--yes", cwd=projects["v2"].root)
    assert r.code == 0, r.out + r.err
    assert get("/v2/version")[0] == 404
    assert get("/api/items")[0] == 200
    assert version("/version", NAME) == "v1.1.0"
    left = lab.ssh("h1", "ls /etc/nginx/goship/paths/80-default/").stdout.split()
    assert left == ["api.conf"]
    assert lab.ssh("h1", "nginx -t", check=False).returncode == 0
