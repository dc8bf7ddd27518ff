"""goship deploy, rollback, status, logs and setup on lab hosts with real systemd, sshd and
nginx, under a steady load through nginx: zero failed requests through every release."""

from __future__ import annotations

import getpass
import json
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator

import pytest

from tests.conftest import CliResult
from tests.e2e.conftest import Lab
from tests.e2e.helpers import Project, git
from tests.e2e.load import Load

pytestmark = [pytest.mark.lab, pytest.mark.slow]
Run = Callable[..., CliResult]
H1, H2, H3 = "10.78.0.11", "10.78.0.12", "10.78.0.13"
MIN_REQUESTS = 20_000

TOML = """
[app]
name = "hello-gin"
version = "git"

[app.stamp]
"main.version" = "{version}"
"main.commit" = "{commit}"
"main.buildTime" = "{build_time}"

[build]
assets = ["templates", "static"]

[run]
env_file = ".env.lab"
drain_timeout = 5.0
# What `goship init` writes for many services; green's 9100 is node_exporter's on the lab
# hosts (copies of this machine), so the port preflight moves it.
base_port = 9000


[run.health]
interval = 0.2
deadline = 15.0

[env.lab]
lab = 2

[env.lab3]
lab = 3
[env.lab3.deploy]
strategy = "rolling"
batch = 1
"""


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory, lab: Lab) -> Iterator[Project]:
    p = Project(tmp_path_factory.mktemp("deploy") / "hello-gin", TOML)
    (p.root / ".env.lab").write_text("DB_PASSWORD=s3cr3t-lab-value\n")
    (p.root / ".gitignore").write_text("dist/\n.env.lab\n")
    p.release("v1.0.0")
    yield p
    # The lab is shared: its ports (9000, and the moved green) go back to the next suite.
    lab.remove_app("hello-gin", ["h1", "h2", "h3"], "goship-hello-gin-standby-*")


def version(addr: str, path: str = "/version") -> str:
    with urllib.request.urlopen(f"http://{addr}{path}", timeout=5) as r:
        data = r.read().decode()
    return str(json.loads(data)["version"]) if path == "/version" else data


def deploy(run_cli: Run, project: Project, *args: str) -> CliResult:
    return run_cli("deploy", *args, "--skip-checks", cwd=project.root)


def test_first_deploy_then_a_new_version_loses_nothing(run_cli: Run, project: Project,
                                                       lab: Lab) -> None:
    r = deploy(run_cli, project, "lab")
    assert r.code == 0, r.out + r.err
    assert version(H1) == version(H2) == "v1.0.0"
    # Templates and static files are read from the release directory.
    page = version(H1, "/")
    assert "<h1>hello-gin v1.0.0</h1>" in page
    assert "<footer>v1.0.0</footer>" in page  # this release's own template
    project.release("v1.1.0")
    with Load(f"http://{H1}/api/items") as load:
        r = deploy(run_cli, project, "lab")
    assert r.code == 0, r.out + r.err
    assert version(H1) == version(H2) == "v1.1.0"
    res = load.result
    assert res.requests >= MIN_REQUESTS, res.text
    assert res.failed == 0, res.text
    # the host's records
    state = json.loads(lab.ssh("h1", "cat /srv/hello-gin/state.json").stdout)
    assert state["live"]["release"].startswith("v1.1.0-")
    assert state["previous"]["release"].startswith("v1.0.0-")
    current = lab.ssh("h1", "readlink /srv/hello-gin/current").stdout.strip()
    assert current == f"releases/{state['live']['release']}"
    last = json.loads(lab.ssh("h1", "tail -n1 /srv/hello-gin/journal.jsonl").stdout)
    assert (last["action"], last["outcome"]) == ("deploy", "ok")
    assert last["release"] == state["live"]["release"]
    # the old color stays warm (unserved) until the host's own timer stops it; only the
    # new color starts at boot
    assert state["standby"]["release"].startswith("v1.0.0-")
    old = state["standby"]["color"]
    assert old != state["live"]["color"]
    units = lab.ssh("h1", "systemctl list-units --no-legend --state=active 'hello-gin-*'")
    assert units.stdout.count("hello-gin-") == 2, units.stdout
    timer = lab.ssh("h1", f"systemctl is-active goship-hello-gin-standby-{old}.timer")
    assert timer.stdout.strip() == "active"
    live = state["live"]["color"]
    enabled = lab.ssh("h1", f"systemctl is-enabled hello-gin-{live}@{state['ports'][live][0]} "
                            f"hello-gin-{old}@{state['ports'][old][0]}", check=False)
    assert enabled.stdout.split() == ["enabled", "disabled"], enabled.stdout


