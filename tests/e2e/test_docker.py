"""run.manager = "docker" on lab hosts with a real Docker engine (`goship lab up --docker`):
goship's own image loaded over SSH, blue-green containers behind nginx and the Lua switch,
under a steady load: zero failed requests through every release, rollback and canary."""

from __future__ import annotations

import json
import time
import urllib.request
from collections.abc import Callable, Iterator

import pytest

from tests.conftest import CliResult
from tests.e2e.conftest import Lab
from tests.e2e.helpers import Project
from tests.e2e.load import Load

pytestmark = [pytest.mark.lab, pytest.mark.slow]
Run = Callable[..., CliResult]
H1, H2 = "10.78.0.11:8082", "10.78.0.12:8082"
APP = "dock-app"

TOML = """
[app]
name = "dock-app"
[app.stamp]
"main.version" = "{version}"
[build]
assets = ["templates", "static"]
[run]
manager = "docker"
base_port = 9300
drain_timeout = 3.0
env_file = ".env.lab"
data_dirs = ["uploads"]
[run.health]
interval = 0.2
deadline = 15.0
[proxy]
listen = 8082
[deploy]
rollback_window = 600
[docker]
memory = "256m"
cpus = 0.5
pids_limit = 256
[canary]
steps = [10, 50, 100]
step_min_requests = 300
step_min_seconds = 2.0
step_timeout = 60.0
guard_interval = 1.0
[env.lab]
lab = 2
[env.fixed]
lab = 2
[env.fixed.run.ports]
blue = [9350]
green = [9450]
[env.rolling]
lab = 2
[env.rolling.deploy]
strategy = "rolling"
[env.short]
lab = 2
[env.short.deploy]
rollback_window = 0
"""


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory, docker_lab: Lab) -> Iterator[Project]:
    p = Project(tmp_path_factory.mktemp("docker") / "app", TOML)
    (p.root / ".env.lab").write_text("DB_PASSWORD=s3cr3t-docker-value\n")
    (p.root / ".gitignore").write_text("dist/\n.env.lab\n")
    p.release("v1.0.0")
    yield p
    for h in ("h1", "h2"):
        docker_lab.ssh(h, f"docker rm -f $(docker ps -aq --filter label=io.goship.app={APP}) "
                          f"2>/dev/null; systemctl stop 'goship-{APP}-standby-*' 2>/dev/null",
                       check=False)
    docker_lab.remove_app(APP, ["h1", "h2"])


def version(addr: str, headers: dict[str, str] | None = None) -> str:
    req = urllib.request.Request(f"http://{addr}/version", headers=headers or {})
    with urllib.request.urlopen(req, timeout=5) as r:
        return str(json.loads(r.read())["version"])


def deploy(run_cli: Run, project: Project, env: str = "lab", *args: str) -> CliResult:
    return run_cli("deploy", env, "--skip-checks", *args, cwd=project.root)


def containers(lab: Lab, host: str) -> dict[str, dict[str, object]]:
    out = lab.ssh(host, f"docker inspect $(docker ps -q --filter label=io.goship.app={APP})")
    return {c["Name"].lstrip("/"): c for c in json.loads(out.stdout)}


