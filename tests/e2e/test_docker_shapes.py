"""Services shaped like real Gin services (tests/projects/) as containers on lab hosts
(`run.manager = "docker"`): a port from a YAML file (run.config_files) with data next to
the binary (run.data_dirs), a CLI subcommand with flags (run.args), cgo (mattn/go-sqlite3,
its C libraries in goship's image). Each: deploy, write data, deploy again and roll back
under load: 0 failed requests, the data still there, the container's argv exact."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.conftest import REPO, CliResult
from tests.e2e.conftest import Lab
from tests.e2e.helpers import git
from tests.e2e.load import Load
from tests.e2e.test_real_services import SHAPES, Shape, get, release

pytestmark = [pytest.mark.lab, pytest.mark.slow]
Run = Callable[..., CliResult]
H1, H2 = "10.78.0.11", "10.78.0.12"
DOCKER_SHAPES = [s for s in SHAPES if s.project in ("yaml-config", "admin-cli", "sqlite-data")]


@pytest.fixture(params=DOCKER_SHAPES, ids=[s.project for s in DOCKER_SHAPES])
def shaped(request: pytest.FixtureRequest, tmp_path: Path, docker_lab: Lab, run_cli: Run
           ) -> Iterator[tuple[Shape, Path]]:
    shape: Shape = request.param
    root = tmp_path / shape.project
    shutil.copytree(REPO / "tests" / "projects" / shape.project, root)
    git(root, "init", "-q")
    git(root, "add", ".")
    git(root, "commit", "-qm", "as it is")
    r = run_cli("init", cwd=root)
    assert r.code == 0, r.out + r.err
    if shape.edits:
        shape.edits(root)
    toml = (root / "goship.toml").read_text()
    toml = toml.replace("[proxy]\n", f"[proxy]\nlisten = {shape.listen}\n", 1)
    # The one change for containers.
    assert "\n[run]\n" in toml
    toml = toml.replace("\n[run]\n", '\n[run]\nmanager = "docker"\n', 1)
    (root / "goship.toml").write_text(toml)
    git(root, "add", "-A")
    git(root, "commit", "-qm", "goship")
    git(root, "tag", "v1.0.0")
    yield shape, root
    for h in ("h1", "h2"):
        docker_lab.ssh(h, f"docker rm -f $(docker ps -aq --filter "
                          f"label=io.goship.app={shape.app}) 2>/dev/null; systemctl stop "
                          f"'goship-{shape.app}-standby-*' 2>/dev/null", check=False)
    docker_lab.remove_app(shape.app, ["h1", "h2"])


def test_containers_deploy_write_deploy_rollback(shaped: tuple[Shape, Path], run_cli: Run,
                                                 docker_lab: Lab) -> None:
    shape, root = shaped
    r = run_cli("deploy", "lab", "--skip-checks", cwd=root)
    assert r.code == 0, r.out + r.err
    for addr in (H1, H2):
        get(addr, shape.listen, shape.health)
    state = json.loads(docker_lab.ssh("h1", f"cat /srv/{shape.app}/state.json").stdout)
    live = state["live"]["color"]
    port = state["ports"][live][0]
    args = json.loads(docker_lab.ssh(
        "h1", f"docker inspect --format '{{{{json .Args}}}}' {shape.app}-{live}-{port}").stdout)
    assert args == [a.replace("PORT", str(port)) for a in shape.argv_tail]
    if shape.project == "yaml-config":
        get(H1, shape.listen, "/notes", b"written by v1")
    if shape.project == "sqlite-data":
        for _ in range(3):
            get(H1, shape.listen, "/visits", b"")
        assert json.loads(get(H1, shape.listen, "/visits"))["count"] == 3
    release(root, "v1.1.0")
    with Load(f"http://{H1}:{shape.listen}{shape.health}") as load:
        r = run_cli("deploy", "lab", "--skip-checks", cwd=root)
        assert r.code == 0, r.out + r.err
        back = run_cli("rollback", "lab", cwd=root)
        assert back.code == 0, back.out + back.err
    assert load.result.failed == 0, load.result.text
    if shape.project == "sqlite-data":
        assert json.loads(get(H1, shape.listen, "/visits"))["count"] == 3
    if shape.project == "yaml-config":
        assert get(H1, shape.listen, "/notes") == "written by v1\n"
        for color in ("blue", "green"):
            p = json.loads(docker_lab.ssh("h1", f"cat /srv/{shape.app}/state.json").stdout
                           )["ports"][color][0]
            text = docker_lab.ssh(
                "h1", f"cat /srv/{shape.app}/colors/{color}-{p}/config.yaml").stdout
            assert f"port: {p}" in text