def test_secrets_land_private_and_never_show(run_cli: Run, project: Project, lab: Lab) -> None:
    color = json.loads(lab.ssh("h1", "cat /srv/hello-gin/state.json").stdout)["live"]["color"]
    for path in (f"/srv/hello-gin/shared/env.{color}", "/srv/hello-gin/shared/envs/*"):
        stats = lab.ssh("h1", f"stat -c '%a %U' {path}").stdout.split("\n")
        assert {s for s in stats if s} == {"600 hello-gin"}
    assert "s3cr3t-lab-value" in lab.ssh("h1", f"cat /srv/hello-gin/shared/env.{color}").stdout
    journal = lab.ssh("h1", "cat /srv/hello-gin/journal.jsonl").stdout
    assert "s3cr3t" not in journal
    r = run_cli("-v", "status", "lab", cwd=project.root)
    assert "s3cr3t" not in r.out + r.err
    unit = lab.ssh("h1", "systemctl cat hello-gin-blue@.service").stdout
    assert "s3cr3t" not in unit


def test_rollback_loses_nothing(run_cli: Run, project: Project, lab: Lab) -> None:
    with Load(f"http://{H2}/api/items") as load:
        started = time.monotonic()
        r = run_cli("rollback", "lab", "--json", cwd=project.root)
        elapsed = time.monotonic() - started
    assert r.code == 0, r.out + r.err
    assert version(H1) == version(H2) == "v1.0.0"
    assert load.result.failed == 0, load.result.text
    assert load.result.requests >= MIN_REQUESTS // 2, load.result.text
    data = json.loads(r.out)
    assert data["ok"]
    # boot starts the color rolled back to, and no longer the other (links made by goship)
    state = json.loads(lab.ssh("h1", "cat /srv/hello-gin/state.json").stdout)
    live, old = state["live"]["color"], state["previous"]["color"]
    enabled = lab.ssh("h1", f"systemctl is-enabled hello-gin-{live}@{state['ports'][live][0]} "
                            f"hello-gin-{old}@{state['ports'][old][0]}", check=False)
    assert enabled.stdout.split() == ["enabled", "disabled"], enabled.stdout
    print(f"rollback of 2 hosts took {elapsed:.2f}s")  # measured in bench/, shown here


def test_status_and_drift(run_cli: Run, project: Project, lab: Lab) -> None:
    r = run_cli("status", "lab", "--json", cwd=project.root)
    assert r.code == 0, r.err
    data = json.loads(r.out)
    h1 = data["hosts"]["h1"]
    assert h1["release"].startswith("v1.0.0-")
    assert h1["nginx"] == "running"
    assert all(i["health"] == "200" for i in h1["instances"].values())
    assert h1["previous"].startswith("v1.1.0-")
    assert not h1["drift"]
    assert h1["last"]["action"] == "rollback"


def test_logs_are_merged_with_host_prefixes(run_cli: Run, project: Project) -> None:
    version(H1)
    r = run_cli("logs", "lab", "-n", "5", cwd=project.root)
    assert r.code == 0, r.err
    assert "[h1 app]" in r.out
    assert "[h2 nginx]" in r.out


def test_setup_twice_changes_nothing(run_cli: Run, project: Project) -> None:
    r = run_cli("setup", "lab", cwd=project.root)
    assert r.code == 0, r.err
    assert r.out.splitlines() == ["h1: nothing to change", "h2: nothing to change"]