def test_first_deploy_runs_hardened_containers(run_cli: Run, project: Project,
                                               docker_lab: Lab) -> None:
    r = deploy(run_cli, project)
    assert r.code == 0, r.out + r.err
    assert version(H1) == version(H2) == "v1.0.0"
    running = containers(docker_lab, "h1")
    assert len(running) == 1, running
    c = next(iter(running.values()))
    host = c["HostConfig"]
    assert isinstance(host, dict)
    assert host["Memory"] == 256 * 1024 * 1024
    assert host["NanoCpus"] == 500_000_000
    assert host["PidsLimit"] == 256
    assert host["ReadonlyRootfs"] is True
    assert host["CapDrop"] == ["ALL"]
    assert "no-new-privileges" in host["SecurityOpt"]
    config = c["Config"]
    assert isinstance(config, dict)
    uid = docker_lab.ssh("h1", f"id -u {APP}").stdout.strip()
    assert str(config["User"]).split(":")[0] == uid != "0"
    # the environment comes from the kept env file (0600), never from the image
    image = json.loads(docker_lab.ssh("h1", f"docker image inspect {config['Image']}").stdout)
    assert not any("s3cr3t" in e for e in image[0]["Config"]["Env"])
    assert any(e == "DB_PASSWORD=s3cr3t-docker-value" for e in config["Env"])
    state = json.loads(docker_lab.ssh("h1", f"cat /srv/{APP}/state.json").stdout)
    color = state["live"]["color"]
    stat = docker_lab.ssh("h1", f"stat -c '%a %U' /srv/{APP}/shared/env.{color}").stdout
    assert stat.strip() == f"600 {APP}"
    ps = docker_lab.ssh("h1", "ps -eo args").stdout
    assert "s3cr3t" not in ps
    # run.data_dirs: a volume under the app's shared directory, writable by the service
    mounts = {m["Destination"]: m["Source"] for m in c["Mounts"]}  # type: ignore[union-attr]
    assert mounts["/app/uploads"] == f"/srv/{APP}/shared/data/uploads"


def test_deploy_again_loses_nothing_and_loads_each_image_once(
        run_cli: Run, project: Project, docker_lab: Lab) -> None:
    project.release("v1.1.0")
    with Load(f"http://{H1}/api/items") as load:
        r = deploy(run_cli, project)
    assert r.code == 0, r.out + r.err
    assert version(H1) == version(H2) == "v1.1.0"
    assert load.result.failed == 0, load.result.text
    assert load.result.requests > 1000, load.result.text
    images = docker_lab.ssh("h1", f"docker images --format '{{{{.Repository}}}}:{{{{.Tag}}}}' "
                                  f"goship-{APP}").stdout.split()
    assert len(images) == 2, images
    # the old color stays warm (a running container) until the host's timer stops it
    state = json.loads(docker_lab.ssh("h1", f"cat /srv/{APP}/state.json").stdout)
    old = state["standby"]["color"]
    assert len(containers(docker_lab, "h1")) == 2
    timer = docker_lab.ssh("h1", f"systemctl is-active goship-{APP}-standby-{old}.timer")
    assert timer.stdout.strip() == "active"
    # the same release again: no upload, no load
    again = deploy(run_cli, project, "lab", "--dry-run", "--json")
    assert [h["upload"] for h in json.loads(again.out)["plan"]["hosts"]] == ["skip", "skip"]


def test_instant_rollback_in_the_window(run_cli: Run, project: Project) -> None:
    with Load(f"http://{H2}/api/items") as load:
        r = run_cli("rollback", "lab", cwd=project.root)
    assert r.code == 0, r.out + r.err
    assert version(H1) == version(H2) == "v1.0.0"
    assert load.result.failed == 0, load.result.text


def test_status_and_logs_show_containers(run_cli: Run, project: Project) -> None:
    r = run_cli("status", "lab", "--json", cwd=project.root)
    assert r.code == 0, r.err
    h1 = json.loads(r.out)["hosts"]["h1"]
    assert h1["manager"] == "docker"
    (inst,) = h1["instances"].values()
    assert inst["health"] == "200"
    assert inst["image"].startswith(f"goship-{APP}:v1.0.0-")
    assert len(inst["container"]) == 12
    assert inst["restarts"] == 0
    text = run_cli("status", "lab", cwd=project.root).out
    assert f"container {inst['container']} running, 0 restart(s)" in text
    version(H1)
    logs = run_cli("logs", "lab", "-n", "5", cwd=project.root)
    assert logs.code == 0, logs.err
    assert "[h1 app]" in logs.out
    assert "GET" in logs.out


