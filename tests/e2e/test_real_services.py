"""Services shaped like real Gin services (tests/projects/), deployed blue-green to lab
hosts from what `goship init` wrote, with only the edits init tells the user to make: the
port from a YAML file (run.config_files) with data written next to the binary
(run.data_dirs), a CLI subcommand with flags (run.args), a port flag on a service that
only catches SIGINT. Each: deploy, write data, deploy again and roll back under load:
0 failed requests, the data still there, and the argv systemd gave the process exact."""

from __future__ import annotations

import json
import shutil
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import REPO, CliResult
from tests.e2e.conftest import Lab
from tests.e2e.helpers import git
from tests.e2e.load import Load

pytestmark = [pytest.mark.lab, pytest.mark.slow]
Run = Callable[..., CliResult]
H1, H2 = "10.78.0.11", "10.78.0.12"


@dataclass
class Shape:
    project: str
    app: str
    listen: int
    health: str
    argv_tail: list[str]  # what systemd must pass after the binary (port: PORT)
    edits: Callable[[Path], None] | None = None  # what init tells the user to do


def yaml_port(root: Path) -> None:
    # init: "replace 8090 there with {port}; goship writes each color's port into its copy"
    text = (root / "config.yaml").read_text()
    assert "8090" in text
    (root / "config.yaml").write_text(text.replace("8090", "{port}"))


SHAPES = [
    Shape("yaml-config", "notes-yaml", 8101, "/healthz", [], yaml_port),
    Shape("admin-cli", "admin", 8102, "/api/v1/health",
          ["server", "-c", "config/settings.yml", "--addr", ":PORT"]),
    Shape("sigint-flag", "pinger", 8103, "/health", ["--port", "PORT"]),
    # cgo (mattn/go-sqlite3) writing data/app.db: build.cgo and run.data_dirs from init.
    Shape("sqlite-data", "visits", 8104, "/health", []),
    # //go:embed of a git-ignored web/dist made by `make ui`: build.before from init.
    Shape("embed-ui", "dashboard", 8105, "/readyz", []),
]


def get(addr: str, port: int, path: str, data: bytes | None = None) -> str:
    req = urllib.request.Request(f"http://{addr}:{port}{path}", data=data,
                                 method="POST" if data is not None else "GET")
    with urllib.request.urlopen(req, timeout=5) as r:
        return str(r.read().decode())


@pytest.fixture(params=SHAPES, ids=[s.project for s in SHAPES])
def shaped(request: pytest.FixtureRequest, tmp_path: Path, lab: Lab, run_cli: Run
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
    assert "[env.lab]\nlab = 2" in toml  # init's own rehearsal environment
    # Only what a test needs of its own: a port for nginx beside the other suites' apps.
    toml = toml.replace("[proxy]\n", f"[proxy]\nlisten = {shape.listen}\n", 1)
    (root / "goship.toml").write_text(toml)
    git(root, "add", "-A")
    git(root, "commit", "-qm", "goship")
    git(root, "tag", "v1.0.0")
    yield shape, root
    lab.remove_app(shape.app, ["h1", "h2"], f"goship-{shape.app}-standby-*")


def release(root: Path, tag: str) -> None:
    git(root, "commit", "-qm", tag, "--allow-empty")
    git(root, "tag", tag)


def test_deploy_write_deploy_rollback(shaped: tuple[Shape, Path], run_cli: Run,
                                      lab: Lab) -> None:
    shape, root = shaped
    r = run_cli("deploy", "lab", "--skip-checks", cwd=root)
    assert r.code == 0, r.out + r.err
    for addr in (H1, H2):
        get(addr, shape.listen, shape.health)
    # The process got exactly the argv run.args says, with its own port.
    state = lab.ssh("h1", f"cat /srv/{shape.app}/state.json").stdout
    live = json.loads(state)["live"]["color"]
    port = json.loads(state)["ports"][live][0]
    pid = lab.ssh("h1", f"systemctl show -p MainPID --value {shape.app}-{live}@{port}"
                  ).stdout.strip()
    argv = lab.ssh("h1", f"cat /proc/{pid}/cmdline").stdout.split("\0")[:-1]
    assert argv[1:] == [a.replace("PORT", str(port)) for a in shape.argv_tail]
    if shape.project == "yaml-config":
        get(H1, shape.listen, "/notes", b"written by v1")
    if shape.project == "sqlite-data":
        for _ in range(3):
            get(H1, shape.listen, "/visits", b"")
        assert json.loads(get(H1, shape.listen, "/visits"))["count"] == 3
    if shape.project == "embed-ui":
        assert "<" in get(H1, shape.listen, "/ui/")  # the UI built before go build
    release(root, "v1.1.0")
    with Load(f"http://{H1}:{shape.listen}{shape.health}") as load:
        r = run_cli("deploy", "lab", "--skip-checks", cwd=root)
        assert r.code == 0, r.out + r.err
        back = run_cli("rollback", "lab", cwd=root)
        assert back.code == 0, back.out + back.err
    assert load.result.failed == 0, load.result.text
    if shape.project == "sqlite-data":
        # the database outlived a new release and a rollback (both colors used it)
        assert json.loads(get(H1, shape.listen, "/visits"))["count"] == 3
    if shape.project == "yaml-config":
        # data/ lives in shared/, linked from each release: both colors saw the same notes.
        assert get(H1, shape.listen, "/notes") == "written by v1\n"
        link = lab.ssh("h1", f"readlink /srv/{shape.app}/current/data").stdout.strip()
        assert link == f"/srv/{shape.app}/shared/data/data"
        # each instance read its own port from its own copy of config.yaml
        for color in ("blue", "green"):
            p = json.loads(lab.ssh("h1", f"cat /srv/{shape.app}/state.json").stdout
                           )["ports"][color][0]
            text = lab.ssh("h1", f"cat /srv/{shape.app}/colors/{color}-{p}/config.yaml").stdout
            assert f"port: {p}" in text
        assert "{port}" in lab.ssh("h1", f"cat /srv/{shape.app}/current/config.yaml").stdout