def test_a_release_that_never_gets_healthy_is_refused(run_cli: Run, project: Project,
                                                      lab: Lab) -> None:
    project.release("v2.0.0-sick", HELLO_TEST_FAIL_HEALTH="1")
    with Load(f"http://{H1}/api/items") as load:
        r = deploy(run_cli, project, "lab")
    assert r.code == 1
    assert "health gate failed" in r.out
    assert "HTTP 503" in r.out
    assert version(H1) == version(H2) == "v1.0.0"
    assert load.result.failed == 0, load.result.text
    last = json.loads(lab.ssh("h2", "tail -n1 /srv/hello-gin/journal.jsonl").stdout)
    assert last["outcome"] == "failed"
    assert last["step"] == "health gate"


def test_a_crash_looping_release_is_refused(run_cli: Run, project: Project) -> None:
    project.release("v2.0.1-crashy", HELLO_TEST_CRASH_AFTER="300ms")
    with Load(f"http://{H1}/api/items") as load:
        r = deploy(run_cli, project, "lab")
    assert r.code == 1
    assert "health gate failed" in r.out
    assert version(H1) == "v1.0.0"
    assert load.result.failed == 0, load.result.text


def test_a_broken_nginx_template_is_never_left_in_place(run_cli: Run, project: Project,
                                                        lab: Lab) -> None:
    project.release("v2.1.0")
    override = project.root / "goship" / "templates"
    override.mkdir(parents=True)
    (override / "nginx.site.conf.j2").write_text("server { listen 80; this is broken; }\n")
    git(project.root, "add", "-A")
    git(project.root, "commit", "-qm", "broken template")
    try:
        with Load(f"http://{H1}/api/items") as load:
            r = deploy(run_cli, project, "lab")
        assert r.code == 1
        assert "nginx -t rejected the new config, the old one is back in place" in r.out
        assert lab.ssh("h1", "nginx -t", check=False).returncode == 0
        assert version(H1) == "v1.0.0"
        assert load.result.failed == 0, load.result.text
    finally:
        shutil.rmtree(project.root / "goship")
        git(project.root, "add", "-A")
        git(project.root, "commit", "-qm", "template fixed")


def test_a_corrupted_upload_is_caught(run_cli: Run, project: Project,
                                      monkeypatch: pytest.MonkeyPatch) -> None:
    from goship.deploy import engine

    real = engine.build_artifacts

    def corrupt(*a: object, **kw: object) -> dict[str, engine.Artifact]:
        arts = real(*a, **kw)  # type: ignore[arg-type]
        for art in arts.values():
            art.data = art.data[:-100] + bytes(100)  # the sha256 stays the original's
        return arts

    monkeypatch.setattr(engine, "build_artifacts", corrupt)
    project.release("v2.2.0")
    r = deploy(run_cli, project, "lab")
    assert r.code == 1
    assert "upload failed verification" in r.out
    assert version(H1) == "v1.0.0"


def test_two_deploys_at_once(run_cli: Run, project: Project) -> None:
    from goship.config import load
    from goship.deploy.engine import close, connect
    from goship.deploy.host import Lock

    env = load(project.root / "goship.toml").env("lab")
    hosts = connect(env)
    lock = Lock(hosts, "goship deploy lab (the other one)", force=False)
    lock.acquire()
    try:
        r = deploy(run_cli, project, "lab")
        assert r.code == 4
        assert "another goship holds the deploy lock" in r.err
        assert "`goship deploy lab (the other one)`" in r.err
        assert "pass --force if it is gone" in r.err
    finally:
        lock.release()
        close(hosts)


def starting(lab: Lab, host: str, version: str) -> None:
    """Wait until `version` is starting on a color of `host` (its color link points at it
    and that color's instance runs): mid-deploy, before any switch."""
    script = ("for c in blue green; do readlink /srv/hello-gin/$c | grep -q -- " + version +
              " && systemctl list-units --no-legend --state=active \"hello-gin-$c@*\" "
              "| grep -q . && echo yes; done; true")
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if "yes" in lab.ssh(host, script).stdout:
            return
        time.sleep(0.1)
    raise AssertionError(f"{version} never started on {host}")