def test_rollback_after_the_window_starts_the_kept_image(run_cli: Run, project: Project,
                                                        docker_lab: Lab) -> None:
    # env short: no warm standby, the old color's containers are stopped at once
    project.release("v1.2.0")
    assert deploy(run_cli, project, "short").code == 0
    assert len(containers(docker_lab, "h1")) == 1
    with Load(f"http://{H1}/api/items") as load:
        r = run_cli("rollback", "short", cwd=project.root)
    assert r.code == 0, r.out + r.err
    assert version(H1) == version(H2) == "v1.0.0"
    assert load.result.failed == 0, load.result.text


def test_a_crash_looping_container_is_aborted(run_cli: Run, project: Project,
                                              docker_lab: Lab) -> None:
    project.release("v2.0.0-crashy", HELLO_TEST_CRASH_AFTER="300ms")
    with Load(f"http://{H1}/api/items") as load:
        r = deploy(run_cli, project)
    assert r.code == 1, r.out + r.err
    assert "health gate failed" in r.out
    assert version(H1) == version(H2) == "v1.0.0"
    assert load.result.failed == 0, load.result.text
    names = list(containers(docker_lab, "h1"))
    assert all("v2.0.0" not in str(c["Config"]["Image"])  # type: ignore[index]
               for c in containers(docker_lab, "h1").values()), names


def test_engine_down_is_one_line_and_changes_nothing(run_cli: Run, project: Project,
                                                     docker_lab: Lab) -> None:
    project.release("v2.1.0")
    before = docker_lab.ssh("h2", f"cat /srv/{APP}/state.json").stdout
    docker_lab.ssh("h2", "systemctl stop docker.socket docker.service")
    try:
        r = deploy(run_cli, project)
        assert r.code != 0
        assert "h2: the Docker engine does not answer" in r.err
        assert docker_lab.ssh("h2", f"cat /srv/{APP}/state.json").stdout == before
        assert version(H1) == "v1.0.0"
    finally:
        docker_lab.ssh("h2", "systemctl start docker.service")
    # the engine back, the service with it (restart policy)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            if version(H2) == "v1.0.0":
                break
        except OSError:
            time.sleep(0.5)