def test_killed_mid_deploy_then_rerun(project: Project, lab: Lab) -> None:
    """kill -9 while the new release starts: the old one keeps serving; the rerun on this
    machine breaks the dead deploy's lock at once, saying so, and completes."""
    project.release("v3.0.0", HELLO_TEST_START_DELAY="4s")
    goship = [sys.executable, "-m", "goship"]
    with Load(f"http://{H1}/api/items") as load:
        proc = subprocess.Popen([*goship, "deploy", "lab", "--skip-checks"], cwd=project.root,
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        starting(lab, "h1", "v3.0.0")
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        assert version(H1) == "v1.0.0"
        again = subprocess.run([*goship, "deploy", "lab", "--skip-checks"], cwd=project.root,
                               capture_output=True, text=True, check=False)
        assert again.returncode == 0, again.stdout + again.stderr
        assert f"broke the deploy lock of {getpass.getuser()}@" in again.stderr
        assert f"pid {proc.pid}, `goship deploy lab`" in again.stderr
        assert "it ran on this machine and its process is gone" in again.stderr
    assert version(H1) == version(H2) == "v3.0.0"
    assert load.result.failed == 0, load.result.text


def test_a_host_cut_mid_deploy_restores_the_others(run_cli: Run, project: Project,
                                                   lab: Lab) -> None:
    from goship.lab import hosts

    project.release("v3.1.0", HELLO_TEST_START_DELAY="3s")
    with Load(f"http://{H1}/api/items") as load:
        proc = subprocess.Popen([sys.executable, "-m", "goship", "deploy", "lab",
                                 "--skip-checks"], cwd=project.root, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, text=True)
        # Cut h2 once its new release is starting: mid-deploy, before any switch.
        starting(lab, "h2", "v3.1.0")
        hosts.cut("h2")
        try:
            out, _ = proc.communicate(timeout=120)
        finally:
            hosts.heal("h2")
    assert proc.returncode == 1, out
    assert "FAILED: h2:" in out
    assert "restored: h1" in out
    assert version(H1) == "v3.0.0"
    assert load.result.failed == 0, load.result.text
    # h2 could not be told the deploy ended: its lock stays until it expires or is broken.
    assert lab.ssh("h2", "test -d /srv/hello-gin/.lock", check=False).returncode == 0
    lab.ssh("h2", "rm -rf /srv/hello-gin/.lock")


def test_rolling_across_three_hosts(run_cli: Run, project: Project) -> None:
    project.release("v4.0.0")
    assert deploy(run_cli, project, "lab").code == 0  # h1 and h2 serve v4.0.0
    project.release("v4.1.0")
    # h3 joins the fleet here (its first release); h1 serves throughout.
    with Load(f"http://{H1}/api/items") as load:
        r = deploy(run_cli, project, "lab3")
    assert r.code == 0, r.out + r.err
    assert "batch 3: h3" in r.err
    assert version(H1) == version(H2) == version(H3) == "v4.1.0"
    assert load.result.failed == 0, load.result.text
    assert load.result.requests >= MIN_REQUESTS, load.result.text


def test_dry_run_changes_nothing(run_cli: Run, project: Project, lab: Lab) -> None:
    before = lab.ssh("h1", "cat /srv/hello-gin/state.json").stdout
    project.release("v5.0.0")
    r = deploy(run_cli, project, "lab", "--dry-run")
    assert r.code == 0, r.err
    assert "h1: serves v4.1.0-" in r.out
    assert "; deploy to v5.0.0-" in r.out
    assert "upload: upload; environment: write" in r.out
    assert "stays warm for 600s (rollback window)" in r.out
    assert lab.ssh("h1", "cat /srv/hello-gin/state.json").stdout == before


def test_dry_run_prints_the_plan_deploy_executes(run_cli: Run, project: Project) -> None:
    planned = deploy(run_cli, project, "lab", "--dry-run", "--json")
    assert planned.code == 0, planned.err
    r = deploy(run_cli, project, "lab", "--json")
    assert r.code == 0, r.out + r.err
    executed = json.loads(r.out)["plan"]
    assert json.loads(planned.out)["plan"] == executed
    assert {h["release"] for h in executed["hosts"]} == {json.loads(r.out)["release"]}
    # The same release again: already on disk, nothing to upload.
    again = json.loads(deploy(run_cli, project, "lab", "--dry-run", "--json").out)["plan"]
    assert [h["upload"] for h in again["hosts"]] == ["skip", "skip"]