def test_an_image_that_does_not_load_changes_nothing(run_cli: Run, project: Project,
                                                     docker_lab: Lab,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    from goship.deploy import docker

    real = docker.release_image

    def broken(app: str, rid: str, archive: bytes) -> docker.ReleaseImage:
        img = real(app, rid, archive)
        return docker.ReleaseImage(img.ref, img.id, img.data[: len(img.data) // 2])

    monkeypatch.setattr(docker, "release_image", broken)
    project.release("v2.2.0")
    with Load(f"http://{H1}/api/items") as load:
        r = deploy(run_cli, project)
    assert r.code == 1, r.out + r.err
    assert "docker load refused the image of v2.2.0-" in r.out
    assert version(H1) == version(H2) == "v1.0.0"
    assert load.result.failed == 0, load.result.text
    images = docker_lab.ssh("h1", f"docker images -q goship-{APP}:'v2.2.0-*'").stdout
    assert images.strip() == ""


def test_an_explicit_port_taken_is_refused_before_any_change(run_cli: Run, project: Project,
                                                            docker_lab: Lab) -> None:
    project.release("v2.3.0")
    before = docker_lab.ssh("h1", f"cat /srv/{APP}/state.json").stdout
    for port in (9350, 9450):
        docker_lab.ssh("h1", f"systemd-run --unit=squat-{port} python3 -m http.server {port}")
    try:
        time.sleep(1.0)
        r = deploy(run_cli, project, "fixed")
        assert r.code == 2, r.out + r.err
        assert "is held by squat-" in r.err
        assert docker_lab.ssh("h1", f"cat /srv/{APP}/state.json").stdout == before
        assert version(H1) == "v1.0.0"
    finally:
        docker_lab.ssh("h1", "systemctl stop squat-9350 squat-9450", check=False)


def test_canary_by_header_and_weight(run_cli: Run, project: Project) -> None:
    project.release("v3.0.0")
    r = run_cli("canary", "start", "lab", "--header", "X-App-Version=beta", "--weight", "0",
                "--skip-checks", cwd=project.root)
    assert r.code == 0, r.out + r.err
    with Load(f"http://{H1}/api/items") as load:
        try:
            for _ in range(10):
                assert version(H1, {"X-App-Version": "beta"}) == "v3.0.0"
                assert version(H2, {"X-App-Version": "other"}) == "v1.0.0"
            assert run_cli("canary", "set-weight", "lab", "50", cwd=project.root).code == 0
            seen = {version(H1) for _ in range(60)}
            assert seen == {"v1.0.0", "v3.0.0"}, seen
        finally:
            promoted = run_cli("canary", "promote", "lab", cwd=project.root)
    assert promoted.code == 0, promoted.out + promoted.err
    assert version(H1) == version(H2) == "v3.0.0"
    assert load.result.failed == 0, load.result.text


def test_rolling_across_two_hosts(run_cli: Run, project: Project) -> None:
    project.release("v3.1.0")
    with Load(f"http://{H1}/api/items") as load:
        r = deploy(run_cli, project, "rolling")
    assert r.code == 0, r.out + r.err
    assert "batch 2: h2" in r.err
    assert version(H1) == version(H2) == "v3.1.0"
    assert load.result.failed == 0, load.result.text


def test_canary_abort_leaves_the_stable_containers(run_cli: Run, project: Project,
                                                    docker_lab: Lab) -> None:
    project.release("v3.2.0")
    r = run_cli("canary", "start", "lab", "--header", "X-App-Version=beta", "--skip-checks",
                cwd=project.root)
    assert r.code == 0, r.out + r.err
    with Load(f"http://{H1}/api/items") as load:
        assert version(H1, {"X-App-Version": "beta"}) == "v3.2.0"
        aborted = run_cli("canary", "abort", "lab", cwd=project.root)
    assert aborted.code == 0, aborted.out + aborted.err
    assert version(H1, {"X-App-Version": "beta"}) == version(H2) == "v3.1.0"
    assert load.result.failed == 0, load.result.text
    images = [str(c["Config"]["Image"]) for c in  # type: ignore[index]
              containers(docker_lab, "h1").values()]
    assert not any("v3.2.0" in i for i in images), images


def test_doctor_reports_the_engine(run_cli: Run, project: Project) -> None:
    r = run_cli("doctor", "lab", cwd=project.root)
    line = next((ln for ln in r.out.splitlines() if "h1: docker:" in ln), "")
    assert line.startswith("ok"), r.out
    assert "storage vfs, cgroup v1 (cgroupfs)" in line
    assert "GiB free in /var/lib/goship-docker" in line


def test_images_are_pruned_with_their_releases(docker_lab: Lab) -> None:
    releases = set(docker_lab.ssh("h1", f"ls /srv/{APP}/releases").stdout.split())
    tags = docker_lab.ssh("h1", f"docker images --format '{{{{.Tag}}}}' goship-{APP}"
                          ).stdout.split()
    # deploy.keep_releases (5): early releases were pruned, their images with them (one
    # that never loaded has a directory and no image)
    gone = [r for r in (*releases, *tags) if r.startswith(("v1.1.0-", "v1.2.0-"))]
    assert gone == [], (releases, tags)
    assert set(tags) <= releases, (tags, releases)


def test_remove_takes_containers_and_images(run_cli: Run, project: Project,
                                            docker_lab: Lab) -> None:
    r = run_cli("remove", "lab", "--yes", cwd=project.root)
    assert r.code == 0, r.out + r.err
    for h in ("h1", "h2"):
        left = docker_lab.ssh(h, f"docker ps -aq --filter label=io.goship.app={APP}; "
                                 f"docker images -q goship-{APP}").stdout.split()
        assert left == [], left
